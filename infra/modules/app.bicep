// The Flex Consumption plan and the Python 3.11 function app. It runs as the
// user-assigned identity, which also fetches the deployment package and resolves
// Key Vault references.

param location string
param tags object
param planName string
param appName string
param identityId string
@description('Blob endpoint of the app storage account, ending in a slash.')
param blobEndpoint string
param deploymentContainerName string
param appSettings array
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption keeps at least two always-ready instances per function group, billed while idle; turn on zoneRedundant (with ZRS storage) for production in a zone-enabled region.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Event Grid delivers to the functions over the public endpoint (no VNet); HTTP functions require function keys.
  // checkov:skip=CKV_AZURE_17: Event Grid webhook deliveries carry no client certificate, so requiring one would stop every delivery.
  // checkov:skip=CKV_AZURE_212: A minimum instance count means always-ready instances billed while idle; Flex Consumption scales from zero per function.
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no App Service health check; failures show in Application Insights and retries go to poison queues and dead letters.
  name: appName
  location: location
  // azd finds the app to deploy the code to by this tag.
  tags: union(tags, { 'azd-service-name': 'app' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: appSettings
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No publishing passwords: code is deployed with Entra ID (azd, az, func).
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = app.id
output name string = app.name
output hostName string = app.properties.defaultHostName
