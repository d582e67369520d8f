"""Rate limits per client and endpoint class, with Flask-Limiter.

Each request falls into at most one class: the costly ones (uploads, image work) get tight
limits, cheap reads looser ones, and health, readiness, metrics, pages and image files none.
Every class is one shared bucket per client address, so ``GET`` and ``POST /api/search`` with
words draw on the same "text" allowance. A client is its connection's address;
``trusted_proxy_hops`` (``create_app`` wraps the app in werkzeug's ``ProxyFix``) makes it the
address the trusted proxies report instead.

The counters live in this process's memory (``rate_limit_storage = "memory://"``, kept by
``rate_limit_store.LocalCounters``, which needs no timer thread); several server processes
share one allowance only through a shared backend: Redis, or on one machine a SQLite file
(``shared_rate_counters``, which ``serve --replicas N --engine local`` sets up by itself).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

from flask import Flask, Request, g, jsonify, request
from flask_limiter import Limit, Limiter, RateLimitExceeded
from limits import parse_many

from jewelsearch.config import Settings
from jewelsearch.server import shared_rate_counters  # noqa: F401  (registers its storage scheme with limits)
from jewelsearch.server.rate_limit_store import SCHEME as LOCAL_COUNTERS

UPLOAD, IMAGE, TEXT, WRITE = "upload", "image", "text", "write"

# What a refusal calls each class ("too many image requests ...").
CLASS_NAMES = {UPLOAD: "uploads", IMAGE: "image requests (search, recognize, explain)",
               TEXT: "searches", WRITE: "writes"}

# Endpoints whose class does not depend on the request's body.
_FIXED_CLASS = {
    "api.recognize": IMAGE,
    "api.explain": IMAGE,
    "api.add_item": UPLOAD,
    "api.similar": TEXT,
    "api.recommendations": TEXT,
    "api.delete_item": WRITE,
    "api.add_event": WRITE,
}


class RateLimitSettingsError(ValueError):
    """A rate-limit setting that cannot be used (a malformed rate, an unknown storage)."""


@dataclass(frozen=True)
class RateLimitRules:
    """The rate string of each class ("" = unlimited) and where the counters live."""

    rates: dict[str, str]
    storage_uri: str = "memory://"

    @classmethod
    def from_settings(cls, settings: Settings) -> "RateLimitRules":
        rates = {UPLOAD: settings.rate_limit_upload, IMAGE: settings.rate_limit_image,
                 TEXT: settings.rate_limit_text, WRITE: settings.rate_limit_write}
        for name, rate in rates.items():
            if rate.strip():
                try:
                    parse_many(rate)
                except ValueError as exc:
                    raise RateLimitSettingsError(
                        f"rate_limit_{name} = {rate!r} is not a rate such as \"60/minute\" or "
                        f"\"10/second;300/hour\" ({exc})") from None
        return cls({k: v.strip() for k, v in rates.items()}, settings.rate_limit_storage)


def request_class(req: Request) -> str | None:
    """The endpoint class a request is counted in, or None when it is never limited.

    A search is an image request when it carries an image file (the page sends text searches
    as multipart forms too, so the content type alone does not tell).
    """
    endpoint = req.endpoint
    if endpoint == "api.search":
        return IMAGE if req.method == "POST" and "image" in req.files else TEXT
    if endpoint == "api.update_item":
        return UPLOAD if req.mimetype == "multipart/form-data" and "image" in req.files else WRITE
    return _FIXED_CLASS.get(endpoint or "")


def client_address() -> str:
    return request.remote_addr or "unknown"


def install_rate_limits(app: Flask, rules: RateLimitRules,
                        on_refusal: Callable[[str], None] | None = None) -> Limiter:
    """Limit ``app``'s requests by ``rules``; a refusal is a 429 JSON error with Retry-After.

    Call it after the app's other ``before_request`` hooks (request id, metrics timer), so a
    refused request still carries its id and is timed. ``on_refusal`` gets the class name.
    """
    limits = [
        Limit(rate, key_function=client_address, scope=name, shared=True,
              exempt_when=lambda name=name: _current_class() != name,
              error_message=f"too many {CLASS_NAMES[name]} from this address (limit {rate}); "
                            "retry after the number of seconds in the Retry-After header")
        for name, rate in rules.rates.items() if rate
    ]
    # "memory://" is kept by our own counters (limits' starts a timer thread on most requests).
    storage_uri = f"{LOCAL_COUNTERS}://" if rules.storage_uri.strip() == "memory://" else rules.storage_uri
    try:
        # A counter store that fails at run time (Redis gone, a shared file unwritable) lets the
        # request through with a logged warning: the limits guard the service, and must not be
        # what takes it down (no 500s). A store that cannot be used at start is refused below.
        limiter = Limiter(client_address, app=app, default_limits=limits, storage_uri=storage_uri,
                          strategy="sliding-window-counter", headers_enabled=False, swallow_errors=True)
    except Exception as exc:  # limits raises ConfigurationError for an unknown or unusable backend
        raise RateLimitSettingsError(f"rate_limit_storage = {rules.storage_uri!r}: {exc}") from None
    # A request in no class skips the limiter's whole evaluation (cheaper than four exemptions).
    limiter.request_filter(lambda: _current_class() is None)

    @app.errorhandler(RateLimitExceeded)
    def too_many_requests(exc: RateLimitExceeded):
        name = g.get("rate_class") or "unknown"
        if on_refusal:
            on_refusal(name)
        current = limiter.current_limit
        # When the window lets this client in again (``reset_at`` would round up a further second).
        wait = max(1, math.ceil(current.window.reset_time - time.time())) if current else 1
        response = jsonify(error=exc.description, status=429)
        response.status_code = 429
        response.headers["Retry-After"] = str(wait)
        return response

    return limiter


def _current_class() -> str | None:
    """This request's class, worked out once per request."""
    if "rate_class" not in g:
        g.rate_class = request_class(request)
    return g.rate_class
