// Entry point for `azd provision`: one resource group holding the RLM function app and
// everything it talks to. Every service is reached keyless, through one user-assigned identity.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; prefixes the resource group and seeds resource names.')
param environmentName string

@minLength(1)
@description('Region for every resource. It must offer Flex Consumption, Durable Task Scheduler, ACA session pools and the chosen models.')
param location string

@description('Object id of the deploying user (azd sets AZURE_PRINCIPAL_ID); gets read access to the Durable Task dashboard. Empty skips it.')
param principalId string = ''

@description('Durable task hub name, also the TASKHUB_NAME app setting.')
param taskHubName string = 'rlm'

@description('Deployment name (ROOT_MODEL) of the model that writes code at the root of a query.')
param rootModelDeployment string = 'gpt-5-4-mini'

@description('Model behind ROOT_MODEL.')
param rootModelName string = 'gpt-5.4-mini'

@description('Model version behind ROOT_MODEL.')
param rootModelVersion string = '2026-03-17'

@description('Deployment name (SUB_MODEL) for sub-queries. When equal to the root deployment, one deployment serves both.')
param subModelDeployment string = 'gpt-5-4-mini'

@description('Model behind SUB_MODEL, used only when it is a separate deployment.')
param subModelName string = 'gpt-5.4-mini'

@description('Model version behind SUB_MODEL, used only when it is a separate deployment.')
param subModelVersion string = '2026-03-17'

@minValue(1)
@description('Capacity of each model deployment, in thousands of tokens per minute.')
param modelCapacity int = 50

@description('Deployment name (EMBEDDING_MODEL) of the embedding model the vector, hybrid and agentic baselines use.')
param embeddingModelDeployment string = 'text-embedding-3-small'

@description('Model behind EMBEDDING_MODEL.')
param embeddingModelName string = 'text-embedding-3-small'

@description('Model version behind EMBEDDING_MODEL.')
param embeddingModelVersion string = '1'

@allowed([
  'GlobalStandard'
  'Standard'
])
@description('Deployment type of the embedding model; Standard where the region has no global deployment of it.')
param embeddingSkuName string = 'GlobalStandard'

@minValue(1)
@description('Capacity of the embedding deployment, in thousands of tokens per minute (indexing a corpus embeds all of it once).')
param embeddingCapacity int = 120

@minValue(1)
@description('Upper bound of sandbox sessions alive at once in the ACA pool (one per running query instance).')
param maxConcurrentSessions int = 20

@minValue(300)
@maxValue(3600)
@description('Idle seconds before ACA ends a session; a later cell rebuilds it by replay.')
param sessionCooldownSeconds int = 300

@minValue(1)
@maxValue(1000)
@description('Ceiling on Flex Consumption instances.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Memory per Flex Consumption instance; the Copilot CLI process alone takes 180-450 MB.')
param instanceMemoryMB int = 2048

@description('Email address that alerts (failure rate, p95 latency) are sent to; azd reads it from ALERT_EMAIL. Empty: the rules exist but notify no one.')
param alertEmail string = ''

@minValue(1)
@maxValue(100)
@description('Alert when more than this percentage of root queries fail within an hour.')
param alertFailureRatePercent int = 10

@minValue(1)
@description('Alert when the p95 duration of root queries within an hour exceeds this many seconds.')
param alertP95LatencySeconds int = 600

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-rlm-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-rlm-${resourceToken}'
    appInsightsName: 'appi-rlm-${resourceToken}'
    location: location
    tags: tags
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
    location: location
    tags: tags
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
    location: location
    tags: tags
    alertEmail: alertEmail
    failureRatePercent: alertFailureRatePercent
    p95LatencySeconds: alertP95LatencySeconds
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'strlm${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${resourceToken}'
  }
}

module sessionPool 'modules/sessionpool.bicep' = {
  name: 'sessionpool'
  scope: rg
  params: {
    name: 'sp-rlm-${resourceToken}'
    location: location
    tags: tags
    maxConcurrentSessions: maxConcurrentSessions
    cooldownSeconds: sessionCooldownSeconds
  }
}

module ai 'modules/ai.bicep' = {
  name: 'ai'
  scope: rg
  params: {
    name: 'ai-rlm-${resourceToken}'
    location: location
    tags: tags
    rootModelDeployment: rootModelDeployment
    rootModelName: rootModelName
    rootModelVersion: rootModelVersion
    subModelDeployment: subModelDeployment
    subModelName: subModelName
    subModelVersion: subModelVersion
    capacity: modelCapacity
    embeddingModelDeployment: embeddingModelDeployment
    embeddingModelName: embeddingModelName
    embeddingModelVersion: embeddingModelVersion
    embeddingCapacity: embeddingCapacity
    embeddingSkuName: embeddingSkuName
  }
}

module durableTask 'modules/durabletask.bicep' = {
  name: 'durabletask'
  scope: rg
  params: {
    name: 'dts-rlm-${resourceToken}'
    location: location
    tags: tags
    taskHubName: taskHubName
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    storageAccountName: storage.outputs.name
    sessionPoolName: sessionPool.outputs.name
    aiAccountName: ai.outputs.name
    schedulerName: durableTask.outputs.schedulerName
    taskHubName: durableTask.outputs.taskHubName
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  dependsOn: [
    rbac
  ]
  params: {
    planName: 'plan-rlm-${resourceToken}'
    appName: 'func-rlm-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    corporaContainer: storage.outputs.corporaContainer
    tracesContainer: storage.outputs.tracesContainer
    payloadsContainer: storage.outputs.payloadsContainer
    resultsContainer: storage.outputs.resultsContainer
    appInsightsConnectionString: monitoring.outputs.connectionString
    schedulerEndpoint: durableTask.outputs.endpoint
    taskHubName: durableTask.outputs.taskHubName
    sessionPoolEndpoint: sessionPool.outputs.poolManagementEndpoint
    modelEndpoint: ai.outputs.endpoint
    rootModelDeployment: ai.outputs.rootDeployment
    subModelDeployment: ai.outputs.subDeployment
    embeddingModelDeployment: ai.outputs.embeddingDeployment
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output SESSION_POOL_ENDPOINT string = sessionPool.outputs.poolManagementEndpoint
output MODEL_BASE_URL string = ai.outputs.endpoint
output DURABLE_TASK_SCHEDULER_ENDPOINT string = durableTask.outputs.endpoint
output DURABLE_TASK_DASHBOARD_URL string = durableTask.outputs.dashboardUrl
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output AZURE_MONITOR_WORKBOOK_ID string = workbook.outputs.id
