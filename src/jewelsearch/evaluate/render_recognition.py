"""How recognition reads studio renders: each attribute's top guess against the render's exact
label, and what ingest would fill in from it.

A photos-only catalog gets its category, metal, gemstone and cut from recognition at ingest
(``ingest.fill_decision``: the top guess at calibrated probability >= the fill threshold, a
gemstone or cut only where the localiser sees a stone), and text search can only find what
was filled in. This module measures that step on a studio render folder's features
(``train.render_features``): top-1 accuracy, the commonest confusions, and per threshold how
much is filled and how much of it is right.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import numpy as np

from jewelsearch.embed.vocab import NO_STONE
from jewelsearch.train.render_features import RenderFeatures

ATTRIBUTES = ("category", "metal", "gemstone", "cut")
STONE_ATTRIBUTES = ("gemstone", "cut")
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def fills(probabilities: np.ndarray, vocabulary: Sequence[str], attribute: str, seen: np.ndarray,
          threshold: float | np.ndarray) -> list[str | None]:
    """What ingest would fill per photo: the top label where it clears ``threshold`` (one
    number, or one per label), is not "none", and (gemstone, cut) the localiser sees a stone."""
    best = probabilities.argmax(1)
    p = probabilities[np.arange(len(best)), best]
    limits = np.asarray(threshold, dtype=np.float64)
    limit = limits[best] if limits.ndim else np.full(len(best), float(limits))
    out = []
    for i, (b, q) in enumerate(zip(best, p)):
        label = vocabulary[b]
        gated = attribute in STONE_ATTRIBUTES and not seen[i]
        out.append(label if q >= limit[i] and label != NO_STONE and not gated else None)
    return out


def fill_figures(filled: Sequence[str | None], truth: Sequence[str]) -> dict:
    """Share filled, share of the fills that are right, and the right fills over all photos."""
    n = len(truth)
    done = [(f, t) for f, t in zip(filled, truth) if f is not None]
    right = sum(f == t for f, t in done)
    return {"fill_rate": round(len(done) / max(n, 1), 4), "precision": round(right / len(done), 4) if done else None,
            "right_share": round(right / max(n, 1), 4)}


def diagnose(probabilities: Mapping[str, np.ndarray], vocabularies: Mapping[str, Sequence[str]],
             features: RenderFeatures, thresholds: Sequence[float] = THRESHOLDS,
             ingest_threshold: float = 0.5) -> dict:
    """Per attribute: top-1 accuracy, accuracy by true label, the commonest confusions, and
    the fills at ``ingest_threshold`` and at each of ``thresholds``."""
    out = {"photos": len(features.keys), "stone_seen": int(features.stone_seen.sum())}
    for attribute in ATTRIBUTES:
        if attribute not in probabilities:
            continue
        vocab = list(vocabularies[attribute])
        # A label the heads cannot name (the studio's "cabochon" cut) is left out of the figures.
        known = np.array([x[attribute] in vocab for x in features.labels])
        probs = probabilities[attribute][known]
        seen = features.stone_seen[known]
        truth = [x[attribute] for x, k in zip(features.labels, known) if k]
        top = [vocab[i] for i in probs.argmax(1)]
        by_label: dict[str, list[int]] = {}
        for t, g in zip(truth, top):
            by_label.setdefault(t, []).append(int(t == g))
        confusions = Counter((t, g) for t, g in zip(truth, top) if t != g)
        out[attribute] = {
            "photos": len(truth), "outside_vocabulary": int((~known).sum()),
            "accuracy": round(float(np.mean([t == g for t, g in zip(truth, top)])), 4),
            "accuracy_by_label": {k: {"n": len(v), "accuracy": round(float(np.mean(v)), 3)}
                                  for k, v in sorted(by_label.items())},
            "confusions": [f"{t} -> {g}: {c}" for (t, g), c in confusions.most_common(8)],
            "ingest": fill_figures(fills(probs, vocab, attribute, seen, ingest_threshold), truth),
            "sweep": {str(t): fill_figures(fills(probs, vocab, attribute, seen, t), truth) for t in thresholds}}
    return out
