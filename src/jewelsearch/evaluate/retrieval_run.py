"""Build the instance-retrieval sets once, then judge each descriptor, query mode and re-ranker
on them (``retrieval.py`` says what each measure can and cannot tell)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from jewelsearch.embed.images import load_image_file
from jewelsearch.evaluate.retrieval import (
    QUERY_MODES,
    Embed,
    QueryCrops,
    Rerank,
    category_precision,
    embed_views,
    query_similarities,
    ranks_of_answers,
    recall_at,
)
from jewelsearch.recognize.localizer import Localizer
from jewelsearch.train.composites import cut_from_white, paste_piece
from jewelsearch.train.labelled_data import Record


@dataclass
class RetrievalSets:
    worn_queries: list[QueryCrops]
    worn_answers: list[np.ndarray]     # gallery rows of the query's other photos
    worn_self: list[int]               # the query photo's own gallery row
    worn_gallery: list[Image.Image]    # every worn photo, then the catalog photos as distractors
    pasted_queries: list[QueryCrops]
    pasted_answers: list[np.ndarray]   # catalog row of the pasted piece
    catalog: list[Image.Image]         # held-out clean catalog photos
    catalog_categories: list[str]

    def describe(self) -> dict:
        return {"worn_queries": len(self.worn_queries), "worn_gallery": len(self.worn_gallery),
                "pasted_queries": len(self.pasted_queries), "catalog_photos": len(self.catalog)}


def build_sets(worn: Sequence[Record], catalog: Sequence[Record], localizer: Localizer | None,
               pasted: int = 200, seed: int = 0) -> RetrievalSets:
    """``worn``: held-out worn photos with their product (``group``), also the scenery pieces
    are pasted on; ``catalog``: held-out clean product photos with a category."""
    worn_images = [load_image_file(r.path).image for r in worn]
    catalog_images = [load_image_file(r.path).image for r in catalog]
    groups = np.asarray([r.group or "" for r in worn])
    queries, answers, selves = [], [], []
    for n, record in enumerate(worn):
        if not record.group:
            continue
        others = np.flatnonzero((groups == record.group) & (np.arange(len(worn)) != n))
        if len(others):
            queries.append(QueryCrops.of(worn_images[n], localizer))
            answers.append(others)
            selves.append(n)
    scenery = worn_images
    rng = np.random.default_rng(seed)
    pieces = [(n, cut) for n, image in enumerate(catalog_images) if (cut := cut_from_white(image)) is not None]
    if not pieces or not scenery:
        raise ValueError("need catalog photos on a plain sweep and held-out worn photos as scenery")
    pasted_queries, pasted_answers = [], []
    while len(pasted_queries) < pasted:
        n, cut = pieces[int(rng.integers(len(pieces)))]
        scene = paste_piece(rng, cut, scenery[int(rng.integers(len(scenery)))])
        if scene is not None:
            pasted_queries.append(QueryCrops.of(scene.image, localizer))
            pasted_answers.append(np.asarray([n]))
    return RetrievalSets(queries, answers, selves, worn_images + catalog_images, pasted_queries,
                         pasted_answers, catalog_images, [r.labels["category"] for r in catalog])


def judge(sets: RetrievalSets, embed: Embed, modes: Sequence[str] = QUERY_MODES,
          rerank: Rerank | None = None) -> dict:
    """Every measure for one descriptor (and re-ranker), per query mode."""
    worn_gallery = embed(sets.worn_gallery)
    # The worn gallery ends with the catalog photos (``build_sets``): their rows, not a second pass.
    catalog = worn_gallery[len(worn_gallery) - len(sets.catalog):]
    worn_views = embed_views(embed, sets.worn_queries)
    pasted_views = embed_views(embed, sets.pasted_queries)
    out: dict = {"similar_items_category": category_precision(catalog, sets.catalog_categories)}
    for mode in modes:
        worn = query_similarities(embed, sets.worn_queries, worn_gallery, mode, rerank, exclude=sets.worn_self,
                                  views=worn_views)
        pasted = query_similarities(embed, sets.pasted_queries, catalog, mode, rerank, views=pasted_views)
        out[mode] = {"worn_same_product": recall_at(ranks_of_answers(worn, sets.worn_answers)),
                     "pasted_to_catalog": recall_at(ranks_of_answers(pasted, sets.pasted_answers))}
    return out
