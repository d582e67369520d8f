"""The localiser's mask regions, computed without SciPy, equal SciPy's ``ndimage`` answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from jewelsearch.recognize.mask_regions import dilate, label_regions


def masks():
    rng = np.random.default_rng(7)
    yield np.zeros((5, 7), bool)
    yield np.ones((6, 4), bool)
    yield np.eye(9, dtype=bool)  # a diagonal: one region under 8-connectivity
    yield np.eye(9, dtype=bool)[::-1]
    yield np.ones((1, 12), bool)
    yield np.ones((12, 1), bool)
    checker = (np.indices((10, 10)).sum(0) % 2).astype(bool)
    yield checker
    yield ~checker
    for size in ((224, 224), (168, 224), (31, 57)):
        for density in (0.02, 0.2, 0.5, 0.8):
            yield rng.random(size) < density
        # Blobs, as the localiser's thresholded maps look.
        smooth = ndimage.gaussian_filter(rng.random(size), 4)
        yield smooth > np.quantile(smooth, 0.7)


@pytest.mark.parametrize("index", range(len(list(masks()))))
def test_labels_and_boxes_equal_scipy(index):
    mask = list(masks())[index]
    labels, boxes = label_regions(mask)
    want, count = ndimage.label(mask, structure=np.ones((3, 3)))
    assert np.array_equal(labels, want)
    assert len(boxes) == count
    assert boxes == ndimage.find_objects(want)


@pytest.mark.parametrize("steps", [0, 1, 3, 6])
def test_dilation_equals_scipy(steps):
    for mask in masks():
        want = ndimage.binary_dilation(mask, iterations=steps) if steps else mask
        assert np.array_equal(dilate(mask, steps), want)


def test_not_a_2d_mask_is_refused():
    with pytest.raises(ValueError, match="2-d"):
        label_regions(np.zeros((2, 2, 2), bool))
