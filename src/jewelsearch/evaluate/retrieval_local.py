"""The local-feature check judged against the ranking it re-scores, by the rule fixed before
the run (docs/experiments/2026-12-07-local-rerank.md):

A blend weight **wins** when, against the shipped descriptor's multi-crop ranking, its R@1
change is not negative on any of the three measures (worn, pasted, render) and, on the pasted
or the render measure, it is positive with a 95 % paired bootstrap interval above zero. Of
several winners, the one with the largest mean R@1 change over pasted and render is kept. The
check is turned on by default only if some weight wins.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from jewelsearch.evaluate.metrics import bootstrap_interval

MEASURES = ("worn_same_product", "pasted_to_catalog", "render_to_render")
PIECE_ONLY = ("pasted_to_catalog", "render_to_render")  # measures where only the piece is shared


def r1_change(base: np.ndarray, new: np.ndarray) -> dict:
    """Mean change in R@1 (hit = rank 0) over the same queries, with a paired bootstrap interval."""
    difference = (np.asarray(new) < 1).astype(np.float64) - (np.asarray(base) < 1).astype(np.float64)
    low, high = bootstrap_interval(difference)
    return {"delta": round(float(difference.mean()), 4) if len(difference) else 0.0,
            "interval": [round(low, 4), round(high, 4)]}


def verdict(changes: Mapping[str, dict]) -> str:
    """'wins' or why not, for one weight's ``r1_change`` per measure."""
    dropped = [m for m in MEASURES if m in changes and changes[m]["delta"] < 0]
    if dropped:
        return "loses: R@1 drops on " + ", ".join(m.split("_")[0] for m in dropped)
    if any(changes[m]["interval"][0] > 0 for m in PIECE_ONLY if m in changes):
        return "wins"
    return "no clear gain: no pasted or render gain with its interval above zero"


def judge_weights(base: Mapping[str, np.ndarray], by_weight: Mapping[float, Mapping[str, np.ndarray]]) -> dict:
    """Per weight, the R@1 changes and verdict; and the decision. ``base`` and each of
    ``by_weight``'s values map a measure to each query's rank of its first right answer."""
    weights: dict = {}
    for weight, ranks in by_weight.items():
        row: dict = {m: r1_change(base[m], ranks[m]) for m in MEASURES if m in base and m in ranks}
        row["verdict"] = verdict(row)
        weights[str(weight)] = row
    winners = [w for w, row in weights.items() if row["verdict"] == "wins"]
    if winners:
        best = max(winners, key=lambda w: np.mean([weights[w][m]["delta"] for m in PIECE_ONLY if m in weights[w]]))
        decision = f"on by default, weight {best}"
    else:
        best, decision = None, "off by default: no weight wins"
    return {"weights": weights, "chosen": best, "decision": decision}
