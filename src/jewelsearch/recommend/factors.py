"""Matrix-factorisation taste: ALS item factors, fitted offline, folded in per request.

ALS (implicit feedback, Hu, Koren and Volinsky 2008, fitted by the ``implicit`` library) learns
a vector per item such that shoppers' engagement is explained by a vector per shopper. Unlike
co-engagement it generalises past items two shoppers both touched, and unlike EASE's dense
item-item matrix it scales to 100k+ items (n x factors floats).

Only the item factors are kept. A request folds the shopper in: the least-squares shopper
vector for their own history against the fixed item factors (the closed form of one ALS user
step), so a new event counts at once, and no per-shopper vector is stored that an erasure would
have to find. The item factors still carry every fitted shopper's events; erasure therefore
drops them (``search/erasure.py``), and ``erasures`` records the erasure count they were
fitted under so that a process whose copy predates an erasure stops using it.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

FORMAT = 1
DEFAULT_FACTORS = 32
DEFAULT_REGULARISATION = 10.0  # the ALS baseline's choice on the given-field tuning populations (2026-12-07)
DEFAULT_ALPHA = 1.0
DEFAULT_ITERATIONS = 15
MAX_HISTORY_ITEMS = 200  # strongest engagements folded in; bounds a heavy shopper's cost


class FactorsError(ValueError):
    """A factors file that cannot be used (wrong format, damaged)."""


@dataclass
class ItemFactors:
    item_ids: np.ndarray  # int64 [n]
    factors: np.ndarray  # float32 [n, f]
    regularisation: float
    alpha: float
    erasures: int  # the event log's erasure count when the events were read
    events: int  # how many events were fitted on
    shoppers: int
    row_of: dict[int, int] = field(default_factory=dict, repr=False)
    _gram: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if not self.row_of:
            self.row_of = {int(i): r for r, i in enumerate(self.item_ids.tolist())}

    @property
    def gram(self) -> np.ndarray:
        if self._gram is None:  # Y'Y, shared by every fold-in
            y = self.factors.astype(np.float64)
            self._gram = y.T @ y
        return self._gram

    @classmethod
    def fit(cls, events: Iterable[Mapping[str, Any]], *, erasures: int, factors: int = DEFAULT_FACTORS,
            regularisation: float = DEFAULT_REGULARISATION, alpha: float = DEFAULT_ALPHA,
            iterations: int = DEFAULT_ITERATIONS, seed: int = 0) -> "ItemFactors":
        """Fit on events carrying ``user_id``, ``item_id`` and ``weight`` (the event-kind weight);
        a shopper's engagement with an item is log(1 + its summed weights)."""
        from implicit.cpu.als import AlternatingLeastSquares
        from scipy import sparse
        from threadpoolctl import threadpool_limits  # implicit's own advice: BLAS threads fight its own
        totals: dict[tuple[str, int], float] = defaultdict(float)
        count = 0
        for event in events:
            totals[(event["user_id"], int(event["item_id"]))] += float(event["weight"])
            count += 1
        users = {u: r for r, u in enumerate(sorted({u for u, _ in totals}))}
        item_ids = np.asarray(sorted({i for _, i in totals}), dtype=np.int64)
        if len(users) < 2 or len(item_ids) < 2:
            raise FactorsError("too few events to fit: need at least two shoppers and two items")
        column = {int(i): c for c, i in enumerate(item_ids.tolist())}
        rows = np.fromiter((users[u] for u, _ in totals), dtype=np.int64, count=len(totals))
        cols = np.fromiter((column[i] for _, i in totals), dtype=np.int64, count=len(totals))
        values = np.log1p(np.fromiter(totals.values(), dtype=np.float64, count=len(totals)))
        matrix = sparse.csr_matrix((values.astype(np.float32), (rows, cols)), shape=(len(users), len(item_ids)))
        size = max(1, min(factors, len(item_ids) - 1))
        model = AlternatingLeastSquares(factors=size, regularization=regularisation, alpha=alpha,
                                        iterations=iterations, random_state=seed, num_threads=1)
        with contextlib.redirect_stdout(io.StringIO()), threadpool_limits(1, "blas"):
            model.fit(matrix, show_progress=False)
        return cls(item_ids, np.ascontiguousarray(model.item_factors, dtype=np.float32), regularisation,
                   alpha, erasures, count, len(users))

    def shopper_vector(self, history_weights: Mapping[int, float]) -> np.ndarray | None:
        """The ALS shopper step for one history: (Y'Y + Y_h'(C_h - I)Y_h + lambda I)^-1 Y_h' C_h 1,
        with confidence C = 1 + alpha * log(1 + weight). None when no history item has factors."""
        known = sorted(((i, w) for i, w in history_weights.items() if i in self.row_of and w > 0),
                       key=lambda kv: -kv[1])[:MAX_HISTORY_ITEMS]
        if not known:
            return None
        rows = np.fromiter((self.row_of[i] for i, _ in known), dtype=np.int64, count=len(known))
        confidence = 1.0 + self.alpha * np.log1p(np.fromiter((w for _, w in known), dtype=np.float64,
                                                            count=len(known)))
        y = self.factors[rows].astype(np.float64)
        a = self.gram + (y.T * (confidence - 1.0)) @ y + self.regularisation * np.eye(y.shape[1])
        return np.linalg.solve(a, y.T @ confidence)

    def scores(self, history_weights: Mapping[int, float], limit: int) -> dict[int, float]:
        """The ``limit`` items the shopper's vector scores highest, with their scores."""
        vector = self.shopper_vector(history_weights)
        if vector is None:
            return {}
        values = self.factors @ vector.astype(np.float32)
        limit = min(limit, len(values))
        top = np.argpartition(-values, limit - 1)[:limit] if limit < len(values) else np.arange(len(values))
        return {int(self.item_ids[r]): float(values[r]) for r in top}

    def save(self, path: Path) -> None:
        """Write atomically: a reader sees the old file or the new one, never half of one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as out:
            np.savez(out, format=np.int64(FORMAT), item_ids=self.item_ids, factors=self.factors,
                     regularisation=np.float64(self.regularisation), alpha=np.float64(self.alpha),
                     erasures=np.int64(self.erasures), events=np.int64(self.events),
                     shoppers=np.int64(self.shoppers))
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> "ItemFactors":
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                if int(data["format"]) != FORMAT:
                    raise FactorsError(f"{path}: factors format {int(data['format'])}, expected {FORMAT}")
                item_ids, factors = data["item_ids"].astype(np.int64), data["factors"].astype(np.float32)
                out = cls(item_ids, factors, float(data["regularisation"]), float(data["alpha"]),
                          int(data["erasures"]), int(data["events"]), int(data["shoppers"]))
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, FactorsError):
                raise
            raise FactorsError(f"{path}: not a factors file ({exc})") from exc
        if factors.ndim != 2 or len(item_ids) != len(factors) or not math.isfinite(float(factors.sum())):
            raise FactorsError(f"{path}: damaged factors")
        return out


def drop_factors(path: Path) -> bool:
    """Overwrite and remove a factors file (erasure); True when there was one."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    with contextlib.suppress(OSError), open(path, "r+b") as out:
        out.write(b"\0" * size)  # the removed file's blocks hold no shopper's trace
        out.flush()
        os.fsync(out.fileno())
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True
