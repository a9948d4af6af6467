// Deployed into a watched workspace's resource group: lets the app read the workspace's files with its own
// identity. A workspace with identity-based storage access (`systemDatastoresAuthMode: identity`) hands out no
// account key: azure-ai-ml then reads the default datastore (model downloads) with the caller's token, which
// needs a Storage Blob Data role on the workspace's storage account ("Storage Blob Data Reader" for read-only
// users: MicrosoftDocs/azure-ai-docs, articles/machine-learning/how-to-disable-local-auth-storage.md). The app
// only reads there, so Reader. The storage account is the one the workspace names, in the workspace's resource
// group (where Azure ML creates it; a workspace brought its own account elsewhere needs the grant made there).

param storageAccountName string
@description('Principal id of the function app identity.')
param appPrincipalId string

var roles = loadJsonContent('../roles.json')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles['Storage Blob Data Reader'])
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Storage Blob Data Reader'])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}
