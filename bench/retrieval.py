"""What the retrieval baselines can reach on the stdlib benchmark, without a model: index
build cost, search latency, and for each kind of question how many of the pages its answer
rests on the top-k passages contain (recall of gold sections).

A baseline answers from its top-k passages only, so a question whose answer spans more
pages than the passages it reads cannot be answered in full by it, whatever the model.

    .venv/bin/python -m bench.retrieval [--data bench/data] [--top-k 8] [--json-out FILE]

Embeddings come from the scripted server's hashed bag of words (tests/support) unless
`--provider-embeddings` is given, which uses MODEL_PROVIDER / MODEL_BASE_URL /
EMBEDDING_MODEL from the environment like the app does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.stdlib_docs import DEFAULT_OUT, build, read_questions
from shared.config import Settings
from shared.corpus import render_documents, save_corpus
from shared.models import Document
from shared.retrieval.indexes import RetrievalIndexes
from shared.storage import FileStore
from tests.support.model_server import ModelServer

MODES = ("keyword", "vector", "hybrid")


def load(data: Path) -> tuple[list[Document], list[dict[str, Any]]]:
    if not (data / "stdlib-docs.jsonl").is_file():
        print(f"building the corpus into {data} (python -m bench.stdlib_docs)")
        build(data)
    documents = [
        Document.model_validate_json(line) for line in (data / "stdlib-docs.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return documents, read_questions(data)


async def measure(settings: Settings, documents: list[Document], questions: list[dict[str, Any]], top_k: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rlm-bench-retrieval-") as tmp:
        store = FileStore(Path(tmp))
        corpus_id = save_corpus(store, render_documents(documents), documents)
        indexes = RetrievalIndexes(settings, store)
        began = time.perf_counter()
        await indexes.ensure(corpus_id, ["keyword"])
        keyword_seconds = time.perf_counter() - began
        began = time.perf_counter()
        built = await indexes.ensure(corpus_id, ["vector"])
        vector_seconds = time.perf_counter() - began
        began = time.perf_counter()
        again = await indexes.ensure(corpus_id, ["hybrid"])
        reuse_seconds = time.perf_counter() - began
        sizes = {
            "keyword_mb": store.local_path(store.containers.corpora, indexes.passages_key(corpus_id)).stat().st_size / 1e6,
            "vector_mb": store.local_path(store.containers.corpora, indexes.vectors_key(corpus_id)).stat().st_size / 1e6,
        }
        passage_index = indexes.passage_index(corpus_id)
        recall: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in MODES}
        complete: dict[str, dict[str, list[bool]]] = {m: defaultdict(list) for m in MODES}
        latency: dict[str, list[float]] = defaultdict(list)
        for mode in MODES:
            for q in questions:
                began = time.perf_counter()
                ranked, _ = await indexes.search(corpus_id, mode, q["question"], top_k)
                latency[mode].append(time.perf_counter() - began)
                titles = {p.title for p in passage_index.passages([i for i, _ in ranked])}
                gold = set(q["sections"])
                recall[mode][q["kind"]].append(len(gold & titles) / len(gold))
                complete[mode][q["kind"]].append(gold <= titles)
        return {
            "documents": len(documents),
            "chars": sum(len(d.content) for d in documents),
            "passages": built.passages,
            "embedding_requests": built.usage.model_calls,
            "build_seconds": {
                "keyword": round(keyword_seconds, 2),
                "vector": round(vector_seconds, 2),
                "reuse": round(reuse_seconds, 3),
            },
            "reused": again.reused,
            "index_mb": {k: round(v, 1) for k, v in sizes.items()},
            "search_ms_median": {m: round(statistics.median(v) * 1000, 1) for m, v in latency.items()},
            "top_k": top_k,
            "recall": {
                m: {k: round(statistics.fmean(v), 2) for k, v in sorted(by_kind.items())} for m, by_kind in recall.items()
            },
            "all_gold_found": {
                m: {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_kind.items())} for m, by_kind in complete.items()
            },
        }


def print_report(console: Console, report: dict[str, Any]) -> None:
    console.print(
        f"{report['documents']} documents, {report['chars'] / 1e6:.1f} M chars, {report['passages']} passages; "
        f"index build {report['build_seconds']['keyword']} s (keyword), {report['build_seconds']['vector']} s (vector, "
        f"{report['embedding_requests']} embedding requests), reuse {report['build_seconds']['reuse']} s; "
        f"size {report['index_mb']['keyword_mb']} MB + {report['index_mb']['vector_mb']} MB"
    )
    table = Table(title=f"Gold sections in the top {report['top_k']} passages (mean recall; questions with all found)")
    kinds = list(next(iter(report["recall"].values())))
    table.add_column("search")
    table.add_column("median ms")
    for kind in kinds:
        table.add_column(kind)
    for mode in MODES:
        cells = [f"{report['recall'][mode][k]:.2f} ({report['all_gold_found'][mode][k]})" for k in kinds]
        table.add_row(mode, str(report["search_ms_median"][mode]), *cells)
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--provider-embeddings", action="store_true", help="embed with the configured provider")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    documents, questions = load(args.data)
    with ExitStack() as stack:
        if args.provider_embeddings:
            settings = Settings()
        else:
            server = stack.enter_context(ModelServer())
            settings = Settings.model_validate(
                {"MODEL_PROVIDER": "openai", "MODEL_BASE_URL": server.url, "MODEL_API_KEY": "bench"}
            )
        report = asyncio.run(measure(settings, documents, questions, args.top_k))
    print_report(Console(), report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
