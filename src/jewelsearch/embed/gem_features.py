"""Features for telling gemstones apart: the tower's own pooled maps plus a colour histogram.

The 512-d embedding is shaped for image-text search and keeps little of what separates
68 kinds of loose stone (a rhodolite from an almandine is mostly hue, saturation and
inner texture). The image tower already computes richer descriptions on the way to the
embedding: its last 1280-channel map and the stride-8/16/32 maps. Averaging those over
the image, plus a saturation-weighted hue histogram, gives the gem specialist its input
from the same single tower pass, so it adds no second network.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .dense_features import supports_dense_features, tower_pass

HUE_BINS, SATURATION_BINS, VALUE_BINS = 32, 8, 8
HISTOGRAM_SIDE = 96  # colour statistics do not need full resolution


def colour_histogram(image: Image.Image) -> np.ndarray:
    """Hue weighted by saturation (grey pixels say nothing about hue), then saturation and
    brightness, each normalised to sum to one: 48 numbers."""
    hsv = np.asarray(image.convert("RGB").resize((HISTOGRAM_SIDE, HISTOGRAM_SIDE)).convert("HSV"),
                     dtype=np.int32).reshape(-1, 3)
    hue = np.bincount(hsv[:, 0] * HUE_BINS // 256, weights=hsv[:, 1] / 255.0, minlength=HUE_BINS)
    saturation = np.bincount(hsv[:, 1] * SATURATION_BINS // 256, minlength=SATURATION_BINS).astype(np.float64)
    value = np.bincount(hsv[:, 2] * VALUE_BINS // 256, minlength=VALUE_BINS).astype(np.float64)
    parts = [hue / max(hue.sum(), 1e-6), saturation / saturation.sum(), value / value.sum()]
    return np.concatenate(parts).astype(np.float32)


def supports_gem_features(encoder) -> bool:
    return supports_dense_features(encoder.model.visual)


@torch.inference_mode()
def gem_features(encoder, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
    """[n, last-map channels + tap channels + 48] float32, one tower pass per image."""
    out = []
    visual = encoder.model.visual
    for start in range(0, len(images), batch_size):
        chunk = [im.convert("RGB") for im in images[start:start + batch_size]]
        batch = torch.stack([encoder.preprocess(im) for im in chunk])
        result = tower_pass(visual, batch)
        pooled = [result.last_map.mean((2, 3))] + [t.mean((2, 3)) for t in result.taps]
        maps = torch.cat(pooled, dim=1).float().numpy()
        out.append(np.concatenate([maps, np.stack([colour_histogram(im) for im in chunk])], axis=1))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)
