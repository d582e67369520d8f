"""A text query's candidates and the fields it ranks them by, read one of two ways with the
same answers: rows from the store (``RowCandidates``), or positions in the in-memory columns
(``ColumnCandidates``, ``search/ranking_columns.py``), which a text query uses whenever the
columns are current.

Both read candidates in batches (``add``: the word matches, then the semantic ones), score the
understood attributes, count facets, and fold the ranked list into cards.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from jewelsearch.search.attribute_match import attribute_match, attribute_scores, every_field_matched, matches_every_field
from jewelsearch.search.facets import PLAIN_FIELDS, PRICE_BANDS, FacetTally
from jewelsearch.search.ranking_columns import Columns
from jewelsearch.search.variants import fold_groups, fold_ranked
from jewelsearch.storage.items import ItemStore

Boosts = Mapping[str, tuple[str, ...]]


class RowCandidates:
    """Candidates as ranking rows read from the store (``ItemStore.ranking_rows``)."""

    def __init__(self, items: ItemStore):
        self._items = items
        self.rows: dict[int, dict[str, Any]] = {}

    def add(self, item_ids: Iterable[int]) -> list[int]:
        """Read these candidates; the ids that are items (others, deleted since an index saw
        them, drop out)."""
        read = self._items.ranking_rows(item_ids)
        self.rows.update(read)
        return list(read)

    def __contains__(self, item: int) -> bool:
        return item in self.rows

    def attribute_scores(self, item_ids: Sequence[int], boosts: Boosts, predicted_credit: float,
                         preferred: Boosts, guess_full_at: float | None = None) -> dict[int, float]:
        return {item: score for item in item_ids
                if (score := attribute_match(self.rows[item], boosts, predicted_credit, preferred, guess_full_at)) > 0}

    def count(self, item_ids: Sequence[int], tally: FacetTally) -> None:
        tally.add(self.rows[item] for item in item_ids)

    def complete_matches(self, item_ids: Sequence[int], boosts: Boosts) -> int:
        """How many of these candidates have every understood field (``matches_every_field``)."""
        return sum(matches_every_field(self.rows[item], boosts) for item in item_ids)

    def fold(self, ranked: Sequence[int], limit: int) -> list[tuple[int, list[int]]]:
        return fold_ranked(ranked, self.rows, limit)


class ColumnCandidates:
    """Candidates as rows of the in-memory ``Columns`` (one snapshot for the whole query)."""

    def __init__(self, columns: Columns):
        self.columns = columns
        self._at: dict[int, int] = {}
        # The batch ``add`` returned last, with its rows: a query scores, counts and covers each
        # batch it adds, so the rows are looked up once, not once per step.
        self._last: tuple[list[int], np.ndarray] | None = None

    def add(self, item_ids: Iterable[int]) -> list[int]:
        wanted = list(item_ids)
        found, rows = self.columns.positions(wanted)
        found_ids = found.tolist()
        self._at.update(zip(found_ids, rows.tolist()))
        self._last = (found_ids, rows)
        return found_ids

    def __contains__(self, item: int) -> bool:
        return item in self._at

    def rows_of(self, item_ids: Sequence[int]) -> np.ndarray:
        last = self._last
        if last is not None and item_ids is last[0]:
            return last[1]
        at = self._at
        return np.fromiter((at[item] for item in item_ids), dtype=np.int64, count=len(item_ids))

    def attribute_scores(self, item_ids: Sequence[int], boosts: Boosts, predicted_credit: float,
                         preferred: Boosts, guess_full_at: float | None = None) -> dict[int, float]:
        if not boosts or not item_ids:
            return {}
        scores = attribute_scores(self.columns, self.rows_of(item_ids), boosts, predicted_credit, preferred,
                                  guess_full_at)
        matched = np.flatnonzero(scores > 0)
        ids = np.asarray(item_ids, dtype=np.int64)[matched]
        return dict(zip(ids.tolist(), scores[matched].tolist()))

    def count(self, item_ids: Sequence[int], tally: FacetTally) -> None:
        if not item_ids:
            return
        count_rows(self.columns, self.rows_of(item_ids), tally)

    def complete_matches(self, item_ids: Sequence[int], boosts: Boosts) -> int:
        if not boosts or not item_ids:
            return 0
        return int(np.count_nonzero(every_field_matched(self.columns, self.rows_of(item_ids), boosts)))

    def fold(self, ranked: Sequence[int], limit: int) -> list[tuple[int, list[int]]]:
        return fold_groups(ranked, self.columns.variant[self.rows_of(ranked)].tolist(), limit)


def count_rows(columns: Columns, rows: np.ndarray, tally: FacetTally) -> None:
    """Add the facet counts of these rows of ``columns`` to ``tally``."""
    plain = {name: _counted(columns.codes[name][rows], columns.vocabularies[name].values)
             for name in PLAIN_FIELDS}
    gems = _counted(columns.codes["gemstone"][rows], columns.vocabularies["gemstone"].values)
    bands = columns.band[rows]
    per_band = np.bincount(bands[bands >= 0], minlength=len(PRICE_BANDS))
    tally.add_counted(plain, gems, {PRICE_BANDS[i]: int(n) for i, n in enumerate(per_band) if n})


def _counted(codes: np.ndarray, values: Sequence[Any]) -> dict[Any, int]:
    """How many of ``codes`` each value has; no value (code 0) and empty values are not counted,
    as the row form's ``filter(None, ...)`` skips them."""
    per_code = np.bincount(codes)
    return {values[code]: int(n) for code in np.flatnonzero(per_code) if (n := per_code[code]) and values[code]}
