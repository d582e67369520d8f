"""The one-vector candidate: ONE vector per item for text queries and image queries alike,
trained with both objectives, measured against the shipped two-vector design (a text-aligned
vector plus an instance vector; ``embed/instance.py``).

The vector is a linear map of what one tower pass already gives, then L2-normalised:

    v = normalise(W_aligned · pooled + (gem - mean) · W_gem)

``pooled`` is the last map's global average (what the shipped text-aligned projection reads)
and ``gem`` the instance head's raw descriptor (GeM of the last map and the stride-8/16/32
taps, the shipped blocks and power). ``W_aligned`` starts as the shipped projection and
``W_gem`` at zero, so training starts from the shipped text-aligned vector exactly, and the
text side only moves as far as the instance objective pulls it.

The loss: text alignment (the multi-positive InfoNCE the projection was fitted with, image
vectors of catalog photos against the frozen text tower's embeddings of their captions, at the
model's own logit scale) plus ``instance_weight`` times the instance InfoNCE on the pairs the
instance head trains on (``instance_head.build_views``: pasted pieces against their catalog
photo, worn crops against other worn photos of the product). The tower is frozen, so its
outputs are computed once (``tower_features``) and a fit takes seconds per epoch.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from jewelsearch.embed.captions import caption
from jewelsearch.embed.dense_features import TowerPass, tower_pass
from jewelsearch.embed.instance import InstanceHead
from jewelsearch.train.contrastive import multi_positive_infonce
from jewelsearch.train.instance_head import InstanceViews
from jewelsearch.train.labelled_data import ATTRIBUTES, Record

log = logging.getLogger(__name__)

# Loss weights compared on the tuning photos (rule in docs/experiments/2026-12-07-one-vector-design.md);
# 0 is the text objective alone: the reference for what text alignment the others keep.
INSTANCE_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)


@dataclass
class OneVectorRecipe:
    instance_weight: float = 1.0
    epochs: int = 10            # as the instance head: more epochs traded worn retrieval for pasted
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.05   # the instance pairs' InfoNCE temperature, as the instance head's
    batch: int = 256            # pasted pieces per step
    text_batch: int = 256       # catalog photos (with one caption each) per step
    worn_batch: int = 64
    worn_weight: float = 1.0    # within the instance objective, as the instance head
    augmented_share: float = 0.3
    captions_per_photo: int = 12
    seed: int = 0


class OneVectorProjection(torch.nn.Module):
    """(raw GeM descriptors [N, G], pooled last maps [N, P]) -> unit vectors [N, dim]."""

    def __init__(self, aligned: torch.Tensor, gem_mean: torch.Tensor, gem: torch.Tensor | None = None):
        super().__init__()
        self.aligned = torch.nn.Parameter(aligned.detach().float().clone())   # [dim, P], as nn.Linear keeps it
        self.register_buffer("gem_mean", gem_mean.detach().float().clone())  # [G]
        start = torch.zeros(gem_mean.shape[0], aligned.shape[0]) if gem is None else gem.detach().float().clone()
        self.gem = torch.nn.Parameter(start)                                 # [G, dim]

    @property
    def gem_dim(self) -> int:
        return int(self.gem_mean.shape[0])

    @property
    def dim(self) -> int:
        return int(self.aligned.shape[0])

    def forward(self, gem: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(pooled @ self.aligned.T + (gem - self.gem_mean) @ self.gem, dim=1)

    def of_features(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Vectors from ``tower_features`` rows (the GeM descriptor, then the pooled map)."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        return self(x[:, :self.gem_dim], x[:, self.gem_dim:])

    def save(self, path: Path, summary: dict | None = None) -> None:
        """Written under a temporary name first: a candidate file is whole or absent."""
        from safetensors.torch import save_file
        import json
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"aligned": self.aligned.detach().contiguous(), "gem_mean": self.gem_mean.contiguous(),
                   "gem": self.gem.detach().contiguous()}, str(tmp),
                  metadata={"summary": json.dumps(summary or {})})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "OneVectorProjection":
        from safetensors.torch import load_file
        tensors = load_file(str(path))
        missing = {"aligned", "gem_mean", "gem"} - set(tensors)
        if missing:
            raise ValueError(f"{path} is not a one-vector candidate: no {', '.join(sorted(missing))}")
        return cls(tensors["aligned"], tensors["gem_mean"], tensors["gem"])


@torch.inference_mode()
def tower_features(encoder, raw_head: InstanceHead, images: Sequence[Image.Image],
                   batch_size: int | None = None) -> np.ndarray:
    """[N, G + P] float32: the raw GeM descriptor (``raw_head``, no projection) and the pooled last
    map, side by side, from one pass of the frozen tower per batch."""
    out = []
    size = max(1, int(batch_size or encoder.batch_size))
    visual = encoder.model.visual
    for start in range(0, len(images), size):
        batch = torch.stack([encoder.preprocess(im) for im in images[start:start + size]])
        result = tower_pass(visual, batch.contiguous(memory_format=torch.channels_last))
        out.append(features_of_pass(visual, raw_head, result).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def features_of_pass(visual: torch.nn.Module, raw_head: InstanceHead, result: TowerPass) -> torch.Tensor:
    """One tower pass's rows of ``tower_features`` (the search tower's maps, as the instance head)."""
    last = result.search_last_map if result.search_last_map is not None else result.last_map
    pooled = visual.trunk.global_pool(last).flatten(1).float()
    return torch.cat([raw_head.vectors(result), pooled], dim=1)


@dataclass
class TextTargets:
    """Each catalog photo's label key and captions (rows into ``vectors``, unit text embeddings
    from the frozen text tower)."""
    keys: list[tuple]
    caption_rows: list[list[int]]
    vectors: torch.Tensor
    logit_scale: float  # the model's own (log) scale, as the projection was fitted with
    texts: list[str] = field(default_factory=list)


def text_targets(encoder, catalog: Sequence[Record], captions_per_photo: int, seed: int = 0) -> TextTargets:
    """Captions as phase one made them (``embed.captions.caption`` over the photo's labels and
    description), embedded once by the frozen text tower and its projection."""
    rng = random.Random(seed)
    per_photo = [[caption({**r.labels, "description": r.description}, rng) for _ in range(captions_per_photo)]
                 for r in catalog]
    texts = sorted({c for cs in per_photo for c in cs})
    row = {c: i for i, c in enumerate(texts)}
    vectors = torch.from_numpy(np.asarray(encoder.encode_texts(texts), dtype=np.float32))
    logit_scale = getattr(encoder.model, "logit_scale", None)
    scale = float(logit_scale.detach()) if logit_scale is not None else float(np.log(1 / 0.07))
    return TextTargets([tuple(r.labels.get(a) for a in ATTRIBUTES) for r in catalog],
                       [[row[c] for c in cs] for cs in per_photo], vectors, scale, texts)


def text_loss(vectors: torch.Tensor, text: torch.Tensor, keys: list, logit_scale: float) -> torch.Tensor:
    """Multi-positive InfoNCE of image vectors against caption embeddings: two photos with the same
    labels are both right for a caption (phase one's loss, at a fixed scale)."""
    return multi_positive_infonce(vectors, text, keys, torch.tensor(logit_scale))


def pair_loss(queries: torch.Tensor, answers: torch.Tensor, right: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with in-batch negatives where ``right[i, j]`` marks every right answer j of query i
    (one or more per row): the target spreads evenly over them."""
    logits = queries @ answers.T / temperature
    right = right.float()
    return -(torch.log_softmax(logits, 1) * right / right.sum(1, keepdim=True)).sum(1).mean()


def fit(views: InstanceViews, targets: TextTargets, recipe: OneVectorRecipe, start: OneVectorProjection,
        train_photos: np.ndarray | None = None) -> OneVectorProjection:
    """Train a copy of ``start`` on the weighted sum of both losses. ``train_photos`` (bool per
    catalog photo, default all) keeps the others, and their pasted pieces, out of every loss:
    the tuning photos the loss weight is chosen on."""
    torch.manual_seed(recipe.seed)
    generator = np.random.default_rng(recipe.seed)
    model = OneVectorProjection(start.aligned, start.gem_mean, start.gem)
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    gem_dim = model.gem_dim
    split = lambda x: (torch.from_numpy(x[:, :gem_dim]), torch.from_numpy(x[:, gem_dim:]))  # noqa: E731
    clean, augmented = split(views.clean), split(views.augmented)
    n_photos = len(views.clean)
    allowed = np.ones(n_photos, bool) if train_photos is None else np.asarray(train_photos, bool)
    photos = np.flatnonzero(allowed)
    pasted_rows = np.flatnonzero(allowed[views.pasted_photo]) if len(views.pasted_photo) else np.zeros(0, int)
    pasted = split(views.pasted) if len(views.pasted) else None
    worn_crop, worn_whole = split(views.worn_crop), split(views.worn_whole)
    products = views.worn_product
    worn_pairs = np.asarray([(i, j) for i in range(len(products)) for j in range(len(products))
                             if i != j and products[i] and products[i] == products[j]], dtype=np.int64)

    def catalog_side(rows: np.ndarray) -> torch.Tensor:
        """Each photo clean, or (``augmented_share`` of the time) its augmented copy."""
        use_aug = torch.from_numpy(generator.random(len(rows)) < recipe.augmented_share)[:, None]
        gem = torch.where(use_aug, augmented[0][rows], clean[0][rows])
        pooled = torch.where(use_aug, augmented[1][rows], clean[1][rows])
        return model(gem, pooled)

    steps = max(1, int(np.ceil(len(pasted_rows) / recipe.batch)) if len(pasted_rows) else
                int(np.ceil(len(photos) / recipe.text_batch)))
    for epoch in range(recipe.epochs):
        order = generator.permutation(pasted_rows) if len(pasted_rows) else pasted_rows
        for step in range(steps):
            text_rows = generator.choice(photos, size=min(recipe.text_batch, len(photos)), replace=False)
            captions = [targets.caption_rows[r][generator.integers(len(targets.caption_rows[r]))] for r in text_rows]
            loss = text_loss(catalog_side(text_rows), targets.vectors[captions],
                             [targets.keys[r] for r in text_rows], targets.logit_scale)
            instance = torch.zeros(())
            rows = order[step * recipe.batch:(step + 1) * recipe.batch]
            if recipe.instance_weight and len(rows):
                wanted, which = np.unique(views.pasted_photo[rows], return_inverse=True)
                queries = model(pasted[0][rows], pasted[1][rows])
                instance = pair_loss(queries, catalog_side(wanted),
                                     torch.from_numpy(which[:, None] == np.arange(len(wanted))[None, :]),
                                     recipe.temperature)
            if recipe.instance_weight and recipe.worn_weight and len(worn_pairs):
                batch = worn_pairs[generator.integers(len(worn_pairs), size=recipe.worn_batch)]
                same = torch.from_numpy(products[batch[:, 0]][:, None] == products[batch[:, 1]][None, :])
                instance = instance + recipe.worn_weight * pair_loss(
                    model(worn_crop[0][batch[:, 0]], worn_crop[1][batch[:, 0]]),
                    model(worn_whole[0][batch[:, 1]], worn_whole[1][batch[:, 1]]), same, recipe.temperature)
            total = loss + recipe.instance_weight * instance
            optimiser.zero_grad()
            total.backward()
            optimiser.step()
        log.info("one vector (instance weight %g) epoch %d/%d: text %.4f, instance %.4f",
                 recipe.instance_weight, epoch + 1, recipe.epochs, loss.item(), float(instance.detach()))
    model.eval()
    return model


def starting_projection(encoder, gem_mean: np.ndarray) -> OneVectorProjection:
    """The shipped text-aligned projection, with a zero GeM part: the shipped aligned vector."""
    proj = encoder.model.visual.head.proj
    if not isinstance(proj, torch.nn.Linear) or proj.bias is not None:
        raise ValueError("the one-vector candidate starts from a tower whose projection is one bias-free linear layer")
    return OneVectorProjection(proj.weight, torch.as_tensor(np.asarray(gem_mean, dtype=np.float32)))
