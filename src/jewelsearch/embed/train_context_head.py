"""Retrain the category and metal heads so they also know pieces in context, not only on a
white sweep.

The phase-one heads learned from shop photos; on a photo of an ear or a hand the category
head mostly answered "ring", and the metal head read skin as rose gold. Region search and
recognition embed a crop around the detected piece, so the heads are refit on product photos
plus such crops: studio renders and product cut-outs pasted onto procedural and real scenery
(the background half of the worn products), cropped around the piece with a jittered box the
way a detection would be, and labelled with the piece's category and (renders only) metal.
Only those heads change; embeddings and the model id do not.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .composites import Cutout, make_scene
from .encoder import Encoder
from .heads import AttributeHeads, expected_calibration_error, fit_temperature
from .evaluate import embed_records
from .labelled_data import Record, hash_split, read_products
from .localizer import crop

log = logging.getLogger(__name__)
# Shop photos file a pendant under "necklace"; renders call it "pendant". One name, as in evaluation.
SAME_CATEGORY = {"pendant": "necklace"}


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
        labels.append({"category": SAME_CATEGORY.get(scene.categories[0], scene.categories[0]),
                       "metal": scene.metals[0] if scene.metals else None})
    return images, labels


def retrain_context_heads(encoder: Encoder, heads: AttributeHeads, products_root: Path, cutouts: list[Cutout],
                          photos: list[Image.Image], *, worn_train: list[Record] = (), crops: int = 3000,
                          seed: int = 0, attributes: tuple[str, ...] = ("category", "metal"),
                          progress=print) -> dict:
    """``worn_train``: real worn photos (the background half of the products) whose labels are
    used too, whole; the other half of the worn products stays for evaluation."""
    records = [r for r in read_products(Path(products_root)) if r.split == "train"] + list(worn_train)
    real_labels = [{"category": SAME_CATEGORY.get(r.labels["category"], r.labels["category"]),
                    "metal": r.labels.get("metal")} for r in records]
    real_vectors = embed_records(encoder, records)
    progress(f"embedded {len(records)} real photos ({len(worn_train)} of them worn)")
    crop_images, crop_labels = context_crops(cutouts, photos, crops, seed)
    crop_vectors = encoder.encode_images(crop_images)
    progress(f"embedded {len(crop_images)} context crops")
    vectors = np.concatenate([real_vectors, crop_vectors])
    labels = real_labels + crop_labels
    summary = {"real_photos": len(records), "worn_photos": len(worn_train), "context_crops": len(crop_labels),
               "worn_products_seen": sorted({r.group or r.path.name for r in worn_train})}
    for attribute in attributes:
        summary[attribute] = _refit_head(heads, attribute, vectors, [row[attribute] for row in labels],
                                         is_real=[i < len(records) for i in range(len(labels))])
        progress(f"{attribute}: {summary[attribute]}")
    return summary


def _refit_head(heads: AttributeHeads, attribute: str, vectors: np.ndarray, labels: list, is_real: list) -> dict:
    vocab = heads.vocabularies[attribute]
    keep = [i for i, label in enumerate(labels) if label in vocab]
    x = torch.from_numpy(vectors[keep])
    y = torch.tensor([vocab.index(labels[i]) for i in keep])
    # Calibration rows by a hash of the row number: stable across runs, never trained on.
    calibration = torch.tensor([hash_split(f"context-head/{i}", 0.1) == "val" for i in range(len(keep))])
    head = heads.heads[attribute]
    optimizer = torch.optim.AdamW(head.parameters(), lr=5e-3, weight_decay=1e-3)
    # Balance the two sources: crops outnumber real photos but must not erase what they taught.
    real = sum(is_real[i] for i in keep)
    crops = len(keep) - real
    weights = torch.tensor([1.0 if is_real[i] else real / max(1, crops) * 1.5 for i in keep])
    train = ~calibration
    for step in range(600):
        logits = head(x[train])
        loss = (F.cross_entropy(logits, y[train], reduction="none") * weights[train]).sum() / weights[train].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        held_logits = head(x[calibration])
    heads.temperatures[attribute] = fit_temperature(held_logits, y[calibration])
    probabilities = torch.softmax(held_logits / heads.temperatures[attribute], dim=-1).numpy()
    targets = y[calibration].numpy()
    return {"rows": len(keep), "real_rows": real, "crop_rows": crops,
            "calibration_rows": int(calibration.sum()),
            "calibration_accuracy": round(float((probabilities.argmax(1) == targets).mean()), 4),
            "calibration_ece": round(expected_calibration_error(probabilities, targets), 4),
            "temperature": round(heads.temperatures[attribute], 4)}
