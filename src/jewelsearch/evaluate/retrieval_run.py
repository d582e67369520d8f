"""Build the instance-retrieval sets once, then judge each descriptor, query mode and re-ranker
on them (``retrieval.py`` says what each measure can and cannot tell)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from jewelsearch.embed.images import load_image_file
from jewelsearch.evaluate.retrieval import (
    QUERY_MODES,
    Embed,
    QueryCrops,
    Rerank,
    category_precision,
    LocalCheck,
    embed_views,
    mean_average_precision,
    query_similarities,
    ranks_of_answers,
    recall_at,
)
from jewelsearch.evaluate.retrieval_renders import RenderPairs
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
    # Held-out studio renders (``retrieval_renders``): view 0 of each spec queries the other views.
    render_queries: list[QueryCrops] = field(default_factory=list)
    render_gallery: list[Image.Image] = field(default_factory=list)
    render_answers: list[np.ndarray] = field(default_factory=list)
    render_skipped: str | None = "no renders asked for"

    def describe(self) -> dict:
        out = {"worn_queries": len(self.worn_queries), "worn_gallery": len(self.worn_gallery),
               "pasted_queries": len(self.pasted_queries), "catalog_photos": len(self.catalog)}
        if self.render_skipped:
            out["render_skipped"] = self.render_skipped
        else:
            out.update(render_queries=len(self.render_queries), render_gallery=len(self.render_gallery))
        return out

    def add_renders(self, paths: Sequence[Path], pairs: RenderPairs, localizer: Localizer | None) -> None:
        """Held-out render views (``retrieval_renders.render_set``) as queries and gallery."""
        images = [load_image_file(p).image for p in paths]
        self.render_queries = [QueryCrops.of(images[row], localizer) for row in pairs.query_rows]
        self.render_gallery = [images[row] for row in pairs.gallery_rows]
        self.render_answers = pairs.answers()
        self.render_skipped = None


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


def remembered(embed: Embed) -> Embed:
    """``embed`` that embeds a given list of photos once: the re-rankers and the local check are
    judged on one descriptor's vectors, and a pass over every set costs minutes on a small CPU.
    Keyed by the photos' identities, which the sets keep alive."""
    memo: dict[tuple[int, ...], np.ndarray] = {}

    def embed_once(images: Sequence[Image.Image]) -> np.ndarray:
        key = tuple(id(image) for image in images)
        if key not in memo:
            memo[key] = embed(images)
        return memo[key]
    return embed_once


LocalFeatures = Callable[[Sequence[Image.Image]], list[np.ndarray]]  # photos -> descriptor rows each


class LocalMatching:
    """The local-feature check (``index.local_match``) as ``judge`` applies it, for one
    ``RetrievalSets``: each photo's descriptors are taken once, by set name (they depend on the
    tower, not on the descriptor judged), then ``score(query rows, candidate rows, global
    scores)`` rescores each searched view's top candidates."""

    def __init__(self, features: LocalFeatures,
                 score: Callable[[np.ndarray, list[np.ndarray], np.ndarray], np.ndarray]):
        self.features, self.score = features, score
        self._memo: dict[str, list[np.ndarray]] = {}

    def scored_by(self, score: Callable[[np.ndarray, list[np.ndarray], np.ndarray], np.ndarray]) -> "LocalMatching":
        """The same descriptors (taken once), another score: one blend weight after another."""
        other = LocalMatching(self.features, score)
        other._memo = self._memo
        return other

    def of(self, name: str, images: Sequence[Image.Image]) -> list[np.ndarray]:
        if name not in self._memo:
            self._memo[name] = self.features(list(images))
        return self._memo[name]

    def check(self, query_rows: list[np.ndarray], gallery_rows: list[np.ndarray], offset: int = 0) -> LocalCheck:
        """``offset``: where the searched gallery starts in ``gallery_rows``."""
        return lambda view, top, scores: self.score(query_rows[view], [gallery_rows[offset + i] for i in top],
                                                    scores)


def _flat_views(queries: Sequence[QueryCrops]) -> list[Image.Image]:
    return [view for q in queries for view in q.views]


def judge(sets: RetrievalSets, embed: Embed, modes: Sequence[str] = QUERY_MODES,
          rerank: Rerank | None = None, local: LocalMatching | None = None,
          ranks_out: dict | None = None) -> dict:
    """Every measure for one descriptor (and re-ranker or local check), per query mode;
    ``ranks_out[mode][measure]`` gets each query's rank of its first right answer."""
    worn_gallery = embed(sets.worn_gallery)
    # The worn gallery ends with the catalog photos (``build_sets``): their rows, not a second pass.
    catalog = worn_gallery[len(worn_gallery) - len(sets.catalog):]
    worn_views = embed_views(embed, sets.worn_queries)
    pasted_views = embed_views(embed, sets.pasted_queries)
    renders = not sets.render_skipped
    if renders:
        render_gallery = embed(sets.render_gallery)
        render_views = embed_views(embed, sets.render_queries)
    checks = {}
    if local is not None:
        # The catalog's local rows are the worn gallery's last ones, as for the vectors.
        gallery = local.of("worn gallery", sets.worn_gallery)
        checks["worn"] = local.check(local.of("worn queries", _flat_views(sets.worn_queries)), gallery)
        checks["pasted"] = local.check(local.of("pasted queries", _flat_views(sets.pasted_queries)), gallery,
                                       offset=len(sets.worn_gallery) - len(sets.catalog))
        if renders:
            checks["render"] = local.check(local.of("render queries", _flat_views(sets.render_queries)),
                                           local.of("render gallery", sets.render_gallery))
    out: dict = {"similar_items_category": category_precision(catalog, sets.catalog_categories)}
    for mode in modes:
        worn = query_similarities(embed, sets.worn_queries, worn_gallery, mode, rerank, exclude=sets.worn_self,
                                  views=worn_views, local=checks.get("worn"))
        pasted = query_similarities(embed, sets.pasted_queries, catalog, mode, rerank, views=pasted_views,
                                    local=checks.get("pasted"))
        ranks = {"worn_same_product": ranks_of_answers(worn, sets.worn_answers),
                 "pasted_to_catalog": ranks_of_answers(pasted, sets.pasted_answers)}
        out[mode] = {name: recall_at(r) for name, r in ranks.items()}
        if renders:
            render = query_similarities(embed, sets.render_queries, render_gallery, mode, rerank,
                                        views=render_views, local=checks.get("render"))
            ranks["render_to_render"] = ranks_of_answers(render, sets.render_answers)
            out[mode]["render_to_render"] = dict(recall_at(ranks["render_to_render"]),
                                                 **mean_average_precision(render, sets.render_answers))
        if ranks_out is not None:
            ranks_out[mode] = ranks
    return out
