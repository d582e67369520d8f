"""Train the instance head: a linear projection of the tower's pooled maps that keeps a piece's
identity across backgrounds, crops and lighting (``embed/instance.py`` applies it).

Pairs of the same piece seen differently, all from data at hand:

* a catalog photo's piece cut from its white sweep and pasted small onto a worn photo, then
  cropped loosely around it (as the localiser crops a query), against the clean photo or an
  augmented copy of it (``products/train`` only);
* worn photos of one product: the localiser's piece crop of one against the whole of another,
  only for worn products the model folder already trained on (``worn_products_seen``), so
  the products evaluation judges stay unseen.

The projection starts at the descriptors' principal components (256 of them) and is tuned with
a symmetric-free InfoNCE loss (in-batch negatives, temperature 0.05) for a few epochs, the
worn pairs weighted as much as the pasted ones. Few epochs on purpose: in a side-by-side run
(``docs/experiments/2026-12-06-instance-head.md``) longer training kept improving the pasted
pieces while worn retrieval and category precision fell.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from jewelsearch.embed.images import load_image_file
from jewelsearch.embed.instance import InstanceHead
from jewelsearch.recognize.localizer import Localizer, piece_crop
from jewelsearch.train.augment import augment
from jewelsearch.train.composites import cut_from_white, paste_piece
from jewelsearch.train.labelled_data import Record

log = logging.getLogger(__name__)

BLOCKS = (("last", 1.0), ("tap8", 0.3), ("tap16", 0.5), ("tap32", 0.7))
GEM_POWER = 3.0


@dataclass
class InstanceRecipe:
    dim: int = 256
    pastes_per_photo: int = 4
    epochs: int = 10
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.05
    batch: int = 256
    worn_batch: int = 64
    worn_weight: float = 1.0
    augmented_share: float = 0.3  # how often the catalog side is an augmented copy, not the photo
    seed: int = 0
    blocks: tuple = field(default=BLOCKS)
    # The text-aligned embedding appended to each vector (``InstanceHead.aligned_weight``): the
    # smallest weight whose similar-items category P@10 reached 0.92 (experiment record).
    aligned_weight: float = 1.0


@dataclass
class InstanceViews:
    """Raw descriptors (the head without a projection) of every training view."""
    clean: np.ndarray      # [photos, D] catalog photos
    augmented: np.ndarray  # [photos, D] an augmented copy of each
    pasted: np.ndarray     # [pastes, D] loose crops around pasted pieces
    pasted_photo: np.ndarray  # [pastes] which catalog photo each paste shows
    worn_crop: np.ndarray  # [worn, D] the localiser's piece crop (the whole photo without one)
    worn_whole: np.ndarray  # [worn, D]
    worn_product: np.ndarray  # [worn] product names


def loose_crop(rng: np.random.Generator, image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """A square 1.1-2.2 times the box's long side, its centre moved by up to a fifth of the box:
    how far off a localiser's crop may sit."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    half = max(width, height) * rng.uniform(1.1, 2.2) / 2
    cx = (x0 + x1) / 2 + rng.uniform(-0.2, 0.2) * width
    cy = (y0 + y1) / 2 + rng.uniform(-0.2, 0.2) * height
    return image.crop((int(max(0, cx - half)), int(max(0, cy - half)),
                       int(min(image.width, cx + half)), int(min(image.height, cy + half))))


def build_views(encoder, localizer: Localizer | None, catalog: Sequence[Record], worn: Sequence[Record],
                recipe: InstanceRecipe, describe) -> InstanceViews:
    """``catalog``: clean product photos to train on; ``worn``: worn photos of training products
    (their scenery is pasted on too); ``describe``: photos -> raw descriptors."""
    rng = np.random.default_rng(recipe.seed + 1)
    photo_rng = random.Random(recipe.seed + 3)
    worn_images = [load_image_file(r.path).image for r in worn]
    if not worn_images:
        raise ValueError("need worn photos of training products as scenery")
    clean, augmented, pasted, pasted_photo = [], [], [], []
    for n, record in enumerate(catalog):
        image = load_image_file(record.path).image
        clean.append(image)
        augmented.append(augment(image, photo_rng))
        cut = cut_from_white(image)
        if cut is None:
            continue
        for _ in range(recipe.pastes_per_photo):
            scene = paste_piece(rng, cut, worn_images[int(rng.integers(len(worn_images)))])
            if scene is not None:
                pasted.append(loose_crop(rng, scene.image, scene.boxes[0]))
                pasted_photo.append(n)
    crops = []
    for image in worn_images:
        piece = piece_crop(image, localizer.usable_boxes(localizer.locate(image))) if localizer else None
        crops.append(image if piece is None else piece)
    log.info("instance views: %d catalog photos, %d pasted pieces, %d worn photos",
             len(clean), len(pasted), len(worn_images))
    clean_rows = describe(clean)
    # Without augmented copies in the loss (share 0) their tower passes are saved: the clean rows stand in.
    augmented_rows = describe(augmented) if recipe.augmented_share > 0 else clean_rows.copy()
    return InstanceViews(clean_rows, augmented_rows, describe(pasted), np.asarray(pasted_photo),
                         describe(crops), describe(worn_images), np.asarray([r.group or "" for r in worn]))


def fit_projection(views: InstanceViews, recipe: InstanceRecipe) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], projection [D, dim]): principal components, then InfoNCE on the pairs."""
    torch.manual_seed(recipe.seed)
    pasted = torch.from_numpy(views.pasted)
    clean = torch.from_numpy(views.clean)
    augmented = torch.from_numpy(views.augmented)
    photo = torch.from_numpy(views.pasted_photo).long()
    both = torch.cat([pasted, clean])
    mean = both.mean(0)
    _, vectors = torch.linalg.eigh(torch.cov((both - mean).T))
    start = vectors[:, -recipe.dim:].flip(1).contiguous()
    projection = torch.nn.Parameter(start.clone())
    optimiser = torch.optim.AdamW([projection], lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    worn_crop, worn_whole = torch.from_numpy(views.worn_crop), torch.from_numpy(views.worn_whole)
    products = views.worn_product
    pairs = torch.tensor([(i, j) for i in range(len(products)) for j in range(len(products))
                          if i != j and products[i] and products[i] == products[j]], dtype=torch.long)

    def project(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize((x - mean) @ projection, dim=1)

    for epoch in range(recipe.epochs):
        order = torch.randperm(len(pasted))
        for start_row in range(0, len(pasted), recipe.batch):
            rows = order[start_row:start_row + recipe.batch]
            targets, which = torch.unique(photo[rows], return_inverse=True)
            use_augmented = torch.rand(len(targets))[:, None] < recipe.augmented_share
            catalog_side = project(torch.where(use_augmented, augmented[targets], clean[targets]))
            loss = torch.nn.functional.cross_entropy(project(pasted[rows]) @ catalog_side.T / recipe.temperature,
                                                     which)
            if recipe.worn_weight and len(pairs):
                batch = pairs[torch.randint(len(pairs), (recipe.worn_batch,))]
                logits = project(worn_crop[batch[:, 0]]) @ project(worn_whole[batch[:, 1]]).T / recipe.temperature
                # Several pairs in a batch may show one product: each of its photos is a right answer.
                same = torch.from_numpy(products[batch[:, 0].numpy()][:, None]
                                        == products[batch[:, 1].numpy()][None, :]).float()
                worn_loss = -(torch.log_softmax(logits, 1) * same / same.sum(1, keepdim=True)).sum(1).mean()
                loss = loss + recipe.worn_weight * worn_loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        log.info("instance head epoch %d/%d: loss %.4f", epoch + 1, recipe.epochs, loss.item())
    return mean.numpy(), projection.detach().numpy()


def raw_head(recipe: InstanceRecipe) -> InstanceHead:
    """The head without a projection: its vectors are the unit descriptors
    (``InstanceHead.descriptors``) that the projection is fitted on and, once saved, applied to."""
    return InstanceHead(recipe.blocks, GEM_POWER)


def head_config(recipe: InstanceRecipe, summary: dict) -> dict:
    return {"blocks": [{"name": name, "weight": weight} for name, weight in recipe.blocks], "p": GEM_POWER,
            "aligned_weight": recipe.aligned_weight, "summary": summary}


def save_head(folder: Path, mean: np.ndarray, projection: np.ndarray, recipe: InstanceRecipe,
              summary: dict) -> InstanceHead:
    return InstanceHead.save(folder, mean, projection, head_config(recipe, summary))
