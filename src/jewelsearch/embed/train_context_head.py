"""Refit the category and metal heads so they also know pieces in context, not only on a
white sweep.

The phase-one heads learned from shop photos; on a photo of an ear or a hand the category
head mostly answered "ring", and the metal head read skin as rose gold. The heads are
refit, fresh, on shop photos, on every worn photo (weighted up and augmented: they are the
domain that fails and there are few of them), and on crops of pieces pasted onto procedural
and real scenery (the localiser's background half of the worn products), cropped with a
jittered box the way a detection would be. Because every worn photo is trained on, the same
recipe is also fit once per fold of worn products with that fold left out (``worn_folds``),
and evaluation judges each worn photo with its fold's heads. Only these heads change;
embeddings and the model id do not.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .augment import augment, quality_augment
from .composites import Cutout, make_scene
from .encoder import Encoder
from .evaluate import CATEGORY_EQUIVALENT, embed_records
from .heads import AttributeHeads, expected_calibration_error, fit_temperature
from .images import load_image_file
from .labelled_data import Record, hash_split, product_of, read_products
from .localizer import crop
from .worn_folds import WornFolds, fold_of


def context_crops(cutouts: list[Cutout], photos: list[Image.Image], count: int, seed: int) -> tuple[list, list]:
    """``count`` crops around a pasted piece, with the box jittered like a real detection;
    labels are {"category", "metal"} dicts (metal None where the cut-out has none)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    usable = [c for c in cutouts if c.category]
    while len(images) < count:
        scene = make_scene(rng, usable, photos)
        if len(scene.boxes) != 1 or not scene.categories[0]:
            continue  # two different pieces would make the label ambiguous
        x0, y0, x1, y1 = scene.boxes[0]
        w, h = x1 - x0, y1 - y0
        jitter = rng.uniform(-0.15, 0.15, 4) * np.array([w, h, w, h])
        box = (int(max(0, x0 + jitter[0])), int(max(0, y0 + jitter[1])),
               int(min(scene.image.width, x1 + jitter[2])), int(min(scene.image.height, y1 + jitter[3])))
        if box[2] - box[0] < 4 or box[3] - box[1] < 4:
            continue
        images.append(crop(scene.image, box))
        labels.append({"category": CATEGORY_EQUIVALENT.get(scene.categories[0], scene.categories[0]),
                       "metal": scene.metals[0] if scene.metals else None})
    return images, labels


# Worn photos are the domain the heads fail on and there are few of them: each counts as this
# many shop photos, and is seen again in augmented copies (crop, flip, blur, noise, JPEG, a
# small original). Chosen by grouped cross-validation on worn products (5, from 1, 5, 15).
WORN_WEIGHT = 5.0
WORN_VIEWS = 6
# Shop photos get augmented copies too: without them the refit metal head lost 17 points on
# over-exposed shop photos (colour is most of what tells gold from silver).
SHOP_VIEWS = 2
FIT_STEPS = 800


@dataclass
class TrainingRows:
    vectors: np.ndarray
    labels: list[dict]
    weights: np.ndarray
    products: list[str | None]  # the worn product a row shows (None: not a worn photo)
    keys: list[str]  # the photo a row comes from: augmented copies share their original's key


def training_rows(encoder: Encoder, products_root: Path, cutouts: list[Cutout], photos: list[Image.Image], *,
                  worn: Sequence[Record] = (), crops: int = 3000, worn_views: int = WORN_VIEWS,
                  shop_views: int = SHOP_VIEWS, seed: int = 0, progress=print) -> TrainingRows:
    """Shop photos (train split) and every worn photo, each plus augmented copies, and context crops."""
    records = [r for r in read_products(Path(products_root)) if r.split == "train"]
    vectors: list[np.ndarray] = []
    labels: list[dict] = []
    weights: list[float] = []
    products: list[str | None] = []
    keys: list[str] = []
    rng = random.Random(seed)
    for photos_of, views, weight, worn_photos in ((records, shop_views, 1.0, False),
                                                  (list(worn), worn_views, WORN_WEIGHT, True)):
        for view in range(1 + views if photos_of else 0):
            if view == 0:
                vectors.append(embed_records(encoder, photos_of))
            else:  # alternate plain and photo-quality augmentation
                change = quality_augment if view % 2 == 0 else augment
                vectors.append(encoder.encode_images([change(load_image_file(r.path).image, rng) for r in photos_of]))
            labels += [_label(r.labels) for r in photos_of]
            weights += [weight] * len(photos_of)
            products += [product_of(r) if worn_photos else None for r in photos_of]
            keys += [str(r.path) for r in photos_of]
        progress(f"embedded {len(photos_of)} {'worn' if worn_photos else 'shop'} photos and "
                 f"{len(photos_of) * views} augmented copies")
    crop_images, crop_labels = context_crops(cutouts, photos, crops, seed)
    vectors.append(encoder.encode_images(crop_images))
    # Crops outnumber real photos but must not erase what the real photos taught.
    real = len(records) + len(worn)
    weights += [real / max(1, len(crop_labels)) * 1.5] * len(crop_labels)
    labels += crop_labels
    products += [None] * len(crop_labels)
    keys += [f"crop/{i}" for i in range(len(crop_labels))]
    progress(f"embedded {len(crop_labels)} context crops")
    return TrainingRows(np.concatenate(vectors), labels, np.asarray(weights, dtype=np.float32), products, keys)


def retrain_context_heads(heads: AttributeHeads, rows: TrainingRows, *, folds: int = 5, seed: int = 0,
                          attributes: tuple[str, ...] = ("category", "metal"), steps: int = FIT_STEPS,
                          progress=print) -> tuple[dict, WornFolds | None]:
    """Fit fresh category and metal heads on ``rows`` (in place), and, with ``folds`` > 1, the
    same recipe once per fold of the worn products with that fold left out (for evaluation)."""
    worn_products = sorted({p for p in rows.products if p is not None})
    fold_heads: WornFolds | None = None
    shop = [k for p, k in zip(rows.products, rows.keys) if p is None and not k.startswith("crop/")]
    worn = [k for p, k in zip(rows.products, rows.keys) if p is not None]
    summary: dict = {"shop_photos": len(set(shop)), "shop_rows": len(shop), "worn_photos": len(set(worn)),
                     "worn_rows": len(worn), "context_crops": sum(k.startswith("crop/") for k in rows.keys),
                     "worn_weight": WORN_WEIGHT, "worn_products_seen": worn_products}
    if folds > 1 and worn_products:
        fold_by_product = {p: fold_of(p, folds) for p in worn_products}
        fold_list = []
        for k in range(folds):
            keep = np.array([p is None or fold_by_product[p] != k for p in rows.products])
            fold = copy.deepcopy(heads)
            for attribute in attributes:
                _fit_head(fold, attribute, rows, keep, seed, steps)
            fold_list.append(fold.eval())
            progress(f"fold {k + 1}/{folds}: left out {sum(f == k for f in fold_by_product.values())} worn products")
        fold_heads = WornFolds(fold_by_product, fold_list, attributes)
        summary["folds"] = folds
    everything = np.ones(len(rows.products), dtype=bool)
    for attribute in attributes:
        summary[attribute] = _fit_head(heads, attribute, rows, everything, seed, steps)
        progress(f"{attribute}: {summary[attribute]}")
    return summary, fold_heads


def _label(labels: dict) -> dict:
    category = labels.get("category")
    return {"category": CATEGORY_EQUIVALENT.get(category, category), "metal": labels.get("metal")}


def _fit_head(heads: AttributeHeads, attribute: str, rows: TrainingRows, allowed: np.ndarray, seed: int,
              steps: int = FIT_STEPS) -> dict:
    """A fresh linear head on the allowed rows; the temperature on a tenth of the photos held out."""
    vocab = heads.vocabularies[attribute]
    keep = [i for i, row in enumerate(rows.labels) if allowed[i] and row.get(attribute) in vocab]
    x = torch.from_numpy(rows.vectors[keep]).float()
    y = torch.tensor([vocab.index(rows.labels[i][attribute]) for i in keep])
    weights = torch.from_numpy(rows.weights[keep])
    # Calibration photos by a hash of the photo, so no augmented copy of one is trained on.
    calibration = torch.tensor([hash_split(f"context-head/{rows.keys[i]}", 0.1) == "val" for i in keep])
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], len(vocab))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-3)
    train = ~calibration
    for _ in range(steps):
        loss = (F.cross_entropy(head(x[train]), y[train], reduction="none") * weights[train]).sum() \
            / weights[train].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    heads.heads[attribute] = head
    with torch.no_grad():
        held_logits = head(x[calibration])
    heads.temperatures[attribute] = fit_temperature(held_logits, y[calibration])
    probabilities = torch.softmax(held_logits / heads.temperatures[attribute], dim=-1).numpy()
    targets = y[calibration].numpy()
    return {"rows": len(keep), "calibration_rows": int(calibration.sum()),
            "calibration_accuracy": round(float((probabilities.argmax(1) == targets).mean()), 4),
            "calibration_ece": round(expected_calibration_error(probabilities, targets), 4),
            "temperature": round(heads.temperatures[attribute], 4)}
