"""What a decode worker hands the model: the photo, its model input and its colour histogram.

Decoding, letterboxing and the colour histogram are PIL and numpy work that releases the GIL
for most of its time, so ingest runs them in threads, ahead of the tower pass
(``ingest/stream.py``). Each is exactly what the tower pass would otherwise compute itself
(``recognize.gem_features.tower_outputs``), so the vectors do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from jewelsearch.embed import LoadedImage
from jewelsearch.embed.preprocess import as_rgb
from jewelsearch.recognize.gem_features import colour_histogram
from jewelsearch.storage.images import sha256_bytes


@dataclass
class DecodedPhoto:
    loaded: LoadedImage
    sha256: str
    tensor: torch.Tensor | None = None  # encoder.preprocess(loaded.image)
    histogram: np.ndarray | None = None  # colour_histogram(loaded.image), where recognition reads it


def decode_photo(decode, preprocess, data: bytes, with_histogram: bool) -> DecodedPhoto:
    """``decode`` (bytes -> LoadedImage, raising BadImage and the like) then the model's input;
    ``preprocess`` None leaves the input to the tower pass."""
    loaded = decode(data)
    rgb = as_rgb(loaded.image)
    return DecodedPhoto(loaded, sha256_bytes(data), preprocess(rgb) if preprocess is not None else None,
                        colour_histogram(rgb) if with_histogram else None)
