"""Teach the top of the image tower to see through photo-quality losses (self-distillation).

Under a single degradation (an over-exposed shop photo, a blurred one) the heads lost up to
13 points, and refitting the heads on degraded copies did not help: the frozen tower's
features had already lost what tells a cut or a stone apart. Here the tower's top stages
(blocks 5 and 6, the 1x1 head convolution and its batch norm) are fine-tuned so that, for a
degraded copy of a photo, they produce the maps the unchanged tower produces for the clean
photo; for the clean photo they must keep producing them. The lower blocks stay frozen, so
their maps (the localiser's stride-8 and stride-16 inputs) do not move at all, and because
the targets are the tower's own clean maps, everything that reads the tower (projection,
heads, gem specialist, localiser) keeps its meaning without a refit.

Training data is label-free: shop photos, loose stones and renders from their train splits,
and the worn photos the localiser borrows as scenery (the background half of the worn
products, which no evaluation uses). Without those, clean worn photos drifted most: worn
same-product recall@1 lost 3 of 87 queries (1 with them). No worn evaluation photo, or
another photo of its product, shapes the tower. The lower blocks' outputs are computed once per view and kept in memory,
so each epoch runs only the tuned top (about a third of the tower's work).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from jewelsearch.embed.dense_features import supports_dense_features

# Blocks 0-4 stay as they are; their output is the tuned part's input (recognition owns the number).
from jewelsearch.recognize.recognition_top import FROZEN_BLOCKS
from jewelsearch.train.augment import PHOTOMETRIC_LOSSES, photometric_loss
from jewelsearch.train.splits import ROBUST_HELD_OUT_FRACTION, robust_held_out
from jewelsearch.train.splits import in_robust_held_out as is_held_out  # noqa: F401  (re-exported)

TUNED_MODULES = ("blocks.5", "blocks.6", "conv_head", "bn2")
CLEAN = "clean"
VIEW_KINDS = (CLEAN,) + PHOTOMETRIC_LOSSES
HELD_OUT_FRACTION = ROBUST_HELD_OUT_FRACTION


def supports_robust_tuning(visual: torch.nn.Module) -> bool:
    return supports_dense_features(visual) and len(visual.trunk.blocks) == FROZEN_BLOCKS + 2


def tuned_parameter_names(net: torch.nn.Module) -> list[str]:
    """The state-dict names (weights and batch-norm buffers) the tuning changes, as the model
    folder stores them beside the projection."""
    prefixes = tuple(f"visual.trunk.{m}." for m in TUNED_MODULES)
    return [name for name in net.state_dict() if name.startswith(prefixes)]


@torch.inference_mode()
def frozen_front(trunk: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    x = trunk.bn1(trunk.conv_stem(batch))
    for index in range(FROZEN_BLOCKS):
        x = trunk.blocks[index](x)
    return x


def tuned_top(trunk: torch.nn.Module, front: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(block-6 output, last map): the localiser's stride-32 tap and the map pooled into the
    embedding, as ``dense_features.tower_pass`` takes them."""
    tap = trunk.blocks[FROZEN_BLOCKS + 1](trunk.blocks[FROZEN_BLOCKS](front))
    return tap, trunk.bn2(trunk.conv_head(tap))


def held_out_photos(paths: Sequence[str]) -> torch.Tensor:
    """``splits.robust_held_out`` as a mask: the photos that judge early stopping (at least one
    in a set of two or more); tune_top refuses a set of one photo."""
    return torch.tensor(robust_held_out(paths), dtype=torch.bool)


@dataclass
class DistillationSet:
    fronts: torch.Tensor        # [views, C, h, w] float16: the frozen blocks' output per view
    owner: torch.Tensor         # [views] the photo whose clean maps a view must reproduce
    kind: torch.Tensor          # [views] index into VIEW_KINDS
    target_tap: torch.Tensor    # [photos, C6, h6, w6] float16: the unchanged tower's clean maps
    target_last: torch.Tensor   # [photos, C_last, h6, w6] float16
    held_out: torch.Tensor      # [photos] bool

    def save(self, path: Path, recipe: dict) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"recipe": recipe, **self.__dict__}, tmp)
        tmp.replace(path)  # never a half-written cache

    @classmethod
    def load(cls, path: Path, recipe: dict) -> "DistillationSet | None":
        if not Path(path).is_file():
            return None
        saved = torch.load(path, weights_only=True)
        if saved.pop("recipe") != recipe:
            return None
        return cls(**saved)


def distillation_set(encoder, paths: Sequence[str], load_image: Callable, *, views: int = 3, seed: int = 0,
                     batch_size: int = 32, progress=print) -> DistillationSet:
    """Each photo once clean and ``views`` times with a random photo-quality loss, through the
    frozen blocks; the clean photo also through the unchanged top, for the targets."""
    trunk = encoder.model.visual.trunk
    fronts, owner, kinds, target_tap, target_last = [], [], [], [], []
    started = time.time()
    for start in range(0, len(paths), batch_size):
        chunk = list(range(start, min(len(paths), start + batch_size)))
        images, chunk_owner, chunk_kinds = [], [], []
        for index in chunk:
            # Each photo draws its own degradations, so adding photos leaves the others' views as they were.
            rng = random.Random(f"{seed}/{paths[index]}")
            image = load_image(paths[index]).convert("RGB")
            images.append(image)
            chunk_owner.append(index)
            chunk_kinds.append(0)
            for _ in range(views):
                degraded, kind = photometric_loss(image, rng)
                images.append(degraded)
                chunk_owner.append(index)
                chunk_kinds.append(VIEW_KINDS.index(kind))
        batch = torch.stack([encoder.preprocess(im) for im in images]).contiguous(memory_format=torch.channels_last)
        front = frozen_front(trunk, batch)
        with torch.inference_mode():
            clean = front[[i for i, k in enumerate(chunk_kinds) if k == 0]]
            tap, last = tuned_top(trunk, clean)
        fronts.append(front.half())
        target_tap.append(tap.half())
        target_last.append(last.half())
        owner += chunk_owner
        kinds += chunk_kinds
        if (start // batch_size) % 10 == 0:
            progress(f"distillation set: {start + len(chunk)}/{len(paths)} photos ({time.time() - started:.0f} s)")
    return DistillationSet(torch.cat(fronts).contiguous(), torch.tensor(owner), torch.tensor(kinds),
                           torch.cat(target_tap).contiguous(), torch.cat(target_last).contiguous(),
                           held_out_photos(paths))


# 1 - cosine of a degraded view's embedding to its clean one is about 0.1-0.2 before tuning,
# against about 1-5 for each map term; this weight makes search's view count as much.
EMBEDDING_WEIGHT = 10.0


class DistillationLoss:
    """What each reader of the tower sees, compared with the clean targets: the block-6 and last
    maps place by place (localiser, Grad-CAM), each channel in units of its spread over the
    photos; the last map averaged over the image (the heads and the gem specialist) against the
    spread of those averages, which is much smaller, so whole-photo features count fully; and
    the embedding the projection makes of it (search), as 1 - cosine. Channels that
    hardly vary (many of the last map's are almost always zero after its ReLU6) get a floor of
    a tenth of the mean spread, or a tiny change there would outweigh everything else."""

    def __init__(self, data: DistillationSet, projection: torch.nn.Module):
        self.projection = projection
        train = ~data.held_out
        self.tap_scale = _channel_spread(data.target_tap[train])
        self.last_scale = _channel_spread(data.target_last[train])
        self.pooled_scale = _floored(data.target_last[train].float().mean((2, 3)).std(0))

    def __call__(self, tap, last, target_tap, target_last) -> torch.Tensor:
        """One loss per view."""
        spatial = (((tap - target_tap) / self.tap_scale[None, :, None, None]) ** 2).mean((1, 2, 3)) \
            + (((last - target_last) / self.last_scale[None, :, None, None]) ** 2).mean((1, 2, 3))
        pooled_last, pooled_target = last.mean((2, 3)), target_last.mean((2, 3))
        pooled = (((pooled_last - pooled_target) / self.pooled_scale) ** 2).mean(1)
        with torch.no_grad():
            target_embedding = self.projection(pooled_target)
        cosine = torch.nn.functional.cosine_similarity(self.projection(pooled_last), target_embedding, dim=-1)
        return spatial + pooled + EMBEDDING_WEIGHT * (1 - cosine)


def _channel_spread(maps: torch.Tensor) -> torch.Tensor:
    return _floored(maps.float().permute(1, 0, 2, 3).reshape(maps.shape[1], -1).std(1))


def _floored(spread: torch.Tensor) -> torch.Tensor:
    return spread.clamp_min(max(0.1 * float(spread.mean()), 1e-6))


def embedding_agreement(visual, data: DistillationSet, views: torch.Tensor, batch_size: int = 256) -> dict:
    """Per view kind, the mean cosine between a view's embedding and its clean photo's embedding
    under the unchanged tower: 1.0 would mean the loss no longer changes what search sees."""
    trunk = visual.trunk
    sums: dict[str, list[float]] = {}
    with torch.inference_mode():
        for start in range(0, len(views), batch_size):
            chosen = views[start:start + batch_size]
            _, last = tuned_top(trunk, data.fronts[chosen].float())
            student = torch.nn.functional.normalize(visual.head(last.mean((2, 3))), dim=-1)
            target = torch.nn.functional.normalize(
                visual.head(data.target_last[data.owner[chosen]].float().mean((2, 3))), dim=-1)
            for kind, cosine in zip(data.kind[chosen].tolist(), (student * target).sum(1).tolist()):
                sums.setdefault(VIEW_KINDS[kind], []).append(cosine)
    return {kind: round(float(np.mean(values)), 4) for kind, values in sums.items()}


# Clean views count this many times a degraded one: clean photos are what a catalog holds.
# At 1, held-out clean embeddings drifted to cosine 0.985 from the original tower's; at 3,
# 0.991, with degraded views as close to their targets (held-out loss 1.84 against 1.80).
CLEAN_WEIGHT = 3.0


def tune_top(encoder, data: DistillationSet, *, epochs: int = 6, batch_size: int = 64, lr: float = 1e-4,
             clean_weight: float = CLEAN_WEIGHT, patience: int = 2, seed: int = 0, checkpoint: Path | None = None,
             progress=print) -> dict:
    """Fine-tune the tower's top on ``data`` (in place), keeping the epoch whose held-out
    degraded views came closest to their clean targets. With ``checkpoint``, each epoch's
    state is saved there and a rerun resumes from it."""
    visual = encoder.model.visual
    trunk = visual.trunk
    trunk.eval()  # batch norms keep their running statistics: only their scale and shift learn
    tuned = [p for name, p in trunk.named_parameters() if name.startswith(tuple(m + "." for m in TUNED_MODULES))]
    for p in visual.parameters():
        p.requires_grad_(False)
    for p in tuned:
        p.requires_grad_(True)
    loss_of = DistillationLoss(data, visual.head)
    held = data.held_out[data.owner]
    train_views = torch.nonzero(~held).flatten()
    held_degraded = torch.nonzero(held & (data.kind != 0)).flatten()
    held_clean = torch.nonzero(held & (data.kind == 0)).flatten()
    if len(held_degraded) == 0 or len(train_views) == 0:
        raise ValueError(f"{len(data.held_out)} photos leave none to train on or none held out "
                         "to choose the epoch: give more photos")
    optimizer = torch.optim.AdamW(tuned, lr=lr, weight_decay=0.0)
    steps_per_epoch = (len(train_views) + batch_size - 1) // batch_size
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    history: list[dict] = []
    first_epoch = 0
    initial = {name: t.detach().clone() for name, t in trunk.state_dict().items()}
    before = {"held_out_loss": _held_out_loss(trunk, data, held_degraded, loss_of),
              "held_out_clean_loss": _held_out_loss(trunk, data, held_clean, loss_of),
              "embedding_cosine": embedding_agreement(visual, data, torch.nonzero(held).flatten())}
    progress(f"before tuning: {json.dumps(before)}")
    best = {"held_out_loss": before["held_out_loss"], "epoch": 0, "state": initial}
    if checkpoint is not None and Path(checkpoint).is_file():
        saved = torch.load(checkpoint, weights_only=False)
        trunk.load_state_dict(saved["trunk"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        history, first_epoch, best = saved["history"], saved["epoch"], saved["best"]
        if saved.get("stopped"):
            first_epoch = epochs  # it had stopped early: nothing left to run
        progress(f"resumed after epoch {saved['epoch']}")
    generator = torch.Generator().manual_seed(seed)
    for _ in range(first_epoch):
        torch.randperm(len(train_views), generator=generator)  # the same order as an unbroken run
    for epoch in range(first_epoch, epochs):
        started = time.time()
        order = train_views[torch.randperm(len(train_views), generator=generator)]
        total = 0.0
        for step in range(steps_per_epoch):
            chosen = order[step * batch_size:(step + 1) * batch_size]
            tap, last = tuned_top(trunk, data.fronts[chosen].float().contiguous(memory_format=torch.channels_last))
            owners = data.owner[chosen]
            weights = torch.where(data.kind[chosen] == 0, clean_weight, 1.0)
            loss = (loss_of(tap, last, data.target_tap[owners].float(), data.target_last[owners].float())
                    * weights).sum() / weights.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(chosen)
        held_loss = _held_out_loss(trunk, data, held_degraded, loss_of)
        record = {"epoch": epoch + 1, "train_loss": round(total / len(train_views), 4),
                  "held_out_loss": round(held_loss, 4),
                  "held_out_clean_loss": round(_held_out_loss(trunk, data, held_clean, loss_of), 4),
                  "seconds": round(time.time() - started, 1)}
        history.append(record)
        progress(json.dumps(record))
        if held_loss < best["held_out_loss"]:
            best = {"held_out_loss": held_loss, "epoch": epoch + 1,
                    "state": {n: t.detach().clone() for n, t in trunk.state_dict().items()}}
        stopped = epoch + 1 - best["epoch"] >= patience
        if checkpoint is not None:
            torch.save({"trunk": trunk.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "history": history, "epoch": epoch + 1,
                        "best": best, "stopped": stopped}, checkpoint)
        if stopped:
            progress(f"held-out loss has not improved for {patience} epochs: stopping")
            break
    trunk.load_state_dict(best["state"])
    for p in visual.parameters():
        p.requires_grad_(False)
    after = {"held_out_loss": round(best["held_out_loss"], 4), "epoch": best["epoch"],
             "held_out_clean_loss": round(_held_out_loss(trunk, data, held_clean, loss_of), 4),
             "embedding_cosine": embedding_agreement(visual, data, torch.nonzero(held).flatten())}
    return {"before": before, "after": after, "history": history, "views": len(data.owner),
            "photos": len(data.held_out), "held_out_photos": int(data.held_out.sum()),
            "tuned_modules": list(TUNED_MODULES), "lr": lr, "batch_size": batch_size, "clean_weight": clean_weight,
            "embedding_weight": EMBEDDING_WEIGHT}


def _held_out_loss(trunk, data: DistillationSet, views: torch.Tensor, loss_of: DistillationLoss,
                   batch_size: int = 256) -> float:
    if len(views) == 0:
        return float("nan")
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(views), batch_size):
            chosen = views[start:start + batch_size]
            tap, last = tuned_top(trunk, data.fronts[chosen].float())
            owners = data.owner[chosen]
            total += float(loss_of(tap, last, data.target_tap[owners].float(),
                                   data.target_last[owners].float()).sum())
    return total / len(views)
