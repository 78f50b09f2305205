"""Retrieval baselines RLM is compared with: keyword (BM25), vector, hybrid (reciprocal
rank fusion) and agentic (the model rewrites the query) retrieval over a corpus's
passages, each ending in one model call that answers from the top passages.

No Functions imports: rlm_activities wires these steps into Durable orchestrations.
"""
