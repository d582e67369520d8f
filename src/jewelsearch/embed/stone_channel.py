"""Refit the localiser's stone channel with shop photos' weak labels (session 13).

The stone channel first learnt from studio renders only, and on real shop photos it marks
polished metal as stone. Shop photos carry an image-level label instead of a mask: a plain
piece ("none") has no stone cell anywhere on it, and a piece with a stone has at least one.
Those labels, next to the renders' exact per-cell targets, refit the stone row of the head's
last 1×1 convolution alone. Every other weight stays as it is, so the piece map (and the
boxes, the piece pooling of the context heads and search) cannot move.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .composites import render_cutouts
from .dense_features import tower_pass
from .encoder import Encoder
from .images import load_image_file
from .labelled_data import Record
from .localizer import Localizer
from .train_localizer import held_out_render, prepare_scenes
from .vocab import NO_STONE

log = logging.getLogger(__name__)
STONE_ROW = 1
# A piece with a stone has at least one stone cell: the mean of its highest stone logits among
# the piece's cells is what is pushed up (two rather than one, so a single noisy cell is not
# the whole signal).
POSITIVE_CELLS = 2


@dataclass
class WeakPhotos:
    """Shop photos as the head sees them: its hidden features, which cells it calls piece, and
    whether the photo's label says the piece has a stone."""
    hidden: torch.Tensor        # N×C×S×S (fp16)
    piece_cells: torch.Tensor   # N×S×S bool
    has_stone: torch.Tensor     # N bool

    def __len__(self) -> int:
        return len(self.has_stone)


def weakly_labelled(records: list[Record]) -> list[tuple[Path, bool]]:
    """(photo, has a stone) for the records whose gemstone label says either way."""
    out = []
    for record in records:
        gem = record.labels.get("gemstone")
        if gem:
            out.append((record.path, gem != NO_STONE))
    return out


# no_grad rather than inference_mode: these features are then fitted on.
@torch.no_grad()
def hidden_features(head, maps: list[torch.Tensor], batch_size: int = 64) -> torch.Tensor:
    parts = []
    for start in range(0, len(maps[0]), batch_size):
        parts.append(head.features([m[start:start + batch_size].float() for m in maps]).half())
    return torch.cat(parts)


@torch.no_grad()
def weak_photos(localizer: Localizer, photos: list[tuple[Path, bool]], batch_size: int = 32) -> WeakPhotos:
    """Photos on which the piece map finds fewer than ``POSITIVE_CELLS`` piece cells say nothing
    about stone, and are left out."""
    encoder, head = localizer.encoder, localizer.head
    hidden, cells, labels = [], [], []
    for start in range(0, len(photos), batch_size):
        chunk = photos[start:start + batch_size]
        batch = torch.stack([encoder.preprocess(load_image_file(path).image) for path, _ in chunk])
        taps = tower_pass(encoder.model.visual, batch.contiguous(memory_format=torch.channels_last)).search_taps
        features = head.features(taps)
        piece = torch.sigmoid(head.out(features)[:, 0]) >= localizer.threshold
        keep = piece.flatten(1).sum(1) >= POSITIVE_CELLS
        hidden.append(features[keep].half())
        cells.append(piece[keep])
        labels += [has for (_, has), kept in zip(chunk, keep.tolist()) if kept]
    return WeakPhotos(torch.cat(hidden), torch.cat(cells), torch.tensor(labels, dtype=torch.bool))


def stone_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nchw,c->nhw", hidden, weight) + bias


def scene_loss(logits: torch.Tensor, share: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The localiser's own stone term: per-cell cross-entropy where the render's mask knows."""
    per_cell = F.binary_cross_entropy_with_logits(logits, share.float(), reduction="none") * valid.float()
    return per_cell.sum() / valid.float().sum().clamp_min(1)


def weak_loss(logits: torch.Tensor, piece_cells: torch.Tensor, has_stone: torch.Tensor) -> torch.Tensor:
    """Per photo, then averaged: a plain piece's cells all pushed to metal; a stone piece's
    highest cells pushed to stone."""
    cells = piece_cells.float()
    plain = (F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none") * cells
             ).sum((1, 2)) / cells.sum((1, 2))
    top = logits.masked_fill(~piece_cells, float("-inf")).flatten(1).topk(POSITIVE_CELLS, dim=1).values.mean(1)
    stone = F.binary_cross_entropy_with_logits(top, torch.ones_like(top), reduction="none")
    return torch.where(has_stone, stone, plain).mean()


def refit_stone_row(head, scene_hidden: torch.Tensor, scene_share: torch.Tensor, scene_valid: torch.Tensor,
                    photos: WeakPhotos, *, steps: int = 300, lr: float = 0.01) -> list[dict]:
    """Adam on the stone row of ``head.out`` only, from its current values; the composites'
    per-cell term and the photos' weak term weighted equally."""
    out = head.out
    weight = out.weight.detach()[STONE_ROW, :, 0, 0].clone().requires_grad_(True)
    bias = out.bias.detach()[STONE_ROW].clone().requires_grad_(True)
    # Clones: tensors made under inference_mode (the prepared scenes) cannot join autograd.
    scene_hidden, photo_hidden = scene_hidden.float().clone(), photos.hidden.float().clone()
    scene_share, scene_valid = scene_share.float().clone(), scene_valid.float().clone()
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    history = []
    for step in range(steps + 1):
        scene_term = scene_loss(stone_logits(scene_hidden, weight, bias), scene_share, scene_valid)
        photo_term = weak_loss(stone_logits(photo_hidden, weight, bias), photos.piece_cells, photos.has_stone)
        if step % 50 == 0 or step == steps:
            history.append({"step": step, "scenes": round(float(scene_term.detach()), 4),
                            "photos": round(float(photo_term.detach()), 4)})
        if step == steps:
            break
        optimizer.zero_grad()
        (scene_term + photo_term).backward()
        optimizer.step()
    with torch.no_grad():
        out.weight[STONE_ROW, :, 0, 0] = weight
        out.bias[STONE_ROW] = bias
    return history


@torch.inference_mode()
def stone_seen_share(localizer: Localizer, photos: WeakPhotos) -> dict:
    """On the fitting photos: the share of plain and of stone pieces with a stone cell on them."""
    logits = stone_logits(photos.hidden.float(), localizer.head.out.weight[STONE_ROW, :, 0, 0], localizer.head.out.bias[STONE_ROW])
    seen = ((logits >= 0) & photos.piece_cells).flatten(1).any(1)
    plain = ~photos.has_stone
    return {"plain_with_stone_cell": round(float(seen[plain].float().mean()), 3) if plain.any() else None,
            "stone_with_stone_cell": round(float(seen[photos.has_stone].float().mean()), 3)
            if photos.has_stone.any() else None}


def train_stone_channel(localizer: Localizer, render_dir: Path, shop_records: list[Record], out_folder: Path, *,
                        background: list | None = None, scenes: int = 1500, steps: int = 300, lr: float = 0.01,
                        seed: int = 0, progress=print) -> dict:
    """Refit the stone row on render composites (training renders only) and the shop photos'
    weak labels; saves the localiser, with a summary, into ``out_folder``."""
    torch.manual_seed(seed)
    started = time.time()
    labelled = weakly_labelled(shop_records)
    if not labelled:
        raise ValueError("no shop photo has a gemstone label (none or a stone) to learn from")
    encoder: Encoder = localizer.encoder
    cutouts = render_cutouts(render_dir, keep=lambda i: not held_out_render(i))
    if not cutouts:
        raise ValueError(f"{render_dir} has no training renders")
    prepared = prepare_scenes(encoder, cutouts, scenes, seed, photos=background or None)
    photos = weak_photos(localizer, labelled)
    if not len(photos):
        raise ValueError("the localiser found no piece on any labelled shop photo")
    progress(f"{len(prepared)} composites, {len(photos)} shop photos ({int(photos.has_stone.sum())} with a stone) "
             f"ready in {time.time() - started:.0f} s")
    before = stone_seen_share(localizer, photos)
    history = refit_stone_row(localizer.head, hidden_features(localizer.head, prepared.maps),
                              prepared.stone_share, prepared.stone_valid, photos, steps=steps, lr=lr)
    after = stone_seen_share(localizer, photos)
    summary = {"stone_channel_refit": {
        "composites": len(prepared), "shop_photos": len(photos), "with_stone": int(photos.has_stone.sum()),
        "left_out_no_piece": len(labelled) - len(photos), "steps": steps, "lr": lr, "seed": seed,
        "fitting_photos_before": before, "fitting_photos_after": after, "loss": history,
        "seconds": round(time.time() - started)}}
    progress(str(summary["stone_channel_refit"]))
    localizer.save(Path(out_folder), summary)
    return summary
