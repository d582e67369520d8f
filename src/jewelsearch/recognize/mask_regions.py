"""Connected regions of a small boolean mask: what the localiser and the evidence read from
SciPy's ``ndimage`` before, without importing SciPy.

Importing ``scipy.ndimage`` cost about a tenth of a one-photo ingest's start (it loads all of
SciPy's image filters to answer three small questions). The masks here are at most the
model's input size (224 × 224), and their regions are a few blobs, so a row-run scan is
quick: each row is cut into runs of set pixels, and runs that touch a run of the row above
(8-connectivity, diagonals included) are joined with a union-find. The results are those of
``ndimage.binary_dilation`` (cross-shaped steps, nothing outside the mask),
``ndimage.label(mask, structure=np.ones((3, 3)))`` (regions numbered in the order of their
first pixel, row by row) and ``ndimage.find_objects``; ``tests/test_mask_regions.py`` compares
them with SciPy's on random masks.
"""

from __future__ import annotations

import numpy as np


def dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` grown by ``steps`` pixels, one cross-shaped (4-neighbour) step at a time."""
    grown = np.asarray(mask, dtype=bool).copy()
    for _ in range(max(0, int(steps))):
        before = grown.copy()
        grown[1:, :] |= before[:-1, :]
        grown[:-1, :] |= before[1:, :]
        grown[:, 1:] |= before[:, :-1]
        grown[:, :-1] |= before[:, 1:]
    return grown


def label_regions(mask: np.ndarray) -> tuple[np.ndarray, list[tuple[slice, slice]]]:
    """(labels: 0 outside, 1..n for the 8-connected regions in the order of their first pixel;
    each region's bounding rows and columns as slices, in label order)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError("label_regions takes a 2-d mask")
    parent: list[int] = []

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    runs: list[tuple[int, int, int, int]] = []  # (row, start, stop, run id), row by row
    above: list[tuple[int, int, int]] = []
    for y in range(mask.shape[0]):
        row = []
        first = 0
        for start, stop in _runs(mask[y]):
            run = len(parent)
            parent.append(run)
            # A run above touches this one, diagonals included, when it starts no later than
            # this one's stop and stops no earlier than this one's start.
            while first < len(above) and above[first][1] < start:
                first += 1
            k = first
            while k < len(above) and above[k][0] <= stop:
                a, b = root(run), root(above[k][2])
                if a != b:
                    parent[max(a, b)] = min(a, b)
                k += 1
            row.append((start, stop, run))
            runs.append((y, start, stop, run))
        above = row
    labels = np.zeros(mask.shape, dtype=np.int32)
    number: dict[int, int] = {}
    bounds: list[list[int]] = []
    for y, start, stop, run in runs:
        region = root(run)
        if region not in number:
            number[region] = len(number) + 1
            bounds.append([y, y + 1, start, stop])
        index = number[region]
        labels[y, start:stop] = index
        box = bounds[index - 1]
        box[1] = y + 1
        box[2], box[3] = min(box[2], start), max(box[3], stop)
    return labels, [(slice(y0, y1), slice(x0, x1)) for y0, y1, x0, x1 in bounds]


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """The [start, stop) spans of set pixels in one row."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], row, [False])).astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
