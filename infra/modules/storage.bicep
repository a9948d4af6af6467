// The app's storage account: host storage, the state container, the work queues, the
// scoring input, the Flex Consumption deployment package and Event Grid's dead letters.
// Shared keys are off: every client (host, app, Event Grid) signs in with Entra ID.

param location string
param tags object
@minLength(3)
@maxLength(24)
param storageName string
param deploymentContainerName string
param stateContainerName string
param scoringInputContainerName string
param deadLetterContainerName string
param queueNames array
@description('Principal id of the function app identity.')
param appPrincipalId string
@description('Principal id of the identity Event Grid dead-letters with.')
param eventGridPrincipalId string
@description('Optional: a person or group that uploads scoring input and reads state.')
param operatorPrincipalId string = ''

var roles = loadJsonContent('../roles.json')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: No VNet: Flex Consumption without VNet integration, Event Grid and azd reach the account over its public endpoint; every request needs Entra ID (shared keys off).
  // checkov:skip=CKV_AZURE_59: Same as CKV_AZURE_35: public endpoint on, anonymous and key access off.
  // checkov:skip=CKV_AZURE_206: Single-region app (functions, system topics and watched workspaces share a region), so a geo copy would not keep it running; LRS keeps the small state cheap.
  // checkov:skip=CKV_AZURE_43: The name is a parameter checkov cannot resolve; main.bicep builds it from 'stmlops' and uniqueString() (lowercase letters and digits, 20 characters) and @minLength/@maxLength guard it.
  name: storageName
  location: location
  tags: tags
  sku: {
    name: 'Standard_LRS'
  }
  kind: 'StorageV2'
  properties: {
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for name in [deploymentContainerName, stateContainerName, scoringInputContainerName]: {
    parent: blobs
    name: name
    properties: {
      publicAccess: 'None'
    }
  }
]

resource deadLetters 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for name in queueNames: {
    parent: queueService
    name: name
  }
]

// The host and the app read and write blobs, create containers and take leases.
resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles['Storage Blob Data Owner'])
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Storage Blob Data Owner'])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles['Storage Queue Data Contributor'])
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Storage Queue Data Contributor'])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The state index: one table the app creates on first use and keeps (docs/state.md).
resource appTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles['Storage Table Data Contributor'])
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Storage Table Data Contributor'])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Event Grid writes undeliverable events into the dead-letter container and nowhere else.
resource eventGridDeadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetters.id, eventGridPrincipalId, roles['Storage Blob Data Contributor'])
  scope: deadLetters
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Storage Blob Data Contributor'])
    principalId: eventGridPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource operatorBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(storage.id, operatorPrincipalId, roles['Storage Blob Data Contributor'])
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Storage Blob Data Contributor'])
    principalId: operatorPrincipalId
  }
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
