"""Frozen-tower features: what the trainable projections see.

Phase one of training fine-tunes the projections and heads on top of frozen
towers, so the tower outputs (1280-d pooled EfficientNet features, 384-d
mean-pooled MiniLM features) are computed once and cached; training then runs
in seconds per epoch on a CPU.  Extraction is chunked and resumable.
"""

from __future__ import annotations

import logging
import random
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from jewelsearch.embed.images import load_image_file
from jewelsearch.embed.preprocess import ImagePreprocessor
from jewelsearch.train.augment import augment, degrade, quality_augment

log = logging.getLogger(__name__)


@torch.inference_mode()
def image_tower_features(model, preprocess: ImagePreprocessor, images: Sequence[Image.Image]) -> np.ndarray:
    batch = torch.stack([preprocess(im) for im in images]).contiguous(memory_format=torch.channels_last)
    return model.visual.trunk(batch).float().numpy()


@torch.inference_mode()
def text_tower_features(model, tokenizer, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    out = []
    text = model.text
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start:start + batch_size]))
        mask = (tokens != text.config.pad_token_id).long()
        hidden = text.transformer(input_ids=tokens, attention_mask=mask)
        out.append(text.pooler(hidden, mask).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


def extract_views(model, preprocess: ImagePreprocessor, paths: Sequence[Path], cache_dir: Path,
                  view: str, *, seed: int = 0, chunk: int = 256,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Features of one view of every image: 'clean', 'aug<N>' (``augment``), 'qaug<N>'
    (``quality_augment``: augment plus a photo-quality loss) or a degradation name.

    Chunks are saved as they finish, so an interrupted run resumes where it stopped.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for index, start in enumerate(range(0, len(paths), chunk)):
        part_file = cache_dir / f"{view}-{index:04d}.npy"
        if part_file.exists():
            parts.append(np.load(part_file))
            if progress:
                progress(len(paths[start:start + chunk]))
            continue
        images = []
        for offset, path in enumerate(paths[start:start + chunk]):
            image = load_image_file(path).image
            if view.startswith(("aug", "qaug")):
                change = quality_augment if view.startswith("qaug") else augment
                image = change(image, random.Random(zlib.crc32(f"{seed}/{view}/{start + offset}".encode())))
            elif view != "clean":
                image = degrade(image, view)
            images.append(image)
        feats = np.concatenate([image_tower_features(model, preprocess, images[i:i + 32])
                                for i in range(0, len(images), 32)])
        tmp = part_file.with_suffix(".tmp.npy")
        np.save(tmp, feats)
        tmp.rename(part_file)
        parts.append(feats)
        if progress:
            progress(len(images))
    return np.concatenate(parts) if parts else np.zeros((0, 1280), np.float32)
