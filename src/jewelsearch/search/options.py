"""The search service's settings, grouped: request limits, index choice, text-search fusion,
recommendation tuning.

``search.wiring.open_service`` fills them from ``Settings``; tests and benchmarks take the
defaults, which are the same as ``Settings``' own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from jewelsearch.recommend import BlendWeights


@dataclass
class Limits:
    """What one request may ask for."""

    max_upload_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_text_chars: int = 500
    max_k: int = 200


@dataclass
class IndexSettings:
    """Which FAISS index to build (``auto`` chooses by catalog size within the memory budget)."""

    kind: str = "auto"
    memory_budget_bytes: int = 2 << 30
    # False in a process that reads a home another process writes (a local read replica): an
    # index that disagrees with the store is rebuilt in memory and never saved over the writer's.
    persist: bool = True
    # True only for such a reader that chose a newer save of the writer's on purpose: a saved
    # index behind the store (the writer saves every 2 s, so under a steady write stream its
    # save is always a few items behind when a reader looks) is used as it is, rather than
    # rebuilt, and the items written since show at the next save.
    accept_saved_behind_store: bool = False


@dataclass
class RecommendationSettings:
    """How a shopper's history is weighed and how recommendations are blended."""

    blend_weights: BlendWeights = field(default_factory=BlendWeights)
    half_life_days: float = 30.0  # a shopper's engagement halves in weight every this many days
    popularity_half_life_days: float = 7.0  # "popular this week"
    signals_refresh_seconds: float = 30.0  # co-engagement is rebuilt at most this often
    recently_seen_days: float = 7.0  # what ``exclude_seen`` leaves out
    visit_half_life_hours: float = 4.0


@dataclass(frozen=True)
class HybridSettings:
    """How text search combines its signals (``search/text_query.py``): the weight of each
    ranked list, the fusion method ("convex" or "rrf"), how many candidates each list gives,
    and how much of a given attribute's boost a predicted one earns. The defaults were chosen
    on the tuning queries of ``jewelsearch eval search`` (docs/search_quality.md)."""

    # Chosen 2026-12-06 by tools/tune_search_fusion.py: the best mean R-precision@10 on the
    # tuning queries of four catalogs (reports/search/fusion-tuning.json).
    weights: Mapping[str, float] = field(default_factory=lambda: {"semantic": 1.0, "lexical": 0.5,
                                                                  "attributes": 3.0})
    method: str = "convex"
    pool: int = 200
    predicted_credit: float = 0.5
    # Where recognition guessed a metal, gemstone or cut, each of its top three guesses earns
    # min(1, probability / this) of ``predicted_credit`` (``search.attribute_match.guess_credit``);
    # None: only a top guess that was filled in earns it. 0.5 (the fill threshold) chosen
    # 2026-12-08 on fresh tuning renders; held out, photos-only attribute R-precision@10 rose
    # 0.515 -> 0.543 EN, 0.470 -> 0.534 ZH over two render catalogs, and 0.465 -> 0.518 EN on a
    # third made later (docs/experiments/2026-12-08-guess-credit.md).
    guess_full_at: float | None = 0.5
    # The text tower reads English: search other languages by the English words understood.
    translate: bool = True
    # ``a`` in an item's semantic score, (1 - a) * image similarity + a * text-field similarity
    # (``search/item_text_space.py``); 0 compares the query with the photos only. Chosen
    # 2026-12-06 by tools/tune_text_field_weight.py (reports/search/text-field-tuning.json).
    text_field_weight: float = 0.75
    # How many best text-field matches join the candidates (beside the image search's and the
    # word index's ``pool`` each). 200, 100, 50 and 20 ranked the tuning and held-out queries
    # identically (2026-12-06); each extra candidate costs rows read, matched and counted.
    text_field_pool: int = 50
