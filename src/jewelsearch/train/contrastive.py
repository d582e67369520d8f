"""Fine-tuning ``jewelclip-lite0`` on jewelry (phase one: projections and heads).

Recipe: both towers frozen; the image projection, the text MLP projection, the
temperature and the attribute heads are trained with a multi-positive InfoNCE
loss (two photos with the same labels are both right for a caption) plus
cross-entropy on the heads where labels exist.  Each epoch draws one of several
cached augmented views per photo and a fresh caption.  Studio renders, when given,
train alongside the photos (their exact metals teach "rose gold", which the shop
photos barely show) but never calibrate.  AdamW, cosine schedule,
early stopping on a calibration split carved from training data (the real val
splits stay untouched for reporting), then per-head temperature scaling on that
same calibration split.  Unfreezing the top tower blocks (phase two) is not
done yet: on this CPU it needs hours per run.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from jewelsearch.embed.captions import caption
from jewelsearch.embed.model_folder import build_model, default_spec, save_model_folder
from jewelsearch.embed.vocab import CATEGORIES, CUTS, GEMSTONES, METALS
from jewelsearch.recognize.heads import AttributeHeads, fit_temperature
from jewelsearch.train.feature_cache import cached_image_features
from jewelsearch.train.labelled_data import ATTRIBUTES, Record
from jewelsearch.train.splits import in_calibration_split
from jewelsearch.train.tower_features import text_tower_features

log = logging.getLogger(__name__)

VOCABULARIES = {"category": CATEGORIES, "metal": METALS, "gemstone": GEMSTONES, "cut": CUTS}
TRAINED_PREFIXES = ("logit_scale", "visual.head.", "text.proj.")  # all that phase one changes


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    head_loss_weight: float = 0.5
    # Half the draws are photo-quality views (blur, noise, a small original, harsh JPEG,
    # exposure). With the renders they cut worn image search's loss on 64-px photos from 11
    # points to 7 (either alone: 11); measured 2026-11-27.
    views: tuple[str, ...] = ("clean", "aug1", "aug2", "qaug1", "qaug2", "qaug3")
    captions_per_record: int = 12
    patience: int = 12
    seed: int = 0


@dataclass
class TrainResult:
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    temperatures: dict[str, float] = field(default_factory=dict)
    model_id: str = ""
    trained_on: int = 0  # photos and renders
    calibrated_on: int = 0  # real photos only


class Trainable(nn.Module):
    """The parts that learn, copied out of the open_clip model."""

    def __init__(self, net):
        super().__init__()
        self.image_proj = copy.deepcopy(net.visual.head.proj)
        self.text_proj = copy.deepcopy(net.text.proj)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.heads = AttributeHeads(self.image_proj.out_features, VOCABULARIES)

    def embed_images(self, feats: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.image_proj(feats), dim=-1)

    def embed_texts(self, feats: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text_proj(feats), dim=-1)

    def write_back(self, net) -> None:
        net.visual.head.proj.load_state_dict(self.image_proj.state_dict())
        net.text.proj.load_state_dict(self.text_proj.state_dict())
        net.logit_scale.data.copy_(self.logit_scale.data)


def label_targets(records: Sequence[Record]) -> dict[str, torch.Tensor]:
    out = {}
    for attribute, vocab in VOCABULARIES.items():
        index = {label: i for i, label in enumerate(vocab)}
        out[attribute] = torch.tensor([index.get(r.labels.get(attribute), -100) for r in records])
    return out


def multi_positive_infonce(image: torch.Tensor, text: torch.Tensor, keys: list, scale: torch.Tensor):
    logits = scale.exp().clamp(max=100) * image @ text.T
    same = torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.float32)
    targets = same / same.sum(1, keepdim=True)
    loss_i = -(targets * logits.log_softmax(1)).sum(1).mean()
    loss_t = -(targets.T / targets.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def train(data_records: Sequence[Record], out_dir: Path, work_dir: Path,
          config: TrainConfig | None = None, renders: Sequence[Record] = ()) -> TrainResult:
    """``renders`` (studio renders with exact labels) join the training photos but never the
    calibration split: early stopping and temperatures are judged on real photos only."""
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    spec = default_spec()
    net, preprocess, tokenizer = build_model(spec)
    net.eval()

    train_records = [r for r in data_records if r.split == "train"]
    fit = [r for r in train_records if not in_calibration_split(r.path.name)]
    calib = [r for r in train_records if in_calibration_split(r.path.name)]
    fit += [r for r in renders if r.split == "train"]
    log.info("training on %d photos and renders, calibrating/early-stopping on %d photos", len(fit), len(calib))
    if not calib:
        raise ValueError("no calibration photos: the training split is too small")

    # Features for every record (val/test too), so evaluation reuses the same cache. Renders
    # have a cache of their own, so adding them leaves the photos' features valid.
    features = cached_image_features(net, preprocess, data_records, work_dir, config.views,
                                     seed=config.seed)
    if renders:
        extra = cached_image_features(net, preprocess, renders, work_dir, config.views, seed=config.seed)
        features = {view: np.concatenate([features[view], extra[view]]) for view in config.views}
    data_records = list(data_records) + list(renders)
    position = {id(r): i for i, r in enumerate(data_records)}
    fit_rows = np.array([position[id(r)] for r in fit])
    calib_rows = np.array([position[id(r)] for r in calib])

    captions = [[caption({**r.labels, "description": r.description}, rng)
                 for _ in range(config.captions_per_record)] for r in fit]
    unique = sorted({c for cs in captions for c in cs})
    log.info("embedding %d unique captions with the frozen text tower", len(unique))
    text_feats = torch.from_numpy(text_tower_features(net, tokenizer, unique))
    caption_row = {c: i for i, c in enumerate(unique)}

    model = Trainable(net)
    targets = label_targets(data_records)
    keys = [tuple(r.labels.get(a) for a in ATTRIBUTES) for r in data_records]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(fit) // config.batch_size)
    total = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / (2 * steps_per_epoch)) * 0.5 * (1 + math.cos(math.pi * s / total)))

    calib_feats = torch.from_numpy(features["clean"][calib_rows])
    result = TrainResult(best_epoch=-1, trained_on=len(fit), calibrated_on=len(calib))
    best_score, best_state, stale = -1.0, None, 0
    for epoch in range(config.epochs):
        model.train()
        order = np.random.default_rng(config.seed + epoch).permutation(len(fit))
        losses = []
        for step in range(steps_per_epoch):
            batch = order[step * config.batch_size:(step + 1) * config.batch_size]
            rows = fit_rows[batch]
            view = [config.views[rng.randrange(len(config.views))] for _ in rows]
            img = torch.from_numpy(np.stack([features[v][r] for v, r in zip(view, rows)]))
            txt = text_feats[[caption_row[captions[b][rng.randrange(config.captions_per_record)]] for b in batch]]
            image_emb = model.embed_images(img)
            loss = multi_positive_infonce(image_emb, model.embed_texts(txt), [keys[r] for r in rows],
                                          model.logit_scale)
            logits = model.heads(image_emb)
            for attribute, head_logits in logits.items():
                wanted = targets[attribute][rows]
                if (wanted >= 0).any():
                    loss = loss + config.head_loss_weight * nn.functional.cross_entropy(
                        head_logits, wanted, ignore_index=-100)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        score = _calibration_score(model, calib_feats, targets, calib_rows)
        result.history.append({"epoch": epoch, "loss": float(np.mean(losses)), **score})
        log.info("epoch %d loss %.3f calib %s", epoch, np.mean(losses), score)
        if score["score"] > best_score:
            best_score, best_state, stale, result.best_epoch = score["score"], copy.deepcopy(model.state_dict()), 0, epoch
        else:
            stale += 1
            if stale >= config.patience:
                log.info("early stop at epoch %d (best %d)", epoch, result.best_epoch)
                break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        logits = model.heads(model.embed_images(calib_feats))
    for attribute, head_logits in logits.items():
        wanted = targets[attribute][calib_rows]
        keep = wanted >= 0
        if keep.sum() >= 10:
            model.heads.temperatures[attribute] = fit_temperature(head_logits[keep], wanted[keep])
    result.temperatures = dict(model.heads.temperatures)
    model.write_back(net)
    spec["status"] = (f"phase one: projections + heads trained on real photos"
                      f"{' and studio renders' if renders else ''}, best epoch {result.best_epoch}")
    trained = [n for n in net.state_dict() if n.startswith(TRAINED_PREFIXES)]
    result.model_id = save_model_folder(net, Path(out_dir), spec, trained)
    model.heads.save(Path(out_dir))
    return result


@torch.no_grad()
def _calibration_score(model: Trainable, feats: torch.Tensor, targets, rows) -> dict:
    model.eval()
    logits = model.heads(model.embed_images(feats))
    out = {}
    for attribute in ("category", "gemstone"):
        wanted = targets[attribute][rows]
        keep = wanted >= 0
        out[attribute] = float((logits[attribute][keep].argmax(1) == wanted[keep]).float().mean()) \
            if keep.any() else 0.0
    out["score"] = (out["category"] + out["gemstone"]) / 2
    return out
