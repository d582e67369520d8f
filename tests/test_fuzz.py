"""Property-based fuzzing of the decoder, the parsers and the API: no 5xx, no crash."""

import io
import json

import pytest
from conftest import make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jewelsearch.embed.images import load_image
from jewelsearch.errors import BadImage, InvalidInput
from jewelsearch.search.params import parse_filters, parse_k, parse_query_text

SEEDS = [make_image(fmt=f, seed=1, size=(40, 30)) for f in ("PNG", "JPEG", "GIF", "BMP", "WEBP")]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.binary(max_size=4096))
def test_decoder_on_random_bytes(data):
    try:
        loaded = load_image(data, max_pixels=1_000_000)
    except BadImage:
        return
    assert loaded.image.mode == "RGB"


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
       st.integers(0, 4096))
def test_decoder_on_mutated_images(seed, flips, cut):
    data = bytearray(seed)
    for position, value in flips:
        data[position % len(data)] = value
    data = bytes(data[: max(1, len(data) - cut)])
    try:
        loaded = load_image(data, max_pixels=1_000_000)
    except BadImage:  # includes ImageTooLarge
        return
    assert loaded.image.mode == "RGB" and loaded.image.size[0] * loaded.image.size[1] <= 1_000_000


TEXT = st.one_of(st.none(), st.text(max_size=200), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                 st.booleans())


@FUZZ
@given(st.dictionaries(st.sampled_from(["category", "metal", "gemstone", "stone_shape", "min_price",
                                        "max_price", "other"]), TEXT))
def test_filter_parser(raw):
    try:
        filters = parse_filters(raw)
    except InvalidInput:
        return
    if filters.min_price is not None and filters.max_price is not None:
        assert filters.min_price <= filters.max_price


@FUZZ
@given(TEXT)
def test_k_and_text_parsers(value):
    for parse in (lambda v: parse_k(v, maximum=200), lambda v: parse_query_text(v, 500)):
        try:
            parse(value)
        except InvalidInput:
            pass


@pytest.fixture
def fuzz_client(client, auth):
    for seed in range(3):
        data = {"image": (io.BytesIO(make_image(seed=seed)), "x.png"), "category": "ring", "price": "10"}
        assert client.post("/api/items", data=data, headers=auth, content_type="multipart/form-data").status_code == 201
    return client


QUERY = st.dictionaries(st.sampled_from(["q", "k", "category", "min_price", "max_price", "text_weight", "seed",
                                         "limit", "offset", "metal"]),
                        st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60), max_size=6)
PATH_ID = st.one_of(st.integers(-5, 10**20).map(str), st.text(alphabet="./%09azAZ-_~", max_size=30))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(QUERY, PATH_ID, st.sampled_from(["/api/search", "/api/items/{id}", "/api/items/{id}/similar",
                                         "/api/items/{id}/image", "/api/users/{id}/recommendations", "/api/items"]))
def test_get_endpoints_never_5xx(fuzz_client, auth, query, item_id, template):
    from urllib.parse import quote, urlencode
    url = template.replace("{id}", quote(item_id, safe="")) + "?" + urlencode(query)
    response = fuzz_client.get(url, headers=auth)  # with the key, so recommendations get past the gate
    assert response.status_code < 500, (url, response.get_data(as_text=True)[:200])


JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
                           max_leaves=20)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.fixed_dictionaries({}, optional={"user_id": JSON_VALUES, "item_id": JSON_VALUES, "kind": JSON_VALUES,
                                           "ts": JSON_VALUES, "weight": JSON_VALUES}))
def test_event_bodies_never_5xx(fuzz_client, auth, body):
    response = fuzz_client.post("/api/events", data=json.dumps(body), content_type="application/json", headers=auth)
    assert response.status_code in (201, 400, 404), response.get_data(as_text=True)[:200]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=2048), st.dictionaries(st.sampled_from(["title", "price", "category", "sku", "q"]),
                                                 st.text(max_size=40), max_size=4))
def test_multipart_uploads_never_5xx(fuzz_client, auth, blob, fields):
    for url in ("/api/items", "/api/search", "/api/recognize"):
        data = dict(fields, image=(io.BytesIO(blob), "f.jpg"))
        response = fuzz_client.post(url, data=data, headers=auth, content_type="multipart/form-data")
        assert response.status_code < 500, (url, response.get_data(as_text=True)[:200])
