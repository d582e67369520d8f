"""Cached tower features for a list of labelled records (resumable extraction)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from jewelsearch.train.labelled_data import Record
from jewelsearch.train.tower_features import extract_views

log = logging.getLogger(__name__)


def records_key(records: Sequence[Record], model_key: str) -> str:
    digest = hashlib.sha256(model_key.encode())
    for record in records:
        digest.update(str(record.path).encode())
    return digest.hexdigest()[:16]


def cached_image_features(model, preprocess, records: Sequence[Record], work_dir: Path,
                          views: Sequence[str], *, model_key: str = "lite0-imagenet",
                          seed: int = 0) -> dict[str, np.ndarray]:
    """{view: float32[n, 1280]} for every record, computing only what is missing."""
    key = records_key(records, model_key)
    cache = Path(work_dir) / "features" / key
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "paths.json").write_text(json.dumps([str(r.path) for r in records]))
    paths = [r.path for r in records]
    out = {}
    for view in views:
        final = cache / f"{view}.npy"
        if final.exists():
            out[view] = np.load(final)
            continue
        with tqdm(total=len(paths), desc=f"features {view}", unit="img", disable=None) as bar:
            feats = extract_views(model, preprocess, paths, cache / "parts", view, seed=seed,
                                  progress=bar.update)
        np.save(final, feats)
        out[view] = feats
    return out
