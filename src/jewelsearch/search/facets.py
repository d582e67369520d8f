"""Facet counts for a search answer: how many candidates have each category, metal, gemstone
(grouped by family), cut and price band, so a shopper sees what narrowing would leave.

>>> rows = [{"category": "pendant", "gemstone": "sapphire blue", "price": 620.0},
...         {"category": "pendant", "gemstone": "sapphire pink", "price": 80.0},
...         {"category": "ring", "gemstone": None, "price": None}]
>>> counts = facet_counts(rows)
>>> counts["category"]
[{'value': 'pendant', 'count': 2}, {'value': 'ring', 'count': 1}]
>>> counts["gemstone"][0]["value"], counts["gemstone"][0]["count"], len(counts["gemstone"][0]["members"])
('sapphire', 2, 2)
>>> [(band["label"], band["count"]) for band in counts["price"]]
[('under 250', 1), ('500 to 1,000', 1)]
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from typing import Any, Iterable, Mapping

from jewelsearch.embed.vocab import gem_family

# Bands a jewelry shopper thinks in; the last is open-ended.
PRICE_BANDS: tuple[tuple[float, float | None], ...] = (
    (0, 250), (250, 500), (500, 1000), (1000, 2500), (2500, 5000), (5000, None))
PLAIN_FIELDS = ("category", "metal", "stone_shape")
_BAND_FLOORS = tuple(low for low, _ in PRICE_BANDS)


def price_band(price: float | None) -> tuple[float, float | None] | None:
    # ``not price >= 0`` also turns away NaN, which no band holds.
    if price is None or not price >= 0:
        return None
    return PRICE_BANDS[bisect_right(_BAND_FLOORS, price) - 1]


def band_label(low: float, high: float | None) -> str:
    if high is None:
        return f"{low:,.0f} and over"
    return f"under {high:,.0f}" if low == 0 else f"{low:,.0f} to {high:,.0f}"


def facet_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Counts per value of each facet over ``rows`` (most common first); empty values skipped."""
    tally = FacetTally()
    tally.add(rows)
    return tally.counts()


class FacetTally:
    """Facet counts gathered in parts: a text query counts its word matches while the text tower
    still runs, and the semantic candidates once they are known. The counts do not depend on the
    order rows arrive in (every list is sorted by count, then value)."""

    def __init__(self) -> None:
        self._plain: dict[str, Counter] = {field: Counter() for field in PLAIN_FIELDS}
        self._gems: Counter = Counter()
        self._bands: Counter = Counter()

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        # A text query adds a few hundred candidates: one counting pass per field, in C
        # (``Counter.update`` over an iterator), instead of a Python loop over fields per row.
        rows = list(rows)
        for field, counts in self._plain.items():
            counts.update(filter(None, (row.get(field) for row in rows)))
        self._gems.update(filter(None, (row.get("gemstone") for row in rows)))
        self._bands.update(map(price_band, (row.get("price") for row in rows)))

    def add_counted(self, plain: Mapping[str, Mapping[str, int]], gems: Mapping[str, int],
                    bands: Mapping[tuple[float, float | None], int]) -> None:
        """Add counts already made (``search/candidate_fields.py`` counts over columns): per
        value of each plain field, per gem, per price band."""
        for field, counts in plain.items():
            self._plain[field].update(counts)
        self._gems.update(gems)
        self._bands.update(bands)

    def counts(self) -> dict[str, list[dict[str, Any]]]:
        bands = self._bands
        out: dict[str, list[dict[str, Any]]] = {
            field: [{"value": value, "count": n} for value, n in _ordered(counts)]
            for field, counts in self._plain.items()}
        # A gem's family is looked up once per distinct gem, not once per row.
        families: dict[str, Counter] = {}
        for gem, n in self._gems.items():
            families.setdefault(gem_family(gem), Counter())[gem] = n
        out["gemstone"] = [{"value": family, "count": sum(members.values()),
                            "members": [{"value": v, "count": n} for v, n in _ordered(members)]}
                           for family, members in sorted(families.items(),
                                                         key=lambda f: (-sum(f[1].values()), f[0]))]
        out["price"] = [{"label": band_label(low, high), "min": low, "max": high, "count": bands[(low, high)]}
                        for low, high in PRICE_BANDS if bands[(low, high)]]
        return out


def _ordered(counts: Counter) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
