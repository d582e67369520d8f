"""Bulk event import speed: `jewelsearch events import` on CSV and JSONL files.

Builds a synthetic catalog (store rows only), writes N events in both formats, then times
the same path the CLI takes (file parsing, validation of every row, known-item check, one
transaction) for each format, alternating, several times; prints medians in events/s.
Usage: python benchmarks/bench_events.py [--events 200000] [--items 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_catalog import build  # noqa: E402


def write_files(folder: Path, n: int, items: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    kinds = np.array(["view", "click", "like", "add_to_cart", "purchase"])
    users = rng.integers(0, n // 20 + 1, n)
    item_ids = rng.integers(1, items + 1, n)
    chosen = kinds[rng.choice(5, n, p=[0.6, 0.2, 0.1, 0.06, 0.04])]
    stamps = 1_780_000_000 + rng.uniform(0, 90 * 86400, n)
    csv_path, jsonl_path = folder / "events.csv", folder / "events.jsonl"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "item_id", "kind", "ts"])
        writer.writerows(zip((f"user{u}" for u in users), item_ids.tolist(), chosen.tolist(),
                             np.round(stamps, 3).tolist()))
    with open(jsonl_path, "w") as fh:
        for u, i, k, t in zip(users.tolist(), item_ids.tolist(), chosen.tolist(), stamps.tolist()):
            fh.write(json.dumps({"user_id": f"user{u}", "item_id": i, "kind": k, "ts": round(t, 3)}) + "\n")
    return csv_path, jsonl_path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from jewelsearch.embed import load_encoder
    from jewelsearch.ingest.sources import read_event_rows
    from jewelsearch.search.service import SearchService
    encoder = load_encoder("jewelclip-lite0")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        catalog = build(home, args.items, encoder.model_id, encoder.dim)
        service = SearchService(catalog, encoder, home / "index")
        csv_path, jsonl_path = write_files(home, args.events, args.items)
        rates: dict[str, list[float]] = {"csv": [], "jsonl": []}
        for _ in range(args.repeats):
            for name, path in (("csv", csv_path), ("jsonl", jsonl_path)):
                started = time.perf_counter()
                result = service.import_events(read_event_rows(path))
                elapsed = time.perf_counter() - started
                assert result["imported"] == args.events, result
                rates[name].append(args.events / elapsed)
        print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}")
        print(f"{args.events:,} events per file, catalog {args.items:,} items, "
              f"{catalog.events.count():,} events stored at the end")
        for name, values in rates.items():
            print(f"{name:>5}: median {np.median(values):,.0f} events/s "
                  f"(runs: {', '.join(f'{v:,.0f}' for v in values)})")


if __name__ == "__main__":
    main()
