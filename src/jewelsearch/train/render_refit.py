"""Refitting context heads so that they read studio renders without forgetting real photos.

Photos-only search over rendered catalogs leans on the metal, gemstone and cut that ingest
fills in, and the shipped context heads, fitted mostly on shop photos, misread renders. A head
is refitted from where it stands: its weights with its temperature folded in are the start,
and the loss has three parts:
- cross-entropy on the renders' exact labels (a plain piece's gemstone and cut are "none");
- the divergence from the shipped head's own answers on real photos (distillation: the real
  photos need no labels, and the head keeps what it knew about them);
- an L2 pull towards the start, so a small render set cannot drag the head far.
The result is an ordinary linear context head (temperature 1 after the fit, then a fresh
temperature from the tuning renders), so the runtime reads it unchanged.

Worked example, a 2-class head on 3 features where renders say class 1 and the real photo
keeps class 0::

    >>> import torch
    >>> head = torch.nn.Linear(3, 2); _ = torch.nn.init.zeros_(head.weight); _ = torch.nn.init.zeros_(head.bias)
    >>> renders = torch.tensor([[1., 0., 0.]] * 4); real = torch.tensor([[0., 1., 0.]])
    >>> new = refit_head(head, 1.0, renders, torch.tensor([1] * 4), real, torch.tensor([[0.9, 0.1]]),
    ...                  RefitSetting(render_weight=1.0, l2=1e-3), steps=200)
    >>> probs = torch.softmax(new(torch.cat([renders[:1], real])), -1)
    >>> bool(probs[0, 1] > 0.8), bool(probs[1, 0] > 0.7)
    (True, True)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.train.labelled_data import Record, read_gemstones, read_products
from jewelsearch.train.render_features import RenderFeatures

STEPS = 300
# Tuning anchors whose top answer the refit may change: at most this share may move.
MIN_AGREEMENT = 0.95


@dataclass(frozen=True)
class RefitSetting:
    render_weight: float  # the renders' cross-entropy against the real photos' distillation (weight 1)
    l2: float             # pull of the weights towards the shipped head's, per weight


GRID = tuple(RefitSetting(w, l2) for w in (0.5, 1.0, 2.0) for l2 in (0.01, 0.1, 1.0))
# A loose stone has no category or metal to keep: those heads' agreement is judged on the shop photos.
JUDGED_ON = {"category": ("products",), "metal": ("products",)}


def refit_head(head: torch.nn.Linear, temperature: float, render_x: torch.Tensor, render_y: torch.Tensor,
               real_x: torch.Tensor, real_probs: torch.Tensor, setting: RefitSetting, *,
               steps: int = STEPS, seed: int = 0) -> torch.nn.Linear:
    """A copy of ``head`` (logits divided by ``temperature``) refitted on standardised context
    inputs: renders ``render_x`` with labels ``render_y``; real photos ``real_x`` with the
    shipped head's probabilities ``real_probs``. Classes are weighted inversely to their counts
    among the renders, so a rare stone is not drowned by diamonds."""
    torch.manual_seed(seed)
    start_w = (head.weight.detach() / temperature).clone()
    start_b = (head.bias.detach() / temperature).clone()
    new = torch.nn.Linear(head.in_features, head.out_features)
    with torch.no_grad():
        new.weight.copy_(start_w)
        new.bias.copy_(start_b)
    classes = head.out_features
    counts = torch.bincount(render_y, minlength=classes).float()
    weights = torch.where(counts > 0, counts.sum() / (len(counts.nonzero()) * counts.clamp(min=1)),
                          torch.zeros_like(counts))
    optimizer = torch.optim.AdamW(new.parameters(), lr=5e-3, weight_decay=0.0)
    log_real = torch.log(real_probs.clamp(min=1e-8))
    for _ in range(steps):
        render_loss = F.cross_entropy(new(render_x), render_y, weight=weights)
        real_loss = F.kl_div(F.log_softmax(new(real_x), -1), log_real, log_target=True, reduction="batchmean") \
            if len(real_x) else torch.zeros(())
        pull = ((new.weight - start_w) ** 2).sum() + ((new.bias - start_b) ** 2).sum()
        loss = setting.render_weight * render_loss + real_loss + setting.l2 * pull
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return new.eval()


def anchor_records(products_root: Path, gemstones_root: Path, n_products: int, n_gemstones: int) -> list[Record]:
    """Real training photos whose shipped-head answers the refit keeps: the first ``n_products``
    products/train and ``n_gemstones`` gemstone train-split photos in the order of a hash of
    their path (a fixed sample, spread over every class). Never a validation photo."""
    def sample(records: list[Record], n: int) -> list[Record]:
        ranked = sorted(records, key=lambda r: hashlib.sha1(f"anchor/{r.path.name}/{r.path.parent.name}".encode()).hexdigest())
        return ranked[:n]
    products = [r for r in read_products(products_root) if r.split == "train"]
    gems = [r for r in read_gemstones(gemstones_root) if r.split == "train"]
    return sample(products, n_products) + sample(gems, n_gemstones)


@dataclass
class RefitRows:
    """One attribute's rows, standardised context inputs: renders with their labels' indices,
    split into fitting and tuning; real anchor photos likewise."""
    fit_x: torch.Tensor
    fit_y: torch.Tensor
    tune_x: torch.Tensor
    tune_y: torch.Tensor
    anchor_fit_x: torch.Tensor
    anchor_tune_x: torch.Tensor


def _agreement(a: torch.nn.Linear, a_temperature: float, b: torch.nn.Linear, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((a(x) / a_temperature).argmax(1) == b(x).argmax(1)).float().mean()) if len(x) else 1.0


def refit_attribute(head: torch.nn.Linear, temperature: float, rows: RefitRows, *, grid=GRID,
                    min_agreement: float = MIN_AGREEMENT, seed: int = 0) -> tuple[torch.nn.Linear | None, dict]:
    """The grid's best refit of one context head by tuning-render accuracy, among the settings
    whose top answers on the tuning anchor photos agree with the shipped head's at least
    ``min_agreement`` of the time; None where no setting does, or none beats the shipped head
    on the tuning renders. The summary lists every setting's figures."""
    with torch.no_grad():
        shipped_probs = torch.softmax(head(rows.anchor_fit_x) / temperature, -1)
        shipped_tune = float(((head(rows.tune_x) / temperature).argmax(1) == rows.tune_y).float().mean())
    tried = []
    for setting in grid:
        new = refit_head(head, temperature, rows.fit_x, rows.fit_y, rows.anchor_fit_x, shipped_probs, setting,
                         seed=seed)
        with torch.no_grad():
            accuracy = float((new(rows.tune_x).argmax(1) == rows.tune_y).float().mean())
        tried.append((setting, new, accuracy, _agreement(head, temperature, new, rows.anchor_tune_x)))
    allowed = [t for t in tried if t[3] >= min_agreement]
    best = max(allowed, key=lambda t: t[2], default=None)
    summary = {"fit_renders": len(rows.fit_y), "tuning_renders": len(rows.tune_y),
               "anchors_fit": len(rows.anchor_fit_x), "anchors_tuning": len(rows.anchor_tune_x),
               "shipped_tuning_accuracy": round(shipped_tune, 4),
               "grid": [{"render_weight": s.render_weight, "l2": s.l2, "tuning_accuracy": round(a, 4),
                         "anchor_agreement": round(g, 4)} for s, _, a, g in tried]}
    if best is None or best[2] <= shipped_tune:
        summary["chosen"] = None
        return None, summary
    summary["chosen"] = {"render_weight": best[0].render_weight, "l2": best[0].l2,
                         "tuning_accuracy": round(best[2], 4), "anchor_agreement": round(best[3], 4)}
    return best[1], summary


def context_matrix(heads: AttributeHeads, embeddings: np.ndarray, pooled: np.ndarray) -> torch.Tensor:
    """The heads' standardised context inputs, full width."""
    with torch.no_grad():
        return heads.context_inputs(torch.from_numpy(np.asarray(embeddings, np.float32)),
                                    torch.from_numpy(np.asarray(pooled, np.float32)))


def refit_rows(heads: AttributeHeads, attribute: str, renders: RenderFeatures, render_tuning: Sequence[bool],
               anchors: torch.Tensor, anchor_tuning: Sequence[bool],
               anchor_sources: Sequence[str] | None = None) -> RefitRows:
    """One attribute's rows: renders whose label the head can name (not the studio's
    "cabochon" cut), cut to the columns its context head reads. Every anchor photo is kept by
    the fit; the agreement is judged on the tuning anchors of the sources the attribute has a
    meaning for (``JUDGED_ON``; all where ``anchor_sources`` is None)."""
    vocab = heads.vocabularies[attribute]
    width = heads.context[attribute].in_features
    x = context_matrix(heads, renders.embeddings, renders.pooled)[:, :width]
    truth = [label[attribute] for label in renders.labels]
    known = np.array([t in vocab for t in truth])
    tuning = np.asarray(render_tuning, dtype=bool)
    y = torch.tensor([vocab.index(t) if t in vocab else 0 for t in truth])
    fit, tune = torch.from_numpy(known & ~tuning), torch.from_numpy(known & tuning)
    anchor_tune = np.asarray(anchor_tuning, dtype=bool)
    judged = anchor_tune.copy()
    if anchor_sources is not None and attribute in JUDGED_ON:
        judged &= np.isin(np.asarray(anchor_sources), JUDGED_ON[attribute])
    return RefitRows(x[fit], y[fit], x[tune], y[tune], anchors[torch.from_numpy(~anchor_tune)][:, :width],
                     anchors[torch.from_numpy(judged)][:, :width])


def refit_heads(heads: AttributeHeads, attributes: Sequence[str], renders: RenderFeatures,
                render_tuning: Sequence[bool], anchor_embeddings: np.ndarray, anchor_pooled: np.ndarray,
                anchor_tuning: Sequence[bool], *, anchor_sources: Sequence[str] | None = None, seed: int = 0,
                progress: Callable[[str], None] = lambda _: None) -> dict:
    """Refit ``attributes``' context heads in place (each one kept where its refit does not
    pass ``refit_attribute``'s checks); returns the summary per attribute."""
    anchors = context_matrix(heads, anchor_embeddings, anchor_pooled)
    summary = {}
    for attribute in attributes:
        if attribute not in heads.context_attributes:
            raise ValueError(f"{attribute} has no context head to refit")
        rows = refit_rows(heads, attribute, renders, render_tuning, anchors, anchor_tuning, anchor_sources)
        new, summary[attribute] = refit_attribute(heads.context[attribute], heads.context_temperatures[attribute],
                                                  rows, seed=seed)
        if new is not None:
            # The fit folded the old temperature in and is calibrated by its own loss.
            heads.add_context_head(attribute, new, 1.0)
        progress(f"{attribute}: {summary[attribute].get('chosen') or 'kept the shipped head'} "
                 f"(shipped tuning accuracy {summary[attribute]['shipped_tuning_accuracy']})")
    return summary
