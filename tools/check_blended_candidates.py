"""Would text search rank as well if its semantic candidates came from one blended index?

Text search scores a candidate by ``(1 - a)·(q·image) + a·(q·text)`` (``q·image`` for an item
without words). The shipped candidates are the image index's top ``pool``, the item text index's
top ``text_field_pool`` and the word index's list (``search/item_text_space.py``). One index over
the blended vectors ``(1 - a)·image + a·text`` would give the same scores with one search, but
its candidates are the top ``pool`` by the blended score itself, so the ranking can move. This
runs the tuning and held-out queries of ``jewelsearch eval search`` both ways on each catalog
loading, the blended way simulated exactly (every allowed item's blended score from the stored
vectors, top ``pool``, plus the word index's list), with every other setting as shipped.

    python tools/check_blended_candidates.py --catalog demo --catalog products \
        --work runs/blended-candidates --out reports/search/blended-candidates.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

import numpy as np
from tune_search_fusion import ingested_catalog, mean_by_split

import jewelsearch.search.text_query as text_query_module
from jewelsearch.evaluate.search_quality import run_queries, service_ranker
from jewelsearch.search.item_text_space import blended_semantic


def make_blended_candidates(pool: int):
    """A stand-in for ``blended_semantic`` whose candidates are the exact top ``pool`` by the
    blended score over every allowed item (what a blended index returns), plus ``extra``."""
    def semantic(query, image_index, text_index, image_scores, text_pool, weight, allowed_ids, extra=()):
        ids = image_index.ids()
        if allowed_ids is not None:
            ids = np.intersect1d(ids, np.asarray(sorted(int(i) for i in allowed_ids), dtype=np.int64))
        if len(ids) == 0:
            return {}
        query = np.asarray(query, dtype=np.float32).ravel()
        scores = image_index.vectors_for(ids.tolist()) @ query
        worded = np.array([int(i) in text_index for i in ids], dtype=bool)
        if worded.any():
            text_sims = text_index.vectors_for(ids[worded].tolist()) @ query
            scores[worded] = (1.0 - weight) * scores[worded] + weight * text_sims
        order = np.argsort(-scores, kind="stable")[:pool]
        by_id = dict(zip(ids.tolist(), scores.tolist()))
        chosen = {int(ids[i]): float(scores[i]) for i in order}
        chosen.update({int(item): by_id[int(item)] for item in extra if int(item) in by_id})
        return chosen
    return semantic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", action="append", required=True, help="demo, products or a folder")
    parser.add_argument("--work", type=Path, required=True, help="a new folder for the scratch homes")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results: dict[str, dict] = {"shipped (two indexes)": {}, "blended candidates (one index)": {}}
    moved: dict[str, int] = {}
    for source, photos_only in itertools.product(args.catalog, (False, True)):
        label, service, item_rows, queries = ingested_catalog(source, photos_only, args.work)
        rank = service_ranker(service, item_rows)
        runs = {}
        for name, semantic in (("shipped (two indexes)", blended_semantic),
                               ("blended candidates (one index)", make_blended_candidates(service.hybrid.pool))):
            text_query_module.blended_semantic = semantic
            try:
                runs[name] = run_queries(queries, rank)
            finally:
                text_query_module.blended_semantic = blended_semantic
            results[name][label] = mean_by_split(runs[name])
        shipped, blended = runs.values()
        moved[label] = sum(a["r_precision"] != b["r_precision"] for a, b in zip(shipped, blended))
        print(f"  {len(queries)} queries; R-precision@10 differs on {moved[label]}", flush=True)
        service.catalog.close()
    report = {"date": time.strftime("%Y-%m-%d"), "catalogs": args.catalog, "results": results,
              "queries_whose_score_moved": moved}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, by_label in results.items():
        cells = "  ".join(f"{label}: {r['tuning']['mean']:.3f} / {r['held-out']['mean']:.3f}"
                          for label, r in by_label.items())
        tuning = statistics.fmean(r["tuning"]["mean"] for r in by_label.values())
        held = statistics.fmean(r["held-out"]["mean"] for r in by_label.values())
        print(f"{name:32s} tuning {tuning:.4f}  held-out {held:.4f}  | tuning / held-out: {cells}")


if __name__ == "__main__":
    main()
