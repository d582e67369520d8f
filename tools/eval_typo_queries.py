"""Search with typos: the English queries of a labelled catalog, each with one typo in one of
its words of 5 letters or more (a dropped, swapped, doubled or changed letter, drawn with a
fixed seed), ranked three ways by one service: spelled right, with typos and the speller (the
default), and with typos without it. R-precision@10 per group with 95 % bootstrap intervals,
and the paired difference typo-with-speller minus typo-without.

    python tools/eval_typo_queries.py --catalog runs/search-eval-renders-6151 [--photos-only] [--seed 0] [--out F]

A query with no word of 5 letters or more is left out (it gets no typo).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import tempfile
from pathlib import Path

import numpy as np

from jewelsearch.config import Settings
from jewelsearch.evaluate.metrics import bootstrap_interval
from jewelsearch.evaluate.search_catalogs import load_catalog
from jewelsearch.evaluate.search_queries import build_queries
from jewelsearch.evaluate.search_quality import run_queries, service_ranker
from jewelsearch.evaluate.search_run import ingest
from jewelsearch.evaluate.typos import with_typo
from jewelsearch.search.wiring import open_service


def interval(values) -> tuple[float, float, float]:
    """The mean and its 95 % bootstrap interval, to 3 places."""
    low, high = bootstrap_interval(values)
    return round(float(np.mean(values)), 3), round(low, 3), round(high, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--photos-only", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    catalog = load_catalog(args.catalog)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as home:
        service = open_service(Settings(home=Path(home)))
        item_rows = ingest(service, catalog, args.photos_only)
        queries = [q for q in build_queries(catalog.rows, seed=args.seed) if q.language == "en"]
        typed = [(q, with_typo(q.text, rng)) for q in queries]
        typed = [(q, t) for q, t in typed if t is not None]
        rank = service_ranker(service, item_rows)
        right = run_queries([q for q, _ in typed], rank)
        with_speller = run_queries([dataclasses.replace(q, text=t) for q, t in typed], rank)
        speller = service.state.glossary.speller
        service.state.glossary = dataclasses.replace(service.state.glossary, speller=None)
        without = run_queries([dataclasses.replace(q, text=t) for q, t in typed], rank)
        service.state.glossary = dataclasses.replace(service.state.glossary, speller=speller)
        service.catalog.close()
    report = {"catalog": catalog.name, "loading": "photos only" if args.photos_only else "titles and fields",
              "seed": args.seed, "queries": len(typed), "groups": {}}
    for group in sorted({r["group"] for r in right}):
        rows = [i for i, r in enumerate(right) if r["group"] == group]
        report["groups"][group] = {
            "n": len(rows),
            "spelled right": interval([right[i]["r_precision"] for i in rows]),
            "typos, speller": interval([with_speller[i]["r_precision"] for i in rows]),
            "typos, no speller": interval([without[i]["r_precision"] for i in rows]),
            "speller gain (paired)": interval([with_speller[i]["r_precision"] - without[i]["r_precision"] for i in rows]),
        }
    report["examples"] = [{"typed": t, "meant": q.text, "r_speller": s["r_precision"], "r_without": w["r_precision"]}
                          for (q, t), s, w in list(zip(typed, with_speller, without))[:12]]
    text = json.dumps(report, indent=1, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
