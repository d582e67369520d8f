"""The lexical index: an SQLite FTS5 table over each item's words, written with the item.

One row per item (``rowid`` = item id) with four columns of pre-tokenised text (the
tokens of ``lexical_tokens`` joined by spaces):

======================  ======  ==========================================================
column                  weight  holds
======================  ======  ==========================================================
``title``               5.0     the title
``attributes``          3.0     attribute values the shop gave: category, metal, gemstone
                                (with its spoken form, "blue sapphire" for "sapphire blue"),
                                stone_shape, color, sku
``predicted``           1.5     attribute values recognition filled in (``attributes.predicted``),
                                and the style it filled in for an item without words
``description``         1.0     the description
======================  ======  ==========================================================

Ranking is ``bm25()`` with those column weights: a word in the title counts most, a value
the shop stated counts more than one a model guessed, and the long free-text description
least (bm25's length normalisation already damps it; the weight keeps one passing mention
from outranking a title).

``ItemStore`` calls ``write``/``delete`` inside the transaction that writes the item, so a
failed write leaves neither behind. ``audit`` and ``rebuild`` serve ``jewelsearch check``
and ``index rebuild``. Queries never reach FTS5 syntax: every token is quoted as a string.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jewelsearch.storage.lexical_vocabulary import completions, holds, respellings
from jewelsearch.storage.lexical_tokens import fts_string, lexical_tokens

if TYPE_CHECKING:
    from jewelsearch.storage.db import Database

TABLE = "lexical_items"
COLUMNS = ("title", "description", "attributes", "predicted")
WEIGHTS = {"title": 5.0, "description": 1.0, "attributes": 3.0, "predicted": 1.5}
# Item columns whose values are attribute words, in the order they are written.
ATTRIBUTE_FIELDS = ("category", "metal", "gemstone", "stone_shape", "color", "sku")
ITEM_COLUMNS = ("id", "title", "description", *ATTRIBUTE_FIELDS, "attributes")
# A query longer than this many distinct tokens keeps its first ones: beyond it an OR pass
# over a large catalog costs more than the extra words add.
MAX_QUERY_TOKENS = 64
# Up to this many allowed ids go to SQL as parameters; more go as one JSON array (SQLite
# caps the number of parameters).
MAX_SQL_ALLOWED = 1000
# Matches ranked by bm25 per pass (at least 4 x the limit); see ``LexicalIndex._ranked``.
CANDIDATES = 1000
REBUILD_CHUNK = 2000

# Colour words a gem label puts last ("sapphire blue"); a shopper says them first.
_TRAILING_COLOURS = frozenset(("blue", "pink", "purple", "yellow", "black", "green", "red",
                               "white", "golden", "smoky", "lemon", "beer", "rutilated"))

CREATE_SQL = (f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5("
              + ", ".join(COLUMNS)
              + ", tokenize = \"unicode61 remove_diacritics 2\")")
_WEIGHT_ARGS = ", ".join(str(WEIGHTS[c]) for c in COLUMNS)


def spoken_gemstone(label: str) -> str:
    """How a shopper says a gem label (the rule of ``embed.vocab.GEM_SPOKEN``, which storage
    cannot import).

    >>> spoken_gemstone("sapphire blue"), spoken_gemstone("lapis lazuli"), spoken_gemstone("ruby")
    ('blue sapphire', 'lapis lazuli', 'ruby')
    """
    words = label.split()
    if len(words) == 2 and words[1] in _TRAILING_COLOURS:
        return f"{words[1]} {words[0]}"
    return label


def _unique(tokens: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tokens))


def recognition_filled(guess: Any, value: Any) -> bool:
    """Whether recognition filled this value in (and nobody has changed it since)."""
    if not isinstance(guess, Mapping) or guess.get("filled", True) is False:
        return False
    return str(guess.get("label", "")).strip().lower() == str(value).strip().lower()


def has_words(title: Any, description: Any) -> bool:
    """Whether the shop described the item in words (a title or a description)."""
    return bool(str(title or "").strip() or str(description or "").strip())


def predicted_style(guess: Any, described: bool) -> str | None:
    """The style recognition filled in (``attributes.predicted.style``), where it counts: an item
    the shop ``described`` (``has_words``) has its style in those words, and a guess never
    speaks over them (nor over words added after the guess).

    >>> predicted_style({"label": "halo", "p": 0.9}, described=False)
    'halo'
    >>> [predicted_style({"label": "halo", "p": 0.9}, described=True),
    ...  predicted_style({"label": "halo", "p": 0.4, "filled": False}, described=False)]
    [None, None]
    """
    if described:
        return None
    if not isinstance(guess, Mapping) or guess.get("filled", True) is False:
        return None
    label = str(guess.get("label") or "").strip().lower()
    return label or None


def _attributes(row: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = row.get("attributes")
    if isinstance(raw, Mapping):
        return raw
    try:
        decoded = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {}
    return decoded if isinstance(decoded, Mapping) else {}


def document(row: Mapping[str, Any]) -> dict[str, str]:
    """The four column texts of one item row (``attributes`` as a dict or its JSON).

    >>> document({"title": "Oval pendant", "gemstone": "sapphire blue", "metal": "silver",
    ...           "category": "pendant", "attributes": {"predicted": {
    ...               "category": {"label": "pendant", "p": 0.9}}}})["attributes"]
    'silver blue sapphire'
    """
    predicted = _attributes(row).get("predicted")
    predicted = predicted if isinstance(predicted, Mapping) else {}
    given: list[str] = []
    guessed: list[str] = []
    for name in ATTRIBUTE_FIELDS:
        value = row.get(name)
        if value is None or str(value).strip() == "":
            continue
        value = str(value)
        words = spoken_gemstone(value.lower()) + " " + value if name == "gemstone" else value
        target = guessed if recognition_filled(predicted.get(name), value) else given
        target.extend(lexical_tokens(words))
    style = predicted_style(predicted.get("style"), has_words(row.get("title"), row.get("description")))
    if style:
        guessed.extend(lexical_tokens(style))
    return {"title": " ".join(lexical_tokens(row.get("title") or "")),
            "description": " ".join(lexical_tokens(row.get("description") or "")),
            "attributes": " ".join(_unique(given)),
            "predicted": " ".join(_unique(guessed))}


def _in_order(texts: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(texts[c] for c in COLUMNS)


def _allowed(allowed_ids: Collection[int] | None) -> set[int] | None:
    return None if allowed_ids is None else {int(i) for i in allowed_ids}


def create_table(conn: sqlite3.Connection) -> None:
    """Schema migration step: create the table and index every existing item."""
    conn.execute(CREATE_SQL)
    _fill(conn)


def _item_rows(conn: sqlite3.Connection, where: str = "", params: tuple = ()) -> Iterator[dict[str, Any]]:
    cur = conn.execute(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items {where} ORDER BY id", params)
    while True:
        batch = cur.fetchmany(REBUILD_CHUNK)
        if not batch:
            return
        for values in batch:
            yield dict(zip(ITEM_COLUMNS, values))


def _fill(conn: sqlite3.Connection) -> int:
    sql = f"INSERT INTO {TABLE}(rowid, {', '.join(COLUMNS)}) VALUES (?{', ?' * len(COLUMNS)})"
    # Read every row before writing, so the writes never interleave with the open read.
    rows = [(row["id"], *_in_order(document(row))) for row in _item_rows(conn)]
    conn.executemany(sql, rows)
    # Merge the index's b-trees into one: a freshly filled table answers faster.
    conn.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES('optimize')")
    return len(rows)


@dataclass
class LexicalAudit:
    missing: list[int] = field(default_factory=list)  # items with no lexical row
    orphans: list[int] = field(default_factory=list)  # lexical rows with no item
    stale: list[int] = field(default_factory=list)    # rows whose text no longer matches the item

    @property
    def ok(self) -> bool:
        return not (self.missing or self.orphans or self.stale)


class LexicalIndex:
    """Writes, searches, audits and rebuilds the ``lexical_items`` FTS5 table."""

    def __init__(self, database: Database, candidates: int = CANDIDATES):
        self.database = database
        self.candidates = candidates

    def write(self, conn: sqlite3.Connection, item_id: int, row: Mapping[str, Any]) -> None:
        """(Re)index one item, inside the caller's transaction."""
        texts = document(row)
        conn.execute(f"INSERT OR REPLACE INTO {TABLE}(rowid, {', '.join(COLUMNS)}) "
                     f"VALUES (?{', ?' * len(COLUMNS)})", (int(item_id), *_in_order(texts)))

    def write_stored(self, conn: sqlite3.Connection, item_id: int) -> None:
        """Reindex an item from its row as this transaction sees it (after an update)."""
        for row in _item_rows(conn, "WHERE id = ?", (int(item_id),)):
            self.write(conn, item_id, row)

    def delete(self, conn: sqlite3.Connection, item_id: int) -> None:
        conn.execute(f"DELETE FROM {TABLE} WHERE rowid = ?", (int(item_id),))

    def search(self, terms: Sequence[str] | str, limit: int = 200,
               allowed_ids: Collection[int] | None = None) -> list[tuple[int, float]]:
        """Items matching the words of ``terms``, best first, as (item id, score), higher
        better: those holding every token first, then (if fewer than ``limit``) those holding
        any. Each pass ranks at most the newest ``CANDIDATES`` matches (see ``_ranked``).
        Never raises on the text: each token is quoted as an FTS5 string.
        """
        tokens, allowed = self._query_tokens(terms), _allowed(allowed_ids)
        return self._search(tokens, limit, allowed)[0]

    def search_respelling(self, terms: Sequence[str] | str, limit: int = 200,
                          allowed_ids: Collection[int] | None = None,
                          may_respell: Callable[[str], bool] | None = None
                          ) -> tuple[list[tuple[int, float]], dict[str, str]]:
        """``search``, and where the words found no item together, a word no item holds read
        as the one it misses by a letter (``lexical_vocabulary``), if ``may_respell`` allows
        that word; returns the hits and {typed word: word read}."""
        tokens, allowed = self._query_tokens(terms), _allowed(allowed_ids)
        hits, together = self._search(tokens, limit, allowed)
        if together or may_respell is None or not tokens:
            return hits, {}
        read_as = respellings(self.database.conn, TABLE, [t for t in tokens if may_respell(t)])
        if not read_as:
            return hits, {}
        return self._search(_unique(read_as.get(t, t) for t in tokens), limit, allowed)[0], read_as

    def completions(self, prefix: str) -> dict[str, dict[str, int]]:
        """Words the listings use that start with ``prefix`` (folded as the index folds words),
        with how many listings use each in each column (``COLUMNS``)."""
        tokens = lexical_tokens(prefix)
        if len(tokens) != 1:
            return {}
        return completions(self.database.conn, TABLE, tokens[0])

    def holds(self, token: str) -> bool:
        """Whether any listing holds the (already folded) word ``token``."""
        return holds(self.database.conn, TABLE, token)

    def count_holding_all(self, tokens: Sequence[str], cap: int = 1000) -> int:
        """How many listings hold every one of ``tokens`` (already folded), counted up to ``cap``."""
        if not tokens:
            return 0
        match = " AND ".join(fts_string(t) for t in _unique(tokens))
        sql = f"SELECT count(*) FROM (SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH ? LIMIT ?)"
        return int(self.database.conn.execute(sql, [match, cap]).fetchone()[0])

    @staticmethod
    def _query_tokens(terms: Sequence[str] | str) -> list[str]:
        if isinstance(terms, str):
            terms = [terms]
        tokens = _unique(t for term in terms if isinstance(term, str) for t in lexical_tokens(term))
        return tokens[:MAX_QUERY_TOKENS]

    def _search(self, tokens: list[str], limit: int, allowed: set[int] | None
                ) -> tuple[list[tuple[int, float]], bool]:
        """The hits, and whether some allowed item holds every token."""
        if not tokens or limit <= 0 or (allowed is not None and not allowed):
            return [], False
        quoted = [fts_string(t) for t in tokens]
        every, anyone = " AND ".join(quoted), " OR ".join(quoted)
        if len(tokens) == 1:
            hits = self._ranked(every, limit, allowed, set())
            return hits, bool(hits)
        # Which items hold every token, without scoring them: scoring starts by counting each
        # token's matches over the whole table (bm25's IDF), once per statement.
        holding_all = self._newest(every, max(self.candidates, 4 * limit), allowed)
        if len(holding_all) >= limit:
            return self._ranked(every, limit, allowed, set()), True
        if not holding_all:
            return self._ranked(anyone, limit, allowed, set()), False
        return (self._ranked_both(anyone, holding_all, limit, allowed)
                or self._two_passes(every, anyone, limit, allowed)), True

    def _two_passes(self, every: str, anyone: str, limit: int, allowed: set[int] | None) -> list[tuple[int, float]]:
        """Those holding every token, best first, then the best of those holding any."""
        hits = self._ranked(every, limit, allowed, set())
        seen = {item_id for item_id, _ in hits}
        return hits + self._ranked(anyone, limit - len(hits), allowed, seen)

    def _ranked_both(self, anyone: str, holding_all: list[int], limit: int,
                     allowed: set[int] | None) -> list[tuple[int, float]] | None:
        """``_two_passes`` in one scored statement, where fewer than ``limit`` items hold every
        token: an item's bm25 is the same under AND and OR (the same tokens, the same counts),
        so the OR pass's candidates, scored once, rank both lists. None when some item holding
        every token is older than those candidates (the two passes are then needed)."""
        rest = limit - len(holding_all)
        candidates = max(self.candidates, 4 * rest) + len(holding_all)
        inner, params = self._candidates_sql(anyone, allowed)
        # Those holding every token first, each part best first (ties: newest first).
        sql = (f"SELECT rowid, score, rowid IN (SELECT value FROM json_each(?)) AS every "
               f"FROM ({inner} ORDER BY rowid DESC LIMIT ?) ORDER BY every DESC, score ASC, rowid DESC LIMIT ?")
        rows = self.database.conn.execute(sql, [json.dumps(holding_all), *params, candidates, limit]).fetchall()
        if sum(every for _, _, every in rows) < len(holding_all):
            return None
        return [(int(item_id), -float(rank)) for item_id, rank, _ in rows]

    def _newest(self, match: str, cap: int, allowed: set[int] | None) -> list[int]:
        """Ids of the newest ``cap`` matches, unscored."""
        inner, params = self._candidates_sql(match, allowed, scored=False)
        rows = self.database.conn.execute(f"{inner} ORDER BY rowid DESC LIMIT ?", [*params, cap]).fetchall()
        return [int(item_id) for item_id, in rows]

    @staticmethod
    def _candidates_sql(match: str, allowed: set[int] | None, scored: bool = True) -> tuple[str, list[Any]]:
        """The matches of ``match`` among ``allowed`` (rowid, and bm25 as ``score`` if ``scored``)."""
        columns = f"rowid, bm25({TABLE}, {_WEIGHT_ARGS}) AS score" if scored else "rowid"
        sql = f"SELECT {columns} FROM {TABLE} WHERE {TABLE} MATCH ?"
        params: list[Any] = [match]
        # "+rowid": a filter SQLite applies to each match; a plain rowid IN would make FTS5
        # run the whole query once per allowed id (measured 100 ms for 300 ids).
        if allowed is not None and len(allowed) <= MAX_SQL_ALLOWED:
            sql += f" AND +rowid IN ({', '.join('?' * len(allowed))})"
            params.extend(allowed)
        elif allowed is not None:
            sql += " AND +rowid IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(allowed)))
        return sql, params

    def _ranked(self, match: str, limit: int, allowed: set[int] | None,
                exclude: set[int]) -> list[tuple[int, float]]:
        """bm25 ranking of the newest ``candidates`` matches (all of them when fewer match)

        Scoring every match of a word most items share ("gold": 60 % of a catalog) costs
        ~40 ms at 100k items; such a word has a near-zero bm25 weight anyway, so the newest
        matches stand in for all of them. FTS5 walks its rowids newest-first and stops.
        SQLite then orders those candidates and keeps the best ``limit`` itself, so only they
        cross into Python (ties: newest first).
        """
        candidates = max(self.candidates, 4 * limit) + len(exclude)
        inner, params = self._candidates_sql(match, allowed)
        inner += " ORDER BY rowid DESC LIMIT ?"
        params.append(candidates)
        sql = f"SELECT rowid, score FROM ({inner})"
        if exclude:
            sql += " WHERE rowid NOT IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(exclude)))
        # bm25 is lower for a better match; the score handed back is its negation.
        sql += " ORDER BY score ASC, rowid DESC LIMIT ?"
        params.append(limit)
        rows = self.database.conn.execute(sql, params).fetchall()
        return [(int(item_id), -float(rank)) for item_id, rank in rows]

    def rebuild(self) -> int:
        """Rewrite the whole table from the items, in one transaction; returns the row count."""
        with self.database.write() as conn:
            conn.execute(f"DELETE FROM {TABLE}")
            return _fill(conn)

    def audit(self) -> LexicalAudit:
        """Items missing from the index, rows without an item, and rows whose text is stale."""
        conn = self.database.conn
        report = LexicalAudit()
        report.missing = [r[0] for r in conn.execute(
            f"SELECT id FROM items WHERE id NOT IN (SELECT rowid FROM {TABLE}) ORDER BY id")]
        report.orphans = [r[0] for r in conn.execute(
            f"SELECT rowid FROM {TABLE} WHERE rowid NOT IN (SELECT id FROM items) ORDER BY rowid")]
        stored = {r[0]: tuple(r[1:]) for r in conn.execute(
            f"SELECT rowid, {', '.join(COLUMNS)} FROM {TABLE}")}
        for row in _item_rows(conn):
            texts = stored.get(row["id"])
            if texts is not None and texts != _in_order(document(row)):
                report.stale.append(row["id"])
        return report

    def count(self) -> int:
        return int(self.database.scalar(f"SELECT COUNT(*) FROM {TABLE}"))
