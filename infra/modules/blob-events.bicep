// The `score_blob` blob trigger: Flex Consumption supports only the Event Grid source, so
// BlobCreated events from the scoring input container are pushed to the blob extension's
// webhook. Its `blobs_extension` system key exists only once the code is deployed, so the
// subscription is created on the second provisioning (`subscribe`).

param location string
param tags object
param storageName string
param systemTopicName string
param scoringInputContainerName string
param functionAppName string
@description('Create the subscription: only once the code, and so the blob extension key, exists.')
param subscribe bool
@description('User-assigned identity Event Grid dead-letters with.')
param eventGridIdentityId string
param deadLetterContainerName string

var functionName = 'score_blob'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName
}

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

var webhookBase = 'https://${app.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}'
var hostKeysId = '${app.id}/host/default'
// ARM evaluates only the chosen branch of `?:`, so the key is read only once it exists.
var blobsExtensionKey = subscribe ? listKeys(hostKeysId, '2024-04-01').systemKeys.blobs_extension : ''

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: systemTopicName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${eventGridIdentityId}': {}
    }
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

module subscription 'blob-subscription.bicep' = if (subscribe) {
  name: 'blob-subscription-${functionName}'
  params: {
    systemTopicName: systemTopic.name
    name: 'scoring-input-to-${replace(functionName, '_', '-')}'
    endpointUrl: '${webhookBase}&code=${blobsExtensionKey}'
    subjectBeginsWith: '/blobServices/default/containers/${scoringInputContainerName}/'
    eventGridIdentityId: eventGridIdentityId
    deadLetterStorageId: storage.id
    deadLetterContainerName: deadLetterContainerName
  }
}
