"""The bodies HTTP routes answer with. Handlers build them and the OpenAPI document is
generated from them, so the contract and the responses cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlm_activities.batch_models import BatchSummary
from shared.models import QueryResult

RuntimeStatus = str
STATUS_DOC = "Durable runtime status: Pending, Running, Completed, Failed, Terminated, Suspended, ..."


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    """Every 4xx: what is wrong, and per field where that applies."""

    error: str
    details: list[ErrorDetail] | dict[str, Any] | str | None = None


class DurableLinks(BaseModel):
    """The Durable management links of an instance, as `create_check_status_response` gives them,
    but for `terminatePostUri`: it names the cancel route, which stops the whole tree where
    Durable's terminate stops one instance."""

    model_config = ConfigDict(extra="allow")

    id: str
    statusQueryGetUri: str
    sendEventPostUri: str
    terminatePostUri: str
    rewindPostUri: str
    purgeHistoryDeleteUri: str
    restartPostUri: str
    suspendPostUri: str
    resumePostUri: str


class QueryStatus(BaseModel):
    instance_id: str
    status: RuntimeStatus = Field(description=STATUS_DOC)
    progress: dict[str, Any] | None = Field(None, description="the live progress while it runs")
    result: QueryResult | None = Field(None, description="once Completed")
    error: Any = Field(None, description="once Failed or Terminated")


class CancelAccepted(BaseModel):
    instance_id: str
    status: str = "Terminating"
    sub_queries: int


class QuerySummary(BaseModel):
    instance_id: str
    status: RuntimeStatus = Field(description=STATUS_DOC)
    question: str = Field(description="the question, cut to a few hundred characters")
    created: datetime


class QueryList(BaseModel):
    queries: list[QuerySummary]


class CorpusStored(BaseModel):
    corpus_id: str
    chars: int
    sections: int


class CorpusSummary(CorpusStored):
    created: datetime


class CorpusList(BaseModel):
    corpora: list[CorpusSummary]


class SectionText(BaseModel):
    corpus_id: str
    title: str
    text: str


class BatchLinks(BaseModel):
    status_url: str
    results_url: str
    results_blob: str
    summary_blob: str


class BatchStarted(BatchLinks):
    batch_id: str
    management: DurableLinks


class BatchStatus(BatchLinks):
    batch_id: str
    status: RuntimeStatus = Field(description=STATUS_DOC)
    progress: dict[str, Any] | None = Field(None, description="done / failed / running counts")
    summary: BatchSummary | None = Field(None, description="once Completed")
    error: Any = Field(None, description="once Failed or Terminated")


class BatchListItem(BaseModel):
    batch_id: str
    status: RuntimeStatus = Field(description=STATUS_DOC)
    questions: int
    created: datetime
    progress: dict[str, Any] | None = None
    summary: BatchSummary | None = None


class BatchList(BaseModel):
    batches: list[BatchListItem]
