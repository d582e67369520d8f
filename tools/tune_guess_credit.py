"""Choose ``HybridSettings.guess_full_at`` (how a field recognition guessed earns attribute credit:
each of its top guesses by probability / this, or only a filled-in top guess) for photos-only
catalogs, and measure it.

Each catalog is ingested once per loading into a scratch home (photos only; with ``--fields``
also with its titles and fields, where nothing should move: a given value is never a guess);
every setting then ranks the same queries (``service.hybrid`` is read per request). Reported:
R-precision@10 per group (attribute / understanding, EN / ZH) over all of a catalog's queries,
with 95 % bootstrap intervals, and each setting's paired difference from ``None`` (today).

    python tools/tune_guess_credit.py --catalog runs/tune-renders-5233 --work runs/guess-tuning \
        --out reports/search/guess-credit/tuning.json
    python tools/tune_guess_credit.py --catalog runs/search-eval-renders --catalog runs/search-eval-renders-6151 \
        --settings none 0.5 --fields --work runs/guess-heldout --out reports/search/guess-credit/held-out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import time
from pathlib import Path

import numpy as np
from tune_search_fusion import ingested_catalog

from jewelsearch.evaluate.metrics import bootstrap_interval
from jewelsearch.evaluate.search_quality import run_queries, service_ranker
from jewelsearch.recognize.prompt_blend import PROMPT_WEIGHTS
from jewelsearch.search.options import HybridSettings

GRID = ("none", "0.25", "0.5", "0.75", "1.0")
GROUPS = ("attribute/en", "attribute/zh", "understanding/en", "understanding/zh")


def setting(name: str) -> HybridSettings:
    """"none" or a ``guess_full_at`` value, optionally with "@" and a ``predicted_credit`` ("0.5@0.75")."""
    guess, _, credit = name.partition("@")
    changes = {"guess_full_at": None if guess == "none" else float(guess)}
    if credit:
        changes["predicted_credit"] = float(credit)
    return dataclasses.replace(HybridSettings(), **changes)


def by_group(records: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for record in records:
        out.setdefault(f"{record['group']}/{record['language']}", []).append(record["r_precision"])
    return out


def cell(values: list[float]) -> dict[str, float]:
    low, high = bootstrap_interval(values, seed=0)
    return {"mean": round(statistics.fmean(values), 4), "low": round(low, 4), "high": round(high, 4), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", action="append", required=True, help="a render folder, demo or products")
    parser.add_argument("--settings", nargs="+", default=list(GRID),
                        help="none and/or values of guess_full_at, each optionally @predicted_credit (0.5@0.75)")
    parser.add_argument("--fields", action="store_true", help="also with titles and fields")
    parser.add_argument("--prompt-metal", type=float, default=0.0,
                        help="ingest with the metal head blended with the text prompts at this weight "
                             "(recognize/prompt_blend.py; 0: the head alone, as shipped)")
    parser.add_argument("--work", type=Path, required=True, help="a new folder for the scratch homes")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if "none" not in args.settings:
        parser.error("--settings must include none (the paired differences are from it)")
    if args.prompt_metal:
        PROMPT_WEIGHTS["metal"] = args.prompt_metal  # read when each service loads its recognizer
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "catalogs": args.catalog,
                    "prompt_weights": dict(PROMPT_WEIGHTS), "loadings": {}}
    loadings = (True, False) if args.fields else (True,)
    for source, photos_only in itertools.product(args.catalog, loadings):
        label, service, item_rows, queries = ingested_catalog(source, photos_only, args.work)
        scores = {}
        for name in args.settings:
            service.hybrid = setting(name)
            scores[name] = by_group(run_queries(queries, service_ranker(service, item_rows)))
        service.catalog.close()
        rows = {}
        for name in args.settings:
            rows[name] = {}
            for group in GROUPS:
                values = scores[name].get(group, [])
                if not values:
                    continue
                entry = cell(values)
                if name != "none":
                    entry["paired_vs_none"] = cell(list(np.subtract(values, scores["none"][group])))
                rows[name][group] = entry
        report["loadings"][label] = rows
        for name, groups in rows.items():
            cells = "  ".join(f"{g} {c['mean']:.3f} ({c['low']:.3f}-{c['high']:.3f})" for g, c in groups.items())
            print(f"{label:48s} {name:8s} {cells}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
