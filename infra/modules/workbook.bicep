// The Azure Monitor workbook: the control room's views (rollouts, model versions, decision trail, events,
// scoring) from the app's OpenTelemetry data in Application Insights. Its content is ../workbook.json.

param location string
param tags object
@description('Resource id of the Application Insights component the app sends its telemetry to.')
param appInsightsId string
param displayName string = 'aml-reactor'

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID: one per resource group and component.
  name: guid(resourceGroup().id, appInsightsId, 'aml-reactor-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: loadTextContent('../workbook.json')
  }
}

output workbookId string = workbook.id
