// The RLM function app on Flex Consumption (Linux, Python 3.11), running as the
// user-assigned identity. Its app settings are the Azure values of shared/config.py.
param planName string
param appName string
param location string
param tags object
param identityId string
param identityClientId string
param maximumInstanceCount int
param instanceMemoryMB int
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param deploymentContainerName string
param corporaContainer string
param tracesContainer string
param payloadsContainer string
param resultsContainer string
param appInsightsConnectionString string
param schedulerEndpoint string
param taskHubName string
param sessionPoolEndpoint string
param modelEndpoint string
param rootModelDeployment string
param subModelDeployment string
param embeddingModelDeployment string

@description('Worker threads for synchronous activities, which block on model and sandbox calls.')
param pythonThreadCount int = 16

// Flex Consumption mounts the deployment package read-only at /home/site/wwwroot;
// the prepackage hook puts the Copilot CLI at bin/copilot inside that package.
var packageRoot = '/home/site/wwwroot'

var appSettings = {
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The Python worker configures the Azure Monitor OpenTelemetry distro before it loads the app and
  // streams the app's telemetry itself (host.json telemetryMode OpenTelemetry), keyless through the
  // authentication string above; shared/telemetry adopts that provider.
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  // Whole traces by trace id: the distro's default rate-limited sampler drops spans of a fan-out burst.
  OTEL_TRACES_SAMPLER: 'microsoft.fixed_percentage'
  OTEL_TRACES_SAMPLER_ARG: '1.0'
  DURABLE_TASK_SCHEDULER_CONNECTION_STRING: 'Endpoint=${schedulerEndpoint};Authentication=ManagedIdentity;ClientID=${identityClientId}'
  TASKHUB_NAME: taskHubName
  AZURE_CLIENT_ID: identityClientId
  PYTHON_THREADPOOL_THREAD_COUNT: string(pythonThreadCount)
  MODEL_PROVIDER: 'azure'
  MODEL_BASE_URL: modelEndpoint
  ROOT_MODEL: rootModelDeployment
  SUB_MODEL: subModelDeployment
  EMBEDDING_MODEL: embeddingModelDeployment
  COPILOT_CLI_PATH: '${packageRoot}/bin/copilot'
  COPILOT_SKIP_CLI_DOWNLOAD: '1'
  COPILOT_HOME_DIR: '/tmp/copilot-home'
  SESSION_POOL_ENDPOINT: sessionPoolEndpoint
  RLM_STORAGE_ACCOUNT_URL: blobEndpoint
  RLM_CORPORA_CONTAINER: corporaContainer
  RLM_TRACES_CONTAINER: tracesContainer
  RLM_PAYLOADS_CONTAINER: payloadsContainer
  RLM_RESULTS_CONTAINER: resultsContainer
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption exists only in some regions; work survives an instance loss through Durable checkpoints.
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
  // checkov:skip=CKV_AZURE_17: HTTP callers authenticate with function keys; client certificates would lock them out.
  // checkov:skip=CKV_AZURE_222: The query API is public by design (function keys over HTTPS); private access needs a VNet this template does not create.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero and adds instances on demand; a standing minimum would bill while idle.
  // checkov:skip=CKV_AZURE_213: Flex Consumption replaces unhealthy instances itself and does not offer an instance health-check path.
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
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
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
  }
}

// azd deploys with an Entra token; basic (user/password) publishing stays off.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
output uri string = 'https://${app.properties.defaultHostName}'
