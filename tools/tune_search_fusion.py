"""Choose text search's fusion defaults on the tuning queries of `jewelsearch eval search`, then
report every setting on the held-out queries, as an ablation table.

Each catalog is ingested once into a scratch home (both ways: titles and fields, photos only);
then every setting re-ranks the same queries (``service.hybrid`` is read per request). The
setting with the best mean R-precision@10 over the tuning queries of all catalogs and groups is
the choice; held-out figures are reported for every setting, never used to choose.

    python tools/tune_search_fusion.py --catalog runs/search-eval-renders --catalog demo \
        --work runs/fusion-tuning --out docs/search_fusion.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

from jewelsearch.config import Settings
from jewelsearch.evaluate.search_catalogs import load_catalog
from jewelsearch.evaluate.search_quality import run_queries, service_ranker
from jewelsearch.evaluate.search_queries import build_queries
from jewelsearch.evaluate.search_run import ingest
from jewelsearch.search.options import HybridSettings
from jewelsearch.search.wiring import open_service

# The fusion weights were chosen with the query compared with the photos only; the item text
# vector's weight is chosen on top of them by tools/tune_text_field_weight.py.
PHOTOS = 0.0
ABLATIONS = {
    "vector only (before hybrid search)": HybridSettings(weights={"semantic": 1.0}, translate=False,
                                                         text_field_weight=PHOTOS),
    "vector only, query translated": HybridSettings(weights={"semantic": 1.0}, text_field_weight=PHOTOS),
    "lexical only": HybridSettings(weights={"lexical": 1.0}, text_field_weight=PHOTOS),
    "vector + lexical": HybridSettings(weights={"semantic": 1.0, "lexical": 1.0}, text_field_weight=PHOTOS),
    "understood attributes only": HybridSettings(weights={"attributes": 1.0}, text_field_weight=PHOTOS),
    "all three, reciprocal-rank fusion (k=60)": HybridSettings(
        weights={"semantic": 1.0, "lexical": 1.0, "attributes": 1.0}, method="rrf", text_field_weight=PHOTOS),
}


def grid() -> dict[str, HybridSettings]:
    out = {}
    for semantic, lexical, attributes in itertools.product((0.5, 1.0), (0.5, 1.0, 2.0), (1.0, 2.0, 3.0)):
        out[f"convex {semantic}/{lexical}/{attributes}"] = HybridSettings(
            weights={"semantic": semantic, "lexical": lexical, "attributes": attributes}, text_field_weight=PHOTOS)
    return out


def mean_by_split(records: list[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for split in ("tuning", "held-out"):
        chosen = [r for r in records if r["split"] == split]
        groups = sorted({f"{r['group']}/{r['language']}" for r in chosen})
        out[split] = {g: round(statistics.fmean(r["r_precision"] for r in chosen
                                                if f"{r['group']}/{r['language']}" == g), 4) for g in groups}
        out[split]["mean"] = round(statistics.fmean(out[split][g] for g in groups), 4) if groups else 0.0
    return out


def ingested_catalog(source: str, photos_only: bool, work: Path) -> tuple[str, Any, dict[int, int], list]:
    """A labelled catalog ingested into a fresh scratch home under ``work``: its label, the
    service, catalog item id -> row, and its queries."""
    catalog = load_catalog(source)
    label = f"{catalog.name} ({'photos only' if photos_only else 'titles and fields'})"
    service = open_service(Settings(home=work / f"{catalog.name}-{'photos' if photos_only else 'fields'}"))
    started = time.perf_counter()
    item_rows = ingest(service, catalog, photos_only)
    print(f"{label}: ingested {len(item_rows)} items in {time.perf_counter() - started:.0f} s", flush=True)
    return label, service, item_rows, build_queries(catalog.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", action="append", required=True, help="demo, products or a folder")
    parser.add_argument("--work", type=Path, required=True, help="a new folder for the scratch homes")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    settings = {**ABLATIONS, **grid()}
    results: dict[str, dict] = {name: {} for name in settings}
    for source, photos_only in itertools.product(args.catalog, (False, True)):
        label, service, item_rows, queries = ingested_catalog(source, photos_only, args.work)
        for name, hybrid in settings.items():
            service.hybrid = hybrid
            results[name][label] = mean_by_split(run_queries(queries, service_ranker(service, item_rows)))
        service.catalog.close()
    ranked = sorted(settings, key=lambda n: -statistics.fmean(r["tuning"]["mean"] for r in results[n].values()))
    report = {"date": time.strftime("%Y-%m-%d"), "catalogs": args.catalog, "choice": ranked[0],
              "choice_weights": dict(settings[ranked[0]].weights), "choice_method": settings[ranked[0]].method,
              "order_by_tuning_mean": ranked, "results": results}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name in list(ABLATIONS) + [ranked[0]]:
        tuning = statistics.fmean(r["tuning"]["mean"] for r in results[name].values())
        held = statistics.fmean(r["held-out"]["mean"] for r in results[name].values())
        print(f"{name:45s} tuning {tuning:.3f}  held-out {held:.3f}")


if __name__ == "__main__":
    main()
