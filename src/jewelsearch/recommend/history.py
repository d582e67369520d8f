"""A user's engagement, weighted by kind and decayed by age."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

VISIT_HALF_LIFE_HOURS = 4.0  # a visit is an evening's browsing, not the whole week


@dataclass
class UserHistory:
    user_id: str
    # item id -> decayed engagement weight
    weights: dict[int, float] = field(default_factory=dict)
    purchased: set[int] = field(default_factory=set)
    # item id -> strongest event kind, for reasons ("you liked")
    strongest_kind: dict[int, str] = field(default_factory=dict)
    last_seen: dict[int, float] = field(default_factory=dict)
    # item id -> weight decayed from the shopper's own latest event on a short half-life:
    # what the current visit is about.
    recent: dict[int, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.weights)

    def profile(self, recency: float) -> dict[int, float]:
        """Long-term and current-visit engagement mixed, each scaled to sum to one;
        ``recency`` is the current visit's share."""
        long_total = sum(self.weights.values())
        recent_total = sum(self.recent.values())
        if long_total <= 0:
            return {}
        if recency <= 0 or recent_total <= 0:
            return {i: v / long_total for i, v in self.weights.items()}
        return {i: (1 - recency) * v / long_total + recency * self.recent.get(i, 0.0) / recent_total
                for i, v in self.weights.items()}


def decay(age_seconds, half_life_days: float):
    """Exponential decay: weight halves every ``half_life_days``; ages may be an array.

    >>> round(decay(86400 * 7, 7), 3)
    0.5
    """
    if half_life_days <= 0:
        return 1.0
    # The builtin max for single ages: this runs once per event when popularity is built.
    age = np.maximum(age_seconds, 0.0) if isinstance(age_seconds, np.ndarray) else max(age_seconds, 0.0)
    return 0.5 ** (age / (half_life_days * 86400.0))


def build_history(user_id: str, events: Iterable[Mapping[str, Any]], *,
                  half_life_days: float = 30.0, now: float | None = None,
                  kind_rank: Mapping[str, float] | None = None,
                  visit_half_life_hours: float = VISIT_HALF_LIFE_HOURS) -> UserHistory:
    rows = [(e["item_id"], e["kind"], e["ts"], e["weight"]) for e in events]
    return history_from_rows(user_id, rows, half_life_days=half_life_days, now=now, kind_rank=kind_rank,
                             visit_half_life_hours=visit_half_life_hours)


def history_from_rows(user_id: str, rows: Sequence[tuple[Any, str, Any, Any]], *,
                      half_life_days: float = 30.0, now: float | None = None,
                      kind_rank: Mapping[str, float] | None = None,
                      visit_half_life_hours: float = VISIT_HALF_LIFE_HOURS) -> UserHistory:
    """The same as ``build_history`` from (item_id, kind, ts, weight) tuples, in array operations:
    a heavy shopper's thousand events cost about a millisecond."""
    now = time.time() if now is None else now
    history = UserHistory(user_id)
    if not rows:
        return history
    items = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
    kinds = [r[1] for r in rows]
    ts = np.fromiter((float(r[2]) for r in rows), dtype=np.float64, count=len(rows))
    raw_weight = np.fromiter((float(r[3]) for r in rows), dtype=np.float64, count=len(rows))
    weight = raw_weight * decay(now - ts, half_life_days)
    # Measured from the shopper's own latest event, so a visit weeks ago still has a "current" part.
    visit = raw_weight * decay(ts.max() - ts, visit_half_life_hours / 24.0)
    finite = np.isfinite(weight)
    unique, group = np.unique(items, return_inverse=True)
    totals = np.bincount(group[finite], weights=weight[finite], minlength=len(unique))
    visit_totals = np.bincount(group[finite], weights=visit[finite], minlength=len(unique))
    last = np.full(len(unique), -np.inf)
    np.maximum.at(last, group, ts)
    rank = kind_rank or {}
    ranks = np.array([rank.get(k, 0) for k in kinds], dtype=np.float64)
    # Strongest kind per item: the first event of the highest rank (stable sort keeps order).
    order = np.lexsort((np.arange(len(rows)), -ranks, group))
    first = np.r_[True, group[order][1:] != group[order][:-1]]
    strongest = {int(unique[group[i]]): kinds[i] for i in order[first].tolist()}
    seen = np.zeros(len(unique), dtype=bool)
    seen[group[finite]] = True
    for u, item in enumerate(unique.tolist()):
        if seen[u]:
            history.weights[item] = float(totals[u])
            history.strongest_kind[item] = strongest[item]
            history.last_seen[item] = float(last[u])
            history.recent[item] = float(visit_totals[u])
    history.purchased = {int(items[i]) for i, k in enumerate(kinds) if k == "purchase" and finite[i]}
    return history
