"""Box and mask agreement: IoU, class-agnostic box AP, mask IoU.

The localiser's trainer validates with these, and region evaluation reports them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_average_precision(predictions: Sequence[Sequence[tuple[Sequence[float], float]]],
                          truths: Sequence[Sequence[Sequence[float]]], iou: float = 0.5) -> float:
    """Class-agnostic AP at an IoU threshold (all-point interpolation, as in VOC 2010+).

    ``predictions[i]`` holds (box, confidence) pairs for image i; ``truths[i]`` its true boxes.
    Each true box can be matched once; extra detections of it count as false positives.
    """
    total = sum(len(t) for t in truths)
    if total == 0:
        return float("nan")
    flat = sorted(((conf, i, box) for i, preds in enumerate(predictions) for box, conf in preds),
                  key=lambda x: -x[0])
    used = [np.zeros(len(t), bool) for t in truths]
    hits = np.zeros(len(flat))
    for rank, (_, image, box) in enumerate(flat):
        overlaps = [box_iou(box, t) for t in truths[image]]
        if overlaps:
            best = int(np.argmax(overlaps))
            if overlaps[best] >= iou and not used[image][best]:
                used[image][best] = True
                hits[rank] = 1
    if not len(flat):
        return 0.0
    tp = np.cumsum(hits)
    recall = tp / total
    precision = tp / np.arange(1, len(flat) + 1)
    # Precision envelope, then the area under the stepwise curve.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((steps * envelope).sum())


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else float("nan")
