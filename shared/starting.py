"""Turning a user's QueryRequest into the root orchestration's input.

Shared by every way a query starts (HTTP, queue, the devhost CLI, run_local), so options are
bounded and defaulted in one place and the corpus is always stored before the start.
"""

from __future__ import annotations

from shared.budget import Budget
from shared.catalog import Catalog
from shared.config import Settings
from shared.corpus import CorpusIndex, load_index, render_documents, save_corpus
from shared.models import CorpusSource, QueryOptions, QueryRequest
from shared.payloads import TextRef
from shared.step_models import QUESTION_INLINE, RlmTask
from shared.storage.base import BlobStore
from shared.telemetry.context import TraceParent, start_trace


class UnpricedModels(ValueError):
    """A cost budget over models the price table cannot price: their calls would count as free."""

    def __init__(self, models: list[str]) -> None:
        super().__init__(
            f"max_cost needs a price in RLM_PRICES for every model the query may use; there is none for {', '.join(models)}"
        )
        self.models = models


def check_cost_budget(options: QueryOptions, settings: Settings) -> None:
    """Refuse a cost budget under which some model the query may use (root, sub, allowed) has no price.

    Raises UnpricedModels naming them.
    """
    if (options.max_cost or settings.max_cost) is None:
        return
    if unpriced := settings.unpriced(options.root_model or settings.root_model, options.sub_model or settings.sub_model):
        raise UnpricedModels(unpriced)


def store_request_corpus(request: CorpusSource, store: BlobStore) -> str:
    """The request's corpus id, storing inline text or documents first.

    Raises CorpusError for an unknown corpus id.
    """
    if request.corpus_id is not None:
        corpus_id = request.corpus_id
    elif request.documents is not None:
        corpus_id = save_corpus(store, render_documents(request.documents), request.documents)
    else:
        corpus_id = save_corpus(store, request.corpus or "")
    register_corpus(store, corpus_id)
    return corpus_id


def register_corpus(store: BlobStore, corpus_id: str) -> CorpusIndex:
    """List a corpus users gave in the catalog, once (sub-contexts code makes are not listed).

    Raises CorpusError for an unknown corpus id.
    """
    index = load_index(store, corpus_id)
    fields = {"chars": index.chars, "sections": len(index.sections)}
    Catalog(store).claim("corpora", corpus_id, digest=None, fields=fields)
    return index


def root_task(
    request: QueryRequest, instance_id: str, settings: Settings, store: BlobStore, trace: TraceParent | None = None
) -> RlmTask:
    """The root's task; its trace is `trace` (an incoming request's), else one started here.

    Raises CorpusError for an unknown corpus id, UnpricedModels for a cost budget it cannot count.
    """
    options = request.options
    check_cost_budget(options, settings)
    root_model, sub_model = options.root_model or settings.root_model, options.sub_model or settings.sub_model
    budget = Budget(
        tokens=options.max_tokens or settings.max_tokens,
        cost=options.max_cost or settings.max_cost,
        deadline_seconds=options.deadline_seconds or settings.deadline_seconds,
    )
    return RlmTask(
        question=TextRef.of(request.question, store, limit=QUESTION_INLINE),
        corpus_id=store_request_corpus(request, store),
        root_id=instance_id,
        max_depth=settings.max_depth if options.max_depth is None else options.max_depth,
        max_iterations=options.max_iterations or settings.max_iterations,
        sub_max_iterations=options.sub_max_iterations or settings.sub_max_iterations,
        truncate_chars=options.truncate_chars or settings.truncate_chars,
        max_parallel=settings.max_parallel_subqueries,
        root_model=root_model,
        sub_model=sub_model,
        budget=budget,
        trace=trace or start_trace(),
    )
