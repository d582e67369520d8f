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

Two heads are fit per attribute on the same rows: one on the embedding (used where only a
stored embedding is at hand) and a context head on the embedding plus the tower's pooled
maps, which the same tower pass yields (``heads``). Grouped cross-validation over the worn
products, before building it, gave the second 88.3 % against 82.2 % for worn category and
67.7 % against 60.2 % for worn metal (without the context crops).
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from jewelsearch.embed.encoder import Encoder
from jewelsearch.embed.vocab import CATEGORY_EQUIVALENT
from jewelsearch.recognize.gem_features import embed_maybe_pooled
from jewelsearch.recognize.heads import AttributeHeads, expected_calibration_error, fit_temperature
from jewelsearch.recognize.localizer import crop
from jewelsearch.train.augment import copy_augmentation
from jewelsearch.train.composites import Cutout, make_scene
from jewelsearch.train.labelled_data import Record, read_products
from jewelsearch.train.photo_embeddings import embed_records
from jewelsearch.train.splits import fold_of, in_context_head_calibration, product_of
from jewelsearch.train.worn_folds import WornFolds


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
    pooled: np.ndarray | None = None  # gem_features of each row's image (None: the tower has no maps)


def save_rows(rows: TrainingRows, path: Path, recipe: dict) -> None:
    """The embedded rows and the recipe that made them, so a refit can skip embedding (about
    20 minutes on 2 cores). Written to a temporary name first: never a half-written cache."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    arrays = {"vectors": rows.vectors, "weights": rows.weights}
    if rows.pooled is not None:
        arrays["pooled"] = rows.pooled
    text = json.dumps({"recipe": recipe, "labels": rows.labels, "products": rows.products, "keys": rows.keys})
    np.savez(tmp, meta=np.frombuffer(text.encode(), dtype=np.uint8), **arrays)
    tmp.replace(path)


def load_rows(path: Path, recipe: dict, reembed=None) -> TrainingRows | None:
    """Rows saved by ``save_rows`` with the same recipe; None when absent or made otherwise.
    With ``reembed`` (pooled maps -> unit embeddings, ``gem_features.embed_from_pooled``), the
    embeddings are recomputed from the saved pooled maps, for a projection retrained on the same
    tower (the recipe then names the tower, not the model)."""
    if not Path(path).is_file():
        return None
    with np.load(path) as saved:
        meta = json.loads(saved["meta"].tobytes().decode())
        if meta["recipe"] != recipe:
            return None
        pooled = saved["pooled"] if "pooled" in saved else None
        if reembed is not None and pooled is None:
            return None
        vectors = reembed(pooled) if reembed is not None else saved["vectors"]
        return TrainingRows(vectors, meta["labels"], saved["weights"], meta["products"], meta["keys"], pooled)


def training_rows(encoder: Encoder, products_root: Path, cutouts: list[Cutout], photos: list[Image.Image], *,
                  worn: Sequence[Record] = (), crops: int = 3000, worn_views: int = WORN_VIEWS,
                  shop_views: int = SHOP_VIEWS, seed: int = 0, piece_head: torch.nn.Module | None = None,
                  top: torch.nn.Module | None = None, progress=print) -> TrainingRows:
    """Shop photos (train split) and every worn photo, each plus augmented copies, and context
    crops; with ``piece_head`` (the localiser's) the pooled maps carry the piece-pooled block; with
    ``top`` (the folder's ``RecognitionTop``) they are the maps recognition reads."""
    records = [r for r in read_products(Path(products_root)) if r.split == "train"]
    vectors: list[np.ndarray] = []
    labels: list[dict] = []
    weights: list[float] = []
    products: list[str | None] = []
    keys: list[str] = []
    rng = random.Random(seed)
    pooled: list[np.ndarray | None] = []
    embed = partial(embed_maybe_pooled, encoder, piece_head=piece_head, top=top)
    for photos_of, views, weight, worn_photos in ((records, shop_views, 1.0, False),
                                                  (list(worn), worn_views, WORN_WEIGHT, True)):
        for view in range(1 + views if photos_of else 0):
            change = copy_augmentation(view)
            embedded, maps = embed_records(embed, photos_of, None if change is None else partial(change, rng=rng))
            vectors.append(embedded)
            pooled.append(maps)
            labels += [_label(r.labels) for r in photos_of]
            weights += [weight] * len(photos_of)
            products += [product_of(r) if worn_photos else None for r in photos_of]
            keys += [str(r.path) for r in photos_of]
        progress(f"embedded {len(photos_of)} {'worn' if worn_photos else 'shop'} photos and "
                 f"{len(photos_of) * views} augmented copies")
    crop_images, crop_labels = context_crops(cutouts, photos, crops, seed)
    embedded, maps = embed(crop_images)
    vectors.append(embedded)
    pooled.append(maps)
    # Crops outnumber real photos but must not erase what the real photos taught.
    real = len(records) + len(worn)
    weights += [real / max(1, len(crop_labels)) * 1.5] * len(crop_labels)
    labels += crop_labels
    products += [None] * len(crop_labels)
    keys += [f"crop/{i}" for i in range(len(crop_labels))]
    progress(f"embedded {len(crop_labels)} context crops")
    return TrainingRows(np.concatenate(vectors), labels, np.asarray(weights, dtype=np.float32), products, keys,
                        None if any(m is None for m in pooled) else np.concatenate(pooled))


def retrain_context_heads(heads: AttributeHeads, rows: TrainingRows, *, folds: int = 5, seed: int = 0,
                          attributes: tuple[str, ...] = ("category", "metal"), steps: int = FIT_STEPS,
                          progress=print) -> tuple[dict, WornFolds | None]:
    """Fit fresh category and metal heads on ``rows`` (in place): embedding heads and, where the
    rows carry pooled maps, context heads. With ``folds`` > 1, the same recipe is also fit once
    per fold of the worn products with that fold left out (for evaluation)."""
    worn_products = sorted({p for p in rows.products if p is not None})
    fold_heads: WornFolds | None = None
    shop = [k for p, k in zip(rows.products, rows.keys) if p is None and not k.startswith("crop/")]
    worn = [k for p, k in zip(rows.products, rows.keys) if p is not None]
    summary: dict = {"shop_photos": len(set(shop)), "shop_rows": len(shop), "worn_photos": len(set(worn)),
                     "worn_rows": len(worn), "context_crops": sum(k.startswith("crop/") for k in rows.keys),
                     "worn_weight": WORN_WEIGHT, "worn_products_seen": worn_products,
                     "context_heads": rows.pooled is not None}
    if folds > 1 and worn_products:
        fold_by_product = {p: fold_of(p, folds) for p in worn_products}
        fold_list = []
        for k in range(folds):
            keep = np.array([p is None or fold_by_product[p] != k for p in rows.products])
            fold = copy.deepcopy(heads)
            _fit_heads(fold, rows, keep, attributes, seed, steps)
            fold_list.append(fold.eval())
            progress(f"fold {k + 1}/{folds}: left out {sum(f == k for f in fold_by_product.values())} worn products")
        fold_heads = WornFolds(fold_by_product, fold_list, attributes)
        summary["folds"] = folds
    summary.update(_fit_heads(heads, rows, np.ones(len(rows.products), dtype=bool), attributes, seed, steps))
    for attribute in attributes:
        progress(f"{attribute}: {summary[attribute]}")
        if f"context {attribute}" in summary:
            progress(f"context {attribute}: {summary[f'context {attribute}']}")
    return summary, fold_heads


def _fit_heads(heads: AttributeHeads, rows: TrainingRows, allowed: np.ndarray, attributes: Sequence[str],
               seed: int, steps: int) -> dict:
    """Embedding heads for ``attributes`` and, with pooled maps, context heads, on the allowed rows."""
    summary = {attribute: _fit_head(heads, attribute, rows, allowed, seed, steps) for attribute in attributes}
    if rows.pooled is not None:
        inputs = np.concatenate([rows.vectors, rows.pooled], axis=1)[allowed]
        known = heads.dim + heads.pooled_dim
        if heads.pooled_dim and known <= inputs.shape[1]:
            # Columns the heads already standardise keep their mean and scale: other context
            # heads (gemstone and cut) were fitted on them. Only appended columns are measured.
            for attribute in attributes:
                heads.remove_context_head(attribute)
            if inputs.shape[1] > known:
                heads.widen_context(torch.from_numpy(inputs[:, known:].mean(0)),
                                    torch.from_numpy(inputs[:, known:].std(0) + 1e-6))
        else:  # a first context, or rows narrower than it: every context head starts again
            heads.set_context(rows.pooled.shape[1], attributes)
            heads.context_mean.copy_(torch.from_numpy(inputs.mean(0)))
            heads.context_scale.copy_(torch.from_numpy(inputs.std(0) + 1e-6))
        standardised = heads.context_inputs(torch.from_numpy(rows.vectors), torch.from_numpy(rows.pooled))
        for attribute in attributes:
            head, temperature, fit = fit_regularised(standardised, heads.vocabularies[attribute], attribute,
                                                     rows, allowed, seed, steps)
            heads.add_context_head(attribute, head, temperature)
            summary[f"context {attribute}"] = fit
    return summary


def _label(labels: dict) -> dict:
    category = labels.get("category")
    return {"category": CATEGORY_EQUIVALENT.get(category, category), "metal": labels.get("metal")}


def _fit_head(heads: AttributeHeads, attribute: str, rows: TrainingRows, allowed: np.ndarray, seed: int,
              steps: int = FIT_STEPS) -> dict:
    """A fresh linear embedding head on the allowed rows (see ``_fit_linear``)."""
    head, temperature, fit = _fit_linear(torch.from_numpy(rows.vectors), heads.vocabularies[attribute], attribute,
                                         rows, allowed, seed, steps)
    heads.heads[attribute] = head
    heads.temperatures[attribute] = temperature
    return fit


# The context input is about nine times wider than the embedding (2,056 vs 256 numbers, for
# a few thousand rows); unpenalised, its heads fit the training photos closely and needed
# temperatures of 3-6. An L2 penalty is chosen per head from these by held-out loss.
CONTEXT_PENALTIES = (1e-3, 1e-2, 1e-1)


def fit_regularised(inputs: torch.Tensor, vocab: list[str], attribute: str, rows: TrainingRows,
                    allowed: np.ndarray, seed: int, steps: int,
                    calibration_of=None) -> tuple[torch.nn.Linear, float, dict]:
    """``_fit_linear`` with the L2 penalty from ``CONTEXT_PENALTIES`` whose calibrated loss on
    the held-out tenth of the photos is lowest (the evaluation photos are never consulted)."""
    fits = [_fit_linear(inputs, vocab, attribute, rows, allowed, seed, steps, l2=l2, calibration_of=calibration_of)
            for l2 in CONTEXT_PENALTIES]
    best = min(range(len(fits)), key=lambda i: fits[i][2]["calibration_nll"])
    head, temperature, fit = fits[best]
    fit["l2"] = CONTEXT_PENALTIES[best]
    fit["calibration_nll_by_l2"] = {str(l2): f[2]["calibration_nll"] for l2, f in zip(CONTEXT_PENALTIES, fits)}
    return head, temperature, fit


def _fit_linear(inputs: torch.Tensor, vocab: list[str], attribute: str, rows: TrainingRows, allowed: np.ndarray,
                seed: int, steps: int, l2: float = 0.0, calibration_of=None) -> tuple[torch.nn.Linear, float, dict]:
    """A fresh weighted linear classifier on the allowed labelled rows of ``inputs`` (plus
    ``l2`` times its squared weights); the temperature on a tenth of the photos held out
    (or on the rows ``calibration_of(row)`` names)."""
    keep = [i for i, row in enumerate(rows.labels) if allowed[i] and row.get(attribute) in vocab]
    x = inputs[keep].float()
    y = torch.tensor([vocab.index(rows.labels[i][attribute]) for i in keep])
    weights = torch.from_numpy(rows.weights[keep])
    # Calibration photos by a hash of the photo, so no augmented copy of one is trained on.
    calibration = torch.tensor([calibration_of(i) if calibration_of is not None
                                else in_context_head_calibration(rows.keys[i]) for i in keep])
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], len(vocab))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-3)
    train = ~calibration
    for _ in range(steps):
        loss = (F.cross_entropy(head(x[train]), y[train], reduction="none") * weights[train]).sum() \
            / weights[train].sum()
        if l2:
            loss = loss + l2 * (head.weight ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        held_logits = head(x[calibration])
    temperature = fit_temperature(held_logits, y[calibration])
    probabilities = torch.softmax(held_logits / temperature, dim=-1).numpy()
    targets = y[calibration].numpy()
    nll = float(F.cross_entropy(held_logits / temperature, y[calibration]))
    return head, temperature, {
        "rows": len(keep), "calibration_rows": int(calibration.sum()), "calibration_nll": round(nll, 4),
        "calibration_accuracy": round(float((probabilities.argmax(1) == targets).mean()), 4),
        "calibration_ece": round(expected_calibration_error(probabilities, targets), 4),
        "temperature": round(temperature, 4)}
