"""Erasing a shopper: nothing of them remains in any table, file, cache or reason.

The shopper's id is a guessable e-mail address, so any copy of it (in a row, a free page of the
database file, the write-ahead log, a log line) would be found by a plain byte search.
"""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import make_image

from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.recommend import CollaborativeSignals

SHOPPER = "erase-me@example.com"
PERSONAL_REASONS = {"engaged", "similar", "co_engaged", "taste"}
T0 = 1_780_000_000.0  # fixed event times (2026), so the expected signals can be rebuilt exactly


@pytest.fixture
def items(service):
    results = service.add_items([NewItem(make_image(seed=i, size=(64, 64)),
                                         {"title": f"Piece {i}", "category": ["ring", "necklace"][i % 2]})
                                 for i in range(10)])
    return [r.item_id for r in results]


def shopper_events(items) -> list[dict]:
    """SHOPPER's events: heavy on items 0-2, so they dominate popularity and co-engagement."""
    return [{"user_id": SHOPPER, "item_id": items[i], "kind": kind, "ts": T0 + n}
            for n, (i, kind) in enumerate([(0, "purchase"), (1, "like"), (2, "add_to_cart"), (0, "like"),
                                           (1, "purchase"), (2, "view")])]


def other_events(items) -> list[dict]:
    """Two other shoppers; recorded after SHOPPER, so erasing SHOPPER leaves the newest event id
    unchanged (the old cache check would not notice)."""
    return [{"user_id": user, "item_id": items[i], "kind": "like", "ts": T0 + 100 + n}
            for n, (user, i) in enumerate([("bo", 2), ("bo", 3), ("bo", 4), ("cy", 3), ("cy", 5), ("cy", 0)])]


def record(service, events) -> list[dict]:
    for event in events:
        service.record_event(event)
    # The rows as stored (default weights filled in), for rebuilding the expected signals.
    return [dict(e, weight=service.catalog.events.kind_weights[e["kind"]]) for e in events]


def rows_naming(db_path, needle: str) -> dict[str, int]:
    """Rows in every table of the SQLite file (FTS shadow tables and meta included) whose
    columns contain ``needle``."""
    conn = sqlite3.connect(db_path)
    try:
        found = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
            if not columns:
                continue
            where = " OR ".join(f'instr(CAST("{c}" AS TEXT), ?) > 0' for c in columns)
            count = conn.execute(f'SELECT COUNT(*) FROM "{table}" WHERE {where}', [needle] * len(columns)).fetchone()[0]
            if count:
                found[table] = count
        return found
    finally:
        conn.close()


def files_naming(home, needle: str) -> list[str]:
    """Files under the home (database, its write-ahead log, index, images) holding the bytes."""
    return [str(p.relative_to(home)) for p in sorted(home.rglob("*"))
            if p.is_file() and needle.encode() in p.read_bytes()]


def assert_signals_equal(actual: CollaborativeSignals, expected: CollaborativeSignals) -> None:
    assert actual.popularity.keys() == expected.popularity.keys()
    for item, value in expected.popularity.items():
        assert actual.popularity[item] == pytest.approx(value, rel=1e-9)
    assert actual.neighbours.keys() == expected.neighbours.keys()
    for item, others in expected.neighbours.items():
        assert [o for o, _ in actual.neighbours[item]] == [o for o, _ in others]
        assert [s for _, s in actual.neighbours[item]] == pytest.approx([s for _, s in others], rel=1e-9)


def test_delete_user_leaves_nothing_of_the_shopper(client, auth, service, settings, items, caplog):
    caplog.set_level(logging.INFO)
    record(service, shopper_events(items))
    others = record(service, other_events(items))
    before = client.get(f"/api/users/{SHOPPER}/recommendations?k=6", headers=auth).json["results"]
    assert {r["item_id"] for row in before for r in row["reasons"] if r["type"] in PERSONAL_REASONS}
    warm = service.collaborative_signals()  # the cache now holds SHOPPER's share
    assert warm.popularity[items[0]] > 0 and items[1] in dict(warm.neighbours[items[0]])
    assert rows_naming(settings.db_path, SHOPPER) == {"events": 6}
    assert files_naming(settings.home, SHOPPER)

    response = client.delete(f"/api/users/{SHOPPER}", headers=auth)
    assert response.status_code == 200
    answer = response.json
    assert answer["events_removed"] == 6 and answer["file_scrubbed"] is True
    assert len(answer["reference"]) == 16 and SHOPPER not in json.dumps(answer)

    # No row in any table, and no byte in any file under the home.
    assert rows_naming(settings.db_path, SHOPPER) == {}
    assert files_naming(settings.home, SHOPPER) == []
    # Co-engagement and popularity equal those of a store that never saw the shopper, rebuilt
    # at once although the refresh interval (30 s) has not passed.
    signals = service.collaborative_signals()
    assert signals is not warm
    assert_signals_equal(signals, CollaborativeSignals.build(
        others, now=service.recommendations._signals_built_at,
        popularity_half_life_days=service.popularity_half_life_days))
    assert items[1] not in signals.popularity  # only SHOPPER ever engaged with item 1
    # No recommendation reason refers to the shopper's engagement any more.
    after = client.get(f"/api/users/{SHOPPER}/recommendations?k=6", headers=auth).json["results"]
    assert not [r for row in after for r in row["reasons"] if r["type"] in PERSONAL_REASONS]
    assert {r["type"] for row in after for r in row["reasons"]} <= {"popular", "catalog"}
    # The others keep their histories.
    assert service.catalog.events.count() == len(others)
    # Logged by reference, never by id.
    assert f"erased a shopper (reference {answer['reference']}): 6 events removed" in caplog.text
    assert SHOPPER not in caplog.text


def test_erasing_is_idempotent_and_an_unknown_shopper_is_not_an_error(client, auth, service, items):
    record(service, shopper_events(items))
    first = client.delete(f"/api/users/{SHOPPER}", headers=auth).json
    second = client.delete(f"/api/users/{SHOPPER}", headers=auth)
    assert second.status_code == 200 and second.json["events_removed"] == 0
    assert second.json["reference"] == first["reference"]  # the same shopper, the same receipt
    unknown = client.delete("/api/users/nobody-here", headers=auth)
    assert unknown.status_code == 200 and unknown.json["events_removed"] == 0
    assert unknown.json["reference"] != first["reference"]


@pytest.mark.parametrize("user_id", ["%20", "x" * 201, "a%01b"])
def test_bad_ids_are_400(client, auth, user_id):
    response = client.delete(f"/api/users/{user_id}", headers=auth)
    assert response.status_code == 400 and response.json["error"]


def test_erasure_needs_the_key(client, auth, service, items):
    record(service, shopper_events(items))
    assert client.delete(f"/api/users/{SHOPPER}").status_code == 401
    assert client.delete(f"/api/users/{SHOPPER}", headers={"X-API-Key": "wrong"}).status_code == 403
    assert service.catalog.events.count_for_user(SHOPPER) == 6


def test_cli_forget_while_a_server_holds_the_signals(tmp_path, settings, service, items, caplog):
    """`jewelsearch users forget` runs in its own process with its own connection; the serving
    process notices the erasure through the store and rebuilds before its next answer."""
    from jewelsearch.cli import main
    record(service, shopper_events(items))
    others = record(service, other_events(items))
    warm = service.collaborative_signals()
    assert items[1] in warm.popularity
    caplog.set_level(logging.INFO)
    result = CliRunner().invoke(main, ["--home", str(settings.home), "users", "forget", SHOPPER],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("erased: 6 events removed (reference ") and SHOPPER not in result.output
    assert SHOPPER not in caplog.text
    signals = service.collaborative_signals()  # nothing told this service: the store did
    assert_signals_equal(signals, CollaborativeSignals.build(
        others, now=service.recommendations._signals_built_at,
        popularity_half_life_days=service.popularity_half_life_days))
    assert rows_naming(settings.db_path, SHOPPER) == {}
    again = CliRunner().invoke(main, ["--home", str(settings.home), "users", "forget", SHOPPER, "--json"])
    assert again.exit_code == 0 and json.loads(again.output)["events_removed"] == 0


def test_cli_forget_refuses_a_home_without_a_catalog(tmp_path):
    from jewelsearch.cli import main
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "nowhere"), "users", "forget", "ann"])
    assert result.exit_code != 0 and "no catalog" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_change_marker_moves_on_erasure_even_when_the_newest_event_stays(service, items):
    events = service.catalog.events
    record(service, shopper_events(items))
    record(service, other_events(items))
    newest, erasures = events.change_marker()
    service.forget_user(SHOPPER)
    assert events.change_marker() == (newest, erasures + 1)
    service.forget_user(SHOPPER)  # nothing removed: nothing changed
    assert events.change_marker() == (newest, erasures + 1)


def test_every_connection_zeroes_what_it_deletes(service):
    """secure_delete must be on for every write, not only the erasure: a page split under it
    leaves no stale copy of a moved row. Debian's SQLite has it on by default; others do not."""
    import threading
    database = service.catalog.database
    seen = [database.conn.execute("PRAGMA secure_delete").fetchone()[0]]
    worker = threading.Thread(target=lambda: seen.append(database.conn.execute("PRAGMA secure_delete").fetchone()[0]))
    worker.start()
    worker.join()
    assert seen == [1, 1]
