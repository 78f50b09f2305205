"""OpenTelemetry for the RLM: `setup` configures exporters once per process, `context` carries a
root query's trace through its whole tree, `spans` holds the spans and metrics the steps emit."""
