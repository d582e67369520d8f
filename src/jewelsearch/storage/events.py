"""User events (view, click, like, add_to_cart, purchase) with weights and time."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from jewelsearch.errors import InvalidInput
from jewelsearch.storage.db import Database

# Default strength of each kind of engagement; a purchase says more than a view.
EVENT_KINDS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "like": 4.0,
    "add_to_cart": 6.0,
    "purchase": 10.0,
}
MAX_USER_ID_CHARS = 200
# Counts erasures in the meta table. Events are otherwise only appended, so the newest event id
# marks a change; an erasure can remove rows without changing it, and caches built from the
# events (co-engagement, popularity) must notice it even in another process.
ERASURES_KEY = "event_erasures"


def parse_timestamp(value: Any) -> float:
    """Seconds since the epoch, from a number or an ISO-8601 string.

    >>> parse_timestamp("2026-01-01T00:00:00Z")
    1767225600.0
    """
    if isinstance(value, bool):
        raise InvalidInput("ts must be a number or an ISO-8601 string")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            ts = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidInput(f"ts {text[:40]!r} is neither a number nor ISO-8601")
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            ts = parsed.timestamp()
    else:
        raise InvalidInput("ts must be a number or an ISO-8601 string")
    # Years 2000..2100 cover any real shop history; outside that is a unit error.
    if not math.isfinite(ts) or not (946684800 <= ts <= 4102444800):
        raise InvalidInput("ts is out of range (expected seconds since 1970, years 2000-2100)")
    return ts


def validate_user_id(user_id: Any) -> str:
    if not isinstance(user_id, (str, int)) or isinstance(user_id, bool):
        raise InvalidInput("user_id must be a string")
    text = str(user_id).strip()
    if not text:
        raise InvalidInput("user_id must not be empty")
    if len(text) > MAX_USER_ID_CHARS or any(ord(c) < 32 for c in text):
        raise InvalidInput(f"user_id must be at most {MAX_USER_ID_CHARS} printable characters")
    return text


class EventStore:
    def __init__(self, database: Database, kind_weights: Mapping[str, float] | None = None):
        self.database = database
        self.kind_weights = dict(kind_weights or EVENT_KINDS)

    def validate(self, raw: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
        """Check one event; returns the row to store (without checking the item)."""
        missing = [k for k in ("user_id", "item_id", "kind") if raw.get(k) in (None, "")]
        if missing:
            raise InvalidInput(f"missing field(s): {', '.join(missing)}")
        kind = raw["kind"]
        if not isinstance(kind, str) or kind not in self.kind_weights:
            raise InvalidInput(f"unknown event kind {str(kind)[:40]!r}; expected one of "
                               f"{', '.join(self.kind_weights)}")
        weight = raw.get("weight")
        if weight is None:
            weight = self.kind_weights[kind]
        elif isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or not (0 < weight <= 1000):
            raise InvalidInput("weight must be a number in (0, 1000]")
        ts = parse_timestamp(raw["ts"]) if raw.get("ts") not in (None, "") else (now or time.time())
        return {"user_id": validate_user_id(raw["user_id"]), "kind": kind, "ts": ts,
                "weight": float(weight), "item_id": raw["item_id"]}

    def insert(self, conn, event: Mapping[str, Any]) -> int:
        cur = conn.execute(
            "INSERT INTO events(user_id, item_id, kind, ts, weight) VALUES (?, ?, ?, ?, ?)",
            (event["user_id"], int(event["item_id"]), event["kind"], event["ts"], event["weight"]))
        return int(cur.lastrowid)

    def insert_many(self, conn, events: Iterable[Mapping[str, Any]]) -> int:
        rows = [(e["user_id"], int(e["item_id"]), e["kind"], e["ts"], e["weight"]) for e in events]
        conn.executemany(
            "INSERT INTO events(user_id, item_id, kind, ts, weight) VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    def rows_for_user(self, user_id: str, limit: int = 5000) -> list[tuple[int, str, float, float]]:
        """(item_id, kind, ts, weight) of a user's most recent events, newest first: plain
        tuples, because a heavy shopper's history is read on every recommendation."""
        return self.database.conn.execute(
            "SELECT item_id, kind, ts, weight FROM events WHERE user_id = ? "
            "ORDER BY ts DESC, id DESC LIMIT ?", (user_id, limit)).fetchall()

    def iterate_all(self):
        """Every event, oldest first, streamed (for building collaborative signals)."""
        cur = self.database.conn.execute(
            "SELECT user_id, item_id, kind, ts, weight FROM events ORDER BY ts")
        cols = ("user_id", "item_id", "kind", "ts", "weight")
        for row in cur:
            yield dict(zip(cols, row))

    def change_marker(self) -> tuple[int, int]:
        """(newest event id, erasures so far): changes whenever the event log does, in one
        cheap query (an index lookup each, unlike COUNT(*))."""
        newest, erasures = self.database.conn.execute(
            "SELECT (SELECT MAX(id) FROM events), (SELECT value FROM meta WHERE key = ?)",
            (ERASURES_KEY,)).fetchone()
        return int(newest or 0), int(erasures or 0)

    def count_for_user(self, user_id: str) -> int:
        return int(self.database.scalar("SELECT COUNT(*) FROM events WHERE user_id = ?", (user_id,)))

    def delete_user(self, conn, user_id: str) -> int:
        """Remove every event of one shopper inside the caller's transaction; returns how many.
        A removal counts as an erasure in the change marker."""
        removed = conn.execute("DELETE FROM events WHERE user_id = ?", (user_id,)).rowcount
        if removed:
            conn.execute("INSERT INTO meta(key, value) VALUES(?, '1') ON CONFLICT(key) "
                         "DO UPDATE SET value = CAST(value AS INTEGER) + 1", (ERASURES_KEY,))
        return removed

    def count(self) -> int:
        return int(self.database.scalar("SELECT COUNT(*) FROM events"))
