// Key Vault for the secrets the app reads through Key Vault references (webhook URLs
// that embed a token, the webhook signing secret). RBAC only; no access policies.

param location string
param tags object
param vaultName string
@description('Principal id of the function app identity, which reads secrets.')
param appPrincipalId string
@description('Optional: a person or group that writes the secrets.')
param operatorPrincipalId string = ''

var roles = loadJsonContent('../roles.json')

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Without VNet integration the platform resolves Key Vault references over the public endpoint; access is RBAC-only.
  // checkov:skip=CKV_AZURE_189: Key Vault references are resolved over the public endpoint without VNet integration; access is RBAC-only.
  // checkov:skip=CKV_AZURE_110: Purge protection would block `azd down --purge` and a redeploy under the same name for the retention period; the vault holds only re-issuable webhook secrets.
  // checkov:skip=CKV_AZURE_42: Soft delete is on (7 days); full recoverability needs purge protection, see CKV_AZURE_110.
  name: vaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roles['Key Vault Secrets User'])
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Key Vault Secrets User'])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource operatorSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, roles['Key Vault Secrets Officer'])
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Key Vault Secrets Officer'])
    principalId: operatorPrincipalId
  }
}

output name string = vault.name
