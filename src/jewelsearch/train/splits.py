"""Every rule that puts a photo on one side of a training / held-out line.

The rules hash names, never listing order or random draws, so a photo lands on the same side
on every run and every machine, and a new photo never moves an old one. Each trainer keeps its
own salt ("calib", "context-head/", "stone", "worn-fold/", ...) so the halves of one rule are
independent of another's. Changing a salt, a fraction or a hash moves photos across a line
that earlier models and reports were measured on: ``tests/test_splits.py`` pins known
assignments so that such a change cannot pass unnoticed.

The products set carries its own split (the ``split`` column of its ``labels.csv``); the rules
here carve everything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, TypeVar


class _Photo(Protocol):
    """What the product-level rules read of a ``labelled_data.Record``."""

    @property
    def path(self): ...

    @property
    def group(self) -> str | None: ...


R = TypeVar("R", bound=_Photo)


def hash_split(name: str, val_fraction: float = 0.2) -> str:
    """"val" or "train" from a hash of ``name``: the first 8 hex digits of its SHA-1, read as a
    fraction of 0xFFFFFFFF, below ``val_fraction`` is "val".

    The gemstones set (no split of its own) is split by "folder/file name" at 0.2:

    >>> hash_split("ruby/0006.jpg"), hash_split("ruby/0007.jpg")
    ('val', 'train')
    """
    bucket = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if bucket < val_fraction else "train"


def in_calibration_split(file_name: str) -> bool:
    """Phase one's calibration photos (a tenth of the training split, by file name): early
    stopping and temperatures are judged on them, and no head trains on them.

    >>> in_calibration_split("pendant_017.png"), in_calibration_split("ring_001.jpg")
    (True, False)
    """
    return hash_split(file_name + "calib", 0.1) == "val"


def in_context_head_calibration(row_key: str) -> bool:
    """The context heads' temperature rows: a tenth of the rows' photos by their key
    ("source/file name", or "crop/N" for a cropped scene), so no augmented copy of a
    calibration photo is trained on.

    >>> in_context_head_calibration("products/1.jpg"), in_context_head_calibration("products/2.jpg")
    (True, False)
    """
    return hash_split(f"context-head/{row_key}", 0.1) == "val"


# Share of the weakly labelled shop photos on which the stone branch picks its epoch.
STONE_BRANCH_HELD_OUT_SHARE = 0.2


def in_stone_branch_check(file_name: str) -> bool:
    """A shop photo the stone branch never trains on, but judges its epochs by.

    >>> [name for name in ("0.jpg", "1.jpg", "2.jpg", "3.jpg") if in_stone_branch_check(name)]
    ['1.jpg', '2.jpg']
    """
    return hash_split(file_name + "stone", STONE_BRANCH_HELD_OUT_SHARE) == "val"


def held_out_render(index: int) -> bool:
    """Every seventh studio render (by its index in ``labels.jsonl``) is held out: the localiser
    validates on it and no trainer fits on it.

    >>> [i for i in range(22) if held_out_render(i)]
    [0, 7, 14, 21]
    """
    return index % 7 == 0


def product_of(record: _Photo) -> str:
    """The product a photo shows: its group, or its own file name when it has none. Rules over
    worn photos split by product, so all photos of one product fall on the same side."""
    return record.group or record.path.name


def in_worn_background_half(product: str) -> bool:
    """Whether a worn product lends its photos as scenery (and is never evaluated).

    >>> [p for p in ("w0", "w1", "w2", "w3", "w7") if in_worn_background_half(p)]
    ['w0', 'w1', 'w7']
    """
    return hash_split("worn-background/" + product, 0.5) == "train"


def worn_background_split(records: list[R], protected: set[str] = frozenset()) -> tuple[list[R], list[R]]:
    """(background, evaluation): the localiser borrows real scenery from half of the worn products,
    split by product so all photos of a product fall on one side; the other half is kept for
    evaluation. Products with a photo named in ``protected`` (e.g. the hand-boxed validation
    photos) always stay on the evaluation side.

    With products p1 … p8, p6 and p8 are scenery; protecting a photo of p6 keeps it evaluated:
    ``worn_background_split(records, {"p6_0.jpg"})`` gives background p8 only.
    """
    kept = {product_of(r) for r in records if r.path.name in protected}
    background = [r for r in records if product_of(r) not in kept and in_worn_background_half(product_of(r))]
    chosen = set(map(id, background))
    return background, [r for r in records if id(r) not in chosen]


def fold_of(product: str, folds: int) -> int:
    """A worn product's cross-fitting fold, from a hash of its name: stable across runs and machines.

    >>> fold_of("prod-1", 5), fold_of("prod-2", 5), fold_of("prod-1", 3)
    (1, 3, 2)
    """
    return int(hashlib.sha1(f"worn-fold/{product}".encode()).hexdigest(), 16) % folds


# Share of the photos whose degraded views judge robust tuning's early stopping.
ROBUST_HELD_OUT_FRACTION = 0.1


def _robust_hash(path: str) -> int:
    return int(hashlib.sha1(f"robust-tuning/{path}".encode()).hexdigest(), 16)


def in_robust_held_out(path: str) -> bool:
    """A tenth of the photos, by a hash of the path, judge robust tuning's early stopping;
    none of them trains.

    >>> [i for i in range(40) if in_robust_held_out(f"/data/products/train/{i}.jpg")]
    [4, 15, 37]
    """
    return _robust_hash(path) % 1000 < ROBUST_HELD_OUT_FRACTION * 1000


def robust_held_out(paths: Sequence[str]) -> list[bool]:
    """``in_robust_held_out`` per path. A small set can draw no held-out photo at all (30 photos:
    one time in 25, depending only on where the folder lies), so then the photo with the lowest
    hash is held out; a set of one photo has none to spare (robust tuning refuses it).

    >>> robust_held_out([f"/data/products/train/{i}.jpg" for i in (0, 1, 2, 3)])
    [False, True, False, False]
    """
    held = [in_robust_held_out(p) for p in paths]
    if len(paths) > 1 and not any(held):
        held[min(range(len(paths)), key=lambda i: _robust_hash(paths[i]) % 1000)] = True
    return held


# Share of the style head's labelled photos that chooses its penalty, temperature and fill
# threshold (and is never trained on).
STYLE_TUNING_SHARE = 0.2


def in_style_tuning(photo_key: str) -> bool:
    """The style head's tuning photos, by "source/file name".

    >>> in_style_tuning("demo/images/00008.jpg"), in_style_tuning("demo/images/00009.jpg")
    (False, True)
    """
    return hash_split(f"style-head/{photo_key}", STYLE_TUNING_SHARE) == "val"


# Share of the render-refit's renders (and of its real anchor photos) that chooses its settings
# and temperatures and is never fitted on.
RENDER_REFIT_TUNING_SHARE = 1 / 3


def in_render_refit_tuning(photo_key: str) -> bool:
    """The render refit's tuning photos (``train/render_refit.py``), by "folder/file name" for a
    render and by path for a real anchor photo.

    >>> in_render_refit_tuning("tune-renders-4111/images/00000.jpg"), in_render_refit_tuning("tune-renders-4111/images/00001.jpg")
    (True, False)
    """
    return hash_split(f"render-refit/{photo_key}", RENDER_REFIT_TUNING_SHARE) == "val"
