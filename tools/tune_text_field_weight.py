"""Choose ``text_field_weight`` (the share of an item's semantic score that comes from its own
text vector rather than its photo) on the tuning queries of `jewelsearch eval search`, and
report the ablation table: vector only, lexical only, + item text vector, + understood
attributes, all.

Each catalog is ingested once per loading (titles and fields; photos only) into a scratch
home; every setting then re-ranks the same queries (``service.hybrid`` is read per request).
The other fusion weights stay at the shipped defaults. The choice is the smallest weight whose
mean R-precision@10 over the tuning queries is within ``TIE`` of the best (a smaller weight
keeps more of the photo's say; a difference that small is one query's rank on one catalog);
held-out figures are reported for every setting, never used to choose.

    python tools/tune_text_field_weight.py --catalog demo --catalog products \
        --work runs/text-field-tuning --out reports/search/text-field-tuning.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import time
from pathlib import Path

from tune_search_fusion import mean_by_split

from jewelsearch.config import Settings
from jewelsearch.evaluate.search_catalogs import load_catalog
from jewelsearch.evaluate.search_quality import run_queries, service_ranker
from jewelsearch.evaluate.search_queries import build_queries
from jewelsearch.evaluate.search_run import ingest
from jewelsearch.search.options import HybridSettings
from jewelsearch.search.wiring import open_service

WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
TIE = 0.001


def settings_for(weight: float) -> dict[str, HybridSettings]:
    """The ablation rows, with the item text vector at ``weight`` where a row uses it."""
    default = HybridSettings(text_field_weight=0.0)
    return {
        "vector only (photos)": HybridSettings(weights={"semantic": 1.0}, text_field_weight=0.0),
        "lexical only": HybridSettings(weights={"lexical": 1.0}, text_field_weight=0.0),
        f"vector + item text vector (a = {weight})": HybridSettings(weights={"semantic": 1.0},
                                                                     text_field_weight=weight),
        f"vector + item text vector + understood attributes (a = {weight})": HybridSettings(
            weights={"semantic": default.weights["semantic"], "attributes": default.weights["attributes"]},
            text_field_weight=weight),
        "all, without item text vector (a = 0)": default,
        f"all (a = {weight})": dataclasses.replace(default, text_field_weight=weight),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", action="append", required=True, help="demo, products or a folder")
    parser.add_argument("--work", type=Path, required=True, help="a new folder for the scratch homes")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sweep = {f"all, a = {w}": dataclasses.replace(HybridSettings(), text_field_weight=w) for w in WEIGHTS}
    sweep.update({f"vector + item text, a = {w}": HybridSettings(weights={"semantic": 1.0}, text_field_weight=w)
                  for w in WEIGHTS})
    results: dict[str, dict] = {name: {} for name in sweep}
    services = []
    for source, photos_only in itertools.product(args.catalog, (False, True)):
        catalog = load_catalog(source)
        label = f"{catalog.name} ({'photos only' if photos_only else 'titles and fields'})"
        home = args.work / f"{catalog.name}-{'photos' if photos_only else 'fields'}"
        service = open_service(Settings(home=home, text_field_weight=0.5))  # 0.5: make the item text vectors
        started = time.perf_counter()
        item_rows = ingest(service, catalog, photos_only)
        print(f"{label}: ingested {len(item_rows)} items in {time.perf_counter() - started:.0f} s", flush=True)
        queries = build_queries(catalog.rows)
        services.append((label, service, item_rows, queries))
        for name, hybrid in sweep.items():
            service.hybrid = hybrid
            results[name][label] = mean_by_split(run_queries(queries, service_ranker(service, item_rows)))

    def tuning_mean(name: str) -> float:
        return statistics.fmean(r["tuning"]["mean"] for r in results[name].values())

    best = max(tuning_mean(f"all, a = {w}") for w in WEIGHTS)
    chosen = min(w for w in WEIGHTS if tuning_mean(f"all, a = {w}") >= best - TIE)
    ablation = settings_for(chosen)
    table: dict[str, dict] = {name: {} for name in ablation}
    for label, service, item_rows, queries in services:
        for name, hybrid in ablation.items():
            service.hybrid = hybrid
            table[name][label] = mean_by_split(run_queries(queries, service_ranker(service, item_rows)))
        service.catalog.close()
    report = {"date": time.strftime("%Y-%m-%d"), "catalogs": args.catalog, "chosen_text_field_weight": chosen,
              "sweep": results, "ablation": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for rows in (results, table):
        for name, by_label in rows.items():
            cells = "  ".join(f"{label}: {r['held-out']['mean']:.3f}" for label, r in by_label.items())
            tuning = statistics.fmean(r["tuning"]["mean"] for r in by_label.values())
            held = statistics.fmean(r["held-out"]["mean"] for r in by_label.values())
            print(f"{name:62s} tuning {tuning:.3f}  held-out {held:.3f}  | {cells}")
    print(f"chosen text_field_weight: {chosen}")


if __name__ == "__main__":
    main()
