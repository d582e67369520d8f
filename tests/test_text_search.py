"""Hybrid text search: the shop's words, understood attributes and the text vector together,
with facets, folded variants and removable understanding. The tiny random test model makes
the vector signal noise, so the catalog fixture leaves it out of the ranking and these tests
see what the words and the attributes contribute (the demo-catalog tests use the real model)."""

import io

import pytest
from conftest import make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.options import HybridSettings
from jewelsearch.search.params import Filters

CATALOG = [
    {"title": "Oval blue sapphire pendant in sterling silver", "category": "pendant", "metal": "silver",
     "gemstone": "sapphire blue", "stone_shape": "oval", "price": 420.0},
    {"title": "Cushion pink sapphire pendant in rose gold", "category": "pendant", "metal": "rose gold",
     "gemstone": "sapphire pink", "stone_shape": "cushion", "price": 880.0},
    {"title": "Marquise peridot pendant in yellow gold", "category": "pendant", "metal": "yellow gold",
     "gemstone": "peridot", "stone_shape": "marquise", "price": 310.0},
    {"title": "Pearl stud earrings in white gold", "category": "earrings", "metal": "white gold",
     "gemstone": "pearl", "price": 150.0},
    {"title": "Pearl strand necklace", "category": "necklace", "gemstone": "pearl", "price": 990.0},
    {"title": "Round diamond solitaire ring in platinum", "category": "ring", "metal": "platinum",
     "gemstone": "diamond", "stone_shape": "round", "price": 4200.0},
    {"title": "Hoop earrings in 18k yellow gold", "category": "earrings", "metal": "yellow gold", "price": 610.0},
    {"title": "Hoop earrings in 18k yellow gold", "category": "earrings", "metal": "yellow gold", "price": 610.0},
    {"title": "Hoop earrings in 18k yellow gold", "category": "earrings", "metal": "yellow gold", "price": 610.0},
]


@pytest.fixture
def shop(service):
    items = [NewItem(make_image(seed=100 + i), dict(row, sku=f"S{i}")) for i, row in enumerate(CATALOG)]
    ids = [r.item_id for r in service.add_items(items)]
    weights = {name: w for name, w in service.hybrid.weights.items() if name != "semantic"}
    service.hybrid = HybridSettings(weights=weights)
    return service, dict(zip(range(len(ids)), ids))


def titles(payload):
    return [row["title"] for row in payload["results"]]


@pytest.mark.parametrize("text", ["oval sapphire pendant", "椭圆蓝宝石吊坠", "Oval Sapphire Pendants"])
def test_the_shops_own_words_find_the_oval_sapphire_pendant_first(shop, text):
    service, ids = shop
    payload = service.query(text=text, k=5)
    assert payload["results"][0]["id"] == ids[0]
    # The other sapphire pendant outranks pendants that share only the category.
    assert titles(payload).index(CATALOG[1]["title"]) < titles(payload).index(CATALOG[2]["title"])
    understood = payload["understood"]
    assert understood["attributes"]["stone_shape"] == ["oval"]
    assert "sapphire blue" in understood["attributes"]["gemstone"]


@pytest.mark.parametrize("text", ["pearl earrings", "珍珠耳环"])
def test_pearl_earrings_come_before_pearl_necklaces(shop, text):
    service, ids = shop
    order = [row["id"] for row in service.query(text=text, k=9)["results"]]
    assert order[0] == ids[3]
    assert order.index(ids[3]) < order.index(ids[4])


def test_an_understood_price_is_a_filter_the_shopper_can_drop(shop):
    service, ids = shop
    capped = service.query(text="pendant under $500", k=9)
    assert {row["price"] for row in capped["results"]} <= {420.0, 310.0, 150.0}
    assert capped["understood"]["price_filter"] == {"max_price": 500.0}
    loose = service.query(text="pendant under $500", k=9, dropped=("price",))
    assert ids[1] in [row["id"] for row in loose["results"]]
    assert loose["understood"]["dropped"] == ["price"]
    assert loose["understood"]["price_filter"] is None


def test_a_price_filter_the_shopper_set_wins_over_the_words(shop):
    service, _ = shop
    payload = service.query(text="pendant under $500", k=9, filters=Filters(max_price=900.0))
    assert 880.0 in {row["price"] for row in payload["results"]}
    assert payload["understood"]["price_filter"] is None


def test_attributes_are_boosts_not_filters(shop):
    service, ids = shop
    order = [row["id"] for row in service.query(text="sapphire pendant", k=9)["results"]]
    assert set(order[:2]) == {ids[0], ids[1]}
    assert ids[2] in order  # the peridot pendant still shows, after the sapphires


def test_identical_listings_fold_into_one_card_unless_asked_not_to(shop):
    service, ids = shop
    folded = service.query(text="gold hoop earrings", k=9)
    hoops = [row for row in folded["results"] if row["title"] == CATALOG[6]["title"]]
    assert len(hoops) == 1 and hoops[0]["more_like_this"] == 2
    assert sorted([hoops[0]["id"]] + hoops[0]["variant_ids"]) == [ids[6], ids[7], ids[8]]
    apart = service.query(text="gold hoop earrings", k=9, collapse=False)
    assert sum(row["title"] == CATALOG[6]["title"] for row in apart["results"]) == 3


@pytest.mark.parametrize("collapse", [True, False])
def test_pages_of_a_text_query_are_slices_of_one_ranking(shop, collapse):
    service, _ = shop
    whole = service.query(text="gold hoop earrings", k=20, collapse=collapse)
    cards = [(row["id"], row.get("variant_ids", [])) for row in whole["results"]]
    # Every listing the words match fits on one page of 20; pages of 2 take several.
    assert whole["offset"] == 0 and whole["next_offset"] is None and len(cards) >= 4
    paged, offset = [], 0
    while offset is not None:
        page = service.query(text="gold hoop earrings", k=2, collapse=collapse, offset=offset)
        assert page["offset"] == offset and len(page["results"]) <= 2
        assert page["facets"] == whole["facets"]  # the counts describe the query, not the page
        paged += [(row["id"], row.get("variant_ids", [])) for row in page["results"]]
        offset = page["next_offset"]
    assert paged == cards
    assert service.query(text="gold hoop earrings", k=2, collapse=collapse, offset=len(cards))["results"] == []


def test_facets_count_the_candidates_and_group_gem_families(shop):
    service, _ = shop
    facets = service.query(text="sapphire pendant", k=3)["facets"]
    gems = {f["value"]: f for f in facets["gemstone"]}
    assert gems["sapphire"]["count"] == 2
    assert {m["value"] for m in gems["sapphire"]["members"]} == {"sapphire blue", "sapphire pink"}
    assert {f["value"] for f in facets["category"]} >= {"pendant"}
    assert all(band["count"] > 0 for band in facets["price"])


def test_a_gemstone_family_filters_every_colour(shop):
    service, ids = shop
    for query in ({"text": "pendant"}, {"item_id": ids[2]}):
        found = {row["id"] for row in service.query(k=9, filters=Filters(gemstone="sapphire"), **query)["results"]}
        assert found == {ids[0], ids[1]}
    exact = service.query(text="pendant", k=9, filters=Filters(gemstone="sapphire pink"))
    assert [row["id"] for row in exact["results"]] == [ids[1]]


def test_photos_only_items_are_found_through_predicted_attributes(service):
    # No titles or fields given: recognition's guesses (marked predicted) are all there is.
    service.add_items([NewItem(make_image(seed=7), {"price": 300.0})])
    (row,) = service.catalog.items.list()
    with service.catalog.database.write() as conn:
        service.catalog.items.update(conn, row["id"], {"category": "ring", "metal": "rose gold"}, attributes={
            "predicted": {"category": {"label": "ring", "p": 0.9}, "metal": {"label": "rose gold", "p": 0.8}}})
    assert service.catalog.items.ranking_rows([row["id"]])[row["id"]]["predicted"] == {"category", "metal"}
    service.add_items([NewItem(make_image(seed=8), {"title": "Plain silver chain", "category": "necklace",
                                                    "metal": "silver"})])
    assert service.query(text="rose gold ring", k=2)["results"][0]["id"] == row["id"]


def test_unknown_dropped_field_is_a_clear_error(shop):
    service, _ = shop
    from jewelsearch.errors import InvalidInput
    with pytest.raises(InvalidInput, match="drop"):
        service.query(text="ring", k=3, dropped=("colour",))


def test_fusion_settings_are_read_per_request(shop):
    service, ids = shop
    service.hybrid = HybridSettings(weights={"lexical": 1.0})
    assert service.query(text="peridot", k=1)["results"][0]["id"] == ids[2]
    service.hybrid = HybridSettings(weights={"semantic": 1.0}, method="rrf")
    assert len(service.query(text="peridot", k=3)["results"]) == 3


def test_api_answers_with_understood_and_facets_and_takes_drop_and_collapse(client, auth):
    for i, row in enumerate(CATALOG):
        data = {k: str(v) for k, v in row.items()}
        data["image"] = (io.BytesIO(make_image(seed=200 + i)), "x.png")
        assert client.post("/api/items", data=data, headers=auth,
                           content_type="multipart/form-data").status_code == 201
    answer = client.get("/api/search?q=gold+hoop+earrings+under+%24700&k=5").get_json()
    assert answer["results"][0]["more_like_this"] == 2
    assert answer["understood"]["price_filter"] == {"max_price": 700.0}
    assert "facets" in answer and answer["facets"]["category"]
    apart = client.get("/api/search?q=gold+hoop+earrings&k=5&collapse=false").get_json()
    assert sum(r["title"] == CATALOG[6]["title"] for r in apart["results"]) == 3
    dropped = client.get("/api/search?q=pendant+under+%24500&k=9&drop=price").get_json()
    assert 880.0 in {r["price"] for r in dropped["results"]}
    bad = client.get("/api/search?q=ring&drop=colour")
    assert bad.status_code == 400 and "drop" in bad.get_json()["error"]
    assert client.get("/api/search?q=ring&collapse=maybe").status_code == 400
    assert client.get("/api/search?q=pendant&gemstone=sapphire").status_code == 200


HOSTILE = st.one_of(
    st.text(max_size=200),
    st.sampled_from(['"', '""', "*", "NEAR", "NEAR(a b)", "AND", "OR", "NOT", "(", ")", "-", "^", "title:ring",
                     "ring OR", '"unterminated', "a*b", "\u200b\u200d", "💍💎", "戒指 ring 18k", "x" * 500,
                     "{}[]", "\\", "'; DROP TABLE items; --"]),
    st.lists(st.sampled_from(["ring", "NEAR", "*", '"', "(", "title:", "蓝宝石", "-", "^", "OR"]),
             max_size=12).map(" ".join),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=HOSTILE)
def test_hostile_text_gets_an_answer_never_an_error(shop, text):
    service, ids = shop
    text = " ".join(text.replace("\x00", "").split())[:500]
    if not text:
        return
    payload = service.query(text=text, k=5)
    assert {row["id"] for row in payload["results"]} <= set(ids.values())
    assert "understood" in payload and "facets" in payload


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=HOSTILE)
def test_hostile_text_over_http_is_never_a_5xx(client, text):
    response = client.get("/api/search", query_string={"q": text, "k": "3"})
    assert response.status_code < 500
    assert response.is_json


def test_a_guess_the_shop_corrected_counts_as_given(service):
    """Ranking and the word index agree on what is predicted: a value recognition filled and
    nobody changed; a guess that was not filled, or that the shop overwrote, is not."""
    service.add_items([NewItem(make_image(seed=9), {"price": 300.0})])
    (row,) = service.catalog.items.list()
    guesses = {"category": {"label": "ring", "p": 0.9}, "metal": {"label": "silver", "p": 0.6},
               "gemstone": {"label": "opal", "p": 0.3, "filled": False}}
    with service.catalog.database.write() as conn:
        service.catalog.items.update(conn, row["id"], {"category": "ring", "metal": "rose gold"},
                                     attributes={"predicted": guesses})
    ranked = service.catalog.items.ranking_rows([row["id"]])[row["id"]]
    assert ranked["predicted"] == {"category"}


def test_a_price_phrase_over_a_catalog_without_prices_is_shown_not_applied(service):
    # A photos-only shop lists no prices: "under $900" could only empty the page.
    service.add_items([NewItem(make_image(seed=60 + i), {"category": "ring"}) for i in range(3)])
    payload = service.query(text="ring under $900", k=5, collapse=False)
    assert len(payload["results"]) == 3
    understood = payload["understood"]
    assert understood["price_filter"] is None
    assert understood["price_not_applied"] == {"max_price": 900.0, "reason": "no prices listed"}
    (chip,) = [c for c in understood["chips"] if c["field"] == "price"]
    assert chip["note"] == "no prices listed"


def test_a_price_phrase_stays_strict_where_some_items_list_prices(service):
    service.add_items([NewItem(make_image(seed=70), {"category": "ring", "price": 500.0}),
                       NewItem(make_image(seed=71), {"category": "ring", "price": 2000.0}),
                       NewItem(make_image(seed=72), {"category": "ring"})])
    payload = service.query(text="ring under $900", k=5)
    assert [row["price"] for row in payload["results"]] == [500.0]
    assert payload["understood"]["price_filter"] == {"max_price": 900.0}
    assert "price_not_applied" not in payload["understood"]


def test_a_price_phrase_is_judged_within_the_filters_the_shopper_set(service):
    # Priced necklaces elsewhere do not make a price filter over unpriced rings meaningful.
    service.add_items([NewItem(make_image(seed=80), {"category": "necklace", "price": 300.0}),
                       NewItem(make_image(seed=81), {"category": "ring"})])
    payload = service.query(text="under $900", k=5, filters=Filters(category="ring"))
    assert [row["category"] for row in payload["results"]] == ["ring"]
    assert payload["understood"]["price_not_applied"]["max_price"] == 900.0


def test_photos_only_items_with_the_same_guesses_are_not_folded(service):
    # Recognition read both photos the same way; that is no sign they are one design.
    service.add_items([NewItem(make_image(seed=90 + i), {"price": 300.0}) for i in range(2)])
    rows = service.catalog.items.list()
    guesses = {"category": {"label": "ring", "p": 0.9}, "metal": {"label": "silver", "p": 0.8}}
    with service.catalog.database.write() as conn:
        for row in rows:
            service.catalog.items.update(conn, row["id"], {"category": "ring", "metal": "silver"},
                                         attributes={"predicted": guesses})
    payload = service.query(text="silver ring", k=5)
    assert len(payload["results"]) == 2
    assert not any(card.get("more_like_this") for card in payload["results"])
