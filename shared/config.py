"""Every setting the app reads, in one place.

Names follow the seed project (ROOT_MODEL, RLM_MAX_DEPTH, SESSION_POOL_ENDPOINT, ...).
Values come from the environment; on Azure that is the app settings, locally the
devhost loads `local.settings.json` into the environment the way `func start` does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.bounds import CostBudget, DeadlineSeconds, Depth, Iterations, ModelName, Parallel, TokenBudget, TruncateChars

PER_MILLION = 1_000_000


class ModelPrice(BaseModel):
    """One model's prices per million tokens; cached input defaults to the input price. An
    embedding model is priced by its input alone, so its output price may be left out."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)
    output: float = Field(0.0, ge=0)

    def cost(self, *, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
        """Cached prompt tokens at the cached price, the rest of the prompt at the input price,
        the completion (reasoning included, as providers bill it) at the output price."""
        cached_price = self.input if self.cached_input is None else self.cached_input
        uncached = max(prompt_tokens - cached_tokens, 0)
        return (uncached * self.input + cached_tokens * cached_price + completion_tokens * self.output) / PER_MILLION


class Settings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    # Model provider (BYOK through the Copilot SDK).
    model_provider: Literal["openai", "azure"] | None = Field(None, alias="MODEL_PROVIDER")
    model_base_url: str | None = Field(None, validation_alias=AliasChoices("MODEL_BASE_URL", "AZURE_PROJECT_ENDPOINT"))
    model_api_key: str | None = Field(None, alias="MODEL_API_KEY")
    azure_openai_api_version: str | None = Field(None, alias="AZURE_OPENAI_API_VERSION")
    root_model: ModelName = Field("gpt-5-4-mini", alias="ROOT_MODEL")
    sub_model: ModelName = Field("gpt-5-4-mini", alias="SUB_MODEL")
    # Further models code may name with `model=` (comma-separated); other names fall back to the sub-model.
    allowed_models: Annotated[frozenset[str], NoDecode] = Field(frozenset(), alias="RLM_ALLOWED_MODELS")
    model_timeout_seconds: float = Field(300.0, gt=0, alias="MODEL_TIMEOUT_SECONDS")
    copilot_cli_path: str | None = Field(None, alias="COPILOT_CLI_PATH")
    copilot_home: Path | None = Field(None, alias="COPILOT_HOME_DIR")

    # RLM loop bounds.
    max_iterations: Iterations = Field(20, alias="RLM_MAX_ITERATIONS")
    max_depth: Depth = Field(2, alias="RLM_MAX_DEPTH")
    sub_max_iterations: Iterations = Field(10, alias="RLM_SUB_MAX_ITERATIONS")
    truncate_chars: TruncateChars = Field(2000, alias="RLM_TRUNCATE_CHARS")
    # Generated code decides how many sub-queries a cell asks for; each one below max depth
    # is a sandbox session, so a fan-out runs in waves of at most this many.
    max_parallel_subqueries: Parallel = Field(16, alias="RLM_MAX_PARALLEL_SUBQUERIES")

    # Budgets of a whole recursion tree, unless a query's options say otherwise; unset is no limit.
    max_tokens: TokenBudget | None = Field(None, alias="RLM_MAX_TOKENS")
    max_cost: CostBudget | None = Field(None, alias="RLM_MAX_COST")
    deadline_seconds: DeadlineSeconds | None = Field(None, alias="RLM_DEADLINE_SECONDS")
    # {"model": {"input": 0.4, "cached_input": 0.1, "output": 1.6}} per million tokens; the
    # embedding model is priced the same way, by its input: {"text-embedding-3-small": {"input": 0.02}}.
    prices: dict[str, ModelPrice] = Field(default_factory=dict, alias="RLM_PRICES")

    # Sandbox limits, per cell.
    cell_timeout_seconds: float = Field(120.0, gt=0, le=3600, alias="RLM_CELL_TIMEOUT_SECONDS")
    cell_memory_mb: int = Field(4096, ge=256, alias="RLM_CELL_MEMORY_MB")
    cell_output_max_chars: int = Field(1_000_000, ge=1000, alias="RLM_CELL_OUTPUT_MAX_CHARS")

    # Sandbox sessions: per session, and how many live at once in this worker process.
    sandbox_max_processes: int = Field(256, ge=8, le=65536, alias="RLM_SANDBOX_MAX_PROCESSES")
    sandbox_max_file_mb: int = Field(1024, ge=1, alias="RLM_SANDBOX_MAX_FILE_MB")
    max_live_sandboxes: int = Field(32, ge=1, le=4096, alias="RLM_MAX_LIVE_SANDBOXES")
    # A sandbox idle this long gives up its process and slot; it is rebuilt by replay if used again.
    sandbox_idle_seconds: float = Field(600.0, gt=0, alias="RLM_SANDBOX_IDLE_SECONDS")
    # Run the local sandbox without bubblewrap or cgroups where the host lacks them (logged loudly).
    sandbox_weak_isolation: bool = Field(False, alias="RLM_SANDBOX_WEAK_ISOLATION")

    # ACA Dynamic Sessions; unset means the local sandbox.
    session_pool_endpoint: str | None = Field(None, alias="SESSION_POOL_ENDPOINT")
    session_pool_api_version: str = Field("2025-10-02-preview", alias="SESSION_POOL_API_VERSION")

    # Storage: a connection string or account URL selects Blob Storage, else the filesystem.
    storage_connection_string: str | None = Field(None, alias="RLM_STORAGE_CONNECTION_STRING")
    storage_account_url: str | None = Field(None, alias="RLM_STORAGE_ACCOUNT_URL")
    data_dir: Path = Field(Path(".rlm-data"), alias="RLM_DATA_DIR")
    corpora_container: str = Field("corpora", alias="RLM_CORPORA_CONTAINER")
    traces_container: str = Field("traces", alias="RLM_TRACES_CONTAINER")
    payloads_container: str = Field("payloads", alias="RLM_PAYLOADS_CONTAINER")
    results_container: str = Field("results", alias="RLM_RESULTS_CONTAINER")

    # Batches.
    batch_concurrency: int = Field(4, ge=1, le=64, alias="RLM_BATCH_CONCURRENCY")

    # HTTP API: root queries started over HTTP and running at once, across the app; more
    # get 429 with Retry-After. A batch's queries are bounded by its own concurrency.
    max_running_queries: int = Field(16, ge=1, le=10_000, alias="RLM_MAX_RUNNING_QUERIES")

    # Retrieval baselines (keyword, vector, hybrid, agentic) and the judge that grades answers.
    embedding_model: str = Field("text-embedding-3-small", min_length=1, alias="EMBEDDING_MODEL")
    judge_model: str | None = Field(None, min_length=1, alias="JUDGE_MODEL")
    retrieval_top_k: int = Field(8, ge=1, le=50, alias="RETRIEVAL_TOP_K")
    retrieval_passage_chars: int = Field(1200, ge=200, le=8000, alias="RETRIEVAL_PASSAGE_CHARS")
    agentic_max_rounds: int = Field(3, ge=1, le=10, alias="AGENTIC_MAX_ROUNDS")
    # Azure AI Search serves keyword, vector and hybrid retrieval when set (keyless).
    azure_search_endpoint: str | None = Field(None, alias="AZURE_SEARCH_ENDPOINT")
    search_index_name: str = Field("rlm-passages", pattern=r"^[a-z0-9][a-z0-9-]{1,126}$", alias="SEARCH_INDEX_NAME")

    @field_validator("allowed_models", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return {name.strip() for name in value.split(",") if name.strip()} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _provider_needs_endpoint(self) -> Settings:
        if self.model_provider and not self.model_base_url:
            raise ValueError("MODEL_PROVIDER is set but MODEL_BASE_URL (or AZURE_PROJECT_ENDPOINT) is not")
        return self

    @model_validator(mode="after")
    def _cost_budget_needs_prices(self) -> Settings:
        unpriced = self.unpriced(self.root_model, self.sub_model)
        if self.max_cost is not None and unpriced:
            raise ValueError(f"RLM_MAX_COST is set but RLM_PRICES has no price for {', '.join(unpriced)}")
        return self

    @model_validator(mode="after")
    def _room_for_the_deepest_tree(self) -> Settings:
        if self.max_live_sandboxes <= self.max_depth:
            raise ValueError(
                f"RLM_MAX_LIVE_SANDBOXES ({self.max_live_sandboxes}) must exceed RLM_MAX_DEPTH ({self.max_depth}): "
                "a query holds one sandbox per level of its recursion"
            )
        return self

    def unpriced(self, root_model: str, sub_model: str) -> list[str]:
        """The models a query with these root and sub models may use (RLM_ALLOWED_MODELS too)
        that RLM_PRICES has no price for: under a cost budget they would count as free."""
        return sorted({root_model, sub_model, *self.allowed_models} - self.prices.keys())

    @property
    def judge(self) -> str:
        """The model that grades answers: JUDGE_MODEL, else the root model."""
        return self.judge_model or self.root_model

    @property
    def model_configured(self) -> bool:
        return self.model_provider is not None and self.model_base_url is not None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once."""
    return Settings()
