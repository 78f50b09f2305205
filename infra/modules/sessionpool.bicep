// ACA Dynamic Sessions pool of Hyper-V isolated Python sessions: where model-written code
// runs in Azure. Egress is off: sandboxed code reaches nothing, and it holds no credentials.
param name string
param location string
param tags object
param maxConcurrentSessions int
param cooldownSeconds int

resource pool 'Microsoft.App/sessionPools@2025-01-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    containerType: 'PythonLTS'
    poolManagementType: 'Dynamic'
    dynamicPoolConfiguration: {
      lifecycleConfiguration: {
        lifecycleType: 'Timed'
        cooldownPeriodInSeconds: cooldownSeconds
      }
    }
    scaleConfiguration: {
      maxConcurrentSessions: maxConcurrentSessions
    }
    sessionNetworkConfiguration: {
      status: 'EgressDisabled'
    }
  }
}

output name string = pool.name
output poolManagementEndpoint string = pool.properties.poolManagementEndpoint
