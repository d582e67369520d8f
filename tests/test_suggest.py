"""Completions while typing (``search/suggest.py``, ``/api/suggest``, ``jewelsearch suggest``)."""

from __future__ import annotations

import pytest
from conftest import make_image

from jewelsearch.errors import InvalidInput
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.suggest import COUNT_CAP, MAX_TEXT

SHOP = [("Oval blue sapphire pendant in silver", "pendant"), ("Oval sapphire ring in gold", "ring"),
        ("Cushion sapphire ring", "ring"), ("Salt and pepper diamond ring", "ring"),
        ("Pearl stud earrings", "earrings"), ("Pearl strand necklace", "necklace")]


@pytest.fixture
def shop(service):
    service.add_items([NewItem(make_image(seed=400 + i), {"title": title, "category": category, "sku": f"SKU-{i}"})
                       for i, (title, category) in enumerate(SHOP)])
    return service


def texts(payload):
    return [(row["text"], row["listings"]) for row in payload["suggestions"]]


def test_the_last_word_is_completed_with_listings_holding_every_word(shop):
    assert texts(shop.suggest("sa")) == [("sapphire", 3), ("salt", 1)]
    assert texts(shop.suggest("oval sapph")) == [("oval sapphire", 2)]
    assert texts(shop.suggest("cushion sa")) == [("cushion sapphire", 1)]  # salt: no cushion piece holds it
    # Words before the last count as text search reads them: a price is a filter, not words.
    assert texts(shop.suggest("pearl under $500 st")) == [("pearl under $500 strand", 1), ("pearl under $500 stud", 1)]
    assert texts(shop.suggest("珍珠 st")) == [("珍珠 strand", 1), ("珍珠 stud", 1)]
    assert texts(shop.suggest("pearl ea")) == [("pearl earrings", 1)]  # held as "earring", said as shops say it
    # A word no listing holds: nothing offered, rather than a count that ignores it.
    assert shop.suggest("vintage sa")["suggestions"] == []
    # "gold" is read as yellow gold, but a listing that says just "gold" counts.
    assert texts(shop.suggest("gold ri")) == [("gold ring", 1)]


def test_chinese_is_completed_to_glossary_phrases_one_per_meaning(shop):
    got = texts(shop.suggest("椭圆蓝宝"))
    assert ("椭圆蓝宝石", 2) in got  # oval + sapphire: the pendant and the oval ring
    # Earrings and studs; drops (耳坠) would find nothing here. 蓝宝 and 蓝宝石 mean the same: one.
    assert texts(shop.suggest("珍珠耳")) == [("珍珠耳环", 1), ("珍珠耳钉", 1)]
    assert [text for text, _ in texts(shop.suggest("蓝宝"))].count("蓝宝石") == 1
    assert shop.suggest("翡")["suggestions"] == []  # jade: no listing holds it


@pytest.mark.parametrize("text", ["", "s", "sapphire ", "zz", "12", "sku", "\"*"])
def test_nothing_is_offered_for_finished_short_unknown_or_code_words(shop, text):
    # "sku": a word of the index only through the items' SKUs, never offered.
    assert shop.suggest(text)["suggestions"] == []


def test_query_syntax_is_read_as_words(shop):
    assert texts(shop.suggest('"oval" (sa')) == [('"oval" sapphire', 2)]
    assert shop.suggest("NEAR( -title: sa")["suggestions"] == []  # no listing holds "near" or "title"
    assert shop.suggest('"title:sa*')["suggestions"] == []  # one typed word holding two words: none


def test_limit_and_length_are_checked(shop):
    assert len(shop.suggest("s", 1)["suggestions"]) == 0
    assert len(shop.suggest("sa", 1)["suggestions"]) == 1
    with pytest.raises(InvalidInput):
        shop.suggest("s" * (MAX_TEXT + 1))
    assert COUNT_CAP >= 1000


@pytest.mark.parametrize("query", ["/api/suggest", "/api/suggest?q=sa&limit=0", "/api/suggest?q=sa&limit=11",
                                   "/api/suggest?q=sa&limit=two", "/api/suggest?q=" + "a" * (MAX_TEXT + 1)])
def test_bad_requests_are_400(client, query):
    response = client.get(query)
    assert response.status_code == 400 and response.is_json and response.json["error"]


def test_the_api_and_the_cli_answer_the_same(client, shop, settings):
    from click.testing import CliRunner

    from jewelsearch.cli import main as cli
    answer = client.get("/api/suggest?q=oval%20sa&limit=3")
    assert answer.status_code == 200 and answer.json == {"suggestions": [{"text": "oval sapphire", "listings": 2}]}
    result = CliRunner().invoke(cli, ["--home", str(settings.home), "suggest", "oval sa", "--json"])
    assert result.exit_code == 0, result.output
    assert '"oval sapphire"' in result.output
    bad = CliRunner().invoke(cli, ["--home", str(settings.home), "suggest", "oval sa", "--limit", "0"])
    assert bad.exit_code != 0 and "limit" in bad.output
