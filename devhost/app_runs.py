"""What the RLM app's commands share: its settings, hosting the function app in-process to
run one instance to its end, claiming an id in the catalog as an HTTP start does, and
storing the corpus a command was given."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from rich.console import Console

from devhost.errors import UsageError

if TYPE_CHECKING:
    import azure.durable_functions as df

    from shared.catalog import Kind
    from shared.config import Settings
    from shared.storage import BlobStore

MODEL_HELP = (
    "No model is configured. Set MODEL_PROVIDER (openai or azure) and MODEL_BASE_URL "
    "(an OpenAI-compatible base URL such as http://localhost:11434/v1, or your Azure AI "
    "Foundry / Azure OpenAI endpoint), plus MODEL_API_KEY if the endpoint needs a key, and "
    "ROOT_MODEL / SUB_MODEL for the model names. They can also go in local.settings.json."
)


def load_settings() -> Settings:
    from shared.config import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        raise UsageError(f"invalid configuration: {problems(exc)}") from None


def configured_settings() -> Settings:
    settings = load_settings()
    if not settings.model_configured:
        raise UsageError(MODEL_HELP)
    return settings


Start = Callable[["df.DurableOrchestrationClient"], Awaitable[None]]


async def run_to_end(
    args: argparse.Namespace,
    console: Console,
    *,
    instance_id: str,
    label: str,
    start: Start,
    on_status: Callable[[Any], None],
) -> Any | None:
    """Start an instance (or resume it, or read how it ended) and wait for it. Returns its
    output, or None after saying how it failed.

    `start` gets the Durable client an HTTP trigger of this host would get, so a CLI start goes
    the way an HTTP one does (claimed in the catalog, listed by the API and the web UI).
    """
    import azure.durable_functions as df

    from devhost import EmbeddedHost, HostConfig
    from function_app import app
    from shared.llm import close_models
    from shared.starting import UnpricedModels

    try:
        async with EmbeddedHost(app, state_dir=args.state_dir, config=HostConfig.load(Path.cwd()),
                                resume=[instance_id], pump_queues=False) as host:
            if await host.get_status(instance_id) is None:
                try:
                    await start(df.DurableOrchestrationClient(host.client_binding()))
                except UnpricedModels as exc:
                    raise UsageError(str(exc)) from None
            elif not args.json:
                console.print(f"[dim]{label} exists: resuming it or reading its result.[/dim]")
            status = await host.wait_for_completion(instance_id, on_status=on_status)
    finally:
        await close_models()
    if str(status.runtime_status) == "Completed":
        return status.output
    if args.json:
        print(json.dumps({"id": instance_id, "status": str(status.runtime_status), "error": status.output}))
    else:
        console.print(f"[red]{label} ended {status.runtime_status}: {status.output}[/red]")
    return None


def another_body(label: str, flag: str) -> UsageError:
    return UsageError(f"{label} was started with another body; give a new {flag} to run this one")


def refuse_another_body(kind: Kind, id: str, request: BaseModel, refusal: UsageError) -> None:
    """A body given for an id the catalog holds with another body is refused, whether that
    one is still running or long done, as an HTTP start under that id would be."""
    from rlm_activities import services
    from shared.catalog import Catalog, body_digest

    entry = Catalog(services.store()).get(kind, id)
    if entry is not None and entry.digest is not None and entry.digest != body_digest(request):
        raise refusal


async def start_claimed(
    client: df.DurableOrchestrationClient,
    kind: Kind,
    id: str,
    instance_id: str,
    *,
    request: BaseModel,
    fields: dict[str, Any],
    refusal: UsageError,
    start: Callable[[], Awaitable[None]],
) -> None:
    """Claim the id in the catalog as an HTTP start does, then start; the same id with another
    body is refused. This host holds the state dir alone, so a same-body claim is taken over."""
    from rlm_activities import services
    from rlm_activities.starts import start_once
    from shared.catalog import Catalog, Outcome, body_digest

    catalog = Catalog(services.store())
    outcome = await start_once(
        client, catalog, kind, id, instance_id, digest=body_digest(request), fields=fields, start=start, sole_host=True
    )
    if outcome is Outcome.CONFLICT:
        raise refusal


def stored_corpus(path: Path, store: BlobStore) -> str:
    """The corpus a command was given, stored (a text file streams in: never whole in memory); its id.

    Raises CorpusError when the file cannot be used."""
    from shared.corpus import store_corpus_path

    return store_corpus_path(store, path)


def problems(exc: ValidationError) -> str:
    """A validation error as one line per field, the way a user typed it."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
