"""``GET /metrics``: Prometheus text format, from a registry that belongs to one app.

Per request: a count and a latency histogram labelled by route template (``/api/items/<item_id>``,
never the raw path, so ids cannot multiply the series), method and status. At scrape time: the
index's size and kind and the model id, read from the service. Counted as they happen: events
recorded through this server (by kind) and rate-limit refusals (by endpoint class).

The page answers with the API key (``X-API-Key``, or ``Authorization: Bearer KEY`` as Prometheus'
``authorization`` scrape setting sends it); without one only when ``metrics_public`` is true.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Callable, Iterator

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric

from jewelsearch.config import Settings
from jewelsearch.errors import Forbidden, Unauthorized
from jewelsearch.search.service import SearchService
from jewelsearch.storage.events import EVENT_KINDS

UNMATCHED = "<unmatched>"  # 404 and 405 answers have no route template


class ServiceCollector:
    """Reads the service's live state when Prometheus scrapes (a rebuild swaps the index; a
    local read replica swaps the whole service, so it is looked up at each scrape)."""

    def __init__(self, service: SearchService | Callable[[], SearchService]):
        self.current = service if callable(service) else (lambda: service)

    @property
    def service(self) -> SearchService:
        return self.current()

    def collect(self) -> Iterator[Metric]:
        index = self.service.index
        size = GaugeMetricFamily("jewelsearch_index_vectors", "Vectors in the search index, by index kind",
                                 labels=["kind"])
        size.add_metric([index.kind], len(index))
        yield size
        yield GaugeMetricFamily("jewelsearch_index_dimension", "Dimension of the index's vectors",
                                value=index.dim)
        yield InfoMetricFamily("jewelsearch_model", "The model that embeds queries and items",
                               value={"model_id": self.service.encoder.model_id})


class ServerMetrics:
    """The app's metrics; ``registry`` is its own, so several apps in one process never clash."""

    def __init__(self, service: SearchService | Callable[[], SearchService], registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("jewelsearch_http_requests", "HTTP requests answered",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram("jewelsearch_http_request_duration_seconds",
                                 "Time from the request reaching the app to its answer",
                                 ["endpoint", "method", "status"], registry=self.registry)
        self.events = Counter("jewelsearch_events_recorded", "Shopper events recorded through this server",
                              ["kind"], registry=self.registry)
        self.refusals = Counter("jewelsearch_rate_limited", "Requests refused by a rate limit",
                                ["endpoint_class"], registry=self.registry)
        self.registry.register(ServiceCollector(service))

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        labels = (endpoint, method, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def refused(self, endpoint_class: str) -> None:
        self.refusals.labels(endpoint_class).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def install_metrics(app: Flask, service: SearchService, settings: Settings) -> ServerMetrics:
    """Time every request of ``app`` and serve ``/metrics``. Install it before the app's other
    ``before_request`` hooks, so requests they refuse are timed too."""
    metrics = ServerMetrics(lambda: app.config["JEWELSEARCH_SERVICE"])  # ``use_service`` may swap it

    @app.before_request
    def start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def record(response):
        started = g.get("metrics_started")
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule is not None else UNMATCHED
            metrics.observe(endpoint, request.method, response.status_code, time.perf_counter() - started)
        if request.endpoint == "api.add_event" and response.status_code == 201:
            metrics.events.labels(_event_kind()).inc()
        return response

    def metrics_page():
        _check_access(settings)
        return Response(metrics.exposition(), mimetype=None, content_type=CONTENT_TYPE_PLAIN_0_0_4)

    app.add_url_rule("/metrics", "metrics", metrics_page, methods=["GET"])
    return metrics


def _event_kind() -> str:
    """The kind of the event just stored (the body was validated, so it parses)."""
    try:
        kind = json.loads(request.get_data(cache=True)).get("kind")
    except (ValueError, AttributeError):
        return "other"
    return kind if kind in EVENT_KINDS else "other"


def _check_access(settings: Settings) -> None:
    given = request.headers.get("X-API-Key", "")
    bearer = request.headers.get("Authorization", "")
    if not given and bearer.lower().startswith("bearer "):
        given = bearer[7:].strip()
    expected = settings.api_key
    if given and expected and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8")):
        return
    if settings.metrics_public:
        return
    if not expected:
        raise Forbidden("metrics are closed: set an API key (JEWELSEARCH_API_KEY) and send it, "
                        "or set metrics_public = true for a scraper on a private network")
    if not given:
        raise Unauthorized("/metrics needs the API key in the X-API-Key header "
                           "(or Authorization: Bearer), unless metrics_public = true")
    raise Forbidden("the API key is not valid")
