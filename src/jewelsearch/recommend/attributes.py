"""Taste in catalog attributes: what the items a shopper engaged with have in common.

Visual similarity misses what a shopper's choices share but photos do not show
plainly: a price range, a metal across different kinds of piece, a gemstone.
Each candidate is compared with each strongly engaged item on category, metal,
gemstone, stone shape and price (within a factor of ``PRICE_RATIO``); the share
of attributes they agree on, sharpened, is averaged with the engagement
weights.  Comparing with items one by one (a kernel, not one pooled profile)
keeps two tastes apart: a silver pearl pendant scores through the shopper's
pearl items, not through an average of pearls and gold rings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

FIELDS = ("category", "metal", "gemstone", "stone_shape")
PRICE_RATIO = 1.5  # prices within this factor of each other count as the same range
MAX_HISTORY_ITEMS = 64


@dataclass
class AttributeTable:
    """Item attributes as integer codes (-1 = unknown) and log prices (NaN = unknown)."""

    row_of: dict[int, int]
    codes: np.ndarray  # int32 [n, len(FIELDS)]
    log_price: np.ndarray  # float64 [n]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> "AttributeTable":
        vocab: dict[tuple[str, str], int] = {}
        ids, codes, prices = [], [], []
        for row in rows:
            ids.append(int(row["id"]))
            codes.append([vocab.setdefault((f, str(row[f]).lower()), len(vocab)) if row.get(f) else -1
                          for f in FIELDS])
            price = row.get("price")
            prices.append(math.log(price) if isinstance(price, (int, float)) and price > 0 else math.nan)
        return cls({item: r for r, item in enumerate(ids)},
                   np.asarray(codes, dtype=np.int32).reshape(len(ids), len(FIELDS)),
                   np.asarray(prices, dtype=np.float64))

    def shared(self, item: int, other: int) -> list[str]:
        """The attributes two items agree on, in words ("metal", "price range")."""
        if item not in self.row_of or other not in self.row_of:
            return []
        a, b = self.row_of[item], self.row_of[other]
        out = [f.replace("stone_shape", "cut") for f, x, y in zip(FIELDS, self.codes[a], self.codes[b])
               if x >= 0 and x == y]
        pa, pb = self.log_price[a], self.log_price[b]
        if not (math.isnan(pa) or math.isnan(pb)) and abs(pa - pb) <= math.log(PRICE_RATIO):
            out.append("price range")
        return out

    def affinity(self, candidates: Sequence[int], history_weights: Mapping[int, float],
                 sharpness: float = 2.0) -> dict[int, tuple[float, int]]:
        """Candidate -> (weighted mean over history items of (shared attribute share) ** sharpness,
        the history item that contributes most)."""
        known = [i for i in candidates if i in self.row_of]
        strongest = sorted((i for i in history_weights if i in self.row_of),
                           key=lambda i: -history_weights[i])[:MAX_HISTORY_ITEMS]
        if not known or not strongest:
            return {}
        cand_rows = np.fromiter((self.row_of[i] for i in known), dtype=np.int64, count=len(known))
        hist_rows = np.fromiter((self.row_of[i] for i in strongest), dtype=np.int64, count=len(strongest))
        weights = np.array([history_weights[i] for i in strongest], dtype=np.float64)
        a, b = self.codes[cand_rows][:, None, :], self.codes[hist_rows][None, :, :]
        comparable = (a >= 0) & (b >= 0)
        agree = (comparable & (a == b)).sum(-1).astype(np.float64)
        counted = comparable.sum(-1).astype(np.float64)
        pa, pb = self.log_price[cand_rows][:, None], self.log_price[hist_rows][None, :]
        priced = ~(np.isnan(pa) | np.isnan(pb))
        close = priced & (np.abs(np.nan_to_num(pa) - np.nan_to_num(pb)) <= math.log(PRICE_RATIO))
        agree += close
        counted += priced
        share = np.divide(agree, counted, out=np.zeros_like(agree), where=counted > 0)
        contributions = (share ** sharpness) * weights[None, :]
        scores = contributions.sum(1) / weights.sum()
        best = np.argmax(contributions, axis=1).tolist()
        return {item: (score, strongest[b]) for item, score, b in zip(known, scores.tolist(), best)}
