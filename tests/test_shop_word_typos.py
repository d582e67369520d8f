"""Typos of a shop's own words (``storage/lexical_vocabulary.py``): a word no listing holds is
read as the word one letter away that the most listings hold, where the words found nothing
together; never an English word, a glossary word, or a tie."""

from __future__ import annotations

import pytest
from conftest import make_image

from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.options import HybridSettings
from jewelsearch.storage import Catalog
from jewelsearch.storage.items import normalise_item_fields
from jewelsearch.storage.lexical import TABLE
from jewelsearch.storage.lexical_vocabulary import LONGEST, respellings, single_edits

SHOP = [
    {"title": "Aurora butterfly pendant in rose gold", "category": "pendant", "metal": "rose gold"},
    {"title": "Butterfly stud earrings in silver", "category": "earrings", "metal": "silver"},
    {"title": "Filigree cuff bracelet in silver", "category": "bracelet", "metal": "silver"},
    {"title": "Oval blue sapphire ring in yellow gold", "category": "ring", "metal": "yellow gold",
     "gemstone": "sapphire blue", "stone_shape": "oval"},
    {"title": "Zorba charm bracelet", "category": "bracelet"},
    {"title": "Zorbu charm necklace", "category": "necklace"},
    {"title": "Plain chain necklace in yellow gold", "category": "necklace", "metal": "yellow gold"},
]


@pytest.fixture
def shop(service):
    added = service.add_items([NewItem(make_image(seed=300 + i), dict(row, sku=f"T{i}")) for i, row in enumerate(SHOP)])
    # The tiny test model's vectors are noise: rank by the words and attributes alone.
    service.hybrid = HybridSettings(weights={k: w for k, w in service.hybrid.weights.items() if k != "semantic"})
    return service, [r.item_id for r in added]


@pytest.mark.parametrize("typed, meant, first", [("butterfy pendant", "butterfly", 0), ("aurorra", "aurora", 0),
                                                 ("filigre cuff", "filigree", 2)])
def test_a_typo_of_a_shop_word_finds_the_pieces_that_use_it(shop, typed, meant, first):
    service, ids = shop
    payload = service.query(text=typed, k=5)
    assert payload["results"][0]["id"] == ids[first]
    assert meant in payload["understood"]["corrected"].values()
    assert "note" not in payload["coverage"]  # the words were found, read right


@pytest.mark.parametrize("text", ["bold ring", "opal ring", "butterfly cuff", "zorbx charm", "aurora"])
def test_no_reading_for_english_glossary_spelled_right_or_tied_words(shop, text):
    # "bold" is English (gold is one letter away), "opal" a glossary gem (the shop has an oval
    # ring), "butterfly cuff" spelled right (no piece holds both), "zorbx" as near zorba as
    # zorbu, "aurora" found.
    service, _ = shop
    assert service.query(text=text, k=5)["understood"]["corrected"] == {}


def test_the_word_most_listings_hold_wins(tmp_path):
    catalog = Catalog.open(tmp_path / "c.db", tmp_path / "images")
    try:
        for n, title in enumerate(["Lotus ring", "Lotus pendant", "Lotus earrings", "Latus ring", "Locus ring"]):
            with catalog.database.write() as conn:
                catalog.items.insert(conn, normalise_item_fields({"title": title}), image_path=f"ab/{n}.jpg",
                                     image_sha256=f"{n:02d}" * 32)
        conn = catalog.database.conn
        assert respellings(conn, TABLE, ["lotsu", "lotus", "x" * (LONGEST + 1)]) == {"lotsu": "lotus"}
        assert respellings(conn, TABLE, ['lo"tus', "*", "NEAR("]) == {'lo"tus': "lotus"}  # quoted, never FTS syntax
        # Within the index's own words: "lutus" is one letter from lotus and from latus.
        assert respellings(conn, TABLE, ["lutus"]) == {"lutus": "lotus"}
        hits, read_as = catalog.lexical.search_respelling(["lotsu ring"], may_respell=lambda word: True)
        assert read_as == {"lotsu": "lotus"} and hits
        assert catalog.lexical.search_respelling(["lotsu ring"], may_respell=None)[1] == {}
    finally:
        catalog.close()


def test_single_edits_cover_each_kind_of_edit():
    edits = single_edits("ring")
    assert {"rng", "rign", "rung", "rinkg"} <= edits and "ring" not in edits
    assert len(edits) == len(set(edits))


def test_the_module_examples_hold():
    import doctest

    from jewelsearch.storage import lexical_vocabulary
    assert doctest.testmod(lexical_vocabulary).failed == 0
