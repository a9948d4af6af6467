// The custom topic the app publishes its own events to (decisions, promotions,
// rollouts) as CloudEvents 1.0. Access keys are off; the app sends with its identity.

param location string
param tags object
param topicName string
@description('Principal id of the function app identity, which publishes.')
param appPrincipalId string

var roles = loadJsonContent('../roles.json')

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  // checkov:skip=CKV_AZURE_193: The app publishes over the public endpoint (no VNet); access keys are off, so publishing needs Entra ID and the EventGrid Data Sender role.
  name: topicName
  location: location
  tags: tags
  // Lets subscribers deliver with this identity (deliveryWithResourceIdentity).
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    minimumTlsVersionAllowed: '1.2'
  }
}

resource appSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, appPrincipalId, roles['EventGrid Data Sender'])
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['EventGrid Data Sender'])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = topic.properties.endpoint
output name string = topic.name
