// The operators' view of the RLM in the portal: an Azure Monitor workbook over Application
// Insights. Its tiles and their KQL live in workbook.json (and, explained, in docs/monitoring.md).
param appInsightsName string
param location string
param tags object

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(appInsights.id, 'rlm-queries-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'RLM queries'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: replace(loadTextContent('workbook.json'), '__APP_INSIGHTS_ID__', appInsights.id)
  }
}

output id string = workbook.id
