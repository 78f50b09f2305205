// Azure AI Foundry (AIServices) account serving the Azure OpenAI models. Keys are disabled:
// the app calls it with a bearer token for its identity (Cognitive Services OpenAI User).
param name string
param location string
param tags object
param rootModelDeployment string
param rootModelName string
param rootModelVersion string
param subModelDeployment string
param subModelName string
param subModelVersion string
param capacity int
param embeddingModelDeployment string
param embeddingModelName string
param embeddingModelVersion string
param embeddingCapacity int
param embeddingSkuName string

var separateSubModel = subModelDeployment != rootModelDeployment

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  // checkov:skip=CKV_AZURE_238: The account calls no other Azure resource, so an identity of its own would have nothing to authorize.
  // checkov:skip=CKV_AZURE_134: The app reaches the model endpoint over the public network with Entra tokens only (local auth disabled); no VNet here.
  name: name
  location: location
  tags: tags
  kind: 'AIServices'
  sku: {
    name: 'S0'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource rootDeployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: rootModelDeployment
  sku: {
    name: 'GlobalStandard'
    capacity: capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: rootModelName
      version: rootModelVersion
    }
    versionUpgradeOption: 'OnceCurrentVersionExpired'
  }
}

// Deployments on one account cannot be created in parallel, hence the dependsOn.
resource subDeployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = if (separateSubModel) {
  parent: account
  name: subModelDeployment
  dependsOn: [
    rootDeployment
  ]
  sku: {
    name: 'GlobalStandard'
    capacity: capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: subModelName
      version: subModelVersion
    }
    versionUpgradeOption: 'OnceCurrentVersionExpired'
  }
}

// The embedding model the retrieval baselines (vector, hybrid, agentic) index and search with.
resource embeddingDeployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: embeddingModelDeployment
  dependsOn: [
    rootDeployment
    subDeployment
  ]
  sku: {
    name: embeddingSkuName
    capacity: embeddingCapacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: embeddingModelName
      version: embeddingModelVersion
    }
    versionUpgradeOption: 'OnceCurrentVersionExpired'
  }
}

output name string = account.name
output endpoint string = account.properties.endpoint
output rootDeployment string = rootDeployment.name
output subDeployment string = separateSubModel ? subModelDeployment : rootDeployment.name
output embeddingDeployment string = embeddingDeployment.name
