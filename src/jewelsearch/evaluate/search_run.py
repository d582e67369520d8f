"""One search evaluation: ingest a labelled catalog into a given (fresh) service, build the
queries from its true labels, rank them with the service and with BM25 on titles, summarise."""

from __future__ import annotations

import datetime
from typing import Any, Callable

from jewelsearch.evaluate.search_catalogs import LabelledCatalog
from jewelsearch.evaluate.search_quality import TitleBM25, run_queries, service_ranker, summarise
from jewelsearch.evaluate.search_queries import HELD_OUT_SHARE, build_queries

INGEST_BATCH = 32


def ingest(service: Any, catalog: LabelledCatalog, photos_only: bool,
           progress: Callable[[int], None] | None = None) -> dict[int, int]:
    """Adds every item; returns catalog item id -> row index."""
    items = catalog.items(photos_only=photos_only)
    item_rows: dict[int, int] = {}
    for start in range(0, len(items), INGEST_BATCH):
        results = service.add_items(items[start:start + INGEST_BATCH])
        for offset, result in enumerate(results):
            item_rows[result.item_id] = start + offset
        if progress:
            progress(len(results))
    service.save(force=True)
    return item_rows


def evaluate_search(service: Any, catalog: LabelledCatalog, *, photos_only: bool = False, k: int = 10,
                    seed: int = 0, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    item_rows = ingest(service, catalog, photos_only, progress)
    queries = build_queries(catalog.rows, seed=seed)
    engine = run_queries(queries, service_ranker(service, item_rows), k, progress)
    bm25 = run_queries(queries, TitleBM25([row.get("title") for row in catalog.rows]), k)
    return {
        "date": datetime.date.today().isoformat(),
        "catalog": catalog.name, "catalog_note": catalog.note, "items": len(catalog.rows),
        "loading": "photos only (predicted attributes)" if photos_only else "titles and fields",
        "k": k, "seed": seed,
        "split_rule": f"held-out when sha1(intent) mod {HELD_OUT_SHARE} == 0 (both languages together)",
        "engine": {"summary": summarise(engine, seed), "queries": engine},
        "bm25_titles": {"summary": summarise(bm25, seed),
                        "queries": [{"text": r["text"], "r_precision": r["r_precision"], "mrr": r["mrr"]}
                                    for r in bm25]},
    }
