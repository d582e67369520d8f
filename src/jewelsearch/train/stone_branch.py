"""A stone branch for the localiser, taught by shop photos' weak labels.

The localiser head's stone output learnt from studio renders only, and on real shop photos it
marks polished metal as stone. Shop photos carry an image-level label instead of a mask: a
plain piece ("none") has no stone cell anywhere on it, and a piece with a stone has at least
one. A branch of its own (the head's layers, copied, with a single stone logit) learns from
those labels next to the renders' exact per-cell targets. The head keeps giving the piece map,
so boxes, the context heads' piece pooling and search cannot move.

A refit of the head's stone row alone was tried first and failed its rule: the head's hidden
channels do not separate polished metal from stone (measured 2026-11-28).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from jewelsearch.embed.dense_features import tower_pass
from jewelsearch.embed.images import load_image_file
from jewelsearch.embed.vocab import NO_STONE
from jewelsearch.recognize.localizer import DenseHead, Localizer
from jewelsearch.train.composites import render_cutouts
from jewelsearch.train.labelled_data import Record
from jewelsearch.train.localizer import PreparedScenes, prepare_scenes
from jewelsearch.train.splits import STONE_BRANCH_HELD_OUT_SHARE, held_out_render, in_stone_branch_check

STONE_ROW = 1
# A piece with a stone has at least one stone cell: the mean of its highest stone logits among
# the piece's cells is what is pushed up (two rather than one, so a single noisy cell is not
# the whole signal).
POSITIVE_CELLS = 2
# Share of the labelled shop photos held out (by a hash of the file name) to pick the epoch.
HELD_OUT_SHARE = STONE_BRANCH_HELD_OUT_SHARE


@dataclass
class WeakPhotos:
    """Shop photos as the localiser sees them: the tower's taps, which cells the head calls
    piece, and whether the photo's label says the piece has a stone."""
    taps: list[torch.Tensor]    # per stride: N×C×H×W (fp16)
    piece_cells: torch.Tensor   # N×S×S bool
    has_stone: torch.Tensor     # N bool
    names: list[str]

    def __len__(self) -> int:
        return len(self.has_stone)

    def rows(self, index: torch.Tensor) -> "WeakPhotos":
        return WeakPhotos([t[index] for t in self.taps], self.piece_cells[index], self.has_stone[index],
                          [self.names[i] for i in index.tolist()])


def weakly_labelled(records: list[Record]) -> list[tuple[Path, bool]]:
    """(photo, has a stone) for the records whose gemstone label says either way."""
    out = []
    for record in records:
        gem = record.labels.get("gemstone")
        if gem:
            out.append((record.path, gem != NO_STONE))
    return out


@torch.no_grad()
def weak_photos(localizer: Localizer, photos: list[tuple[Path, bool]], batch_size: int = 32) -> WeakPhotos:
    """Photos on which the piece map finds fewer than ``POSITIVE_CELLS`` piece cells say nothing
    about stone, and are left out."""
    encoder, head = localizer.encoder, localizer.head
    taps: list[list[torch.Tensor]] = []
    cells, labels, names = [], [], []
    for start in range(0, len(photos), batch_size):
        chunk = photos[start:start + batch_size]
        batch = torch.stack([encoder.preprocess(load_image_file(path).image) for path, _ in chunk])
        search_taps = tower_pass(encoder.model.visual, batch.contiguous(memory_format=torch.channels_last)).search_taps
        piece = torch.sigmoid(head(search_taps)[:, 0]) >= localizer.threshold
        keep = piece.flatten(1).sum(1) >= POSITIVE_CELLS
        taps.append([t[keep].contiguous().half() for t in search_taps])
        cells.append(piece[keep])
        for (path, has), kept in zip(chunk, keep.tolist()):
            if kept:
                labels.append(has)
                names.append(Path(path).name)
    if not labels:
        return WeakPhotos([], torch.zeros(0, 0, 0, dtype=torch.bool), torch.zeros(0, dtype=torch.bool), [])
    return WeakPhotos([torch.cat([t[i] for t in taps]) for i in range(len(taps[0]))], torch.cat(cells),
                      torch.tensor(labels, dtype=torch.bool), names)


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


def branch_from_head(head: DenseHead) -> DenseHead:
    """A one-logit copy of the head that starts out giving exactly the head's stone map."""
    branch = DenseHead(tuple(r.in_channels for r in head.reduce), head.reduce[0].out_channels,
                       head.out.in_channels, outputs=1)
    state = copy.deepcopy(head.state_dict())
    state["out.weight"] = state["out.weight"][STONE_ROW:STONE_ROW + 1]
    state["out.bias"] = state["out.bias"][STONE_ROW:STONE_ROW + 1]
    branch.load_state_dict(state)
    return branch


def _flipped(photos: WeakPhotos, flip: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The photos' taps and piece cells, mirrored left–right where ``flip`` says."""
    def mirror(t):
        return torch.where(flip.view(-1, *([1] * (t.dim() - 1))), t.flip(-1), t)
    return [mirror(t.float()) for t in photos.taps], mirror(photos.piece_cells)


@torch.no_grad()
def _stone_logits(branch: DenseHead, taps: list[torch.Tensor], batch_size: int = 64) -> torch.Tensor:
    return torch.cat([branch([t[s:s + batch_size].float() for t in taps])[:, 0]
                      for s in range(0, len(taps[0]), batch_size)])


def seen_shares(branch: DenseHead, photos: WeakPhotos) -> dict:
    """The share of plain and of stone pieces with a stone cell on them."""
    if not len(photos):
        return {}
    seen = ((_stone_logits(branch, photos.taps) >= 0) & photos.piece_cells).flatten(1).any(1)
    plain = ~photos.has_stone
    return {"photos": len(photos),
            "plain_with_stone_cell": round(float(seen[plain].float().mean()), 3) if plain.any() else None,
            "stone_with_stone_cell": round(float(seen[photos.has_stone].float().mean()), 3)
            if photos.has_stone.any() else None}


def train_branch(head: DenseHead, scenes: PreparedScenes, photos: WeakPhotos, *, epochs: int = 12,
                 scene_batch: int = 64, photo_batch: int = 32, lr: float = 1e-3, seed: int = 0,
                 progress=print) -> tuple[DenseHead, dict]:
    """The branch after the epoch with the lowest weak loss on the held-out photos."""
    generator = torch.Generator().manual_seed(seed)
    held = torch.tensor([in_stone_branch_check(name) for name in photos.names])
    fit, check = photos.rows(torch.nonzero(~held)[:, 0]), photos.rows(torch.nonzero(held)[:, 0])
    if not len(fit):
        raise ValueError("every labelled shop photo fell in the held-out share; give more photos")
    branch = branch_from_head(head)
    # Clones: tensors made under inference_mode (the prepared scenes) cannot join autograd.
    scene_maps = [m.clone() for m in scenes.maps]
    share, valid = scenes.stone_share.float().clone(), scenes.stone_valid.float().clone()
    optimizer = torch.optim.AdamW(branch.parameters(), lr=lr, weight_decay=1e-4)

    def held_loss() -> float | None:
        if not len(check):
            return None
        return round(float(weak_loss(_stone_logits(branch, check.taps), check.piece_cells, check.has_stone)), 4)

    history = [{"epoch": 0, "held_out_weak_loss": held_loss(), "fit": seen_shares(branch, fit),
                "held_out": seen_shares(branch, check)}]
    best = (history[0]["held_out_weak_loss"], copy.deepcopy(branch.state_dict()), 0)
    steps = math.ceil(len(scenes) / scene_batch)
    for epoch in range(1, epochs + 1):
        branch.train()
        order = torch.randperm(len(scenes), generator=generator)
        totals = [0.0, 0.0]
        for step in range(steps):
            rows = order[step * scene_batch:(step + 1) * scene_batch]
            scene_term = scene_loss(branch([m[rows].float() for m in scene_maps])[:, 0], share[rows], valid[rows])
            picked = fit.rows(torch.randint(len(fit), (photo_batch,), generator=generator))
            taps, cells = _flipped(picked, torch.rand(photo_batch, generator=generator) < 0.5)
            photo_term = weak_loss(branch(taps)[:, 0], cells, picked.has_stone)
            optimizer.zero_grad()
            (scene_term + photo_term).backward()
            optimizer.step()
            totals[0] += float(scene_term.detach())
            totals[1] += float(photo_term.detach())
        branch.eval()
        record = {"epoch": epoch, "scene_loss": round(totals[0] / steps, 4), "weak_loss": round(totals[1] / steps, 4),
                  "held_out_weak_loss": held_loss(), "fit": seen_shares(branch, fit),
                  "held_out": seen_shares(branch, check)}
        history.append(record)
        progress(str(record))
        if best[0] is None or (record["held_out_weak_loss"] is not None and record["held_out_weak_loss"] < best[0]):
            best = (record["held_out_weak_loss"], copy.deepcopy(branch.state_dict()), epoch)
    branch.load_state_dict(best[1])
    branch.eval()
    return branch, {"best_epoch": best[2], "history": history}


def train_stone_branch(localizer: Localizer, render_dir: Path, shop_records: list[Record], out_folder: Path, *,
                        background: list | None = None, scenes: int = 1500, epochs: int = 12,
                        seed: int = 0, progress=print) -> dict:
    """Train the stone branch on render composites (training renders only) and the shop photos'
    weak labels; saves the localiser, with the branch and a summary, into ``out_folder``."""
    torch.manual_seed(seed)
    started = time.time()
    labelled = weakly_labelled(shop_records)
    if not labelled:
        raise ValueError("no shop photo has a gemstone label (none or a stone) to learn from")
    cutouts = render_cutouts(render_dir, keep=lambda i: not held_out_render(i))
    if not cutouts:
        raise ValueError(f"{render_dir} has no training renders")
    photos = weak_photos(localizer, labelled)
    if not len(photos):
        raise ValueError("the localiser found no piece on any labelled shop photo")
    prepared = prepare_scenes(localizer.encoder, cutouts, scenes, seed, photos=background or None)
    progress(f"{len(prepared)} composites, {len(photos)} shop photos ({int(photos.has_stone.sum())} with a stone) "
             f"ready in {time.time() - started:.0f} s")
    branch, fitted = train_branch(localizer.head, prepared, photos, epochs=epochs, seed=seed, progress=progress)
    localizer.stone_branch = branch
    summary = {"stone_branch": {
        "composites": len(prepared), "shop_photos": len(photos), "with_stone": int(photos.has_stone.sum()),
        "left_out_no_piece": len(labelled) - len(photos), "epochs": epochs, "seed": seed,
        **fitted, "seconds": round(time.time() - started)}}
    localizer.save(Path(out_folder), summary)
    return summary
