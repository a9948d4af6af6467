// Deployed into the registry's resource group: lets the app share (promote) models into
// the Azure ML registry and read them back for prod deployments.

param registryName string
@description('Principal id of the function app identity.')
param appPrincipalId string

var roles = loadJsonContent('../roles.json')

resource registry 'Microsoft.MachineLearningServices/registries@2024-10-01' existing = {
  name: registryName
}

resource registryUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, appPrincipalId, roles['AzureML Registry User'])
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['AzureML Registry User'])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}
