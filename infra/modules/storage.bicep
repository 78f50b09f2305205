// The one storage account: Functions host state (AzureWebJobsStorage), the deployment
// package container, the app's blob containers (DESIGN section 8) and the batch queue.
// Shared keys are off, so every client authenticates with Entra ID.
param name string
param location string
param tags object
param deploymentContainerName string

var appContainers = [
  'corpora'
  'traces'
  'payloads'
  'results'
]
var batchQueueName = 'rlm-batch'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches storage over its public endpoint; access is Entra-only (shared keys off).
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: no VNet or private endpoint in this template; anonymous blob access and shared keys are off.
  // checkov:skip=CKV_AZURE_206: Locally redundant on purpose: corpora can be re-uploaded and traces/results regenerated; LRS keeps the idle cost minimal.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
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
  for container in union(appContainers, [deploymentContainerName]): {
    parent: blobService
    name: container
    properties: {
      publicAccess: 'None'
    }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// The poison queue is named by the Functions runtime convention `<queue>-poison`;
// creating it up front lets operators watch it before the first failure.
resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in [batchQueueName, '${batchQueueName}-poison']: {
    parent: queueService
    name: queue
  }
]

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainerName
output corporaContainer string = appContainers[0]
output tracesContainer string = appContainers[1]
output payloadsContainer string = appContainers[2]
output resultsContainer string = appContainers[3]
