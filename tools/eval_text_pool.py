"""Text search quality with smaller candidate pools (docs/experiments/2026-12-07-text-candidate-pool.md).

Each catalog is ingested once into a fresh temporary home (titles and fields, or photos alone
with ``--photos-only``); ``jewelsearch eval search``'s queries (seed 0) are then ranked with
each ``HybridSettings.pool`` on that one catalog.

Usage: python tools/eval_text_pool.py --catalog demo [--photos-only] [--pools 200 100 50]
       [--out reports/search/text-pool.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

GROUPS = ("attribute/en", "attribute/zh", "understanding/en", "understanding/zh")


def one_catalog(source: str, photos_only: bool, pools: list[int]) -> dict:
    from jewelsearch.config import Settings
    from jewelsearch.evaluate.search_catalogs import load_catalog
    from jewelsearch.evaluate.search_queries import build_queries
    from jewelsearch.evaluate.search_quality import run_queries, service_ranker, summarise
    from jewelsearch.evaluate.search_run import ingest
    from jewelsearch.search.wiring import open_service

    with tempfile.TemporaryDirectory() as scratch:
        service = open_service(Settings(home=Path(scratch) / "home"))
        try:
            catalog = load_catalog(source)
            rows = ingest(service, catalog, photos_only=photos_only)
            queries = build_queries(catalog.rows, seed=0)
            shipped = service.state.hybrid
            records = {}
            for pool in pools:
                service.state.hybrid = dataclasses.replace(shipped, pool=pool)
                records[pool] = run_queries(queries, service_ranker(service, rows), 10)
        finally:
            service.catalog.close()
    base = pools[0]
    out = {"catalog": source, "photos_only": photos_only, "items": len(catalog.rows), "queries": len(queries),
           "pools": {}}
    for pool, recs in records.items():
        summary = summarise(recs)
        differences = [b["r_precision"] - a["r_precision"] for a, b in zip(records[base], recs)]
        out["pools"][pool] = {
            "held_out": {group: summary[group]["held-out"]["r_precision"] for group in GROUPS},
            "all": {group: summary[group]["all"]["r_precision"] for group in GROUPS},
            "mean_difference_all": statistics.mean(differences),
            "queries_changed": sum(d != 0 for d in differences)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", action="append", required=True)
    parser.add_argument("--photos-only", action="store_true")
    parser.add_argument("--pools", type=int, nargs="+", default=[200, 100, 50], help="the first is the reference")
    parser.add_argument("--out", type=Path, default=Path("reports/search/text-pool.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    for source in args.catalog:
        result = one_catalog(source, args.photos_only, args.pools)
        results.append(result)
        for pool, cell in result["pools"].items():
            print(source, "photos only" if args.photos_only else "titles and fields", f"pool {pool}:",
                  {g: round(v["mean"], 3) for g, v in cell["held_out"].items()},
                  f"changed {cell['queries_changed']}, mean difference {cell['mean_difference_all']:+.4f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
