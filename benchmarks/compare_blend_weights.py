"""Two blend weight settings on the same simulated shoppers, paired: the check behind a change of
the default weights.

Builds and scores the blend exactly as `jewelsearch eval recommend --no-tune` does (same
populations, split, event weights, ALS factors fitted on each population's training events), but
only the blend under each setting and the content-only baseline, not the strong baselines, whose
fits are most of that command's cost. Prints NDCG@10 and coverage per population, then the pooled
NDCG@10 of each setting and the paired 95 % bootstrap interval of the gain.

Usage: python benchmarks/compare_blend_weights.py HOME [--shoppers-from given|catalog]
       [--regularisation 10] [--seeds 1,2,3,4,5]
The settings compared: the defaults with the ALS source off (factors 0, the defaults before
2026-12-07) against factors 1.0 and co_engagement 2.5 (the given-field re-tune of 2026-12-07).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np

from jewelsearch.config import load_settings
from jewelsearch.evaluate.recommend import (CONTENT, OURS, build_methods, evaluate_methods, fit_factors,
                                            gain_interval, split)
from jewelsearch.evaluate.simulate import SimulationConfig, given_attributes, simulate
from jewelsearch.recommend.attributes import AttributeTable
from jewelsearch.recommend.blend import BlendWeights
from jewelsearch.search.wiring import open_service


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("home")
    parser.add_argument("--shoppers-from", choices=["given", "catalog"], default="given")
    parser.add_argument("--regularisation", type=float, default=10.0,
                        help="ALS regularisation of the blend's factors (eval recommend uses the ALS baseline's "
                             "tuned value: 10 under both shopper definitions on 2026-12-07)")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--users", type=int, default=400)
    args = parser.parse_args()
    service = open_service(load_settings(args.home))
    items = service.catalog.items.list(limit=10**9)
    ids, stored = service.catalog.embeddings.all_for_model(service.encoder.model_id)
    vectors = {int(i): v for i, v in zip(ids, stored)}
    attributes = AttributeTable.from_rows(items)
    world = given_attributes(items) if args.shoppers_from == "given" else items
    config = SimulationConfig(users=args.users)
    before = replace(BlendWeights(), factors=0.0, co_engagement=2.5)
    after = replace(BlendWeights(), factors=1.0, co_engagement=2.5)
    strata = []
    for seed in (int(s) for s in args.seeds.split(",")):
        train_events, cases = split(simulate(world, config, seed, None))
        now = max(e["ts"] for e in train_events) + 60
        factors = fit_factors(train_events, args.regularisation)
        without = build_methods(service.index, vectors, train_events, now, before, attributes=attributes)
        with_als = build_methods(service.index, vectors, train_events, now, after, attributes=attributes,
                                 factors=factors)
        per_user: dict[str, np.ndarray] = {}
        results = evaluate_methods({"content": without[CONTENT], "before": without[OURS], "after": with_als[OURS]},
                                   cases, vectors, len(vectors), per_user)
        strata.append((per_user["after"], per_user["before"]))
        scores = {name: {"ndcg@10": round(r["ndcg@10"], 4), "coverage": round(r["coverage"], 4)}
                  for name, r in results.items()}
        print(json.dumps({"seed": seed, **scores}), flush=True)
    before_ndcg = float(np.mean(np.concatenate([b for _, b in strata])))
    after_ndcg = float(np.mean(np.concatenate([a for a, _ in strata])))
    low, high = gain_interval(strata)
    print(json.dumps({"shoppers_from": args.shoppers_from, "shoppers": int(sum(len(a) for a, _ in strata)),
                      "pooled_ndcg@10_before": round(before_ndcg, 4), "pooled_ndcg@10_after": round(after_ndcg, 4),
                      "gain": round(after_ndcg / before_ndcg - 1, 4), "interval": [round(low, 4), round(high, 4)]}))


if __name__ == "__main__":
    main()
