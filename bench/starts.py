"""What exactly-once starts, the running-query limit and the listings cost, per store.

Run: `python -m bench.starts [--runs N] [--slots N] [--entries N] [--azurite]`.

Per store it times a new claim (what every start adds), a repeated claim (a retry), the
admission of a query (reading every slot, taking a free one), and a listing page read
from a catalog of `--entries` records. On the filesystem it also times listing a prefix
in a container holding many other blobs, walking only the prefix's folder against the
whole container, as `list_keys` did before.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from shared.admission import Slots
from shared.catalog import Catalog
from shared.storage import BlobStore, Containers, FileStore


def timed(runs: int, operation: Callable[[int], object]) -> str:
    samples = []
    for n in range(runs):
        started = time.perf_counter()
        operation(n)
        samples.append(time.perf_counter() - started)
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:8.2f} ms   p95 {p95 * 1000:8.2f} ms   (n={runs})"


def bench_store(name: str, store: BlobStore, runs: int, slots: int, entries: int) -> None:
    catalog = Catalog(store)
    print(f"\n{name}")
    print(f"  new claim              {timed(runs, lambda n: catalog.claim('queries', f'new-{n:06d}', digest='d', fields={}))}")
    print(f"  repeated claim         {timed(runs, lambda n: catalog.claim('queries', 'new-000000', digest='d', fields={}))}")
    table = Slots(store, slots)

    def admit(n: int) -> None:
        free = next(s for s in table.read_all() if s.holder is None)
        ticket = table.take(free, f"query-{n}")
        assert ticket is not None
        table.release(ticket)

    print(f"  admission ({slots} slots)   {timed(runs, admit)}")
    for n in range(entries - runs):
        catalog.claim("batches", f"batch-{n:06d}", digest=None, fields={})
    print(f"  list 20 of {entries}       {timed(runs, lambda n: catalog.recent('batches', 20))}")


def bench_prefix_walk(root: Path, others: int, runs: int) -> None:
    store = FileStore(root, Containers(payloads="walk"))
    for n in range(others):
        store.put_bytes("walk", f"texts/{n:06d}.txt", b"x")
    for n in range(20):
        store.put_bytes("walk", f"catalog/queries/recent/{n:03d}.json", b"{}")
    base = store.root / "walk"

    def whole_container(_: int) -> list[str]:
        keys = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith("catalog/queries/recent/"))

    print(f"\nfilesystem: list 20 keys beside {others} other blobs")
    print(f"  whole container (before) {timed(runs, whole_container)}")
    print(f"  prefix folder (now)      {timed(runs, lambda n: store.list_keys('walk', 'catalog/queries/recent/'))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--others", type=int, default=20000)
    parser.add_argument("--azurite", action="store_true", help="also Blob Storage on a local Azurite (needs npm install)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp, ExitStack() as stack:
        bench_store("filesystem", FileStore(Path(tmp) / "store"), args.runs, args.slots, args.entries)
        if args.azurite:
            from shared.storage.blob import AzureBlobStore
            from tests.support.azurite import Azurite

            emulator = stack.enter_context(Azurite())
            store = AzureBlobStore.from_connection_string(emulator.connection_string, cache_dir=Path(tmp) / "cache")
            bench_store("blob storage (Azurite on loopback)", store, args.runs, args.slots, args.entries)
        bench_prefix_walk(Path(tmp) / "walk", args.others, min(args.runs, 20))


if __name__ == "__main__":
    main()
