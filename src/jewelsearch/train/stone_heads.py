"""Context heads for the stone: gemstone and cut read the tower's pooled maps too.

The phase-one gemstone and cut heads read only the 256-number embedding. The pooled maps
(texture and colour statistics before the projection; ``gem_features``) carry more about a
stone: the gem specialist reads them for loose stones, and the category and metal heads
for pieces in context. So gemstone and cut get context heads too, fitted here on shop
photos, studio renders and loose-stone photos (clean plus augmented copies, some with
photo-quality losses). Measured (2026-11-27): loose-stone photos read as
pieces 71 -> 76 % top-1; shop photos unchanged, and their over-exposure loss with them,
which lies in the tower's features.

They reuse the standardisation the category and metal context heads were fitted with, so
those heads are untouched (a linear head is as expressive on any fixed affine rescaling).
Held-out photos are phase one's calibration photos, which no head has trained on; renders
are never held out, as in phase one. A context head replaces the embedding head only where
it is more accurate on those photos (on a tie the embedding head stays).
"""

from __future__ import annotations

import random
from functools import partial
from typing import Sequence

import numpy as np
import torch

from jewelsearch.embed.encoder import Encoder
from jewelsearch.recognize.gem_features import embed_maybe_pooled
from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.train.augment import copy_augmentation, exposure_augment
from jewelsearch.train.context_heads import TrainingRows, fit_regularised
from jewelsearch.train.labelled_data import Record
from jewelsearch.train.photo_embeddings import embed_records
from jewelsearch.train.splits import in_calibration_split

STONE_ATTRIBUTES = ("gemstone", "cut")


def held_out(record_key: str) -> bool:
    """Whether a row's photo ("source/file name") is one of phase one's calibration photos,
    on which no head has trained."""
    return in_calibration_split(record_key.rsplit("/", 1)[-1])


def stone_rows(encoder: Encoder, records: Sequence[Record], *, views_by_source: dict[str, int],
               exposure_views: int = 0, seed: int = 0, top: torch.nn.Module | None = None,
               progress=print) -> TrainingRows:
    """Every record with a gemstone or cut label, clean and in ``views_by_source[source]``
    augmented copies (alternating plain and photo-quality augmentation), plus
    ``exposure_views`` copies of shop photos and renders with a strong exposure error. With
    ``top`` (the folder's ``RecognitionTop``) the pooled maps are the ones recognition reads."""
    rng = random.Random(seed)
    embed = partial(embed_maybe_pooled, encoder, top=top)
    vectors, pooled, labels, keys, weights = [], [], [], [], []
    labelled = [r for r in records if any(r.labels.get(a) for a in STONE_ATTRIBUTES)]
    for source in sorted({r.source for r in labelled}):
        group = [r for r in labelled if r.source == source]
        views = views_by_source.get(source, 0)
        extra = exposure_views if source != "gemstones" else 0  # loose stones are lit evenly in studio
        for view in range(1 + views + extra):
            change = exposure_augment if view > views else copy_augmentation(view)
            embedded, maps = embed_records(embed, group, None if change is None else partial(change, rng=rng))
            if maps is None:
                raise ValueError("stone heads need a tower with pooled maps")
            vectors.append(embedded)
            pooled.append(maps)
            labels += [{a: r.labels.get(a) for a in STONE_ATTRIBUTES} for r in group]
            keys += [f"{source}/{r.path.name}" for r in group]
            weights += [1.0] * len(group)
        progress(f"embedded {len(group)} {source} photos and {len(group) * (views + extra)} copies")
    return TrainingRows(np.concatenate(vectors), labels, np.asarray(weights, dtype=np.float32),
                        [None] * len(labels), keys, np.concatenate(pooled))


def fit_stone_heads(heads: AttributeHeads, rows: TrainingRows, *, seed: int = 0, steps: int = 800,
                    is_held_out=held_out, progress=print) -> dict:
    """Fit context heads for gemstone and cut on ``rows`` (in place) with the heads' existing
    context standardisation; keep each only where its held-out accuracy beats the embedding
    head's on the same photos. Returns what was measured and kept."""
    # The rows may hold only the first block of the context input (no piece pooling): the stone
    # heads then read that prefix, which keeps them independent of the localiser.
    if not heads.context_attributes or rows.pooled is None or rows.pooled.shape[1] > heads.pooled_dim:
        raise ValueError("fit the category and metal context heads first (jewelsearch train context-heads)")
    vectors, maps = torch.from_numpy(rows.vectors), torch.from_numpy(rows.pooled)
    with torch.no_grad():
        standardised = heads.context_inputs(vectors, maps)
    # Renders never calibrate (phase one's rule): they are trained on, always.
    calibration = np.array([not k.startswith("renders/") and is_held_out(k) for k in rows.keys])
    allowed = np.ones(len(rows.keys), dtype=bool)
    summary: dict = {"rows": len(rows.keys), "held_out_rows": int(calibration.sum()), "kept": []}
    for attribute in STONE_ATTRIBUTES:
        # A refit starts from the embedding head: a stone head from an earlier fit must not
        # survive a fit that does not keep its successor.
        heads.remove_context_head(attribute)
        vocab = heads.vocabularies[attribute]
        head, temperature, fit = fit_regularised(standardised, vocab, attribute, rows, allowed, seed, steps,
                                                 calibration_of=lambda i: bool(calibration[i]))
        labelled = [i for i in np.flatnonzero(calibration) if rows.labels[i].get(attribute) in vocab]
        truth = np.array([vocab.index(rows.labels[i][attribute]) for i in labelled])
        with torch.no_grad():
            context_guess = head(standardised[labelled]).argmax(1).numpy()
            embedding_guess = heads.heads[attribute](vectors[labelled]).argmax(1).numpy()
        fit["held_out_accuracy"] = round(float((context_guess == truth).mean()), 4)
        fit["embedding_head_held_out_accuracy"] = round(float((embedding_guess == truth).mean()), 4)
        keep = fit["held_out_accuracy"] > fit["embedding_head_held_out_accuracy"]
        if keep:
            heads.add_context_head(attribute, head, temperature)
            summary["kept"].append(attribute)
        summary[attribute] = fit
        progress(f"{attribute}: {'kept' if keep else 'not kept'} {fit}")
    return summary
