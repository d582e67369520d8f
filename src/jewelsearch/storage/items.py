"""Item rows: validation, insert/update/delete, lookup and attribute filters.

Every insert, update and delete also writes the item's lexical index row in the same
transaction, so the word index never holds an item the table lacks, or misses one it has.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
from typing import Any, Iterable, Iterator, Mapping

from jewelsearch.errors import InvalidInput, ItemNotFound
from jewelsearch.storage.db import Database
from jewelsearch.storage.lexical import LexicalIndex, has_words, predicted_style, recognition_filled

# Fields a client may set on an item (the image is handled separately).
ITEM_FIELDS = ("sku", "title", "description", "category", "metal", "gemstone",
               "stone_shape", "color", "price", "currency", "url")
# Fields a search or recommendation may filter on by exact (case-insensitive) match.
FILTER_FIELDS = ("category", "metal", "gemstone", "stone_shape")
# How a page of the catalog can be ordered (``ItemStore.list``); ties fall to the older item.
# (NULLS LAST keeps the price index in use: a page of 100k items by price is read in 0.2 ms.)
LIST_ORDERS = {"oldest": "id ASC", "newest": "id DESC",
               "price_asc": "price ASC NULLS LAST, id ASC", "price_desc": "price DESC NULLS LAST, id ASC"}
MAX_FIELD_CHARS = {"description": 5000, "url": 2000}
DEFAULT_MAX_CHARS = 300


def normalise_item_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate client-supplied fields; lower-case the attribute vocabulary.

    >>> normalise_item_fields({"title": " Ring ", "category": "Ring", "price": "120.5"})
    {'title': 'Ring', 'category': 'ring', 'price': 120.5}
    """
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in ITEM_FIELDS or value is None:
            continue
        if key == "price":
            if isinstance(value, str) and value.strip() == "":
                continue
            try:
                price = float(value)
            except (TypeError, ValueError):
                raise InvalidInput(f"price must be a number, got {str(value)[:40]!r}")
            if not math.isfinite(price) or price < 0 or price > 1e12:
                raise InvalidInput("price must be a finite number between 0 and 1e12")
            out[key] = price
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"{key} must be a string")
        text = value.strip()
        if "\x00" in text:
            raise InvalidInput(f"{key} must not contain NUL characters")
        limit = MAX_FIELD_CHARS.get(key, DEFAULT_MAX_CHARS)
        if len(text) > limit:
            raise InvalidInput(f"{key} is longer than {limit} characters")
        if key in FILTER_FIELDS or key == "color":
            text = " ".join(text.lower().replace("_", " ").split())
        if key == "currency":
            text = text.upper()
        if text == "" and key != "title":
            continue
        out[key] = text
    return out


MAX_ITEM_ID = 2**63 - 1
# Writes to items the change log keeps (``ItemStore.changes_since``).
CHANGE_LOG_LENGTH = 10_000
NOTHING_PREDICTED: frozenset[str] = frozenset()


def parse_item_id(value: Any) -> int:
    """Item ids are positive integers; anything else is simply not an item."""
    if isinstance(value, bool):
        raise ItemNotFound(value)
    if isinstance(value, int):
        item_id = value
    else:
        text = str(value).strip()
        # isascii: "²" and other Unicode digits pass isdigit() but int() rejects them.
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise ItemNotFound(value)
        item_id = int(text)
    if item_id <= 0 or item_id > MAX_ITEM_ID:  # beyond SQLite's 64-bit integers: cannot exist
        raise ItemNotFound(value)
    return item_id


class ItemStore:
    """Reads and writes the ``items`` table."""

    def __init__(self, database: Database, lexical: LexicalIndex | None = None):
        self.database = database
        self.lexical = lexical if lexical is not None else LexicalIndex(database)

    def insert(self, conn: sqlite3.Connection, fields: Mapping[str, Any], *,
               image_path: str, image_sha256: str, source_path: str | None = None,
               attributes: Mapping[str, Any] | None = None) -> int:
        now = time.time()
        row = {k: fields[k] for k in ITEM_FIELDS if k in fields}
        row.update(image_path=image_path, image_sha256=image_sha256,
                   source_path=source_path,
                   attributes=json.dumps(dict(attributes or {}), sort_keys=True),
                   created_at=now, updated_at=now)
        row.setdefault("title", "")
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            cur = conn.execute(f"INSERT INTO items ({cols}) VALUES ({marks})", tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            if "sku" in str(exc):
                raise InvalidInput(f"an item with sku {fields.get('sku')!r} already exists")
            raise
        item_id = int(cur.lastrowid)
        self.lexical.write(conn, item_id, row)
        self._touch(conn, item_id)
        return item_id

    def update(self, conn: sqlite3.Connection, item_id: int, fields: Mapping[str, Any], *,
               image_path: str | None = None, image_sha256: str | None = None,
               attributes: Mapping[str, Any] | None = None) -> None:
        row: dict[str, Any] = {k: fields[k] for k in ITEM_FIELDS if k in fields}
        if image_path is not None:
            row.update(image_path=image_path, image_sha256=image_sha256)
        if attributes is not None:
            row["attributes"] = json.dumps(dict(attributes), sort_keys=True)
        row["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in row)
        try:
            cur = conn.execute(f"UPDATE items SET {sets} WHERE id = ?", (*row.values(), item_id))
        except sqlite3.IntegrityError as exc:
            if "sku" in str(exc):
                raise InvalidInput(f"an item with sku {fields.get('sku')!r} already exists")
            raise
        if cur.rowcount == 0:
            raise ItemNotFound(item_id)
        self.lexical.write_stored(conn, item_id)
        self._touch(conn, item_id)

    def image_in_use(self, conn: sqlite3.Connection, image_sha256: str) -> bool:
        """Whether any item still shows this image, read inside the caller's transaction so a
        delete decides on the file from the same state it commits."""
        return conn.execute("SELECT 1 FROM items WHERE image_sha256 = ? LIMIT 1",
                            (image_sha256,)).fetchone() is not None

    def delete(self, conn: sqlite3.Connection, item_id: int) -> dict[str, Any]:
        row = self.get(item_id)
        conn.execute("DELETE FROM embeddings WHERE item_id = ?", (item_id,))
        conn.execute("DELETE FROM items WHERE id = ?", (item_id,))
        self.lexical.delete(conn, item_id)
        self._touch(conn, item_id)
        return row

    def _touch(self, conn: sqlite3.Connection, item_id: int) -> None:
        """Count every write to items, so caches of item fields know when to rebuild, and log
        which item it touched, so a cache of every item re-reads only those (``changes_since``)."""
        conn.execute("INSERT INTO meta(key, value) VALUES('items_version', '1') "
                     "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")
        version = int(conn.execute("SELECT value FROM meta WHERE key = 'items_version'").fetchone()[0])
        conn.execute("INSERT OR REPLACE INTO item_changes(version, item_id) VALUES (?, ?)", (version, item_id))
        # The log only has to reach back as far as a reader can fall behind between two of its
        # queries; one further behind reads every item again.
        conn.execute("DELETE FROM item_changes WHERE version <= ?", (version - CHANGE_LOG_LENGTH,))

    def version(self) -> int:
        return int(self.database.get_meta("items_version") or 0)

    def attribute_rows(self) -> list[dict[str, Any]]:
        """id, category, metal, gemstone, stone_shape and price of every item."""
        return self.database.query("SELECT id, category, metal, gemstone, stone_shape, price FROM items")

    def get(self, item_id: Any) -> dict[str, Any]:
        item_id = parse_item_id(item_id)
        rows = self.database.query("SELECT * FROM items WHERE id = ?", (item_id,))
        if not rows:
            raise ItemNotFound(item_id)
        return _decode(rows[0])

    def get_many(self, item_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        ids = [int(i) for i in item_ids]
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 900):  # stay under SQLite's variable limit
            chunk = ids[start:start + 900]
            marks = ",".join("?" * len(chunk))
            for row in self.database.query(f"SELECT * FROM items WHERE id IN ({marks})", tuple(chunk)):
                out[row["id"]] = _decode(row)
        return out

    def ranking_rows(self, item_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The fields text search ranks, counts and folds by, for many candidates at once:
        lighter than ``get_many`` (no description or paths). Of the attributes only
        ``predicted`` is kept: the names of the fields whose value recognition filled in and
        nobody has changed since (the rule the word index uses, ``recognition_filled``), plus
        ``style`` where recognition filled one in for an item without words (``predicted_style``)."""
        ids = [int(i) for i in item_ids]
        out: dict[int, dict[str, Any]] = {}
        conn = self.database.conn
        for start in range(0, len(ids), 900):  # stay under SQLite's variable limit
            chunk = ids[start:start + 900]
            marks = ",".join("?" * len(chunk))
            # A text query reads a few hundred of these per answer: tuples, not dicts, from
            # SQLite, and the description only tested where there is one.
            for fields in conn.execute(f"{RANKING_SELECT} WHERE id IN ({marks})", chunk):
                row = _ranking_row(fields)
                out[row["id"]] = row
        return out

    def all_ranking_rows(self) -> tuple[int, list[dict[str, Any]]]:
        """Every item's ``ranking_rows`` row, in id order, with the ``version`` they are at: both
        read in one transaction, so no write falls between them."""
        conn = self.database.conn
        with _read_transaction(conn):
            version = self.version()  # the same connection: inside the transaction
            rows = [_ranking_row(fields) for fields in conn.execute(f"{RANKING_SELECT} ORDER BY id")]
        return version, rows

    def changes_since(self, version: int) -> tuple[int, list[int] | None]:
        """The items version now, and the ids of the items written since ``version`` (in the
        order of their last write); None where the change log no longer reaches back that far
        (or the version went back: another file), and the caller must read every item again."""
        conn = self.database.conn
        with _read_transaction(conn):
            now = self.version()
            if now == version:
                return now, []
            oldest = conn.execute("SELECT MIN(version) FROM item_changes").fetchone()[0]
            if now < version or oldest is None or oldest > version + 1:
                return now, None
            touched = conn.execute("SELECT item_id FROM item_changes WHERE version > ? ORDER BY version",
                                   (version,)).fetchall()
        return now, list(dict.fromkeys(item for item, in touched))

    def find_by_source(self, source_path: str) -> dict[str, Any] | None:
        rows = self.database.query("SELECT * FROM items WHERE source_path = ?", (source_path,))
        return _decode(rows[0]) if rows else None

    def find_by_sku(self, sku: str) -> dict[str, Any] | None:
        rows = self.database.query("SELECT * FROM items WHERE sku = ?", (sku,))
        return _decode(rows[0]) if rows else None

    def count(self) -> int:
        return int(self.database.scalar("SELECT COUNT(*) FROM items"))

    def image_hashes(self) -> frozenset[str]:
        """The sha256 of every stored photo (a bulk ingest skips content already here)."""
        return frozenset(r[0] for r in self.database.conn.execute("SELECT image_sha256 FROM items"))

    def image_paths(self) -> list[dict[str, Any]]:
        """``{"id", "image_path"}`` of every item, ordered by id (the consistency check)."""
        return self.database.query("SELECT id, image_path FROM items ORDER BY id")

    def all_ids(self) -> list[int]:
        return [r[0] for r in self.database.conn.execute("SELECT id FROM items ORDER BY id")]

    def list(self, limit: int = 50, offset: int = 0, filters: Mapping[str, Any] | None = None,
             order: str = "oldest") -> list[dict[str, Any]]:
        """A page of the items ``filters`` allow (``filter_ids``' filters), in ``order``
        (``LIST_ORDERS``): oldest or newest first, or by price (unpriced items last)."""
        if order not in LIST_ORDERS:
            raise InvalidInput(f"sort must be one of {', '.join(LIST_ORDERS)}")
        where, params = _where(filters or {})
        rows = self.database.query(f"SELECT * FROM items{where} ORDER BY {LIST_ORDERS[order]} LIMIT ? OFFSET ?",
                                   (*params, limit, offset))
        return [_decode(r) for r in rows]

    def count_matching(self, filters: Mapping[str, Any]) -> int:
        """How many items ``filters`` allow (all of them without filters)."""
        where, params = _where(filters)
        return int(self.database.conn.execute(f"SELECT COUNT(*) FROM items{where}", params).fetchone()[0])

    def value_counts(self, filters: Mapping[str, Any], field: str) -> dict[str, int]:
        """How many of the items ``filters`` allow hold each value of ``field`` (one of
        ``FILTER_FIELDS``); items without a value are not counted."""
        if field not in FILTER_FIELDS:
            raise InvalidInput(f"cannot count values of {field!r}")
        clauses, params = _filter_clauses(filters)
        where = " AND ".join([*clauses, f"{field} IS NOT NULL", f"{field} != ''"])
        sql = f"SELECT {field}, COUNT(*) FROM items WHERE {where} GROUP BY {field}"
        return {value: n for value, n in self.database.conn.execute(sql, params)}

    def price_range_counts(self, filters: Mapping[str, Any],
                           ranges: Iterable[tuple[float, float | None]]) -> list[int]:
        """For each price range [low, high) (high None: no ceiling), how many of the items
        ``filters`` allow are priced in it (each a count over the price index)."""
        clauses, params = _filter_clauses(filters)
        counts = []
        for low, high in ranges:
            where = [*clauses, "price >= ?"] + (["price < ?"] if high is not None else [])
            values = [*params, low] + ([high] if high is not None else [])
            counts.append(int(self.database.conn.execute(
                "SELECT COUNT(*) FROM items WHERE " + " AND ".join(where), values).fetchone()[0]))
        return counts

    def filter_ids(self, filters: Mapping[str, Any]) -> list[int] | None:
        """Ids matching attribute/price filters, or None when nothing is filtered. A field's
        value is one value, or a tuple of values any of which matches (a gemstone family)."""
        clauses, params = _filter_clauses(filters)
        if not clauses:
            return None
        sql = "SELECT id FROM items WHERE " + " AND ".join(clauses)
        return [r[0] for r in self.database.conn.execute(sql, params)]

    def any_priced(self, filters: Mapping[str, Any]) -> bool:
        """Whether any item ``filters`` allow (``filter_ids``' filters) has a price: a price
        filter over items without prices could only answer nothing."""
        conn = self.database.conn
        # A catalog without any price is why this is asked, and the price index alone says so at
        # once. The filtered question below is driven by an attribute's index instead (the
        # planner's choice), so over an unpriced catalog it would read every row the filters allow.
        if conn.execute("SELECT 1 FROM items WHERE price IS NOT NULL LIMIT 1").fetchone() is None:
            return False
        clauses, params = _filter_clauses(filters)
        if not clauses:
            return True
        sql = "SELECT 1 FROM items WHERE " + " AND ".join(clauses + ["price IS NOT NULL"]) + " LIMIT 1"
        return conn.execute(sql, params).fetchone() is not None

    def facet_values(self, field: str, limit: int = 100) -> list[tuple[str, int]]:
        if field not in FILTER_FIELDS:
            raise InvalidInput(f"cannot list values of {field!r}")
        sql = (f"SELECT {field}, COUNT(*) FROM items WHERE {field} IS NOT NULL "
               f"GROUP BY {field} ORDER BY COUNT(*) DESC LIMIT ?")
        return [(r[0], r[1]) for r in self.database.conn.execute(sql, (limit,))]


def _where(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """`` WHERE ...`` for ``filters`` (empty without any), and its parameters."""
    clauses, params = _filter_clauses(filters)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _filter_clauses(filters: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) for attribute/price filters."""
    clauses: list[str] = []
    params: list[Any] = []
    for key in FILTER_FIELDS:
        value = filters.get(key)
        if isinstance(value, (tuple, list)) and value:
            clauses.append(f"{key} IN ({', '.join('?' * len(value))})")
            params.extend(value)
        elif value:
            clauses.append(f"{key} = ?")
            params.append(value)
    if filters.get("min_price") is not None:
        clauses.append("price >= ?")
        params.append(filters["min_price"])
    if filters.get("max_price") is not None:
        clauses.append("price <= ?")
        params.append(filters["max_price"])
    return clauses, params


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    try:
        row["attributes"] = json.loads(row.get("attributes") or "{}")
    except ValueError:
        row["attributes"] = {}
    return row


@contextlib.contextmanager
def _read_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Reads that see one state of the file (WAL gives the transaction a snapshot); inside a
    transaction the caller already holds, that one."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


# What ``ranking_rows`` reads of an item, as a tuple per row (``_ranking_row`` decodes it).
RANKING_SELECT = ("SELECT id, title, category, metal, gemstone, stone_shape, price, "
                  "description IS NOT NULL AND trim(description) != '' AS described, "
                  "json_extract(attributes, '$.predicted') AS predicted FROM items")


# The fields whose top guesses (the top one and its ``runners_up``) text search can weigh, and
# how many guesses a field keeps.
GUESSED_FIELDS = ("metal", "gemstone", "stone_shape")
MAX_GUESSES = 3


def ranked_guesses(guess: Any, value: Any) -> tuple[tuple[str, float], ...]:
    """Recognition's guesses for one field, best first, as ``(label, p)`` pairs, where they still
    speak for the item: the shop gave no value (or recognition's is still there), and the
    localiser saw a stone where the field is a stone's. Otherwise none.

    >>> ranked_guesses({"label": "silver", "p": 0.45, "filled": False, "runners_up": [["platinum", 0.3]]}, None)
    (('silver', 0.45), ('platinum', 0.3))
    >>> ranked_guesses({"label": "silver", "p": 0.45, "filled": False}, "yellow gold")
    ()
    """
    if not isinstance(guess, Mapping) or guess.get("why_not_filled") == "no stone seen":
        return ()
    if value is not None and not recognition_filled(guess, value):
        return ()  # the shop's own value (given, or changed since the guess)
    pairs = [(guess.get("label"), guess.get("p"))] + [tuple(pair[:2]) for pair in guess.get("runners_up") or ()
                                                      if isinstance(pair, (list, tuple)) and len(pair) >= 2]
    # Probabilities to 4 decimals in [0, 1], as ingest stores them: the ranking columns hold them
    # as ten-thousandths (``search/ranking_columns.py``) and give back exactly these floats.
    return tuple((str(label).strip().lower(), round(min(1.0, max(0.0, float(p))), 4)) for label, p in pairs
                 if label and isinstance(p, (int, float)) and math.isfinite(p))[:MAX_GUESSES]


def _ranking_row(fields: tuple) -> dict[str, Any]:
    item, title, category, metal, gemstone, shape, price, described, predicted = fields
    row = {"id": item, "title": title, "category": category, "metal": metal,
           "gemstone": gemstone, "stone_shape": shape, "price": price}
    guesses = json.loads(predicted) if predicted else None
    if guesses:
        style_guess = guesses.get("style")
        if style_guess is not None:  # a style counts only for an item without words
            style = predicted_style(style_guess, bool(described) or has_words(title, None))
            if style:
                row["style"] = style
        row["predicted"] = frozenset(name for name, guess in guesses.items()
                                     if recognition_filled(guess, row.get(name)))
        ranked = {name: ranked_guesses(guesses.get(name), row.get(name)) for name in GUESSED_FIELDS}
        ranked = {name: pairs for name, pairs in ranked.items() if pairs}
        if ranked:
            row["guesses"] = ranked
    else:
        row["predicted"] = NOTHING_PREDICTED
    return row
