"""``GET /metrics``: Prometheus text format with a per-app registry, and who may read it."""

from __future__ import annotations

import dataclasses
import io

import pytest
from conftest import API_KEY, make_image
from prometheus_client.parser import text_string_to_metric_families

from jewelsearch.server import create_app


def scrape(client, **headers) -> dict[str, list]:
    response = client.get("/metrics", headers=headers or {"X-API-Key": API_KEY})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return {family.name: family.samples for family in text_string_to_metric_families(response.get_data(as_text=True))}


def value(samples, name: str, **labels) -> float:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def add_item(client, auth, seed: int) -> int:
    response = client.post("/api/items", data={"image": (io.BytesIO(make_image(seed=seed)), "x.png"), "title": "t"},
                           headers=auth, content_type="multipart/form-data")
    assert response.status_code == 201
    return response.get_json()["id"]


def test_metrics_report_requests_index_model_and_events(client, auth, service):
    ids = [add_item(client, auth, seed) for seed in range(3)]
    for item_id in ids[:2]:
        assert client.get(f"/api/items/{item_id}").status_code == 200
    assert client.get("/api/items/999999").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    for kind in ("like", "like", "view"):
        assert client.post("/api/events", json={"user_id": "ann", "item_id": ids[0], "kind": kind},
                           headers=auth).status_code == 201
    assert client.post("/api/events", json={"user_id": "ann", "item_id": ids[0], "kind": "stare"},
                       headers=auth).status_code == 400
    assert client.get("/api/search?q=gold").status_code == 200

    families = scrape(client)
    requests = families["jewelsearch_http_requests"]
    # One series per route template, never one per id.
    assert value(requests, "jewelsearch_http_requests_total", endpoint="/api/items/<item_id>", method="GET",
                 status="200") == 2
    assert value(requests, "jewelsearch_http_requests_total", endpoint="/api/items/<item_id>", method="GET",
                 status="404") == 1
    assert value(requests, "jewelsearch_http_requests_total", endpoint="/api/items", method="POST",
                 status="201") == 3
    assert value(requests, "jewelsearch_http_requests_total", endpoint="<unmatched>", method="GET",
                 status="404") == 1
    assert not any(str(i) in s.labels["endpoint"] for s in requests for i in ids)
    latency = families["jewelsearch_http_request_duration_seconds"]
    assert value(latency, "jewelsearch_http_request_duration_seconds_count", endpoint="/api/search",
                 method="GET", status="200") == 1
    assert value(latency, "jewelsearch_http_request_duration_seconds_bucket", endpoint="/api/search",
                 method="GET", status="200", le="+Inf") == 1
    assert value(families["jewelsearch_index_vectors"], "jewelsearch_index_vectors", kind="flat") == 3
    assert value(families["jewelsearch_model_info"], "jewelsearch_model_info",
                 model_id=service.encoder.model_id) == 1
    events = families["jewelsearch_events_recorded"]
    assert value(events, "jewelsearch_events_recorded_total", kind="like") == 2
    assert value(events, "jewelsearch_events_recorded_total", kind="view") == 1
    assert not [s for s in events if s.labels.get("kind") == "stare"]


def test_rate_limit_refusals_are_counted_by_class(settings, service):
    app = create_app(dataclasses.replace(settings, rate_limits=True, rate_limit_text="1/minute"), service,
                     autosave_seconds=None)
    client = app.test_client()
    assert [client.get("/api/search?q=ring").status_code for _ in range(3)] == [200, 429, 429]
    families = scrape(client)
    assert value(families["jewelsearch_rate_limited"], "jewelsearch_rate_limited_total", endpoint_class="text") == 2
    assert value(families["jewelsearch_http_requests"], "jewelsearch_http_requests_total",
                 endpoint="/api/search", method="GET", status="429") == 2


def test_each_app_has_its_own_registry(settings, service):
    first = create_app(settings, service, autosave_seconds=None).test_client()
    second = create_app(settings, service, autosave_seconds=None).test_client()
    for _ in range(4):
        first.get("/api/health")
    assert value(scrape(first)["jewelsearch_http_requests"], "jewelsearch_http_requests_total",
                 endpoint="/api/health") == 4
    assert not [s for s in scrape(second)["jewelsearch_http_requests"] if s.labels.get("endpoint") == "/api/health"]


@pytest.mark.parametrize("api_key, public, headers, status", [
    (API_KEY, False, {}, 401),
    (API_KEY, False, {"X-API-Key": "wrong"}, 403),
    (API_KEY, False, {"Authorization": "Bearer wrong"}, 403),
    (API_KEY, False, {"X-API-Key": API_KEY}, 200),
    (API_KEY, False, {"Authorization": f"Bearer {API_KEY}"}, 200),
    (API_KEY, True, {}, 200),
    (None, False, {}, 403),
    (None, False, {"X-API-Key": "anything"}, 403),
    (None, True, {}, 200),
])
def test_who_may_read_metrics(settings, service, api_key, public, headers, status):
    app = create_app(dataclasses.replace(settings, api_key=api_key, metrics_public=public), service,
                     autosave_seconds=None)
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == status
    if status != 200:
        body = response.get_json()
        assert body["status"] == status and body["error"]
        assert API_KEY not in response.get_data(as_text=True)
    else:
        assert b"jewelsearch_index_vectors" in response.data
