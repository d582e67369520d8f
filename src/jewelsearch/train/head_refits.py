"""The two head refits run against a model folder: context heads, then stone heads.

Each step reads its photos, embeds them (or reuses a rows cache with the same recipe), fits,
and keeps the model folder consistent: it writes the heads and its summary, and removes the
files that the refit made stale (fold heads of older heads, stone heads fitted on an older
context standardisation). The encoder, the folder's heads and the localiser's piece head are
passed in; messages for the person running it go to ``progress``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from jewelsearch.embed import artifacts
from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.recognize.recognition_top import load_recognition_top
from jewelsearch.train.composites import render_cutouts
from jewelsearch.train.context_heads import load_rows, retrain_context_heads, save_rows, training_rows
from jewelsearch.train.labelled_data import Record
from jewelsearch.train.localizer import background_photos, product_cutouts
from jewelsearch.train.recipes import context_rows_recipe, rows_source, stone_rows_recipe
from jewelsearch.train.splits import held_out_render
from jewelsearch.train.stone_heads import fit_stone_heads, stone_rows

log = logging.getLogger(__name__)


@dataclass
class ContextRefit:
    """What a context-head refit did: its summary (as written to ``context_head.json``) and the
    context heads it dropped because they were fitted on the old standardisation."""

    summary: dict
    dropped: list[str]


def refit_context_heads(encoder, heads: AttributeHeads, *, renders: Path, products: Path, worn: Sequence[Record],
                        worn_root: Path | None, protected: set[str], crops: int, worn_views: int, shop_views: int,
                        folds: int, seed: int, rows_cache: Path | None = None,
                        piece_head: torch.nn.Module | None = None,
                        progress: Callable[[str], None] = log.info) -> ContextRefit:
    """Refit the category and metal heads of ``encoder.folder`` on shop photos, every worn photo
    in ``worn`` and pieces cropped from busy scenes; with ``piece_head`` (the folder's localiser
    head) the heads also read the maps pooled under its piece map."""
    folder = Path(encoder.folder)
    top = load_recognition_top(encoder)
    reembed, source = rows_source(encoder, top)
    recipe = context_rows_recipe(source, renders=renders, products=products, worn=worn, protected=protected,
                                 crops=crops, worn_views=worn_views, shop_views=shop_views, seed=seed,
                                 piece_weights=folder / artifacts.LOCALIZER_WEIGHTS if piece_head is not None
                                 else None)
    rows = load_rows(rows_cache, recipe, reembed) if rows_cache else None
    if rows is not None:
        progress(f"reusing the {len(rows.labels)} embedded rows in {rows_cache}")
    else:
        # The localiser's held-out renders stay held out here too, and scenery stays its
        # background half, so the crops show the scenes it trained on.
        cutouts = render_cutouts(renders, keep=lambda i: not held_out_render(i)) + product_cutouts(products, "train")
        rows = training_rows(encoder, products, cutouts, background_photos(worn_root, protected), worn=worn,
                             crops=crops, worn_views=worn_views, shop_views=shop_views, seed=seed,
                             piece_head=piece_head, top=top, progress=progress)
        if rows_cache:
            save_rows(rows, rows_cache, recipe)
    # The refit keeps the context standardisation other context heads (gemstone and cut, from
    # the stone-heads step) were fitted on; only rows narrower than it start every context head
    # again, and then those heads are dropped, not left to misread.
    before = set(heads.context_attributes)
    summary, fold_heads = retrain_context_heads(heads, rows, folds=folds, seed=seed, progress=progress)
    summary["piece_pooling"] = piece_head is not None
    heads.save(folder)
    dropped = sorted(before - set(heads.context_attributes))
    if dropped:
        (folder / artifacts.STONE_HEADS_SUMMARY).unlink(missing_ok=True)
    for name in (artifacts.WORN_FOLDS_META, artifacts.WORN_FOLDS_WEIGHTS):
        (folder / name).unlink(missing_ok=True)  # folds of older heads would judge unfairly
    if fold_heads is not None:
        fold_heads.save(folder)
    (folder / artifacts.CONTEXT_HEADS_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return ContextRefit(summary, dropped)


def refit_stone_heads(encoder, heads: AttributeHeads, records: Sequence[Record], *, views: int, gem_views: int,
                      exposure_views: int, seed: int, rows_cache: Path | None = None,
                      progress: Callable[[str], None] = log.info) -> dict:
    """Fit gemstone and cut heads of ``encoder.folder`` that also read the tower's pooled maps,
    write them and ``stone_heads.json``; returns the summary. Raises ValueError when the folder
    has no category and metal context heads to share a standardisation with."""
    folder = Path(encoder.folder)
    top = load_recognition_top(encoder)
    reembed, source = rows_source(encoder, top)
    recipe = stone_rows_recipe(source, records, views=views, gem_views=gem_views, seed=seed,
                               exposure_views=exposure_views)
    rows = load_rows(rows_cache, recipe, reembed) if rows_cache else None
    if rows is not None:
        progress(f"reusing the {len(rows.labels)} embedded rows in {rows_cache}")
    else:
        rows = stone_rows(encoder, records, views_by_source={"products": views, "renders": views,
                                                             "gemstones": gem_views},
                          exposure_views=exposure_views, seed=seed, top=top, progress=progress)
        if rows_cache:
            save_rows(rows, rows_cache, recipe)
    summary = fit_stone_heads(heads, rows, seed=seed, progress=progress)
    heads.save(folder)
    (folder / artifacts.STONE_HEADS_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
