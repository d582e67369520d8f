"""Ingest throughput and storage per item on the bundled demo catalog, with and without the
instance vector, side by side in one run.

Opens a fresh home with the default model and adds the demo items (photos plus their fields)
in batches of 32: decode, embed and recognise, the store (with the word index), the indexes.
The model load is not counted. Each round ingests once with one vector per item
(``instance_vectors = false``) and once with the instance vector as well, in turn, so both see
the same machine load; then the bytes per item: the stored vectors, the saved index files and
the whole database file. Run it under another source tree (``PYTHONPATH=OTHER/src``) to compare
trees; there the instance setting may not exist, so pass ``--only off``. ``--vary item-text``
compares the item text vector instead (``text_field_weight`` 0, which makes none, against 0.75).
Usage: python benchmarks/bench_ingest_throughput.py [--items 600] [--rounds 3] [--only off|on]
       [--vary instance|item-text]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from jewelsearch.config import Settings  # noqa: E402
from jewelsearch.ingest.demo import demo_dir, demo_items  # noqa: E402
from jewelsearch.search.wiring import open_service  # noqa: E402


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


VARIED = {"instance": ("instance_vectors", {"off": False, "on": True}),
          "item-text": ("text_field_weight", {"off": 0.0, "on": 0.75})}


def one_run(items, overrides: dict) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        service = open_service(Settings(home=Path(scratch), **overrides))
        started = time.perf_counter()
        for start in range(0, len(items), 32):
            service.add_items(items[start:start + 32])
        seconds = time.perf_counter() - started
        service.save(force=True)
        conn = service.catalog.database.conn
        vector_bytes = dict(conn.execute(
            "SELECT instr(model_id, '#') > 0, SUM(length(vector)) FROM embeddings GROUP BY 1").fetchall())
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        database = Path(scratch) / "catalog.db"
        n = service.catalog.items.count()
        index_dir = Path(scratch) / "index"
        result = {"items/s": len(items) / seconds,
                  "aligned vector B": vector_bytes.get(0, 0) / n, "further spaces' vectors B": vector_bytes.get(1, 0) / n,
                  "index files B": (folder_bytes(index_dir) - folder_bytes(index_dir / "instance")
                                    - folder_bytes(index_dir / "item_text")) / n,
                  "instance index files B": folder_bytes(index_dir / "instance") / n,
                  "item text index files B": folder_bytes(index_dir / "item_text") / n,
                  "database file B": database.stat().st_size / n}
        service.catalog.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["off", "on"], default=None)
    parser.add_argument("--vary", choices=list(VARIED), default="instance")
    args = parser.parse_args()
    items = demo_items(demo_dir())[:args.items]
    import jewelsearch
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}, "
          f"tree {Path(jewelsearch.__file__).parent}, {len(items)} items")
    setting, modes = VARIED[args.vary]
    chosen = [args.only] if args.only else ["off", "on"]
    runs: dict[str, list[dict]] = {mode: [] for mode in chosen}
    for round_ in range(args.rounds):
        for mode in (chosen if round_ % 2 == 0 else chosen[::-1]):  # alternate who goes first
            # "off" under an older tree that lacks the setting: its default is one vector anyway.
            run = one_run(items, {setting: modes[mode]} if args.only != "off" else {})
            runs[mode].append(run)
            print(f"round {round_ + 1} {args.vary} {mode}: {run['items/s']:.1f} items/s", flush=True)
    keys = list(next(iter(runs.values()))[0])
    print(f"{args.vary:<16}" + "".join(f"{k:>24}" for k in keys))
    for mode, done in runs.items():
        medians = [statistics.median(r[k] for r in done) for k in keys]
        print(f"{mode:<16}" + "".join(f"{v:>24.1f}" for v in medians))
    if len(runs) == 2:
        ratio = statistics.median(r["items/s"] for r in runs["on"]) / statistics.median(
            r["items/s"] for r in runs["off"])
        print(f"ingest throughput with {args.vary} on: {ratio:.2f}x off (medians)")


if __name__ == "__main__":
    main()
