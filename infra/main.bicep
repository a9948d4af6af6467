// The whole app in one resource group: `azd up`, or `az deployment group create`.
// See infra/README.md for what each resource is for, what it costs and the roles.

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(40)
@description('Name of the environment (azd); seeds the unique suffix of every resource name.')
param environmentName string

@description('Region of the app; the Event Grid system topics follow their sources.')
param location string = resourceGroup().location

@minLength(1)
@description('The Azure ML workspaces to watch, as the app reads them: `dev=/subscriptions/…/workspaces/mlw-dev,prod=…`.')
param workspaces string

@description('Optional: resource id of the Azure ML registry that models are promoted to.')
param registryId string = ''

@description('Create the Event Grid subscriptions. Event Grid validates the functions when subscribing, so this is false until the code is deployed (the azd postdeploy hook turns it on).')
param deployEventSubscriptions bool = false

@description('Optional: deliver ModelRegistered only for models whose name starts with this.')
param modelNamePrefix string = ''

@description('Relative to the app root, or absolute: the deployment policy the app reads.')
param policyPath string = 'policy/policy.yaml'

@description('NCRONTAB schedule of the `resync` timer.')
param resyncSchedule string = '0 */10 * * * *'

@description('NCRONTAB schedule of the `rollout_tick` timer.')
param rolloutSchedule string = '0 * * * * *'

@description('Optional: URL of the generic signed webhook to notify.')
param notifyWebhookUrl string = ''

@description('Comma-separated secret settings stored in the Key Vault (secret name: the setting name with - for _), e.g. `MLOPS_NOTIFY_SLACK_URL,MLOPS_NOTIFY_WEBHOOK_SECRET`.')
param secretsInVault string = ''

@description('Optional: object id of the person or group operating the app (uploads scoring input, writes secrets).')
param operatorPrincipalId string = ''

var token = toLower(uniqueString(resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  app: 'aml-reactor'
}
var names = {
  app: 'func-mlops-${token}'
  plan: 'plan-mlops-${token}'
  storage: 'stmlops${token}'
  appIdentity: 'id-mlops-${token}'
  eventGridIdentity: 'id-mlops-eventgrid-${token}'
  logs: 'log-mlops-${token}'
  appInsights: 'appi-mlops-${token}'
  vault: 'kv-mlops-${token}'
  topic: 'evgt-mlops-${token}'
  storageTopic: 'evgst-mlops-${token}'
  // Entra ID app registration (uniqueName, unique in the tenant); opsctl's adds `-opsctl`.
  apiApp: 'aml-reactor-${token}'
}
var containers = {
  deployment: 'app-package'
  state: 'mlops-state'
  scoringInput: 'scoring-input'
  scoringOutput: 'scoring-output'
  deadLetters: 'eventgrid-deadletters'
}
// The queue of scoring ranges: the app setting MLOPS_SCORING_QUEUE, which the score_range trigger binds.
var scoringQueue = 'scoring-ranges'
// The queues the functions are triggered by (the host makes the other poison queues itself).
var queueNames = [
  'aml-work'
  'aml-work-poison'
  scoringQueue
]

// `name=/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}`
var watched = [
  for pair in split(workspaces, ','): {
    name: trim(split(pair, '=')[0])
    subscriptionId: split(trim(split(pair, '=')[1]), '/')[2]
    resourceGroup: split(trim(split(pair, '=')[1]), '/')[4]
    workspace: split(trim(split(pair, '=')[1]), '/')[8]
  }
]
// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/registries/{name}`
var registryParts = split(registryId, '/')
var hasRegistry = length(registryParts) == 9
var registry = {
  subscriptionId: hasRegistry ? registryParts[2] : subscription().subscriptionId
  resourceGroup: hasRegistry ? registryParts[4] : resourceGroup().name
  name: hasRegistry ? registryParts[8] : ''
}

// The secrets the app can read; each is set, as a Key Vault reference, once it is in the vault.
var secretSettingNames = [
  'MLOPS_NOTIFY_TEAMS_URL'
  'MLOPS_NOTIFY_SLACK_URL'
  'MLOPS_NOTIFY_WEBHOOK_SECRET'
]
var secretSettings = [
  for name in intersection(secretSettingNames, split(replace(secretsInVault, ' ', ''), ',')): {
    name: name
    value: '@Microsoft.KeyVault(VaultName=${names.vault};SecretName=${replace(name, '_', '-')})'
  }
]

// The control room page's address, the SPA redirect URI of the app registration. The registration
// is made before the function app (the app's settings carry its client ids), so the address is
// built from the app's name: its default host name is `<name>.azurewebsites.net`, as app.bicep asks
// for no unique default host name.
var controlRoomUrl = 'https://${names.app}.azurewebsites.net/api/ops/controlroom'
// Where the app's tokens come from: `https://login.microsoftonline.com`, without the trailing slash
// (the app builds the issuer `{authority}/{tenant}/v2.0` from it).
var loginEndpoint = environment().authentication.loginEndpoint
var authAuthority = endsWith(loginEndpoint, '/') ? substring(loginEndpoint, 0, length(loginEndpoint) - 1) : loginEndpoint

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.appIdentity
  location: location
  tags: tags
}

// Event Grid's own identity: it may only write dead letters.
resource eventGridIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.eventGridIdentity
  location: location
  tags: tags
}

// The Entra ID app registrations the app's bearer tokens come from (API, app roles, control room
// sign-in) and opsctl's public client: docs/identity-azure.md.
module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    uniqueName: names.apiApp
    displayName: 'aml-reactor ${environmentName}'
    controlRoomUrl: controlRoomUrl
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: names.logs
    appInsightsName: names.appInsights
    appPrincipalId: appIdentity.properties.principalId
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    storageName: names.storage
    deploymentContainerName: containers.deployment
    stateContainerName: containers.state
    scoringInputContainerName: containers.scoringInput
    deadLetterContainerName: containers.deadLetters
    queueNames: queueNames
    appPrincipalId: appIdentity.properties.principalId
    eventGridPrincipalId: eventGridIdentity.properties.principalId
    operatorPrincipalId: operatorPrincipalId
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    vaultName: names.vault
    appPrincipalId: appIdentity.properties.principalId
    operatorPrincipalId: operatorPrincipalId
  }
}

module topic 'modules/topic.bicep' = {
  name: 'topic'
  params: {
    location: location
    tags: tags
    topicName: names.topic
    appPrincipalId: appIdentity.properties.principalId
  }
}

var appSettings = [
  // The host's storage, identity-based: no connection string, no key.
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: storage.outputs.blobEndpoint
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: storage.outputs.queueEndpoint
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: storage.outputs.tableEndpoint
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: appIdentity.properties.clientId
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: appIdentity.properties.clientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: monitoring.outputs.connectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${appIdentity.properties.clientId};Authorization=AAD'
  }
  {
    // The Python worker hands each invocation's trace context to the app's OpenTelemetry (shared/adapters/telemetry.py)
    // and leaves the app's logs to it, so the host does not send them twice (host.json: telemetryMode).
    name: 'PYTHON_ENABLE_OPENTELEMETRY'
    value: 'true'
  }
  {
    name: 'MLOPS_WORKSPACES'
    value: workspaces
  }
  {
    name: 'MLOPS_REGISTRY'
    value: registry.name
  }
  {
    name: 'MLOPS_POLICY_PATH'
    value: policyPath
  }
  {
    name: 'MLOPS_STATE_CONTAINER'
    value: containers.state
  }
  {
    name: 'MLOPS_RESYNC_SCHEDULE'
    value: resyncSchedule
  }
  {
    name: 'MLOPS_ROLLOUT_SCHEDULE'
    value: rolloutSchedule
  }
  {
    name: 'MLOPS_NOTIFY_EVENTGRID_ENDPOINT'
    value: topic.outputs.endpoint
  }
  {
    name: 'MLOPS_SCORING_INPUT_CONTAINER'
    value: containers.scoringInput
  }
  {
    name: 'MLOPS_SCORING_OUTPUT_CONTAINER'
    value: containers.scoringOutput
  }
  {
    name: 'MLOPS_SCORING_QUEUE'
    value: scoringQueue
  }
  {
    name: 'MLOPS_NOTIFY_WEBHOOK_URL'
    value: notifyWebhookUrl
  }
  // The app validates Entra ID bearer tokens itself: `iss` {authority}/{tenant}/v2.0, `aud` the API's client id.
  {
    name: 'MLOPS_AUTH_AUTHORITY'
    value: authAuthority
  }
  {
    name: 'MLOPS_AUTH_TENANT_ID'
    value: tenant().tenantId
  }
  {
    name: 'MLOPS_AUTH_CLIENT_ID'
    value: identity.outputs.apiClientId
  }
  {
    name: 'MLOPS_AUTH_OPSCTL_CLIENT_ID'
    value: identity.outputs.opsctlClientId
  }
]

module app 'modules/app.bicep' = {
  name: 'app'
  params: {
    location: location
    tags: tags
    planName: names.plan
    appName: names.app
    identityId: appIdentity.id
    blobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: containers.deployment
    appSettings: concat(appSettings, secretSettings)
  }
}

module amlEvents 'modules/aml-events.bicep' = [
  for ws in watched: {
    name: 'aml-events-${ws.name}'
    scope: resourceGroup(ws.subscriptionId, ws.resourceGroup)
    params: {
      workspaceName: ws.workspace
      systemTopicName: 'evgst-${ws.workspace}'
      subscriptionPrefix: names.app
      tags: tags
      functionId: '${app.outputs.id}/functions/aml_events'
      subscribe: deployEventSubscriptions
      eventGridIdentityId: eventGridIdentity.id
      deadLetterStorageId: storage.outputs.id
      deadLetterContainerName: containers.deadLetters
      modelNamePrefix: modelNamePrefix
      appPrincipalId: appIdentity.properties.principalId
    }
  }
]

module registryRole 'modules/registry-role.bicep' = if (hasRegistry) {
  name: 'registry-role'
  scope: resourceGroup(registry.subscriptionId, registry.resourceGroup)
  params: {
    registryName: registry.name
    appPrincipalId: appIdentity.properties.principalId
  }
}

module blobEvents 'modules/blob-events.bicep' = {
  name: 'blob-events'
  params: {
    location: location
    tags: tags
    storageName: storage.outputs.name
    systemTopicName: names.storageTopic
    scoringInputContainerName: containers.scoringInput
    functionAppName: app.outputs.name
    subscribe: deployEventSubscriptions
    eventGridIdentityId: eventGridIdentity.id
    deadLetterContainerName: containers.deadLetters
  }
}

output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${app.outputs.hostName}'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output MLOPS_NOTIFY_EVENTGRID_ENDPOINT string = topic.outputs.endpoint
output MLOPS_SCORING_INPUT_CONTAINER string = containers.scoringInput
output MLOPS_DEAD_LETTER_CONTAINER string = containers.deadLetters
// Sign-in: what opsctl and the control room need (docs/identity-azure.md).
output MLOPS_AUTH_TENANT_ID string = tenant().tenantId
output MLOPS_AUTH_CLIENT_ID string = identity.outputs.apiClientId
output MLOPS_AUTH_OPSCTL_CLIENT_ID string = identity.outputs.opsctlClientId
output MLOPS_AUTH_API_URI string = identity.outputs.apiIdentifierUri
output MLOPS_CONTROL_ROOM_URL string = 'https://${app.outputs.hostName}/api/ops/controlroom'
