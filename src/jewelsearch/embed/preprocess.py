"""Image → tensor preprocessing shared by inference and training.

Pieces are letterboxed onto white instead of centre-cropped: a bracelet or a
necklace is often wider than tall, and a centre crop would cut the part that
identifies it.  White matches the catalog sweep most shop photos use.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

INTERPOLATIONS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def as_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB: itself where it already is (``convert`` would copy it, about 0.1-0.4 ms
    a 384-512 px photo, three times a photo on ingest's path), else a converted copy. Callers
    only read it."""
    return image if image.mode == "RGB" else image.convert("RGB")


def letterbox(image: Image.Image, size: int, fill=(255, 255, 255),
              interpolation: str = "bicubic") -> Image.Image:
    """Fit the whole image in a size×size square, padding with ``fill``.

    >>> letterbox(Image.new("RGB", (200, 100)), 64).size
    (64, 64)
    """
    width, height = image.size
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image.resize((new_w, new_h), INTERPOLATIONS.get(interpolation, Image.BICUBIC),
                           reducing_gap=3.0)
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def channels_last_batch(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(tensors).contiguous(memory_format=torch.channels_last)`` in one copy where
    each 3×H×W tensor is laid out H×W×3 in memory (``ImagePreprocessor``'s are: its arithmetic
    keeps the layout of the array PIL gave): stacking them as they lie is a plain copy per photo,
    where stacking as NCHW gathered every value and then transposed the batch again (0.6 ms a
    photo on ingest's model thread, 2026-12-07). The same values and layout either way."""
    as_laid = [t.permute(1, 2, 0) for t in tensors]
    if all(t.is_contiguous() for t in as_laid):
        return torch.stack(as_laid).permute(0, 3, 1, 2)
    return torch.stack(list(tensors)).contiguous(memory_format=torch.channels_last)


class ImagePreprocessor:
    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float],
                 interpolation: str = "bicubic"):
        self.size = int(size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.interpolation = interpolation

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        square = letterbox(as_rgb(image), self.size, interpolation=self.interpolation)
        array = np.asarray(square, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array).permute(2, 0, 1)
        return (tensor - self.mean) / self.std

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.to_tensor(image)
