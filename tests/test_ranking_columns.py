"""The in-memory ranking columns: text queries answer the same from them as from rows, and they
follow every write to the store, from this service or any other connection to the file."""

import math

import numpy as np
import pytest
from conftest import make_image

from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.options import HybridSettings
from jewelsearch.search.params import Filters
from jewelsearch.search.ranking_columns import RankingColumnsKeeper
from jewelsearch.storage import Catalog
from jewelsearch.storage import items as item_rows

GIVEN = [
    {"title": "Oval blue sapphire pendant in sterling silver", "category": "pendant", "metal": "silver",
     "gemstone": "sapphire blue", "stone_shape": "oval", "price": 420.0},
    {"title": "Cushion pink sapphire pendant in rose gold", "category": "pendant", "metal": "rose gold",
     "gemstone": "sapphire pink", "stone_shape": "cushion", "price": 880.0},
    {"title": "Halo diamond engagement ring", "category": "ring", "metal": "white gold",
     "gemstone": "diamond", "stone_shape": "round", "price": 2600.0},
    {"title": "Pearl stud earrings in white gold", "category": "earrings", "metal": "white gold",
     "gemstone": "pearl", "price": 150.0},
    {"title": "Pearl strand necklace", "category": "necklace", "gemstone": "pearl", "price": 990.0},
    {"title": "Tennis bracelet with diamonds", "category": "bracelet", "metal": "platinum", "gemstone": "diamond"},
    {"title": "Hoop earrings in 18k yellow gold", "category": "earrings", "metal": "yellow gold", "price": 610.0},
    {"title": "Hoop  Earrings in 18K yellow gold", "category": "earrings", "metal": "yellow gold", "price": 610.0},
    {"title": "Hoop earrings in 18k yellow gold", "category": "earrings", "metal": "rose gold", "price": 610.0},
    {"title": "Emerald eternity band", "category": "ring", "metal": "platinum", "gemstone": "emerald",
     "price": 5400.0},
]
# Photos only: what recognition filled in (marked predicted), one guess not filled, one style.
# Runners-up as ingest keeps them for metal, gemstone and cut; a stone the localiser did not see
# keeps none and earns nothing.
GUESSED = [
    ({"category": "ring", "metal": "rose gold"},
     {"category": {"label": "ring", "p": 0.9}, "style": {"label": "halo", "p": 0.7},
      "metal": {"label": "rose gold", "p": 0.8, "runners_up": [["yellow gold", 0.1], ["white gold", 0.05]]}}),
    ({"category": "ring", "metal": "rose gold"},
     {"category": {"label": "ring", "p": 0.9}, "metal": {"label": "rose gold", "p": 0.8},
      "gemstone": {"label": "opal", "p": 0.7, "filled": False, "why_not_filled": "no stone seen"}}),
    ({"category": "pendant", "gemstone": "sapphire blue"},
     {"category": {"label": "pendant", "p": 0.9},
      "gemstone": {"label": "sapphire blue", "p": 0.6, "runners_up": [["sapphire pink", 0.2], ["tanzanite", 0.1]]},
      "metal": {"label": "silver", "p": 0.3, "filled": False, "runners_up": [["platinum", 0.25], ["white gold", 0.2]]}}),
]
QUERIES = ["oval sapphire pendant", "sapphire", "椭圆蓝宝石吊坠", "pearl earrings", "rose gold ring",
           "halo ring", "hoop earrings", "gold hoop earrings", "blue stone pendant", "diamond ring under $900",
           "eternity band", "tennis bracelet", "studs", "platinum", "nothing matches this", "  !!  "]


@pytest.fixture
def mixed(service):
    given = [NewItem(make_image(seed=300 + i), dict(row, sku=f"G{i}")) for i, row in enumerate(GIVEN)]
    service.add_items(given)
    bare = service.add_items([NewItem(make_image(seed=400 + i), {"price": 300.0 + i}) for i in range(len(GUESSED))])
    with service.catalog.database.write() as conn:
        for result, (fields, guesses) in zip(bare, GUESSED):
            service.catalog.items.update(conn, result.item_id, fields, attributes={"predicted": guesses})
    # Every signal counts, as served; the tiny test model's vectors are noise, but the same noise.
    service.hybrid = HybridSettings()
    return service


def answer(service, columns, **query):
    service.state.ranking_columns = columns
    payload = service.query(**query)
    payload.pop("took_ms")
    return payload


@pytest.mark.parametrize("guess_full_at", [None, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("text", QUERIES)
def test_columns_answer_exactly_as_rows(mixed, text, guess_full_at):
    mixed.hybrid = HybridSettings(guess_full_at=guess_full_at)
    keeper = RankingColumnsKeeper(mixed.catalog.items)
    assert keeper.read_all() is not None
    asked = [dict(text=text, k=4), dict(text=text, k=20, collapse=False),
             dict(text=text, k=4, dropped=("category", "price")),
             dict(text=text, k=6, filters=Filters(category="earrings"))]
    for query in asked:
        from_columns = answer(mixed, keeper, **query)
        from_rows = answer(mixed, None, **query)
        assert from_columns == from_rows, query


def test_the_columns_fold_what_the_rows_fold_and_count_the_same_facets(mixed):
    keeper = RankingColumnsKeeper(mixed.catalog.items)
    keeper.read_all()
    payload = answer(mixed, keeper, text="hoop earrings", k=5)
    (hoops,) = [card for card in payload["results"] if card.get("more_like_this")]
    assert hoops["more_like_this"] == 1  # the rose gold pair is another design
    assert payload["facets"]["metal"] and payload["facets"]["price"]
    assert payload == answer(mixed, None, text="hoop earrings", k=5)


@pytest.mark.parametrize("filters", [None, Filters(category="earrings"), Filters(gemstone="sapphire"),
                                     Filters(max_price=610.0), Filters(metal="platinum", min_price=1000.0),
                                     Filters(category="watch")])
def test_browsing_counts_the_same_facets_from_columns_as_from_the_store(mixed, filters):
    from jewelsearch.search.browse import column_facet_counts, facet_counts
    keeper = RankingColumnsKeeper(mixed.catalog.items)
    allowed = filters.for_store() if filters else {}
    from_columns = column_facet_counts(mixed.catalog, allowed, keeper.read_all())
    assert from_columns == facet_counts(mixed.catalog, allowed)
    if filters is None:  # every item counted, the unpriced bracelet in no band
        assert sum(band["count"] for band in from_columns["price"]) == len(GIVEN) + len(GUESSED) - 1
    paged = mixed.browse(filters, facets=True, limit=2)
    assert paged["facets"] == from_columns or mixed.state.ranking_columns.current() is None


def decoded(columns):
    """Every item's values in the columns, as plain Python, by id."""
    out = {}
    for row, item in enumerate(columns.ids.tolist()):
        price = float(columns.price[row])
        out[item] = ({name: columns.vocabularies[name].values[columns.codes[name][row]] for name in columns.codes},
                     columns.style_vocabulary.values[columns.style[row]], int(columns.predicted[row]),
                     None if math.isnan(price) else price, int(columns.band[row]), columns.style_titles[row],
                     {name: [(columns.vocabularies[name].values[code], p) for code, p
                             in zip(columns.guess_codes[name][row].tolist(),
                                    columns.guess_probabilities(name, np.array([row]))[0].tolist()) if code]
                      for name in columns.guess_codes})
    return out


def groups(columns):
    """Which ids share a variant group (the group numbers themselves may differ)."""
    by_group = {}
    for item, group in zip(columns.ids.tolist(), columns.variant.tolist()):
        if group:
            by_group.setdefault(group, set()).add(item)
    return sorted(sorted(members) for members in by_group.values())


def test_the_columns_follow_writes_made_through_another_connection(mixed, tmp_path):
    keeper = RankingColumnsKeeper(mixed.catalog.items)
    before = keeper.read_all()
    other = Catalog.open(mixed.catalog.database.path, tmp_path / "images")
    try:
        ids = sorted(before.ids.tolist())
        with other.database.write() as conn:
            added = other.items.insert(conn, {"title": "Hoop earrings in 18k yellow gold", "category": "earrings",
                                              "metal": "yellow gold", "price": 99.0},
                                       image_path="x.jpg", image_sha256="0" * 64)
            other.items.update(conn, ids[0], {"metal": "platinum", "price": 7000.0})
            other.items.delete(conn, ids[1])
            # The shop sets the metal recognition was unsure of: its guesses no longer count.
            other.items.update(conn, ids[-1], {"metal": "white gold"})
    finally:
        other.close()
    after = keeper.current()
    assert after is not before and after.version > before.version
    fresh = RankingColumnsKeeper(mixed.catalog.items).read_all()
    assert decoded(after) == decoded(fresh)
    assert groups(after) == groups(fresh)
    assert added in decoded(after) and ids[1] not in decoded(after)
    assert decoded(after)[ids[0]][0]["metal"] == "platinum"
    assert decoded(before)[ids[-1]][6]["metal"] and decoded(after)[ids[-1]][6]["metal"] == []
    assert decoded(after)[ids[-1]][6]["gemstone"][0] == ("sapphire blue", 0.6)  # the other fields' stay
    # The snapshot a query may still hold was not changed.
    assert ids[1] in decoded(before) and decoded(before)[ids[0]][0]["metal"] == "silver"
    # And the answers still match the rows'.
    for text in ("hoop earrings", "platinum pendant"):
        assert answer(mixed, keeper, text=text, k=5) == answer(mixed, None, text=text, k=5)


def test_a_reopened_catalog_goes_on_from_the_columns_it_had(mixed, tmp_path):
    keeper = RankingColumnsKeeper(mixed.catalog.items)
    before = keeper.read_all()
    reopened = Catalog.open(mixed.catalog.database.path, tmp_path / "images")
    try:
        moved = keeper.moved_to(reopened.items)
        assert moved.current() is before  # nothing written: nothing read again
        item = before.ids.tolist()[0]
        with reopened.database.write() as conn:
            reopened.items.update(conn, item, {"category": "brooch"})
        after = moved.current()
        assert after is not None and after.version == before.version + 1
        assert decoded(after)[item][0]["category"] == "brooch"
        assert decoded(after) == decoded(RankingColumnsKeeper(reopened.items).read_all())
    finally:
        reopened.close()


def test_a_keeper_further_behind_than_the_change_log_reads_everything_again(mixed, monkeypatch):
    monkeypatch.setattr(item_rows, "CHANGE_LOG_LENGTH", 2)
    keeper = RankingColumnsKeeper(mixed.catalog.items)
    before = keeper.read_all()
    ids = before.ids.tolist()
    with mixed.catalog.database.write() as conn:
        for price, item in enumerate(ids[:4]):
            mixed.catalog.items.update(conn, item, {"price": 10.0 + price})
    assert mixed.catalog.items.changes_since(before.version)[1] is None
    assert keeper.current() is None  # rows answer while it reads
    after = keeper.wait(timeout=30)
    assert after is not None and after.version == mixed.catalog.items.version()
    assert [decoded(after)[item][3] for item in ids[:4]] == [10.0, 11.0, 12.0, 13.0]


def test_a_catalog_above_the_limit_is_never_held_in_memory(mixed):
    keeper = RankingColumnsKeeper(mixed.catalog.items, max_items=3)
    assert keeper.read_all() is None
    assert keeper.current() is None and keeper.wait(timeout=30) is None
    # Queries then read rows, as they would without a keeper.
    assert answer(mixed, keeper, text="pearl earrings", k=3) == answer(mixed, None, text="pearl earrings", k=3)


def test_the_change_log_names_each_written_item_once_in_order(service):
    results = service.add_items([NewItem(make_image(seed=500 + i), {"title": f"Ring {i}"}) for i in range(3)])
    ids = [r.item_id for r in results]
    items = service.catalog.items
    start = items.version()
    with service.catalog.database.write() as conn:
        items.update(conn, ids[2], {"price": 1.0})
        items.update(conn, ids[0], {"price": 2.0})
        items.update(conn, ids[2], {"price": 3.0})
    now, touched = items.changes_since(start)
    assert now == start + 3
    assert touched == [ids[2], ids[0]]
    assert items.changes_since(now) == (now, [])
    assert items.changes_since(now + 5)[1] is None  # a version ahead of the file: another file


def test_positions_skip_ids_that_are_not_items(mixed):
    columns = RankingColumnsKeeper(mixed.catalog.items).read_all()
    known = columns.ids.tolist()
    found, rows = columns.positions([known[2], 10**12, known[0], -5])
    assert found.tolist() == [known[2], known[0]]
    assert np.array_equal(columns.ids[rows], found)


def test_a_failing_refresh_falls_back_to_rows_and_logs(mixed, monkeypatch, caplog):
    keeper = RankingColumnsKeeper(mixed.catalog.items)
    keeper.read_all()
    with mixed.catalog.database.write() as conn:
        mixed.catalog.items.update(conn, keeper.current().ids.tolist()[0], {"price": 1.0})

    def broken(version):
        raise RuntimeError("disk went away")
    monkeypatch.setattr(mixed.catalog.items, "changes_since", broken)
    assert keeper.current() is None
    assert "ranking columns" in caplog.text
    assert answer(mixed, keeper, text="pearl earrings", k=3) == answer(mixed, None, text="pearl earrings", k=3)


@pytest.mark.parametrize("from_columns", [True, False], ids=["columns", "rows"])
def test_coverage_counts_the_pieces_with_every_understood_field(mixed, from_columns):
    keeper = RankingColumnsKeeper(mixed.catalog.items) if from_columns else None
    if keeper is not None:
        keeper.read_all()

    def coverage(text, **query):
        return answer(mixed, keeper, text=text, k=4, **query)["coverage"]

    # The tiny catalog fits in one candidate pool, so every item is a candidate.
    assert coverage("pearl earrings")["all_understood"] == 1
    # A style from the title ("Halo diamond engagement ring") or from recognition (a guessed halo ring).
    assert coverage("halo ring")["all_understood"] == 2
    assert "note" not in coverage("halo ring")
    missing = coverage("emerald earrings")
    assert missing["all_understood"] == 0
    assert missing["note"].startswith("No piece here has all of:") and "emerald" in missing["note"]
    # A filter narrows the candidates the count is taken over.
    assert coverage("pearl necklace", filters=Filters(category="earrings"))["all_understood"] == 0
    # Dropping the field that nobody matches ends the near miss.
    assert coverage("emerald earrings", dropped=("gemstone",))["all_understood"] >= 1
    unknown = coverage("zzqx vvrt")
    assert unknown["all_understood"] is None and unknown["words"] == 0 and "zzqx vvrt" in unknown["note"]
    assert coverage("pearl")["words"] == 2 and "note" not in coverage("pearl")
    # A price alone, or only words the index skips, has no words to find: nothing to say.
    assert "note" not in coverage("under $500") and "note" not in coverage("the")


def test_weighing_guesses_moves_the_pieces_recognition_was_unsure_of(mixed):
    """The photos-only pendant whose metal recognition read as silver (0.3, not filled in) with
    platinum next (0.25): "platinum" finds nothing of it today, something with guesses weighed."""
    keeper = RankingColumnsKeeper(mixed.catalog.items)
    keeper.read_all()
    unsure = max(mixed.catalog.items.all_ids())  # the last photos-only item added
    for columns in (keeper, None):
        scores = {}
        for full_at in (None, 0.5):
            mixed.hybrid = HybridSettings(guess_full_at=full_at)
            cards = answer(mixed, columns, text="platinum", k=20, collapse=False)["results"]
            scores[full_at] = {card["id"]: card["score"] for card in cards}
        assert scores[0.5][unsure] > scores[None].get(unsure, 0.0)


def test_a_guess_held_in_ten_thousandths_is_the_rows_float_exactly():
    from jewelsearch.search.ranking_columns import PROBABILITY_UNITS
    from jewelsearch.storage.items import ranked_guesses
    for units in range(int(PROBABILITY_UNITS) + 1):
        (_, p), = ranked_guesses({"label": "silver", "p": units / 7 / PROBABILITY_UNITS * 7}, None)
        assert round(p * PROBABILITY_UNITS) / PROBABILITY_UNITS == p
