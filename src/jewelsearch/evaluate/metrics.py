"""Classification and retrieval metrics (plain numpy, no framework)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jewelsearch.recognize.heads import expected_calibration_error


def classification(truth: Sequence[str], probabilities: np.ndarray, vocab: Sequence[str],
                   restrict_to: Sequence[str] | None = None) -> dict:
    """Accuracy, top-5, macro recall/F1 and a confusion matrix over the true classes.

    ``restrict_to`` limits the candidate labels (e.g. the 68 gemstone photo
    classes), so an answer outside the task is impossible rather than wrong.
    """
    vocab = list(vocab)
    probs = np.asarray(probabilities, dtype=np.float64).copy()
    if restrict_to is not None:
        allowed = np.isin(vocab, list(restrict_to))
        probs[:, ~allowed] = -1
    index = {label: i for i, label in enumerate(vocab)}
    truth_idx = np.array([index[t] for t in truth])
    predicted = probs.argmax(1)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    classes = sorted(set(truth), key=lambda c: index[c])
    recalls, f1s = [], []
    for label in classes:
        c = index[label]
        tp = np.sum((predicted == c) & (truth_idx == c))
        fn = np.sum((predicted != c) & (truth_idx == c))
        fp = np.sum((predicted == c) & (truth_idx != c))
        recall = tp / max(tp + fn, 1)
        precision = tp / max(tp + fp, 1)
        recalls.append(recall)
        f1s.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    shown = classes + sorted({vocab[p] for p in predicted} - set(classes), key=lambda c: index[c])
    position = {label: i for i, label in enumerate(shown)}
    confusion = np.zeros((len(classes), len(shown)), dtype=int)
    for t, p in zip(truth_idx, predicted):
        confusion[position[vocab[t]], position[vocab[p]]] += 1
    calibrated = np.clip(probs, 0, None)
    calibrated = calibrated / np.maximum(calibrated.sum(1, keepdims=True), 1e-12)
    return {"n": int(len(truth)), "accuracy": float(np.mean(predicted == truth_idx)),
            "ece": expected_calibration_error(calibrated, truth_idx),
            "top5": float(np.mean([t in row for t, row in zip(truth_idx, top5)])),
            "macro_recall": float(np.mean(recalls)), "macro_f1": float(np.mean(f1s)),
            "confusion": {"rows": classes, "cols": shown, "counts": confusion.tolist()},
            "correct": (predicted == truth_idx).astype(int).tolist()}


def bootstrap_interval(values: Sequence[float], draws: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (items resampled with replacement)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return 0.0, 0.0
    picks = np.random.default_rng(seed).integers(0, data.size, size=(draws, data.size))
    tail = (1 - level) / 2
    low, high = np.quantile(data[picks].mean(1), [tail, 1 - tail])
    return float(low), float(high)


def paired_drop_interval(clean: Sequence[float], degraded: Sequence[float], draws: int = 2000, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval, in points, of mean(clean) - mean(degraded) over the same
    items (each item's two scores resampled together)."""
    difference = 100 * (np.asarray(clean, dtype=np.float64) - np.asarray(degraded, dtype=np.float64))
    return bootstrap_interval(difference, draws, seed, level)


def image_retrieval(embeddings: np.ndarray, labels: Sequence[str], k: int = 10) -> dict:
    """Leave-one-out image→image retrieval: precision@k and mAP by shared label."""
    labels = np.asarray(labels)
    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, -np.inf)
    precisions, aps = [], []
    for i in range(len(labels)):
        relevant = labels == labels[i]
        relevant[i] = False
        if not relevant.any():
            continue
        order = np.argsort(-sims[i])[:-1]
        hits = relevant[order]
        precisions.append(hits[:k].mean())
        ranks = np.flatnonzero(hits) + 1
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return {"queries": len(aps), f"precision@{k}": float(np.mean(precisions)), "mAP": float(np.mean(aps))}


def text_retrieval(query_vectors: np.ndarray, relevant: Sequence[np.ndarray], gallery: np.ndarray,
                   k: int = 10) -> dict:
    """Text→image: recall@k (a relevant image in the top k), precision@k and MRR."""
    sims = query_vectors @ gallery.T
    hit, precision, rr = [], [], []
    for scores, rel in zip(sims, relevant):
        order = np.argsort(-scores)
        hits = rel[order]
        hit.append(float(hits[:k].any()))
        precision.append(float(hits[:k].sum() / min(k, rel.sum())))
        first = np.flatnonzero(hits)
        rr.append(1.0 / (first[0] + 1) if len(first) else 0.0)
    return {"queries": len(hit), f"recall@{k}": float(np.mean(hit)),
            f"precision@{k}": float(np.mean(precision)), "mrr": float(np.mean(rr))}


def same_product_hits(embeddings: np.ndarray, groups: Sequence[str | None],
                      gallery: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query (a photo whose product has another photo): hit at rank 1, hit in the top 10,
    and the query's index. Each photo queries the others; a hit is another photo of the same
    product. ``gallery`` embeds the same photos the way the catalog side does, when that
    differs from how queries are embedded (e.g. query by detected piece, catalog by whole photo)."""
    groups = np.asarray([g or "" for g in groups])
    sims = embeddings @ (embeddings if gallery is None else gallery).T
    np.fill_diagonal(sims, -np.inf)
    r1, r10, queries = [], [], []
    for i, g in enumerate(groups):
        others = (groups == g) & (np.arange(len(groups)) != i)
        if not g or not others.any():
            continue
        order = np.argsort(-sims[i])[:-1]
        r1.append(float(others[order[0]]))
        r10.append(float(others[order[:10]].any()))
        queries.append(i)
    return np.asarray(r1), np.asarray(r10), np.asarray(queries, dtype=int)


def same_product_retrieval(embeddings: np.ndarray, groups: Sequence[str | None],
                           gallery: np.ndarray | None = None) -> dict:
    """Recall@1 and @10 of ``same_product_hits``."""
    r1, r10, _ = same_product_hits(embeddings, groups, gallery)
    return {"queries": len(r1), "recall@1": float(np.mean(r1)) if len(r1) else 0.0,
            "recall@10": float(np.mean(r10)) if len(r10) else 0.0}
