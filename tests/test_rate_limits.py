"""Rate limits per client address and endpoint class (server/rate_limits.py, Flask-Limiter)."""

from __future__ import annotations

import dataclasses
import io
import re
import time

import pytest
from click.testing import CliRunner
from conftest import API_KEY, make_image
from flask import request

from jewelsearch.config import Settings
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.server import create_app
from jewelsearch.server.openapi import openapi_document
from jewelsearch.server.rate_limits import RateLimitSettingsError, request_class

UNLIMITED = {"rate_limit_upload": "", "rate_limit_image": "", "rate_limit_text": "", "rate_limit_write": ""}


@pytest.fixture
def limited(settings, service):
    """An app with rate limits on: only the rates given, the other classes unlimited."""
    def build(**overrides):
        values = dict(UNLIMITED, rate_limits=True, **overrides)
        return create_app(dataclasses.replace(settings, **values), service, autosave_seconds=None)
    return build


def client_at(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def image_search(client):
    return client.post("/api/search", data={"image": (io.BytesIO(make_image(seed=1)), "q.png")},
                       content_type="multipart/form-data")


def add_item(client, seed: int):
    return client.post("/api/items", data={"image": (io.BytesIO(make_image(seed=seed)), "x.png"), "title": "t"},
                       headers={"X-API-Key": API_KEY}, content_type="multipart/form-data")


def assert_refused(response):
    assert response.status_code == 429, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == 429 and "too many" in body["error"] and "limit" in body["error"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_image_requests_hit_their_limit_and_nothing_else_does(limited):
    app = limited(rate_limit_image="2/minute", rate_limit_text="100/minute")
    shopper = client_at(app, "10.0.0.1")
    assert [image_search(shopper).status_code for _ in range(2)] == [200, 200]
    assert_refused(image_search(shopper))
    # Recognize is the same class: its allowance is spent too.
    assert_refused(shopper.post("/api/recognize", data={"image": (io.BytesIO(make_image(seed=2)), "x.png")},
                                content_type="multipart/form-data"))
    # Words are another class, whether sent as a query string or as the page's multipart form.
    assert shopper.get("/api/search?q=gold+ring").status_code == 200
    assert shopper.post("/api/search", data={"q": "gold ring"}, content_type="multipart/form-data").status_code == 200
    # Another address has its own allowance.
    assert image_search(client_at(app, "10.0.0.2")).status_code == 200


@pytest.mark.parametrize("rate_class, request_one", [
    ("upload", lambda c, i: add_item(c, seed=100 + i)),
    ("write", lambda c, i: c.post("/api/events", json={"user_id": "ann", "item_id": 1, "kind": "view"},
                                  headers={"X-API-Key": API_KEY})),
    ("text", lambda c, i: c.get("/api/users/ann/recommendations", headers={"X-API-Key": API_KEY})),
    ("image", lambda c, i: c.get("/api/explain?item=1&query_item=1")),
])
def test_each_class_is_limited_on_its_own(limited, service, rate_class, request_one):
    # Item 1, for the events and the explanation.
    assert service.add_items([NewItem(make_image(seed=1), {"title": "t"})])[0].item_id == 1
    app = limited(**{f"rate_limit_{rate_class}": "1/minute"})
    client = client_at(app, "10.0.0.3")
    assert request_one(client, 0).status_code < 400
    assert_refused(request_one(client, 1))
    # Every other class still answers for the same client.
    others = {"upload": lambda: add_item(client, seed=999), "text": lambda: client.get("/api/search?q=ring"),
              "image": lambda: image_search(client),
              "write": lambda: client.post("/api/events", json={"user_id": "bo", "item_id": 1, "kind": "like"},
                                           headers={"X-API-Key": API_KEY})}
    for name, call in others.items():
        if name != rate_class:
            assert call().status_code < 400, name


def test_health_ready_metrics_and_pages_are_never_limited(limited):
    app = limited(rate_limit_upload="1/minute", rate_limit_image="1/minute", rate_limit_text="1/minute",
                  rate_limit_write="1/minute")
    client = client_at(app, "10.0.0.4")
    for _ in range(5):
        for path in ("/api/health", "/api/ready", "/api/stats", "/openapi.json", "/", "/api/items"):
            assert client.get(path).status_code == 200, path
        assert client.get("/metrics", headers={"X-API-Key": API_KEY}).status_code == 200


def test_forwarded_for_counts_only_behind_a_trusted_proxy(limited):
    untrusting = client_at(limited(rate_limit_text="1/minute"), "10.0.0.5")
    assert untrusting.get("/api/search?q=ring", headers={"X-Forwarded-For": "1.1.1.1"}).status_code == 200
    # A client cannot escape its limit by claiming another address.
    assert_refused(untrusting.get("/api/search?q=ring", headers={"X-Forwarded-For": "2.2.2.2"}))

    proxy = client_at(limited(rate_limit_text="1/minute", trusted_proxy_hops=1), "127.0.0.1")
    assert proxy.get("/api/search?q=ring", headers={"X-Forwarded-For": "1.1.1.1"}).status_code == 200
    assert proxy.get("/api/search?q=ring", headers={"X-Forwarded-For": "2.2.2.2"}).status_code == 200
    assert_refused(proxy.get("/api/search?q=ring", headers={"X-Forwarded-For": "1.1.1.1"}))


def test_limits_are_on_by_default_and_off_in_the_test_fixture(app):
    assert Settings().rate_limits is True
    assert all(re.fullmatch(r"\d+/minute", getattr(Settings(), f"rate_limit_{c}"))
               for c in ("upload", "image", "text", "write"))
    assert "limiter" not in app.extensions


def test_bad_rate_settings_are_clear_errors(settings, service, tmp_path):
    with pytest.raises(RateLimitSettingsError, match="rate_limit_text"):
        create_app(dataclasses.replace(settings, rate_limit_text="lots"), service, autosave_seconds=None)
    with pytest.raises(RateLimitSettingsError, match="rate_limit_storage"):
        create_app(dataclasses.replace(settings, rate_limits=True, rate_limit_storage="nosuch://x"), service,
                   autosave_seconds=None)
    with pytest.raises(RateLimitSettingsError, match="trusted_proxy_hops"):
        create_app(dataclasses.replace(settings, trusted_proxy_hops=-1), service, autosave_seconds=None)
    from jewelsearch.cli import main
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "h"), "serve"],
                                env={"JEWELSEARCH_RATE_LIMIT_IMAGE": "60 per fortnight"})
    assert result.exit_code == 1 and "bad settings: rate_limit_image" in result.output
    assert "Traceback" not in result.output


def test_documented_429s_match_the_limited_endpoints(app):
    """Every operation the OpenAPI document says may answer 429 is counted in a class, and
    every operation counted in a class says so."""
    for path, operations in openapi_document()["paths"].items():
        concrete = path.replace("{item_id}", "1").replace("{user_id}", "ann")
        for method, operation in operations.items():
            with app.test_request_context(concrete, method=method.upper(), query_string={"q": "x"}):
                assert ("429" in operation["responses"]) == (request_class(request) is not None), (method, path)


def test_an_oversized_upload_is_still_413_with_limits_on(limited, settings):
    """Working out a search's class reads the form; a body over the cap must stay a 413."""
    client = client_at(limited(rate_limit_image="5/minute"), "10.0.0.6")
    big = io.BytesIO(b"\0" * (settings.max_upload_bytes + (2 << 20)))
    response = client.post("/api/search", data={"image": (big, "big.png")}, content_type="multipart/form-data")
    assert response.status_code == 413 and response.get_json()["status"] == 413


def test_a_client_that_waits_retry_after_gets_in_again(limited):
    client = client_at(limited(rate_limit_text="1/second"), "10.0.0.7")
    assert client.get("/api/search?q=ring").status_code == 200
    refused = client.get("/api/search?q=ring")
    assert_refused(refused)
    time.sleep(int(refused.headers["Retry-After"]))
    assert client.get("/api/search?q=ring").status_code == 200
