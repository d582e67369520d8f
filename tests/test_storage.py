
import numpy as np
import pytest

from jewelsearch.errors import InvalidInput, ItemNotFound
from jewelsearch.search.params import parse_filters, parse_k
from jewelsearch.storage import Catalog
from jewelsearch.storage.db import SCHEMA_VERSION, Database
from jewelsearch.storage.events import parse_timestamp
from jewelsearch.storage.items import normalise_item_fields, parse_item_id


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog.open(tmp_path / "c.db", tmp_path / "images")
    yield cat
    cat.close()


def insert(catalog, **fields):
    with catalog.database.write() as conn:
        return catalog.items.insert(conn, normalise_item_fields(fields), image_path="ab/x.jpg",
                                    image_sha256="ab" * 32)


def test_wal_mode_and_schema_version(catalog):
    assert catalog.database.scalar("PRAGMA journal_mode") == "wal"
    assert catalog.database.get_meta("schema_version") == str(SCHEMA_VERSION)


def test_reopening_does_not_rerun_migrations(tmp_path):
    Database(tmp_path / "c.db").close()
    db = Database(tmp_path / "c.db")
    assert db.get_meta("schema_version") == str(SCHEMA_VERSION)


def test_newer_schema_is_refused(tmp_path):
    db = Database(tmp_path / "c.db")
    with db.write() as conn:
        db.set_meta(conn, "schema_version", str(SCHEMA_VERSION + 1))
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        Database(tmp_path / "c.db")


def test_insert_get_and_normalise(catalog):
    item_id = insert(catalog, title=" Oval ring ", category="Ring", metal="Yellow_Gold", price="99.5")
    row = catalog.items.get(item_id)
    assert row["title"] == "Oval ring"
    assert row["category"] == "ring"
    assert row["metal"] == "yellow gold"
    assert row["price"] == 99.5
    assert row["attributes"] == {}


def test_failed_transaction_writes_nothing(catalog):
    with pytest.raises(RuntimeError):
        with catalog.database.write() as conn:
            catalog.items.insert(conn, {"title": "x"}, image_path="a", image_sha256="b")
            raise RuntimeError("boom")
    assert catalog.items.count() == 0


def test_duplicate_sku_is_a_clear_error(catalog):
    insert(catalog, sku="R-1")
    with pytest.raises(InvalidInput, match="sku"):
        insert(catalog, sku="R-1")
    assert catalog.items.count() == 1


@pytest.mark.parametrize("bad", [{"price": "abc"}, {"price": "-3"}, {"price": "inf"},
                                 {"title": "x" * 1000}, {"title": 5}, {"title": "a\x00b"}])
def test_bad_fields_rejected(bad):
    with pytest.raises(InvalidInput):
        normalise_item_fields(bad)


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "../../etc/passwd", "1.5", "", True, "9" * 30])
def test_bad_item_ids_are_not_found(raw):
    with pytest.raises(ItemNotFound):
        parse_item_id(raw)


def test_embeddings_roundtrip_and_cascade(catalog):
    item_id = insert(catalog, title="a")
    vector = np.arange(8, dtype=np.float32)
    with catalog.database.write() as conn:
        catalog.embeddings.put(conn, item_id, "m1", vector)
    assert np.array_equal(catalog.embeddings.get(item_id, "m1"), vector)
    assert catalog.embeddings.model_ids() == {"m1": 1}
    with catalog.database.write() as conn:
        catalog.items.delete(conn, item_id)
    assert catalog.embeddings.model_ids() == {}


def test_image_lookups_ingest_and_check_rely_on(catalog):
    first, second = insert(catalog, title="a"), insert(catalog, title="b")  # both show sha "abab..."
    vector = np.arange(8, dtype=np.float32)
    with catalog.database.write() as conn:
        catalog.embeddings.put(conn, second, "m1", vector)
    assert np.array_equal(catalog.embeddings.find_by_image("ab" * 32, "m1"), vector)
    assert catalog.embeddings.find_by_image("ab" * 32, "m2") is None
    assert catalog.embeddings.find_by_image("cd" * 32, "m1") is None
    assert catalog.items.image_paths() == [{"id": first, "image_path": "ab/x.jpg"},
                                           {"id": second, "image_path": "ab/x.jpg"}]
    with catalog.database.write() as conn:
        catalog.items.delete(conn, first)
        assert catalog.items.image_in_use(conn, "ab" * 32)  # the other item still shows it
        catalog.items.delete(conn, second)
        assert not catalog.items.image_in_use(conn, "ab" * 32)


def test_non_finite_embedding_refused(catalog):
    item_id = insert(catalog, title="a")
    with pytest.raises(ValueError):
        with catalog.database.write() as conn:
            catalog.embeddings.put(conn, item_id, "m1", np.array([np.nan, 1], np.float32))


def test_filter_ids(catalog):
    a = insert(catalog, category="ring", metal="gold", price=100)
    b = insert(catalog, category="ring", metal="silver", price=50)
    insert(catalog, category="necklace", metal="gold", price=70)
    assert catalog.items.filter_ids({}) is None
    assert sorted(catalog.items.filter_ids({"category": "ring"})) == [a, b]
    assert catalog.items.filter_ids({"category": "ring", "max_price": 60}) == [b]
    assert catalog.items.filter_ids({"metal": "gold", "min_price": 80}) == [a]


def test_any_priced_answers_for_the_items_the_filters_allow(catalog):
    insert(catalog, category="ring", metal="gold")
    assert not catalog.items.any_priced({}) and not catalog.items.any_priced({"category": "ring"})
    insert(catalog, category="necklace", metal="gold", price=70)
    assert catalog.items.any_priced({}) and catalog.items.any_priced({"metal": "gold"})
    assert catalog.items.any_priced({"category": "necklace"})
    assert not catalog.items.any_priced({"category": "ring"})  # priced necklaces do not price rings
    assert not catalog.items.any_priced({"category": "necklace", "max_price": 10})


def test_any_priced_over_an_unpriced_catalog_reads_no_rows(catalog):
    """The question text search asks of a catalog without prices: answered from the price
    index, not by walking every row the filters allow (the category's, 3,000 here)."""
    with catalog.database.write() as conn:
        for _ in range(3000):
            catalog.items.insert(conn, normalise_item_fields({"category": "ring"}), image_path="ab/x.jpg",
                                 image_sha256="ab" * 32)
    conn = catalog.database.conn
    steps = []
    conn.set_progress_handler(lambda: steps.append(1) and 0, 10)  # once per 10 VM instructions
    try:
        assert not catalog.items.any_priced({"category": "ring", "metal": None})
    finally:
        conn.set_progress_handler(None, 0)
    assert len(steps) < 20, f"{len(steps) * 10} VM instructions"


def test_parse_filters_rejects_bad_values():
    with pytest.raises(InvalidInput):
        parse_filters({"min_price": "cheap"})
    with pytest.raises(InvalidInput):
        parse_filters({"min_price": "10", "max_price": "5"})
    with pytest.raises(InvalidInput):
        parse_filters({"max_price": "nan"})
    assert parse_filters({"category": "  Ring "}).category == "ring"


@pytest.mark.parametrize("raw", ["0", "-5", "abc", "100000", "1.5"])
def test_parse_k_rejects(raw):
    with pytest.raises(InvalidInput):
        parse_k(raw, maximum=200)


def test_event_validation(catalog):
    ok = catalog.events.validate({"user_id": "u", "item_id": 1, "kind": "like",
                                  "ts": "2026-01-01T00:00:00Z"})
    assert ok["weight"] == 4.0 and ok["ts"] == 1767225600.0
    for bad in ({"user_id": "u", "item_id": 1, "kind": "stare"},
                {"user_id": "", "item_id": 1, "kind": "view"},
                {"user_id": "u", "kind": "view"},
                {"user_id": "u", "item_id": 1, "kind": "view", "ts": "yesterday"},
                {"user_id": "u", "item_id": 1, "kind": "view", "ts": 1e15},
                {"user_id": "u", "item_id": 1, "kind": "view", "weight": -1}):
        with pytest.raises(InvalidInput):
            catalog.events.validate(bad)


def test_timestamp_parsing():
    assert parse_timestamp(1767225600) == 1767225600.0
    assert parse_timestamp("2026-01-01T01:00:00+01:00") == 1767225600.0
    with pytest.raises(InvalidInput):
        parse_timestamp(True)


def test_catalog_version_increments(catalog):
    before = catalog.database.catalog_version()
    with catalog.database.write() as conn:
        catalog.database.bump_version(conn)
        catalog.database.bump_version(conn)
    assert catalog.database.catalog_version() == before + 2


def test_database_is_usable_from_threads(catalog):
    import threading
    errors = []

    def work(n):
        try:
            for _ in range(20):
                insert(catalog, title=f"t{n}")
        except Exception as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert catalog.items.count() == 80
