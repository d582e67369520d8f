"""The recipes that name a training cache: what made it, so a rerun reuses it only when alike.

The head refits keep their embedded rows (``context_heads.save_rows``) and robust tuning its
distillation set and checkpoints on disk, each with a recipe: the source of the features
(the model, or the image tower's fingerprint), the photos and labels read, and the options
that shape the rows. A cache whose recipe differs in anything is made again. Keys are only
ever added when an option is asked for, so caches made before the option existed still match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from jewelsearch.recognize.gem_features import embed_from_pooled, supports_gem_features, tower_fingerprint
from jewelsearch.train.labelled_data import Record


def rows_source(encoder, top) -> tuple[Callable | None, dict]:
    """(re-embedding function or None, what a rows cache's recipe names as its source).

    With pooled maps the rows depend on the frozen tower only: a retrained projection re-embeds
    them from the maps instead of passing every image through the tower again. With a
    recognition top the pooled maps are no longer the search tower's, so the embeddings cannot
    be recomputed from them and the rows name the model as well."""
    if not supports_gem_features(encoder):
        return None, {"model_id": encoder.model_id}
    if top is not None:
        return None, {"model_id": encoder.model_id, "tower": tower_fingerprint(encoder, top)}
    return partial(embed_from_pooled, encoder), {"tower": tower_fingerprint(encoder)}


def short_digest(data: bytes) -> str:
    """The first 16 hex digits of a SHA-256: enough to tell recipes apart.

    >>> short_digest(b"")
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()[:16]


def context_rows_recipe(source: dict, *, renders: Path, products: Path, worn: Sequence[Record],
                        protected: set[str], crops: int, worn_views: int, shop_views: int, seed: int,
                        piece_weights: Path | None = None) -> dict:
    """The context heads' rows: scenes from ``renders`` and ``products``, every worn photo, the
    protected photos kept out of the scenery, and the augmentation counts. ``piece_weights``
    (the localiser's weights file, with piece pooling) adds a hash of that file."""
    recipe = {**source, "renders": str(Path(renders).resolve()),
              "products": str(Path(products).resolve()), "worn": sorted(str(r.path) for r in worn),
              "protected": sorted(protected), "crops": crops, "worn_views": worn_views, "shop_views": shop_views,
              "seed": seed}
    if piece_weights is not None:
        recipe["piece_pooling"] = short_digest(Path(piece_weights).read_bytes())
    return recipe


def stone_rows_recipe(source: dict, records: Sequence[Record], *, views: int, gem_views: int, seed: int,
                      exposure_views: int = 0) -> dict:
    """The stone heads' rows: the photos and their labels (rows cached before a labelling
    change must not be reused) and the augmentation counts."""
    labels = json.dumps(sorted((str(r.path), sorted(r.labels.items())) for r in records))
    recipe = {**source, "paths": sorted(str(r.path) for r in records),
              "labels": short_digest(labels.encode()),
              "views": views, "gem_views": gem_views, "seed": seed}
    if exposure_views:
        recipe["exposure_views"] = exposure_views
    return recipe


def distillation_recipe(encoder, paths: Sequence[str], *, views: int, seed: int) -> dict:
    """Robust tuning's distillation set: the tower whose maps are the targets, the photos and
    the number of degraded views."""
    return {"tower": tower_fingerprint(encoder), "paths": list(paths), "views": views, "seed": seed}


def tuning_checkpoint(work: Path, recipe: dict, *, epochs: int, lr: float, clean_weight: float, seed: int) -> Path:
    """Robust tuning's per-epoch checkpoint: it belongs to this distillation set and these
    options only, so the name carries them.

    >>> tuning_checkpoint(Path("runs/robust"), {"tower": "ab12"}, epochs=6, lr=1e-4, clean_weight=3.0, seed=0)
    PosixPath('runs/robust/tuning-ab12-6-0.0001-3.0-0.pt')
    """
    return Path(work) / f"tuning-{recipe['tower']}-{epochs}-{lr}-{clean_weight}-{seed}.pt"
