"""Text search quality and tower time with a dynamic int8 text tower for queries only
(docs/experiments/2026-12-07-int8-query-text-tower.md).

Each catalog is ingested once (titles and fields, the shipped fp32 towers) into a fresh
temporary home; ``jewelsearch eval search``'s queries (seed 0) are then ranked twice on it, with
the fp32 query tower and with a copy whose ``nn.Linear`` layers are quantised dynamically to
int8. Then both towers encode the same texts, interleaved, for their p50 times.

Usage: python tools/eval_int8_query_tower.py --catalog demo --catalog RENDERS_DIR
       [--photos-only] [--out reports/search/int8-query-tower.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

GROUPS = ("attribute/en", "attribute/zh", "understanding/en", "understanding/zh")


def quantised(encoder):
    """A copy of ``encoder`` whose text tower's Linear layers run in dynamic int8."""
    import torch
    from jewelsearch.embed.encoder import Encoder
    model = copy.deepcopy(encoder.model)
    with warnings.catch_warnings():  # torch.ao's deprecation notice for quantize_dynamic
        warnings.simplefilter("ignore")
        model.text = torch.ao.quantization.quantize_dynamic(model.text, {torch.nn.Linear}, dtype=torch.qint8)
    return Encoder(model, encoder.preprocess, encoder.tokenizer, encoder.model_id,
                   max_text_chars=encoder.max_text_chars)


def one_catalog(source: str, photos_only: bool = False) -> dict:
    from jewelsearch.config import Settings
    from jewelsearch.embed.text_cache import TextVectorCache
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
            state = service.state
            towers = {"fp32": state.encoder, "int8": quantised(state.encoder)}
            records = {}
            for name, encoder in towers.items():
                state.text_vectors = TextVectorCache(encoder.encode_texts, 0, max_chars=encoder.max_text_chars)
                records[name] = run_queries(queries, service_ranker(service, rows), 10)
            timing = time_towers(towers, [q.text for q in queries])
        finally:
            service.catalog.close()
    summaries = {name: summarise(recs) for name, recs in records.items()}
    differences = [b["r_precision"] - a["r_precision"] for a, b in zip(records["fp32"], records["int8"])]
    changed = sum(a["r_precision"] != b["r_precision"] for a, b in zip(records["fp32"], records["int8"]))
    return {"catalog": source, "photos_only": photos_only, "items": len(catalog.rows), "queries": len(queries),
            "held_out": {name: {group: summaries[name][group]["held-out"]["r_precision"] for group in GROUPS}
                         for name in summaries},
            "all": {name: {group: summaries[name][group]["all"]["r_precision"] for group in GROUPS}
                    for name in summaries},
            "mean_difference_all": statistics.mean(differences), "queries_changed": changed,
            "timing": timing}


def time_towers(towers: dict, texts: list[str], limit: int = 200) -> dict:
    import numpy as np
    texts = texts[:limit]
    times = {name: [] for name in towers}
    cosines = []
    for encoder in towers.values():
        encoder.encode_texts(["warm up"])
    for i, text in enumerate(texts):
        vectors = {}
        for name in (list(towers) if i % 2 == 0 else list(towers)[::-1]):
            started = time.perf_counter()
            vectors[name] = towers[name].encode_texts([text])[0]
            times[name].append((time.perf_counter() - started) * 1000)
        cosines.append(float(np.dot(vectors["fp32"], vectors["int8"])))
    p50 = {name: statistics.median(values) for name, values in times.items()}
    return {"texts": len(texts), "p50_ms": p50, "ratio": p50["int8"] / p50["fp32"],
            "cosine_median": statistics.median(cosines), "cosine_min": min(cosines),
            "load_average": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", action="append", required=True)
    parser.add_argument("--photos-only", action="store_true", help="load each catalog from its photos alone")
    parser.add_argument("--out", type=Path, default=Path("reports/search/int8-query-tower.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    torch.set_num_threads(1)  # serve's setting on this machine
    results = []
    for source in args.catalog:
        result = one_catalog(source, args.photos_only)
        results.append(result)
        print(json.dumps({key: result[key] for key in ("catalog", "photos_only", "held_out", "mean_difference_all",
                                                        "queries_changed", "timing")}, indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
