"""Finding the same piece: instance retrieval measured three ways, for any image descriptor.

A shopper's photo of a worn piece must find that piece's catalog shot. No real worn-versus-
catalog pairs exist in the shared data, so these measures stand in, each blind to something
the others can be fooled by:

* **worn -> same product**: one worn photo finds the other photos of its product among the
  held-out worn photos plus the clean product photos as distractors. Only worn products no
  part of the model trained on (``unseen_worn``) are judged; the instance head trains on the
  others. The photos of one product come from one shoot, so the background helps here; read
  it with the next measure.
* **pasted shopper photos -> catalog**: a held-out catalog photo's piece, cut from its white
  sweep, pasted small onto a held-out worn photo, must find its own catalog shot. Only the
  piece is shared, so backgrounds cannot help; the pixels are the catalog's own, so this is
  closer to near-duplicate search than real shopper photos are.
* **category precision of similar items** on clean catalog photos: P@10, the share of each
  photo's ten nearest that show the same category (what "similar items" must not lose).
* **render -> render** (``retrieval_renders``): a held-out studio piece finds its own other
  views under another camera, backdrop and light; exact pairs, but studio pictures, not photos.

Queries are searched whole, by the localiser's top piece, or ``multi`` (whole photo and each
detected piece, fused by the best similarity per catalog item), as ``search`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from jewelsearch.evaluate.metrics import bootstrap_interval
from jewelsearch.recognize.localizer import Localizer, crop, piece_crop

Embed = Callable[[Sequence[Image.Image]], np.ndarray]  # photos -> unit vectors [n, d]
# (query vector [d], candidate vectors [c, d], candidate similarities [c]) -> new scores [c]
Rerank = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# (searched view's number among all views of all queries, candidate gallery rows [c],
#  candidate scores [c]) -> new scores [c]: a check that needs more than the vectors
LocalCheck = Callable[[int, np.ndarray, np.ndarray], np.ndarray]
RERANK_CANDIDATES = 100  # as the server re-ranks: only the top of the first list
MAX_PIECES = 3  # detected pieces searched per photo besides the whole photo
QUERY_MODES = ("whole", "piece", "multi")


@dataclass
class QueryCrops:
    """One query photo as searched: the whole photo first, then up to ``MAX_PIECES`` pieces."""
    views: list[Image.Image]
    top_piece: int | None  # index into views of the localiser's most confident usable piece

    @classmethod
    def of(cls, image: Image.Image, localizer: Localizer | None) -> "QueryCrops":
        if localizer is None:
            return cls([image], None)
        boxes = localizer.usable_boxes(localizer.locate(image))
        views = [image]
        top = piece_crop(image, boxes)
        if top is not None:
            views.append(top)
            views += [crop(image, b) for b in boxes[1:MAX_PIECES]]
        return cls(views, 1 if top is not None else None)


def embed_views(embed: Embed, queries: Sequence[QueryCrops]) -> list[np.ndarray]:
    """Every view of every query embedded once, in one call: [views of query n, d] per query.
    The query modes choose among these rows, so judging three modes costs one embedding pass."""
    flat = [view for q in queries for view in q.views]
    vectors = embed(flat) if flat else np.zeros((0, 0), np.float32)
    ends = np.cumsum([len(q.views) for q in queries])
    return np.split(vectors, ends[:-1]) if len(queries) else []


def query_similarities(embed: Embed, queries: Sequence[QueryCrops], gallery: np.ndarray,
                       mode: str, rerank: Rerank | None = None, exclude: Sequence[int | None] | None = None,
                       views: Sequence[np.ndarray] | None = None, local: LocalCheck | None = None,
                       local_candidates: int = 20) -> np.ndarray:
    """[queries, gallery] similarities for one query mode; ``multi`` takes, per catalog item,
    the best of the whole photo and its pieces (a piece found in any crop is found).
    ``rerank`` rescores each searched view's top ``RERANK_CANDIDATES`` (the rest fall below
    them); ``exclude[n]`` is a gallery row query n must not find (the query photo itself);
    ``views`` are ``embed_views`` of these queries, when the caller already has them;
    ``local`` rescores each searched view's top ``local_candidates`` after any ``rerank``,
    told the view's number in ``embed_views``' flat order."""
    if mode not in QUERY_MODES:
        raise ValueError(f"mode must be one of {QUERY_MODES}")
    views = embed_views(embed, queries) if views is None else views
    chosen, owner, flat = [], [], []
    first = 0  # the flat number of query n's first view
    for n, (q, vectors) in enumerate(zip(queries, views)):
        if mode == "whole" or (mode == "piece" and q.top_piece is None):
            picked = [0]
        elif mode == "piece":
            picked = [q.top_piece]
        else:
            picked = list(range(len(vectors)))
        chosen.append(vectors[picked])
        owner += [n] * len(picked)
        flat += [first + i for i in picked]
        first += len(vectors)
    vectors = np.concatenate(chosen)
    sims = vectors @ gallery.T
    if exclude is not None:
        for row, n in enumerate(owner):
            if exclude[n] is not None:
                sims[row, exclude[n]] = -np.inf
    if rerank is not None:
        sims = _reranked(rerank, vectors, gallery, sims)
    if local is not None:
        sims = _locally_checked(local, flat, sims, local_candidates)
    out = np.full((len(queries), gallery.shape[0]), -np.inf, dtype=np.float32)
    np.maximum.at(out, np.asarray(owner), sims)
    return out


def _reranked(rerank: Rerank, vectors: np.ndarray, gallery: np.ndarray, sims: np.ndarray) -> np.ndarray:
    out = np.full_like(sims, -np.inf)
    for row in range(len(sims)):
        top = np.argsort(-sims[row])[:RERANK_CANDIDATES]
        top = top[np.isfinite(sims[row, top])]
        scores = np.asarray(rerank(vectors[row], gallery[top], sims[row, top]), dtype=np.float32)
        out[row, top] = scores  # beyond the candidates nothing is ranked, as in the server
    return out


def _locally_checked(local: LocalCheck, flat: Sequence[int], sims: np.ndarray, candidates: int) -> np.ndarray:
    out = sims.copy()
    for row in range(len(sims)):
        top = np.argsort(-sims[row], kind="stable")[:candidates]
        top = top[np.isfinite(sims[row, top])]
        out[row, top] = np.asarray(local(flat[row], top, sims[row, top]), dtype=np.float32)
    return out


def recall_at(ranks: np.ndarray) -> dict:
    """R@1, R@10 and MRR with 95 % bootstrap intervals over queries."""
    out = {"queries": int(len(ranks))}
    for name, values in (("recall@1", ranks < 1), ("recall@10", ranks < 10), ("mrr", 1.0 / (ranks + 1))):
        values = values.astype(np.float64)
        low, high = bootstrap_interval(values)
        out[name] = round(float(values.mean()), 4) if len(values) else 0.0
        out[name + "_interval"] = [round(low, 4), round(high, 4)]
    return out


def ranks_of_answers(sims: np.ndarray, answers: Sequence[np.ndarray]) -> np.ndarray:
    """Rank (0 = first) of the best-placed right answer for each query."""
    ranks = []
    for row, right in zip(sims, answers):
        best = row[right].max()
        ranks.append(int((row > best).sum()))
    return np.asarray(ranks)


def average_precisions(sims: np.ndarray, answers: Sequence[np.ndarray]) -> np.ndarray:
    """Average precision of each query's full ranking (a tie with a wrong row counts against).

    >>> average_precisions(np.array([[0.9, 0.8, 0.7]]), [np.array([0, 2])]).round(3).tolist()
    [0.833]
    """
    out = []
    for row, right in zip(sims, answers):
        wrong = np.ones(len(row), dtype=bool)
        wrong[right] = False
        right_scores = np.sort(row[right])[::-1]
        # The k-th best right answer's rank: k, plus every wrong row scoring above or level with it.
        ranks = np.arange(1, len(right) + 1) + np.asarray([(row[wrong] >= s).sum() for s in right_scores])
        out.append(float(np.mean(np.arange(1, len(right) + 1) / ranks)) if len(right) else 0.0)
    return np.asarray(out)


def mean_average_precision(sims: np.ndarray, answers: Sequence[np.ndarray]) -> dict:
    values = average_precisions(sims, answers)
    low, high = bootstrap_interval(values)
    return {"map": round(float(values.mean()), 4) if len(values) else 0.0,
            "map_interval": [round(low, 4), round(high, 4)]}


def category_precision(vectors: np.ndarray, categories: Sequence[str], k: int = 10) -> dict:
    """P@k of leave-one-out neighbours sharing the category, with a bootstrap interval."""
    cats = np.asarray(categories)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1)[:, :k]
    per_photo = (cats[nearest] == cats[:, None]).mean(1)
    low, high = bootstrap_interval(per_photo)
    return {"photos": int(len(cats)), f"precision@{k}": round(float(per_photo.mean()), 4),
            f"precision@{k}_interval": [round(low, 4), round(high, 4)]}
