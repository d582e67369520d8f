"""Fitting the style head (``recognize/style_head.py``) on labelled renders.

Labels: the bundled demo catalog's titles name each piece's style ("Pear peridot halo ring ...",
"Pearl strand necklace"), and a studio render folder's ``labels.jsonl`` carries ``style``.
Never pass the held-out search renders (seed 7919, docs/search_quality.md).

Features are what ingest gives the heads: ``Recognizer.embed`` (unit embedding plus the pooled
maps, from one tower pass). A fifth of the photos (``splits.in_style_tuning``) is kept out of
the fit and chooses, in order: the L2 penalty (lowest calibrated loss), the temperature, and the
fill threshold: the lowest probability at which the styles ingest would fill in (top guess
within the piece's predicted category's styles) are right at least ``TARGET_PRECISION`` of
the time. The shipped head is the one fitted without the tuning photos, so the threshold is
measured on photos it never saw.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from jewelsearch.query.canon import STYLES
from jewelsearch.recognize.heads import expected_calibration_error, fit_temperature
from jewelsearch.recognize.style_head import StyleHead, styles_by_category
from jewelsearch.train.splits import in_style_tuning

# Title words for a style that the style list does not spell the same way.
TITLE_ALIASES = {"strand": "pearls"}
PENALTIES = (1e-3, 1e-2, 1e-1)
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.3, 0.96, 0.05))
TARGET_PRECISION = 0.9
STEPS = 300


@dataclass
class StylePhoto:
    path: Path
    key: str        # "source/file name": what the tuning split hashes
    category: str
    style: str


def style_from_title(title: str | None) -> str | None:
    """The one style a title names, or None (none, or more than one).

    >>> style_from_title("Marquise citrine three-stone ring in 18k yellow gold"), style_from_title("Pearl strand necklace")
    ('three-stone', 'pearls')
    >>> style_from_title("Chain necklace with a halo pendant"), style_from_title("Gold ring")
    (None, None)
    """
    words = set(re.findall(r"[a-z]+(?:-[a-z]+)?", (title or "").lower()))
    found = {s for s in STYLES if s in words or f"{s}s" in words}
    found |= {style for word, style in TITLE_ALIASES.items() if word in words}
    return found.pop() if len(found) == 1 else None


def demo_photos(demo_dir: Path) -> list[StylePhoto]:
    """The demo catalog's photos whose title names one style."""
    out = []
    for line in (Path(demo_dir) / "items.jsonl").read_text().splitlines():
        row = json.loads(line)
        style = style_from_title(row.get("title"))
        if style and row.get("category"):
            out.append(StylePhoto(Path(demo_dir) / row["image"], f"demo/{row['image']}", row["category"], style))
    return out


def render_photos(render_dir: Path) -> list[StylePhoto]:
    """A studio render folder's photos (``labels.jsonl`` with ``style`` and ``category``)."""
    out = []
    for line in (Path(render_dir) / "labels.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("style") in STYLES and row.get("category"):
            out.append(StylePhoto(Path(render_dir) / row["image"], f"{Path(render_dir).name}/{row['image']}",
                                  row["category"], row["style"]))
    return out


def fit_style_head(embeddings: np.ndarray, pooled: np.ndarray, photos: Sequence[StylePhoto],
                   predicted_categories: Sequence[str | None], *, seed: int = 0,
                   progress: Callable[[str], None] = lambda _: None) -> StyleHead:
    """The style head for these photos' features; ``predicted_categories`` (recognition's top
    category per photo) is what ingest gates a style by on photos without fields."""
    vocabulary = sorted({p.style for p in photos}, key=STYLES.index)
    x = np.concatenate([embeddings, pooled], axis=1).astype(np.float32)
    tuning = np.array([in_style_tuning(p.key) for p in photos])
    if tuning.all() or not tuning.any():
        raise ValueError("need photos on both sides of the tuning split")
    mean = x[~tuning].mean(0)
    scale = x[~tuning].std(0) + 1e-6
    inputs = torch.from_numpy((x - mean) / scale)
    targets = torch.tensor([vocabulary.index(p.style) for p in photos])
    fits = []
    for l2 in PENALTIES:
        head = _fit_linear(inputs[~tuning], targets[~tuning], len(vocabulary), l2, seed)
        with torch.no_grad():
            logits = head(inputs[tuning])
        temperature = fit_temperature(logits, targets[tuning])
        nll = float(F.cross_entropy(logits / temperature, targets[tuning]))
        fits.append((nll, l2, head, temperature))
        progress(f"style head: l2 {l2}: tuning loss {nll:.4f}, temperature {temperature:.3f}")
    nll, l2, head, temperature = min(fits, key=lambda f: f[0])
    with torch.no_grad():
        probabilities = torch.softmax(head(inputs[tuning]) / temperature, dim=-1).numpy()
    style_head = StyleHead(vocabulary, mean, scale, head.weight.detach().numpy().T.copy(),
                           head.bias.detach().numpy().copy(), int(embeddings.shape[1]), float(temperature),
                           styles_by_category((p.category, p.style) for p in photos))
    tuned = [p for p, t in zip(photos, tuning) if t]
    categories = [c for c, t in zip(predicted_categories, tuning) if t]
    threshold, sweep = choose_threshold(style_head, probabilities, tuned, categories)
    style_head.fill_threshold = threshold
    truth = targets[tuning].numpy()
    style_head.summary = {
        "photos": len(photos), "tuning_photos": int(tuning.sum()), "l2": l2,
        "tuning_nll": round(nll, 4), "tuning_accuracy": round(float((probabilities.argmax(1) == truth).mean()), 4),
        "tuning_ece": round(expected_calibration_error(probabilities, truth), 4),
        "temperature": round(float(temperature), 4), "target_precision": TARGET_PRECISION,
        "threshold_sweep": sweep}
    return style_head


def choose_threshold(head: StyleHead, probabilities: np.ndarray, photos: Sequence[StylePhoto],
                     categories: Sequence[str | None]) -> tuple[float, list[dict]]:
    """The lowest of ``THRESHOLDS`` at which the filled styles are right at least
    ``TARGET_PRECISION`` of the time (the highest if none is), with the whole sweep."""
    sweep = []
    for threshold in THRESHOLDS:
        head.fill_threshold = threshold
        filled = right = 0
        for probs, photo, category in zip(probabilities, photos, categories):
            best = int(np.argmax(probs))
            style = head.fill({"label": head.vocabulary[best], "p": float(probs[best])}, category)
            if style is not None:
                filled += 1
                right += style == photo.style
        sweep.append({"threshold": threshold, "fill_rate": round(filled / max(len(photos), 1), 4),
                      "precision": round(right / filled, 4) if filled else None})
    chosen = next((s["threshold"] for s in sweep if s["precision"] is not None
                   and s["precision"] >= TARGET_PRECISION), THRESHOLDS[-1])
    return float(chosen), sweep


def _fit_linear(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float, seed: int) -> torch.nn.Linear:
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.0)
    # Classes are weighted inversely to their counts: the demo and the studio draw styles unevenly.
    counts = torch.bincount(y, minlength=classes).clamp(min=1).float()
    weights = (counts.sum() / (classes * counts))
    for _ in range(STEPS):
        loss = F.cross_entropy(head(x), y, weight=weights) + l2 * (head.weight ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.eval()
