"""The Functions layer: the RLM orchestrator, its activities, and the triggers users touch."""
