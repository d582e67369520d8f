"""A user's engagement, weighted by kind and decayed by age."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping


@dataclass
class UserHistory:
    user_id: str
    # item id -> decayed engagement weight
    weights: dict[int, float] = field(default_factory=dict)
    purchased: set[int] = field(default_factory=set)
    # item id -> strongest event kind, for reasons ("you liked")
    strongest_kind: dict[int, str] = field(default_factory=dict)
    last_seen: dict[int, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.weights)


def decay(age_seconds: float, half_life_days: float) -> float:
    """Exponential decay: weight halves every ``half_life_days``.

    >>> round(decay(86400 * 7, 7), 3)
    0.5
    """
    if half_life_days <= 0:
        return 1.0
    return 0.5 ** (max(age_seconds, 0.0) / (half_life_days * 86400.0))


def build_history(user_id: str, events: Iterable[Mapping[str, Any]], *,
                  half_life_days: float = 30.0, now: float | None = None,
                  kind_rank: Mapping[str, float] | None = None) -> UserHistory:
    now = time.time() if now is None else now
    history = UserHistory(user_id)
    rank = kind_rank or {}
    for event in events:
        item = int(event["item_id"])
        weight = float(event["weight"]) * decay(now - float(event["ts"]), half_life_days)
        if not math.isfinite(weight):
            continue
        history.weights[item] = history.weights.get(item, 0.0) + weight
        kind = event["kind"]
        if kind == "purchase":
            history.purchased.add(item)
        best = history.strongest_kind.get(item)
        if best is None or rank.get(kind, 0) > rank.get(best, 0):
            history.strongest_kind[item] = kind
        history.last_seen[item] = max(history.last_seen.get(item, 0.0), float(event["ts"]))
    return history
