"""Text search quality and tower time with another query text tower, paired on one catalog
(docs/experiments/2026-12-07-int8-query-text-tower.md, 2026-12-07-openvino-query-text-tower.md).

Each catalog is ingested once (titles and fields, or photos only; the shipped fp32 towers) into
a fresh temporary home; ``jewelsearch eval search``'s queries (seed 0) are then ranked twice on
it, with the reference query tower and with the variant:

- ``int8``: torch fp32 against a copy whose ``nn.Linear`` layers are quantised dynamically to int8;
- ``openvino-bf16``: OpenVINO f32 (torch's vectors within 1e-5) against OpenVINO bf16.

Then both towers encode the same texts, interleaved, for their p50 times. Items' vectors are
the fp32 ones in both rankings: only the query vectors change.

Usage: python tools/eval_query_tower.py --variant int8 --catalog demo --catalog RENDERS_DIR
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


class OtherRuntime:
    """``encode_texts`` through another runtime's forward of ``encoder``'s text tower."""

    def __init__(self, encoder, forward):
        self.encoder, self.forward, self.max_text_chars = encoder, forward, encoder.max_text_chars

    def encode_texts(self, texts):
        return self.encoder.encode_texts_from_ids(texts, self.forward)


def towers_for(variant: str, encoder, cache: Path) -> dict:
    """{reference name: query encoder, variant name: query encoder}."""
    if variant == "int8":
        return {"fp32": encoder, "int8": quantised(encoder)}
    from jewelsearch.embed import openvino_text
    return {precision: OtherRuntime(encoder, openvino_text.open_text_tower(encoder, cache, precision=precision))
            for precision in ("f32", "bf16")}


def one_catalog(source: str, photos_only: bool = False, variant: str = "int8") -> dict:
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
            towers = towers_for(variant, state.encoder, Path(scratch) / "openvino")
            reference, other = list(towers)
            records, rankings = {}, {}
            for name, encoder in towers.items():
                state.text_vectors = TextVectorCache(encoder.encode_texts, 0, max_chars=encoder.max_text_chars)
                rank, rankings[name] = service_ranker(service, rows), []
                records[name] = run_queries(queries, lambda text, k: _kept(rankings[name], rank(text, k)), 10)
            timing = time_towers(towers, [q.text for q in queries])
        finally:
            service.catalog.close()
    from jewelsearch.evaluate.metrics import bootstrap_interval
    summaries = {name: summarise(recs) for name, recs in records.items()}
    differences = [b["r_precision"] - a["r_precision"] for a, b in zip(records[reference], records[other])]
    changed = sum(a["r_precision"] != b["r_precision"] for a, b in zip(records[reference], records[other]))
    top10_changed = sum(a != b for a, b in zip(rankings[reference], rankings[other]))
    return {"catalog": source, "photos_only": photos_only, "items": len(catalog.rows), "queries": len(queries),
            "variant": variant, "reference": reference, "other": other,
            "held_out": {name: {group: summaries[name][group]["held-out"]["r_precision"] for group in GROUPS}
                         for name in summaries},
            "mean_difference_interval": bootstrap_interval(differences), "top10_changed": top10_changed,
            "all": {name: {group: summaries[name][group]["all"]["r_precision"] for group in GROUPS}
                    for name in summaries},
            "mean_difference_all": statistics.mean(differences), "queries_changed": changed,
            "timing": timing}


def _kept(into: list, ranked):
    into.append(list(ranked))
    return ranked


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
        reference, other = list(towers)
        cosines.append(float(np.dot(vectors[reference], vectors[other])))
    p50 = {name: statistics.median(values) for name, values in times.items()}
    return {"texts": len(texts), "p50_ms": p50, "ratio": p50[other] / p50[reference],
            "cosine_median": statistics.median(cosines), "cosine_min": min(cosines),
            "load_average": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", action="append", required=True)
    parser.add_argument("--photos-only", action="store_true", help="load each catalog from its photos alone")
    parser.add_argument("--variant", choices=("int8", "openvino-bf16"), default="int8")
    parser.add_argument("--out", type=Path, help="default: reports/search/VARIANT-query-tower[-photos-only].json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    torch.set_num_threads(1)  # serve's setting on this machine
    results = []
    for source in args.catalog:
        result = one_catalog(source, args.photos_only, args.variant)
        results.append(result)
        print(json.dumps({key: result[key] for key in ("catalog", "photos_only", "variant", "held_out",
                                                        "mean_difference_all", "mean_difference_interval",
                                                        "queries_changed", "top10_changed", "timing")}, indent=1),
              flush=True)
    args.out = args.out or Path(f"reports/search/{args.variant}-query-tower{'-photos-only' * args.photos_only}.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
