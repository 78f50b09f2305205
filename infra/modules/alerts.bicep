// Alert rules on what operators page on: the failure rate of root queries and their p95 latency,
// both over the query spans in Application Insights, wired to an email action group.
param appInsightsName string
param location string
param tags object

@description('Where alerts are emailed; empty creates the rules without notifications.')
param alertEmail string

@description('Alert when more than this percentage of root queries fail in the window.')
param failureRatePercent int

@description('Alert when the p95 duration of root queries exceeds this many seconds in the window.')
param p95LatencySeconds int

var rootQueries = 'requests\n| where name == "invoke_agent rlm" and tostring(customDimensions["rlm.depth"]) == "0"\n'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${appInsightsName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'rlm-alerts'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actions = {
  actionGroups: empty(alertEmail) ? [] : [
    actionGroup.id
  ]
}

resource failureRate 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${appInsightsName}-failure-rate'
  location: location
  tags: tags
  properties: {
    displayName: 'RLM: root query failure rate above ${failureRatePercent}%'
    description: 'More than ${failureRatePercent}% of the root queries that finished in the last hour failed.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: '${rootQueries}| summarize failed = countif(success == false), total = count()\n| where total > 0\n| extend failure_rate = 100.0 * failed / total'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'failure_rate'
          operator: 'GreaterThan'
          threshold: failureRatePercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource p95Latency 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${appInsightsName}-p95-latency'
  location: location
  tags: tags
  properties: {
    displayName: 'RLM: root query p95 latency above ${p95LatencySeconds} s'
    description: 'The 95th percentile duration of the root queries that finished in the last hour is above ${p95LatencySeconds} seconds.'
    severity: 3
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: '${rootQueries}| summarize p95_seconds = percentile(duration, 95) / 1000.0'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'p95_seconds'
          operator: 'GreaterThan'
          threshold: p95LatencySeconds
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

output actionGroupId string = empty(alertEmail) ? '' : actionGroup.id
