// The app's two Entra ID app registrations, made with the Microsoft Graph Bicep extension
// (its version is pinned in infra/bicepconfig.json). docs/identity-azure.md explains them.
//
// - The API: the audience of the bearer tokens the app validates itself (v2 access tokens,
//   `aud` = its client id). It defines the app roles the app checks, adds the optional `upn`
//   claim to access tokens, exposes `user_impersonation`, and is also the control room's
//   single-page app (MSAL.js, auth code + PKCE, redirected back to the control room page).
//   Its service principal requires an app role assignment: nobody gets a token for the API
//   before someone assigns them a role.
// - opsctl: a public client (device code; browser sign-in on http://localhost) that asks for
//   `user_impersonation`. It and the Azure CLI are pre-authorized for that scope, so neither
//   shows a consent prompt.
//
// The API's identifier URI is `api://<its client id>`, a form every tenant's identifier URI
// policy accepts. The client id exists only once the registration does, so the registration
// is declared twice under the same uniqueName (Graph Bicep upserts by uniqueName): `apiApp`
// creates it and gives it its name only, `api` declares everything else once the client ids
// of the API and of opsctl are known. Graph updates with PATCH, so the first declaration
// leaves on a redeployment whatever the second one set.

extension microsoftGraphV1

@description('uniqueName of the API registration (unique in the tenant); opsctl\'s is this plus `-opsctl`.')
param uniqueName string

@description('Display name of the API registration; opsctl\'s adds ` opsctl`.')
param displayName string

@description('The control room page the function app serves: the SPA redirect URI (https://<app host>/api/ops/controlroom).')
param controlRoomUrl string

var opsctlUniqueName = '${uniqueName}-opsctl'
var scopeValue = 'user_impersonation'
var scopeId = guid(uniqueName, scopeValue)
var graphAppId = '00000003-0000-0000-c000-000000000000'
// Microsoft Azure CLI, Microsoft's own public client: opsctl may take its token from `az login`.
var azureCliAppId = '04b07795-8ddb-461a-bbee-02f9e1bf7b46'

// The OpenID Connect scopes MSAL asks for on every sign-in (Microsoft Graph delegated permissions
// openid, profile, offline_access), listed so that an admin's consent to a registration covers them.
var signInAccess = {
  resourceAppId: graphAppId
  resourceAccess: [
    {
      id: '37f7f235-527c-4136-accd-4a02d197296e' // openid
      type: 'Scope'
    }
    {
      id: '14dad69e-099b-42c9-810b-d002981feec1' // profile
      type: 'Scope'
    }
    {
      id: '7427e0e9-2fba-42fe-b0c0-848c9e6a8182' // offline_access
      type: 'Scope'
    }
  ]
}

// The roles the app checks in the `roles` claim. Ids are stable (derived from the registration's
// uniqueName), so a redeployment keeps every assignment. Approver and Admin are people only.
var appRoles = [
  {
    id: guid(uniqueName, 'MLOps.Reader')
    value: 'MLOps.Reader'
    displayName: 'MLOps Reader'
    description: 'Read everything: every GET of the ops API, and the control room.'
    allowedMemberTypes: ['User', 'Application']
    isEnabled: true
  }
  {
    id: guid(uniqueName, 'MLOps.Operator')
    value: 'MLOps.Operator'
    displayName: 'MLOps Operator'
    description: 'Run rollouts: pause, resume, approve a step, promote one step, abort, undo, set traffic; replay set-aside events; start a retraining.'
    allowedMemberTypes: ['User', 'Application']
    isEnabled: true
  }
  {
    id: guid(uniqueName, 'MLOps.Approver')
    value: 'MLOps.Approver'
    displayName: 'MLOps Approver'
    description: 'Review decisions: approve or reject what waits for a second person.'
    allowedMemberTypes: ['User']
    isEnabled: true
  }
  {
    id: guid(uniqueName, 'MLOps.Admin')
    value: 'MLOps.Admin'
    displayName: 'MLOps Admin'
    description: 'Change the deployment policy, promote a rollout in full, force a model promotion.'
    allowedMemberTypes: ['User']
    isEnabled: true
  }
]

// The API's registration, created with its name only; `api` below declares the rest.
resource apiApp 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
}

resource opsctl 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: opsctlUniqueName
  displayName: '${displayName} opsctl'
  signInAudience: 'AzureADMyOrg'
  // "Allow public client flows": device code, no client secret.
  isFallbackPublicClient: true
  publicClient: {
    // azure-identity's InteractiveBrowserCredential listens on http://localhost (any port).
    redirectUris: ['http://localhost']
  }
  requiredResourceAccess: [
    {
      resourceAppId: apiApp.appId
      resourceAccess: [
        {
          id: scopeId
          type: 'Scope'
        }
      ]
    }
    signInAccess
  ]
  owners: {
    relationships: [deployer().objectId]
  }
}

resource api 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: ['api://${apiApp.appId}']
  api: {
    // v2 access tokens: `iss` https://login.microsoftonline.com/{tenant}/v2.0, `aud` the client id.
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [
      {
        id: scopeId
        value: scopeValue
        type: 'User'
        isEnabled: true
        adminConsentDisplayName: 'Use the MLOps app as the signed-in user'
        adminConsentDescription: 'Lets the app call the MLOps ops API as the signed-in user, within the app roles assigned to that user.'
        userConsentDisplayName: 'Use the MLOps app as you'
        userConsentDescription: 'Lets the app call the MLOps ops API as you, within the app roles assigned to you.'
      }
    ]
    preAuthorizedApplications: [
      {
        appId: opsctl.appId
        delegatedPermissionIds: [scopeId]
      }
      {
        appId: azureCliAppId
        delegatedPermissionIds: [scopeId]
      }
    ]
  }
  appRoles: appRoles
  optionalClaims: {
    // The signed-in person's UPN, compared with Azure ML's systemData.createdBy for four-eyes checks.
    accessToken: [
      {
        name: 'upn'
      }
    ]
  }
  spa: {
    redirectUris: [controlRoomUrl]
  }
  // The control room asks for its own API's scope: listed so that an admin's consent covers it.
  requiredResourceAccess: [
    {
      resourceAppId: apiApp.appId
      resourceAccess: [
        {
          id: scopeId
          type: 'Scope'
        }
      ]
    }
    signInAccess
  ]
  owners: {
    relationships: [deployer().objectId]
  }
}

resource apiPrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: api.appId
  // Only people and apps assigned an app role get a token for the API.
  appRoleAssignmentRequired: true
  // The enterprise app's owners may assign its roles (docs/identity-azure.md).
  owners: {
    relationships: [deployer().objectId]
  }
}

resource opsctlPrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: opsctl.appId
}

@description('The API registration\'s client id: the audience of the app\'s tokens.')
output apiClientId string = api.appId

@description('The API\'s identifier URI; opsctl asks for `<this>/user_impersonation`.')
output apiIdentifierUri string = 'api://${api.appId}'

@description('Object id of the API\'s service principal: app roles are assigned on it.')
output apiPrincipalId string = apiPrincipal.id

@description('opsctl\'s client id (a public client).')
output opsctlClientId string = opsctl.appId
