"""Embedding labelled photos in batches, for trainers and evaluation alike."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image

from jewelsearch.embed.images import load_image_file
from jewelsearch.train.labelled_data import Record


def embed_records(embed: Callable[[list[Image.Image]], tuple[np.ndarray, np.ndarray | None]],
                  records: Sequence[Record], transform: Callable[[Image.Image], Image.Image] | None = None,
                  progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``embed`` (``Recognizer.embed``: unit embeddings and pooled maps or None) over the
    records' photos, 64 at a time, each first changed by ``transform`` (a degradation, an
    augmentation) when given."""
    embeddings, pooled = [], []
    for start in range(0, len(records), 64):
        images = [load_image_file(record.path).image for record in records[start:start + 64]]
        if transform is not None:
            images = [transform(image) for image in images]
        vectors, maps = embed(images)
        embeddings.append(vectors)
        pooled.append(maps)
        if progress:
            progress(len(images))
    if not embeddings:
        return np.zeros((0, 1), np.float32), None
    return np.concatenate(embeddings), None if any(m is None for m in pooled) else np.concatenate(pooled)
