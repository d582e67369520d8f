import io
import json
from pathlib import Path

import pytest
from conftest import API_KEY, make_image
from PIL import Image

from jewelsearch.config import Settings
from jewelsearch.search.service import SearchService
from jewelsearch.storage import Catalog


def post_item(client, auth, seed=0, **fields):
    data = {"image": (io.BytesIO(make_image(seed=seed)), "x.png"), "title": f"item {seed}"}
    data.update(fields)
    return client.post("/api/items", data=data, headers=auth, content_type="multipart/form-data")


@pytest.fixture
def filled(client, auth):
    ids = []
    for seed, category in enumerate(["ring", "ring", "necklace", "earrings", "ring", "bracelet"]):
        response = post_item(client, auth, seed=seed, category=category, metal="gold", price=str(50 * (seed + 1)))
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    return ids


def test_health_ready_stats(client, filled):
    assert client.get("/api/health").json == {"status": "ok"}
    assert client.get("/api/ready").json["status"] == "ready"
    stats = client.get("/api/stats").json
    assert stats["items"] == 6 and stats["index_kind"] == "flat" and stats["dim"] == 32
    assert stats["model_id"].startswith("tiny-test-")


def test_text_search_shape(client, filled):
    response = client.get("/api/search?q=gold+ring&k=3")
    assert response.status_code == 200
    body = response.json
    assert set(body) == {"results", "took_ms", "offset", "next_offset", "understood", "facets", "coverage"}
    assert len(body["results"]) == 3 and body["offset"] == 0 and body["next_offset"] == 3
    row = body["results"][0]
    for key in ("id", "score", "title", "category", "metal", "gemstone", "price", "image_url"):
        assert key in row
    assert "image_path" not in row
    assert client.get(row["image_url"]).status_code == 200


def test_search_filters(client, filled):
    body = client.get("/api/search?q=x&k=10&category=ring&max_price=200").json
    assert {r["category"] for r in body["results"]} == {"ring"}
    assert all(r["price"] <= 200 for r in body["results"]) and len(body["results"]) == 2


def test_post_search_with_image_and_text(client, filled):
    data = {"image": (io.BytesIO(make_image(seed=2)), "q.png")}
    top = client.post("/api/search", data=data, content_type="multipart/form-data").json["results"][0]
    assert top["id"] == filled[2]
    data = {"image": (io.BytesIO(make_image(seed=2)), "q.png"), "q": "but in rose gold", "k": "4"}
    response = client.post("/api/search", data=data, content_type="multipart/form-data")
    assert response.status_code == 200 and len(response.json["results"]) == 4


def test_post_search_json(client, filled):
    response = client.post("/api/search", json={"q": "ring", "k": 2})
    assert response.status_code == 200 and len(response.json["results"]) == 2


def test_pages_of_photo_and_item_queries_are_slices_of_one_ranking(client, filled):
    """Page by page, with each answer's next_offset, the same results as one long page, for a
    posted photo, a photo with words, and an item's similar pieces."""
    def photo(offset, k, **fields):
        data = {"image": (io.BytesIO(make_image(seed=2)), "q.png"), "k": str(k), "offset": str(offset), **fields}
        return client.post("/api/search", data=data, content_type="multipart/form-data").json

    asks = [photo, lambda offset, k: photo(offset, k, q="gold ring"),
            lambda offset, k: client.get(f"/api/items/{filled[0]}/similar?k={k}&offset={offset}").json]
    for ask in asks:
        whole = ask(0, 20)
        assert whole["next_offset"] is None and len(whole["results"]) >= 5
        paged, offset = [], 0
        while offset is not None:
            page = ask(offset, 2)
            assert page["offset"] == offset
            paged += [row["id"] for row in page["results"]]
            offset = page["next_offset"]
        assert paged == [row["id"] for row in whole["results"]]


def test_the_catalog_pages_by_filter_and_price_with_facets_over_every_allowed_item(client, auth, filled):
    rings = client.get("/api/items?category=ring&sort=price_desc&limit=2&facets=true").json
    assert [row["id"] for row in rings["items"]] == [filled[4], filled[1]]  # 250, 100 (50 is next)
    assert (rings["total"], rings["next_offset"], rings["sort"]) == (3, 2, "price_desc")
    assert rings["facets"]["category"] == [{"value": "ring", "count": 3}]  # all three, not the page's two
    assert [(band["label"], band["count"]) for band in rings["facets"]["price"]] == [("under 250", 2),
                                                                                    ("250 to 500", 1)]
    last = client.get("/api/items?category=ring&sort=price_desc&limit=2&offset=2").json
    assert [row["id"] for row in last["items"]] == [filled[0]] and last["next_offset"] is None
    assert "facets" not in last  # counted on request only
    # An item without a price comes last whichever way prices run.
    unpriced = post_item(client, auth, seed=9, category="ring", metal="gold").json["id"]
    for sort in ("price_asc", "price_desc"):
        assert client.get(f"/api/items?category=ring&sort={sort}").json["items"][-1]["id"] == unpriced
    cheap = client.get("/api/items?sort=price_asc&max_price=100&limit=50").json
    assert [row["id"] for row in cheap["items"]] == [filled[0], filled[1]] and cheap["total"] == 2
    newest = client.get("/api/items?sort=newest&limit=1").json
    assert newest["items"][0]["id"] == unpriced and newest["total"] == 7
    # The OpenAPI document describes the page as it is answered.
    described = client.get("/openapi.json").json["components"]["schemas"]["CatalogPage"]
    assert set(described["required"]) <= set(last) and set(rings) <= set(described["properties"])


def test_a_bad_catalog_page_says_which_parameter(client, filled):
    for query, message in [("limit=0", "limit must be between 1 and 500"), ("limit=x", "limit must be an integer"),
                           ("offset=-1", "offset must be 0 or more"), ("sort=cheap", "sort must be one of"),
                           ("facets=maybe", "facets must be true or false")]:
        answer = client.get("/api/items?" + query)
        assert answer.status_code == 400 and message in answer.json["error"], (query, answer.json)


def test_item_endpoints(client, filled):
    item = client.get(f"/api/items/{filled[0]}").json
    assert item["id"] == filled[0] and item["category"] == "ring"
    similar = client.get(f"/api/items/{filled[0]}/similar?k=3").json["results"]
    assert len(similar) == 3 and filled[0] not in [r["id"] for r in similar]
    image = client.get(f"/api/items/{filled[0]}/image")
    assert image.status_code == 200 and image.mimetype == "image/png"
    listing = client.get("/api/items?limit=2").json
    assert listing["total"] == 6 and len(listing["items"]) == 2


def test_update_and_delete(client, auth, filled, service):
    response = client.patch(f"/api/items/{filled[1]}", json={"title": "Renamed", "price": 12}, headers=auth)
    assert response.status_code == 200 and response.json["title"] == "Renamed"
    assert service.catalog.items.get(filled[1])["price"] == 12
    assert client.delete(f"/api/items/{filled[1]}", headers=auth).json == {"deleted": filled[1]}
    assert client.get(f"/api/items/{filled[1]}").status_code == 404
    assert client.get("/api/stats").json["items"] == 5


def test_events_and_recommendations(client, auth, filled):
    response = client.post("/api/events", json={"user_id": "ann", "item_id": filled[0], "kind": "like"},
                           headers=auth)
    assert response.status_code == 201 and isinstance(response.json["id"], int)
    body = client.get("/api/users/ann/recommendations?k=3", headers=auth).json
    assert len(body["results"]) == 3
    assert all(r["reasons"] and "score" in r and "image_url" in r for r in body["results"])
    ring_only = client.get("/api/users/ann/recommendations?k=5&category=ring", headers=auth).json["results"]
    assert {r["category"] for r in ring_only} == {"ring"}


def test_exclude_seen_leaves_out_recent_engagements(client, auth, filled):
    for item in filled[:2]:
        client.post("/api/events", json={"user_id": "bo", "item_id": item, "kind": "view"}, headers=auth)
    seen = {r["id"] for r in client.get("/api/users/bo/recommendations?k=5", headers=auth).json["results"]}
    assert set(filled[:2]) <= seen  # by default a viewed item can come back ("you viewed this")
    fresh = client.get("/api/users/bo/recommendations?k=5&exclude_seen=true", headers=auth).json["results"]
    assert fresh and not {r["id"] for r in fresh} & set(filled[:2])


# ----- API key enforcement -------------------------------------------------

WRITES = [
    ("post", "/api/items", {"data": {"image": (io.BytesIO(b"x"), "x.png")},
                            "content_type": "multipart/form-data"}),
    ("post", "/api/events", {"json": {"user_id": "u", "item_id": 1, "kind": "view"}}),
    ("delete", "/api/items/1", {}),
    ("patch", "/api/items/1", {"json": {"title": "x"}}),
]


@pytest.mark.parametrize("method,url,kwargs", WRITES)
def test_writes_without_key_are_401_and_change_nothing(client, filled, service, method, url, kwargs):
    before = (service.catalog.items.count(), service.catalog.events.count(),
              service.catalog.items.get(1)["title"])
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == 401 and "X-API-Key" in response.json["error"]
    response = getattr(client, method)(url, headers={"X-API-Key": "wrong"}, **{
        k: ({"image": (io.BytesIO(b"x"), "x.png")} if k == "data" else v) for k, v in kwargs.items()})
    assert response.status_code == 403
    assert API_KEY not in response.get_data(as_text=True)
    after = (service.catalog.items.count(), service.catalog.events.count(),
             service.catalog.items.get(1)["title"])
    assert before == after


def test_no_key_configured_means_writes_forbidden(settings, service):
    from jewelsearch.server import create_app
    settings.api_key = None
    client = create_app(settings, service, autosave_seconds=None).test_client()
    response = client.post("/api/events", json={"user_id": "u", "item_id": 1, "kind": "view"})
    assert response.status_code == 403 and "allow-unauthenticated-writes" in response.json["error"]
    settings.allow_unauthenticated_writes = True
    client = create_app(settings, service, autosave_seconds=None).test_client()
    data = {"image": (io.BytesIO(make_image(seed=1)), "x.png")}
    assert client.post("/api/items", data=data, content_type="multipart/form-data").status_code == 201


# ----- bad input: always a JSON 4xx, never a 500, nothing written -----------

def bomb_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


BAD_UPLOADS = [
    (b"this is not an image", 400),
    (make_image(fmt="JPEG", size=(200, 200), seed=1)[:300], 400),   # truncated
    (b"", 400),
]


@pytest.mark.parametrize("payload,status", BAD_UPLOADS)
def test_bad_uploads(client, auth, service, payload, status):
    data = {"image": (io.BytesIO(payload), "bad.jpg"), "title": "bad"}
    response = client.post("/api/items", data=data, headers=auth, content_type="multipart/form-data")
    assert response.status_code == status and response.json["error"]
    assert service.catalog.items.count() == 0
    data = {"image": (io.BytesIO(payload), "bad.jpg")}
    response = client.post("/api/search", data=data, content_type="multipart/form-data")
    assert response.status_code == status


def test_decompression_bomb_is_413(client, auth, service):
    data = {"image": (io.BytesIO(bomb_png()), "bomb.png")}
    response = client.post("/api/items", data=data, headers=auth, content_type="multipart/form-data")
    assert response.status_code == 413 and "pixels" in response.json["error"]
    assert service.catalog.items.count() == 0


def test_oversized_upload_is_413(settings, service, auth):
    from jewelsearch.server import create_app
    settings.max_upload_bytes = 20_000
    client = create_app(settings, service, autosave_seconds=None).test_client()
    big = make_image(size=(800, 800), seed=1, fmt="BMP")
    data = {"image": (io.BytesIO(big), "big.bmp")}
    response = client.post("/api/items", data=data, headers=auth, content_type="multipart/form-data")
    assert response.status_code == 413 and response.is_json
    assert service.catalog.items.count() == 0


@pytest.mark.parametrize("query", [
    "/api/search", "/api/search?q=", "/api/search?q=" + "x" * 600, "/api/search?q=a&k=0",
    "/api/search?q=a&k=-3", "/api/search?q=a&k=abc", "/api/search?q=a&k=100000",
    "/api/search?q=a&min_price=cheap", "/api/search?q=a&min_price=9&max_price=1",
    "/api/search?q=a&max_price=nan", "/api/search?q=a&text_weight=7",
    "/api/items/1/similar?k=0", "/api/users/u/recommendations?k=9999",
    "/api/users/u/recommendations?exclude_seen=maybe",
    "/api/search?q=a&offset=-1", "/api/search?q=a&offset=two", "/api/search?q=a&k=10&offset=191",
    "/api/items/1/similar?offset=-5", "/api/items/1/similar?k=150&offset=51",
    "/api/items?sort=cheapest", "/api/items?facets=maybe", "/api/items?offset=-1", "/api/items?limit=0",
    "/api/items?min_price=9&max_price=1",
])
def test_bad_query_params_are_400(client, auth, filled, query):
    response = client.get(query, headers=auth)  # the key: a shopper's recommendations need it
    assert response.status_code == 400 and response.is_json and response.json["error"]


@pytest.mark.parametrize("item_id", ["999", "0", "-1", "abc", "..%2F..%2Fetc%2Fpasswd", "1e3", "%C2%B2", "%D9%A3"])
def test_unknown_ids_are_404(client, filled, item_id):
    for url in (f"/api/items/{item_id}", f"/api/items/{item_id}/similar", f"/api/items/{item_id}/image"):
        response = client.get(url)
        assert response.status_code == 404 and response.is_json, url


def test_path_traversal_never_serves_files(client, filled):
    response = client.get("/api/items/../../etc/passwd/image")
    assert response.status_code == 404
    assert b"root:" not in response.data


@pytest.mark.parametrize("body,content_type", [
    ("{not json", "application/json"), ("[1, 2]", "application/json"), ("", "application/json"),
    ('{"user_id": "u"}', "application/json"), ("user_id=u", "application/x-www-form-urlencoded"),
    ('{"user_id": "u", "item_id": 1, "kind": "stare"}', "application/json"),
    ('{"user_id": "u", "item_id": 1, "kind": "view", "ts": "soon"}', "application/json"),
    ('{"user_id": "u", "item_id": "../x", "kind": "view"}', "application/json"),
    ('{"user_id": "u", "item_id": 424242, "kind": "view"}', "application/json"),
    ('{"user_id": "u", "item_id": 99999999999999999999999, "kind": "view"}', "application/json"),  # > int64
    ('{"user_id": ' + '[' * 5000 + ']' * 5000 + '}', "application/json"),
])
def test_bad_event_bodies_are_4xx_and_store_nothing(client, auth, filled, service, body, content_type):
    response = client.post("/api/events", data=body, content_type=content_type, headers=auth)
    assert 400 <= response.status_code < 500 and response.is_json
    assert service.catalog.events.count() == 0


def test_bad_item_fields_are_400_and_store_nothing(client, auth, service):
    for fields in ({"price": "lots"}, {"title": "x" * 1000}, {"price": "-1"}):
        response = post_item(client, auth, **fields)
        assert response.status_code == 400, fields
    assert service.catalog.items.count() == 0
    response = client.post("/api/items", data={"title": "no image"}, headers=auth,
                           content_type="multipart/form-data")
    assert response.status_code == 400 and "image" in response.json["error"]


def test_patch_unknown_field_and_unknown_item(client, auth, filled):
    assert client.patch(f"/api/items/{filled[0]}", json={"colour": "red"}, headers=auth).status_code == 400
    assert client.patch("/api/items/9999", json={"title": "x"}, headers=auth).status_code == 404


def test_unknown_route_and_method_are_json(client):
    assert client.get("/api/nope").status_code == 404 and client.get("/api/nope").is_json
    response = client.put("/api/health")
    assert response.status_code == 405 and response.is_json


def test_security_headers_on_page(client, filled):
    response = client.get("/")
    assert response.status_code == 200
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Access-Control-Allow-Origin" not in response.headers
    assert client.get(f"/items/{filled[0]}").status_code == 200


def test_openapi_document_lists_every_route(client, app):
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.")
    documented = set(doc["paths"])
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            assert rule.rule.replace("<", "{").replace(">", "}") in documented, rule.rule


def test_request_id_is_echoed_only_when_plain(client):
    assert client.get("/api/health", headers={"X-Request-Id": "abc123"}).headers["X-Request-Id"] == "abc123"
    odd = '{"forged": "log line"}'
    injected = client.get("/api/health", headers={"X-Request-Id": odd}).headers["X-Request-Id"]
    assert injected != odd and injected.isalnum()


def test_cors_off_unless_configured(settings, service):
    from jewelsearch.server import create_app
    client = create_app(settings, service, autosave_seconds=None).test_client()
    assert "Access-Control-Allow-Origin" not in client.get("/api/health", headers={"Origin": "https://evil.example"}).headers
    settings.cors_origins = "https://shop.example"
    client = create_app(settings, service, autosave_seconds=None).test_client()
    response = client.get("/api/health", headers={"Origin": "https://shop.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Access-Control-Allow-Origin" not in client.get("/api/health", headers={"Origin": "https://evil.example"}).headers


def test_key_never_in_logs(client, filled, caplog):
    import logging
    caplog.set_level(logging.INFO)
    client.post("/api/events", json={"user_id": "u", "item_id": 1, "kind": "view"}, headers={"X-API-Key": API_KEY})
    client.post("/api/events", json={"user_id": "u", "item_id": 1, "kind": "view"}, headers={"X-API-Key": "wrong-" + API_KEY})
    assert API_KEY not in caplog.text
    assert '"status": 201' in caplog.text and '"status": 403' in caplog.text


def test_ten_megabyte_strings_and_control_characters_are_4xx(client, auth, filled, service):
    huge = "a" * (10 * 1024 * 1024)
    before = service.catalog.items.count()
    response = client.post("/api/search", data=json.dumps({"q": huge}), content_type="application/json")
    assert response.status_code in (400, 413) and "error" in response.json
    response = client.post("/api/items", headers=auth, content_type="multipart/form-data",
                           data={"image": (io.BytesIO(make_image(seed=50)), "x.png"), "title": huge})
    assert response.status_code in (400, 413) and "error" in response.json
    response = client.post("/api/events", headers=auth, content_type="application/json",
                           data=json.dumps({"user_id": huge, "item_id": 1, "kind": "view"}))
    assert response.status_code in (400, 413) and "error" in response.json
    assert service.catalog.items.count() == before and service.catalog.events.count() == 0
    response = client.get("/api/search?q=" + "%00%01%1b[31mring")
    assert response.status_code == 400
    response = client.get("/api/search?q=" + "%e2%80%ae%f0%9f%92%8d ring \u200b")
    assert response.status_code == 200


def test_images_are_served_from_a_relative_home(tmp_path, tiny_model_dir, tiny_encoder, monkeypatch, auth):
    # The default home is the relative "jewelsearch-data"; Flask's send_file would read a
    # relative path against the package folder and answer 500.
    from jewelsearch.server import create_app
    monkeypatch.chdir(tmp_path)
    settings = Settings(home=Path("relative-home"), model=str(tiny_model_dir), api_key=API_KEY)
    settings.home.mkdir()
    catalog = Catalog.open(settings.db_path, settings.images_dir)
    try:
        app = create_app(settings, SearchService(catalog, tiny_encoder, settings.index_dir), autosave_seconds=None)
        client = app.test_client()
        item = post_item(client, auth, seed=3).json["id"]
        image = client.get(f"/api/items/{item}/image")
        assert image.status_code == 200 and image.mimetype == "image/png"
    finally:
        catalog.close()
