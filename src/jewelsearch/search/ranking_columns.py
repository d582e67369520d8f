"""The item fields a text query ranks, counts and folds by, held in memory as columns.

A text query at 100k items weighs a few hundred candidates. Reading each candidate's row from
SQLite and walking it in Python (attribute matches, facet counts, variant keys) cost about as
much as the rest of the query after the text tower. Here every item's fields are kept as NumPy
arrays (a code per attribute value, a bit per predicted field, the price band, a variant group),
so a query gathers its candidates' positions and does each step over arrays
(docs/experiments/2026-12-07-ranking-columns.md). The answers are the same as the row path's
(``search/candidate_fields.py`` holds both; a test compares them).

The columns follow the store, in this process or any other: before a query the keeper compares
the items version and re-reads only the items written since (``ItemStore.changes_since``). A
keeper further behind than the change log reaches reads every item again, in a background
thread, and queries read rows meanwhile. A snapshot is never changed once a query may hold it:
a refresh builds new arrays and swaps the snapshot in whole.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from jewelsearch.search.facets import PRICE_BANDS, price_band
from jewelsearch.search.variants import variant_key
from jewelsearch.storage.items import GUESSED_FIELDS, MAX_GUESSES, ItemStore

log = logging.getLogger(__name__)

# The attributes held as codes; each has a bit in ``predicted`` when recognition filled it in.
FIELDS = ("category", "metal", "gemstone", "stone_shape")
PREDICTED_BIT = {name: np.uint8(1 << bit) for bit, name in enumerate(FIELDS)}
NO_BAND = -1
GUESS_ARRAYS = ("guess_codes", "guess_p")
PROBABILITY_UNITS = 10_000.0  # a guess's probability is held in ten-thousandths
# How often a catalog found larger than ``max_items`` is counted again.
SIZE_RECHECK_SECONDS = 60.0


class Vocabulary:
    """Values <-> small integer codes for one field; code 0 is "no value". Codes are only ever
    added, so a code in an older snapshot still means the same value."""

    def __init__(self) -> None:
        self.values: list[Any] = [None]
        self._codes: dict[Any, int] = {}

    def code(self, value: Any) -> int:
        if value is None:
            return 0
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self.values)
            self.values.append(value)
        return code

    def known(self, values: Iterable[Any]) -> np.ndarray:
        """The codes of those ``values`` that some item has (a value no item has matches none)."""
        return np.array([self._codes[v] for v in values if v is not None and v in self._codes], dtype=np.int32)


@dataclass(frozen=True)
class Columns:
    """One consistent copy of every item's ranking fields, at items ``version``; row ``i`` of
    each array belongs to ``ids[i]`` (ascending)."""

    version: int
    ids: np.ndarray          # int64, ascending
    codes: Mapping[str, np.ndarray]  # field -> int32 code (``Vocabulary``)
    style: np.ndarray        # int32 code of the style recognition filled in for an item without words
    predicted: np.ndarray    # uint8 bits (``PREDICTED_BIT``)
    price: np.ndarray        # float64, NaN where none
    band: np.ndarray         # int8 index into ``PRICE_BANDS``, ``NO_BAND`` where none
    variant: np.ndarray      # int64 variant group (``variant_key``); 0: never folded
    style_titles: np.ndarray  # object: titles as a style word is looked for in them
    # Recognition's guesses (``ranking_rows``' "guesses"), per ``GUESSED_FIELDS`` field: codes
    # (int32, 0 where no guess) and probabilities in ten-thousandths (uint16: the rows' 4-decimal
    # values, exactly, in 2 bytes), a column per guess, best first. 54 bytes an item.
    guess_codes: Mapping[str, np.ndarray]
    guess_p: Mapping[str, np.ndarray]
    vocabularies: Mapping[str, Vocabulary]  # field -> its codes (shared by a keeper's snapshots)
    style_vocabulary: Vocabulary

    def guess_probabilities(self, name: str, rows: np.ndarray) -> np.ndarray:
        """The guesses' probabilities at ``rows``, as the floats ``ranking_rows`` holds."""
        return self.guess_p[name][rows] / PROBABILITY_UNITS

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, item_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The ids among ``item_ids`` that are items here, and their rows."""
        wanted = np.fromiter(item_ids, dtype=np.int64, count=len(item_ids))
        if not len(self.ids):
            return wanted[:0], np.zeros(0, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        found = self.ids[rows] == wanted
        return wanted[found], rows[found]


class ColumnsBuilder:
    """Turns ranking rows (``ItemStore.ranking_rows``) into column values; holds the vocabularies
    and variant groups, which every snapshot of one keeper shares."""

    def __init__(self) -> None:
        self.vocabularies = {name: Vocabulary() for name in FIELDS}
        self.styles = Vocabulary()
        self._variants: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def arrays(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        with self._lock:  # the vocabularies grow here only
            count = len(rows)
            codes = {name: np.fromiter((vocabulary.code(row.get(name)) for row in rows), dtype=np.int32, count=count)
                     for name, vocabulary in self.vocabularies.items()}
            style = np.fromiter((self.styles.code(row.get("style")) for row in rows), dtype=np.int32, count=count)
            predicted = np.fromiter((_predicted_bits(row["predicted"]) for row in rows), dtype=np.uint8, count=count)
            variant = np.fromiter((self._variant(row) for row in rows), dtype=np.int64, count=count)
            guess_codes, guess_p = self._guesses(rows)
        prices = [row.get("price") for row in rows]
        price = np.array([np.nan if p is None else float(p) for p in prices], dtype=np.float64)
        band = np.array([_band_index(p) for p in prices], dtype=np.int8)
        style_titles = np.empty(count, dtype=object)
        style_titles[:] = [style_title(row.get("title")) for row in rows]
        ids = np.fromiter((int(row["id"]) for row in rows), dtype=np.int64, count=count)
        return {"ids": ids, "codes": codes, "style": style, "predicted": predicted, "price": price,
                "band": band, "variant": variant, "style_titles": style_titles,
                "guess_codes": guess_codes, "guess_p": guess_p,
                "vocabularies": self.vocabularies, "style_vocabulary": self.styles}

    def _guesses(self, rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        codes = {name: np.zeros((len(rows), MAX_GUESSES), dtype=np.int32) for name in GUESSED_FIELDS}
        p = {name: np.zeros((len(rows), MAX_GUESSES), dtype=np.uint16) for name in GUESSED_FIELDS}
        for at, row in enumerate(rows):
            for name, pairs in (row.get("guesses") or {}).items():
                vocabulary = self.vocabularies[name]
                for slot, (label, probability) in enumerate(pairs):
                    codes[name][at, slot] = vocabulary.code(label)
                    p[name][at, slot] = round(probability * PROBABILITY_UNITS)
        return codes, p

    def build(self, version: int, rows: Sequence[Mapping[str, Any]]) -> Columns:
        """Columns of ``rows`` (ascending ids)."""
        return Columns(version=version, **self.arrays(rows))

    def updated(self, columns: Columns, version: int, touched: Sequence[int],
                rows: Mapping[int, Mapping[str, Any]]) -> Columns:
        """``columns`` with the ``touched`` items re-read: ``rows`` holds those that still exist
        (a touched id without a row was deleted). New arrays; ``columns`` is left as it was."""
        touched = sorted(set(touched))
        fresh = self.arrays([rows[item] for item in touched if item in rows])
        _, at = columns.positions(touched)
        names = ("style", "predicted", "price", "band", "variant", "style_titles")
        if len(at) == len(touched) == len(fresh["ids"]):
            # Every touched item was here and still is (edits, recognition filling in): copies
            # with those rows overwritten, nothing moves.
            def patched(old: np.ndarray, new: np.ndarray) -> np.ndarray:
                out = old.copy()
                out[at] = new
                return out

            return Columns(version=version, ids=columns.ids, vocabularies=self.vocabularies,
                           style_vocabulary=self.styles,
                           codes={name: patched(columns.codes[name], fresh["codes"][name]) for name in FIELDS},
                           **{kind: {name: patched(getattr(columns, kind)[name], fresh[kind][name])
                                     for name in GUESSED_FIELDS} for kind in GUESS_ARRAYS},
                           **{name: patched(getattr(columns, name), fresh[name]) for name in names})
        kept = np.ones(len(columns.ids), dtype=bool)
        kept[at] = False  # every touched item's old row goes; its new one, if any, is added
        old_ids = columns.ids[kept] if len(at) else columns.ids
        ids = np.concatenate([old_ids, fresh["ids"]])
        # New items have ids above every old one (AUTOINCREMENT), so usually nothing moves.
        in_order = not len(old_ids) or not len(fresh["ids"]) or fresh["ids"][0] > old_ids[-1]
        order = None if in_order else np.argsort(ids, kind="stable")

        def joined(old: np.ndarray, new: np.ndarray) -> np.ndarray:
            both = np.concatenate([old[kept] if len(at) else old, new])
            return both if order is None else both[order]

        return Columns(version=version, ids=ids if order is None else ids[order], vocabularies=self.vocabularies,
                       style_vocabulary=self.styles,
                       codes={name: joined(columns.codes[name], fresh["codes"][name]) for name in FIELDS},
                       **{kind: {name: joined(getattr(columns, kind)[name], fresh[kind][name])
                                 for name in GUESSED_FIELDS} for kind in GUESS_ARRAYS},
                       **{name: joined(getattr(columns, name), fresh[name]) for name in names})

    def _variant(self, row: Mapping[str, Any]) -> int:
        key = variant_key(row)
        if not any(key):
            return 0
        group = self._variants.get(key)
        if group is None:
            group = self._variants[key] = len(self._variants) + 1
        return group


class RankingColumnsKeeper:
    """Keeps one ``Columns`` in step with an ``ItemStore``. ``current()`` answers the columns at
    the store's version, or None while they are being read (or where the catalog is larger than
    ``max_items``, when they are never built): the caller then reads rows."""

    def __init__(self, items: ItemStore, *, max_items: int = 1_000_000):
        self.items = items
        self.max_items = max_items
        self.builder = ColumnsBuilder()
        self._columns: Columns | None = None
        self._refresh_lock = threading.RLock()  # a refresh that finds the log too short starts a full read
        self._building: threading.Thread | None = None
        self._next_size_check = 0.0

    def moved_to(self, items: ItemStore) -> "RankingColumnsKeeper":
        """A keeper for ``items``, another opening of the same catalog (a replica's reopened
        service, a shipped copy of the file), that starts from this one's columns: the items
        version goes on across openings and copies, so it re-reads only what changed since."""
        keeper = RankingColumnsKeeper(items, max_items=self.max_items)
        keeper.builder, keeper._columns = self.builder, self._columns
        return keeper

    def current(self) -> Columns | None:
        try:
            return self._current()
        except Exception:  # an optimisation never fails a query: rows answer it
            log.exception("could not bring the ranking columns up to date; this query reads rows")
            return None

    def _current(self) -> Columns | None:
        columns = self._columns
        if columns is None:
            self._start_full_read()
            return None
        if self.items.version() == columns.version:
            return columns
        with self._refresh_lock:  # one refresh at a time; the others then find it done
            columns = self._columns
            if columns is None:
                return None
            now, touched = self.items.changes_since(columns.version)
            if touched is None:
                self._columns = None
                self._start_full_read()
                return None
            if now != columns.version:
                rows = self.items.ranking_rows(touched)
                columns = self.builder.updated(columns, now, touched, rows)
                self._columns = columns
            return columns

    def read_all(self) -> Columns | None:
        """Read every item now (in the caller's thread); None where the catalog is too large."""
        if self.items.count() > self.max_items:
            self._next_size_check = time.monotonic() + SIZE_RECHECK_SECONDS
            return None
        version, rows = self.items.all_ranking_rows()
        columns = self.builder.build(version, rows)
        with self._refresh_lock:
            if self._columns is None or self._columns.version <= version:
                self._columns = columns
        return columns

    def _start_full_read(self) -> None:
        with self._refresh_lock:
            if self._building is not None and self._building.is_alive():
                return
            if time.monotonic() < self._next_size_check:
                return  # found too large lately: rows it is, without counting on every query
            self._building = threading.Thread(target=self._read_quietly, name="ranking-columns", daemon=True)
            self._building.start()

    def _read_quietly(self) -> None:
        try:
            self.read_all()
        except Exception:  # the row path answers meanwhile; say why the faster one is missing
            log.exception("could not read the ranking columns; text queries read rows instead")

    def wait(self, timeout: float | None = None) -> Columns | None:
        """The columns once a running full read ends (tests, benchmarks, a server warming up)."""
        building = self._building
        if building is not None:
            building.join(timeout)
        return self.current()


def _predicted_bits(predicted: Iterable[str]) -> int:
    bits = 0
    for name in predicted:
        bit = PREDICTED_BIT.get(name)
        if bit is not None:
            bits |= int(bit)
    return bits


def _band_index(price: Any) -> int:
    band = price_band(price)
    return NO_BAND if band is None else PRICE_BANDS.index(band)


def style_title(title: Any) -> str:
    """A title as a style word is looked for in it (``attribute_match``): lower case, hyphens as
    spaces, runs of whitespace as one space."""
    return " ".join(str(title or "").lower().replace("-", " ").split())
