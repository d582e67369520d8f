"""Per-shopper recommendations through the service, and the caches they read.

``Recommendations`` keeps two caches that every request would otherwise rebuild:
collaborative signals (co-engagement and popularity, rebuilt under a lock when events
changed: at most once per refresh interval, but at once after an erasure) and the attribute
table (rebuilt after any item write; two threads may both rebuild it, which only costs time).
The ALS item factors that `jewelsearch recommender fit` saved are loaded once per saved file,
and stop being used the moment the event log counts an erasure they predate.
It also words the reasons: "like an item you viewed" names the item.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterable

import numpy as np

from jewelsearch.recommend import (
    AttributeTable,
    CollaborativeSignals,
    Recommendation,
    Recommender,
    history_from_rows,
)
from jewelsearch.recommend.factors import ItemFactors
from jewelsearch.search.fitted_factors import factors_path, load_current
from jewelsearch.search.items import public_item
from jewelsearch.search.maintenance import check_model
from jewelsearch.search.options import RecommendationSettings
from jewelsearch.search.params import Filters
from jewelsearch.search.state import ServiceState
from jewelsearch.storage.events import EVENT_KINDS

log = logging.getLogger(__name__)


class Recommendations:
    def __init__(self, state: ServiceState, settings: RecommendationSettings):
        self.state = state
        self.settings = settings
        self._signals: CollaborativeSignals | None = None
        self._signals_built_at = 0.0
        self._signals_marker: tuple[int, int] = (-1, -1)  # EventStore.change_marker at the build
        self._signals_lock = threading.Lock()
        self._attributes: tuple[int, AttributeTable] | None = None
        self._factors: tuple[tuple[int, int, int], ItemFactors | None] | None = None
        self._said_factors_missing = False  # log the missing factors once, not on every request

    def collaborative_signals(self) -> CollaborativeSignals:
        """Co-engagement and popularity, rebuilt when events changed: new events at most every
        refresh interval, an erasure at once (the erased shopper's share must not be served)."""
        events = self.state.catalog.events
        now = time.time()
        marker = events.change_marker()
        built = self._signals_marker
        stale = self._signals is None or marker[1] != built[1] or (
            marker != built and now - self._signals_built_at >= self.settings.signals_refresh_seconds)
        if stale:
            with self._signals_lock:
                if self._signals is None or self._signals_marker != marker:
                    self._signals = CollaborativeSignals.build(
                        events.iterate_all(), now=now,
                        popularity_half_life_days=self.settings.popularity_half_life_days)
                    self._signals_marker, self._signals_built_at = marker, now
        return self._signals

    def drop_signals(self) -> None:
        """Forget the cached co-engagement and popularity; the next request rebuilds them."""
        with self._signals_lock:
            self._signals = None
            self._signals_marker = (-1, -1)

    def item_factors(self) -> ItemFactors | None:
        """The saved ALS factors, reloaded when the file changes; None when there are none, or
        when an erasure came after their fit (this process or another one)."""
        path = factors_path(self.state.catalog)
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size, self.state.catalog.events.change_marker()[1])
        except FileNotFoundError:
            self._factors = None
            return None
        cached = self._factors
        if cached is None or cached[0] != key:
            cached = (key, load_current(self.state.catalog))
            self._factors = cached
        fitted = cached[1]
        return fitted if fitted is not None and fitted.erasures == key[2] else None

    def drop_factors(self) -> None:
        self._factors = None

    def blend_factors(self) -> ItemFactors | None:
        """The factors the blend reads: None when its ALS weight is 0, or when none are fitted (or
        an erasure came after the fit), in which case the ALS source is simply absent from the
        blend; that is logged once each time it starts being the case."""
        weight = self.settings.blend_weights.factors
        if weight <= 0:
            return None
        fitted = self.item_factors()
        if fitted is None and not self._said_factors_missing:
            log.warning("ALS source absent from recommendations: [blend] factors is %s but there are no "
                        "current fitted factors; run `jewelsearch recommender fit` (again after an erasure)",
                        weight)
        self._said_factors_missing = fitted is None
        return fitted

    def attribute_table(self) -> AttributeTable:
        """Every item's category, metal, gemstone, cut and price as arrays, rebuilt after item writes."""
        items = self.state.catalog.items
        version = items.version()
        cached = self._attributes
        if cached is None or cached[0] != version:
            cached = (version, AttributeTable.from_rows(items.attribute_rows()))
            self._attributes = cached
        return cached[1]

    def stored_vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """Vectors from the in-memory index where it holds them, else from the store (e.g. a
        deleted item still in someone's history)."""
        state = self.state
        ids = list(dict.fromkeys(int(i) for i in ids))
        indexed = [i for i in ids if i in state.index]
        try:
            found = dict(zip(indexed, state.index.vectors_for(indexed))) if indexed else {}
        except KeyError:  # removed between the check and the read
            found = {}
        missing = [i for i in ids if i not in found]
        if missing:
            found.update(state.catalog.embeddings.get_many(missing, state.encoder.model_id))
        return found

    def recommend(self, user_id: str, k: int = 10, *, filters: Filters | None = None,
                  text: str | None = None, seed_items: list[Any] | None = None,
                  exclude_seen: bool = False) -> dict[str, Any]:
        started = time.perf_counter()
        state, settings = self.state, self.settings
        check_model(state)
        items = state.catalog.items
        history = history_from_rows(user_id, state.catalog.events.rows_for_user(user_id),
                                    half_life_days=settings.half_life_days, kind_rank=EVENT_KINDS,
                                    visit_half_life_hours=settings.visit_half_life_hours)
        seeds = [items.get(s)["id"] for s in (seed_items or [])]
        recommender = Recommender(
            state.index, self.stored_vectors, self.collaborative_signals(), settings.blend_weights,
            category_of=lambda ids: {i: r["category"] for i, r in items.get_many(ids).items()},
            attributes=self.attribute_table(),
            factors=self.blend_factors())
        text_vector = state.text_vectors.vector(text) if text else None
        allowed = items.filter_ids(filters.for_store()) if filters else None
        recent = time.time() - settings.recently_seen_days * 86400
        exclude = [i for i, ts in history.last_seen.items() if ts >= recent] if exclude_seen else []
        recs = recommender.recommend(history, k, allowed_ids=allowed, text_vector=text_vector,
                                     seed_items=seeds, exclude=exclude)
        return {"user_id": user_id, "results": self._rows_with_reasons(recs),
                "took_ms": round((time.perf_counter() - started) * 1000, 2)}

    def _rows_with_reasons(self, recs: list[Recommendation]) -> list[dict[str, Any]]:
        """Each recommendation as a public item row with its score and worded reasons."""
        items = self.state.catalog.items
        rows = items.get_many([r.item_id for r in recs])
        referenced = items.get_many(
            [reason["item_id"] for r in recs for reason in r.reasons if "item_id" in reason])
        results = []
        for rec in recs:
            if rec.item_id not in rows:
                continue
            reasons = [word_reason(reason, referenced) for reason in rec.reasons]
            results.append(dict(public_item(rows[rec.item_id]), score=round(rec.score, 6), reasons=reasons))
        return results


def word_reason(reason: dict[str, Any], referenced: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``reason`` whose "an item" names the item it refers to, by title.

    >>> word_reason({"text": "like an item you liked", "item_id": 3}, {3: {"id": 3, "title": "Halo"}})
    {'text': 'like “Halo” you liked', 'item_id': 3}
    """
    reason = dict(reason)
    ref = referenced.get(reason.get("item_id"))
    if ref is not None:
        name = ref["title"] or f"item {ref['id']}"
        reason["text"] = reason["text"].replace("an item", f"“{name}”", 1)
    return reason
