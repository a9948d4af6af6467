// Deployed into the resource group of one watched Azure ML workspace: the Event Grid
// system topic on the workspace, subscriptions per Azure ML event type (filtered to what the app acts
// on) delivering to the app's `aml_events` function, and the app's roles on the workspace.
//
// Event Grid allows one system topic per source: if the workspace already has one,
// pass its name as `systemTopicName`.

param workspaceName string
param systemTopicName string
@description('Prefix of the subscription names, so that each names the app it feeds.')
param subscriptionPrefix string
param tags object
@description('Resource id of the function that receives the events (…/sites/APP/functions/aml_events).')
param functionId string
@description('Create the subscriptions: only once the function exists, since Event Grid validates the endpoint.')
param subscribe bool
@description('User-assigned identity Event Grid dead-letters with.')
param eventGridIdentityId string
param deadLetterStorageId string
param deadLetterContainerName string
@description('Only models whose name starts with this prefix raise ModelRegistered deliveries; empty: all models.')
param modelNamePrefix string = ''
@description('Principal id of the function app identity.')
param appPrincipalId string

var roles = loadJsonContent('../roles.json')

// The subject prefix is known for ModelRegistered only (`models/{name}:{version}`); the other
// types are delivered whatever their subject, as their subject formats vary across sources.
//
// RunStatusChanged is raised only when a run fails: runStatusChanged events "only trigger when the run status
// is failed" (MicrosoftDocs/azure-ai-docs, articles/machine-learning/how-to-use-event-grid.md). A canceled run
// raises none: the app's resync finds a canceled test job by reading it. Pipeline step runs raise their own
// (runType azureml.StepRun, Azure-Samples/azure-machine-learning-pipeline-observability-sample); the app acts on
// the pipeline's own event and records a step's as ignored (shared/reactor/reactions.py). The app acts on two
// kinds, so two subscriptions filter it (advanced filters of one subscription are ANDed, hence two):
// - runs that failed (the app tells ops; a failed test job fails its model); `Canceled` stays in the
//   filter in case a run raises it after all, since the app treats both alike;
// - model monitor (v2) breaches: the filter the Azure ML docs give, on the tag the monitor's
//   threshold step sets (MicrosoftDocs/azure-ai-docs, articles/machine-learning/how-to-monitor-model-performance.md,
//   "Integrate Azure Machine Learning model monitoring with Azure Event Grid").
// A breach whose run failed matches both: the app's ledger keeps one of the two deliveries (same event id).
// String comparisons of advanced filters are case-insensitive (MicrosoftDocs/azure-docs,
// articles/event-grid/event-filtering.md), so `Failed` matches `failed` too.
//
// Filter-key casing is NOT settled by any public source: the payload says `runStatus` / `runTags`, the keys
// below say `data.RunStatus` / `data.RunTags.…` as the model-monitoring doc writes them, and the Event Grid
// docs say values compare case-insensitively but say nothing about keys. If keys compared case-sensitively,
// these two subscriptions would deliver nothing. The app checks this at startup: it reads these subscriptions'
// filters and warns when a key does not match the payload's casing (shared/adapters/azureml/eventfilters.py);
// after deploying, send a failed test run and confirm it arrives (docs/fidelity.md, "Filter-key casing").
var noAdvancedFilters = []
var deliveries = [
  {
    name: 'model-registered'
    eventType: 'Microsoft.MachineLearningServices.ModelRegistered'
    subjectBeginsWith: empty(modelNamePrefix) ? '' : 'models/${modelNamePrefix}'
    advancedFilters: noAdvancedFilters
  }
  {
    name: 'model-deployed'
    eventType: 'Microsoft.MachineLearningServices.ModelDeployed'
    subjectBeginsWith: ''
    advancedFilters: noAdvancedFilters
  }
  {
    name: 'run-completed'
    eventType: 'Microsoft.MachineLearningServices.RunCompleted'
    subjectBeginsWith: ''
    advancedFilters: noAdvancedFilters
  }
  {
    name: 'run-status-changed'
    eventType: 'Microsoft.MachineLearningServices.RunStatusChanged'
    subjectBeginsWith: ''
    advancedFilters: [
      {
        operatorType: 'StringIn'
        key: 'data.RunStatus'
        values: [
          'Failed'
          'Canceled'
        ]
      }
    ]
  }
  {
    name: 'model-monitor-breached'
    eventType: 'Microsoft.MachineLearningServices.RunStatusChanged'
    subjectBeginsWith: ''
    advancedFilters: [
      {
        operatorType: 'StringContains'
        key: 'data.RunTags.azureml_modelmonitor_threshold_breached'
        values: [
          'has failed due to one or more features violating metric thresholds'
        ]
      }
    ]
  }
  {
    name: 'dataset-drift-detected'
    eventType: 'Microsoft.MachineLearningServices.DatasetDriftDetected'
    subjectBeginsWith: ''
    advancedFilters: noAdvancedFilters
  }
]

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-10-01' existing = {
  name: workspaceName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: systemTopicName
  location: workspace.location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${eventGridIdentityId}': {}
    }
  }
  properties: {
    source: workspace.id
    topicType: 'Microsoft.MachineLearningServices.Workspaces'
  }
}

resource subscriptions 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = [
  for delivery in (subscribe ? deliveries : []): {
    parent: systemTopic
    name: '${subscriptionPrefix}-${delivery.name}'
    properties: {
      // By resource id: Event Grid fetches the function's key itself, none to copy by hand.
      destination: {
        endpointType: 'AzureFunction'
        properties: {
          resourceId: functionId
          maxEventsPerBatch: 1
          preferredBatchSizeInKilobytes: 64
        }
      }
      eventDeliverySchema: 'EventGridSchema'
      filter: {
        includedEventTypes: [
          delivery.eventType
        ]
        subjectBeginsWith: delivery.subjectBeginsWith
        advancedFilters: delivery.advancedFilters
      }
      retryPolicy: {
        maxDeliveryAttempts: 30
        eventTimeToLiveInMinutes: 1440
      }
      deadLetterWithResourceIdentity: {
        identity: {
          type: 'UserAssigned'
          userAssignedIdentity: eventGridIdentityId
        }
        deadLetterDestination: {
          endpointType: 'StorageBlob'
          properties: {
            resourceId: deadLetterStorageId
            blobContainerName: deadLetterContainerName
          }
        }
      }
    }
  }
]

// Run the test pipelines, deploy and roll out: everything in the workspace except compute.
resource dataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, appPrincipalId, roles['AzureML Data Scientist'])
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['AzureML Data Scientist'])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Rollout gates read the online endpoints' metrics from Azure Monitor.
resource monitoringReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, appPrincipalId, roles['Monitoring Reader'])
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Monitoring Reader'])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The app's startup self-check reads these subscriptions' filters (shared/adapters/azureml/eventfilters.py):
// Reader of the topic lets it list them (Microsoft.EventGrid/systemTopics/eventSubscriptions/read), nothing more.
resource topicReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(systemTopic.id, appPrincipalId, roles['Reader'])
  scope: systemTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Reader'])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Model files in the workspace's default datastore, read with the app's own identity: a workspace with
// identity-based storage access hands out no key (storage-data-role.bicep says why and where).
module workspaceStorageReader 'storage-data-role.bicep' = {
  name: 'storage-reader-${uniqueString(workspace.id, appPrincipalId)}'
  params: {
    storageAccountName: last(split(workspace.properties.storageAccount, '/'))
    appPrincipalId: appPrincipalId
  }
}

output systemTopicName string = systemTopic.name
