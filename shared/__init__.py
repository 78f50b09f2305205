"""The RLM core: configuration, models, prompts, reply protocol, model transport,
sandbox and storage. Nothing here imports Azure Functions."""
