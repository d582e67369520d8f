"""``create_app``: build the Flask app around a service (or from settings)."""

from __future__ import annotations

import atexit
import json
import logging
import secrets
import threading
import time
import uuid

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from jewelsearch.config import Settings
from jewelsearch.errors import JewelsearchError
from jewelsearch.search.service import SearchService
from jewelsearch.server.metrics import install_metrics
from jewelsearch.server.rate_limits import RateLimitRules, RateLimitSettingsError, install_rate_limits

log = logging.getLogger(__name__)
access = logging.getLogger("jewelsearch.access")

FORM_OVERHEAD_BYTES = 1 << 20  # room for text fields beside the image in a multipart body
USERS_PREFIX = "/api/users/"


def create_app(settings: Settings, service: SearchService | None = None, *,
               autosave_seconds: float | None = 2.0) -> Flask:
    rules = check_server_settings(settings)  # before the (slow) service is opened
    if service is None:
        from jewelsearch.search.wiring import open_service
        service = open_service(settings)
    # A server answers many text queries: it keeps their ranking fields in memory, read once
    # in the background now (queries read rows until then).
    service.keep_ranking_columns()
    app = Flask(__name__)
    app.config["JEWELSEARCH_SETTINGS"] = settings
    app.config["JEWELSEARCH_SERVICE"] = service
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    app.config["MAX_FORM_MEMORY_SIZE"] = FORM_OVERHEAD_BYTES
    app.json.sort_keys = False
    app.config["SECRET_KEY"] = settings.secret_key or secrets.token_hex(32)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Strict"

    from jewelsearch.server.api import api
    from jewelsearch.server.web import web
    app.register_blueprint(api, url_prefix="/api")
    app.register_blueprint(web)
    _register_error_handlers(app)

    @app.get("/openapi.json")
    def openapi():
        from jewelsearch.server.openapi import openapi_document
        return jsonify(openapi_document())

    # First, so that requests refused by a later hook (a rate limit) are timed and counted.
    metrics = install_metrics(app, service, settings)

    @app.before_request
    def assign_request_id():
        given = request.headers.get("X-Request-Id", "")
        # Only a short, plain id is echoed back, so a header cannot inject into logs.
        g.request_id = given if given.isalnum() and len(given) <= 64 else uuid.uuid4().hex[:16]
        g.started = time.perf_counter()

    @app.after_request
    def access_log(response):
        # One structured line per request; never headers or bodies (they may hold the key).
        access.info(json.dumps({"request_id": g.get("request_id"), "method": request.method,
                                "path": logged_path(request.path), "status": response.status_code,
                                "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1)}))
        return response

    @app.after_request
    def headers(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Referrer-Policy", "same-origin")
        origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
        origin = request.headers.get("Origin")
        if origin and origin in origins and request.path.startswith("/api/"):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
            response.headers["X-Frame-Options"] = "DENY"
        return response

    if settings.trusted_proxy_hops:
        # The client is the address the trusted proxies report (rate limits, access log).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops)
    if settings.rate_limits:
        # Last, so a refused request already has its request id and metrics timer.
        install_rate_limits(app, rules, on_refusal=metrics.refused)

    if autosave_seconds:
        _start_autosave(service, autosave_seconds)
    return app


def use_service(app: Flask, service: SearchService) -> None:
    """Answer from ``service`` from the next request on (a local read replica's new copy of the
    home). Requests already running keep the service they started with; building a new app
    instead costs about 0.2 s of route compiling per swap."""
    app.config["JEWELSEARCH_SERVICE"] = service


def logged_path(path: str) -> str:
    """The path as the access log shows it: a shopper's id is personal data (and an erasure
    request must not leave it in the log), so it is replaced by a placeholder.

    >>> logged_path("/api/users/ann%40example.com/recommendations")
    '/api/users/<user_id>/recommendations'
    """
    if path.startswith(USERS_PREFIX):
        # Everything after the prefix may be the id (a decoded "%2F" is a slash too).
        tail = "/recommendations" if path.endswith("/recommendations") else ""
        path = USERS_PREFIX + "<user_id>" + tail
    return path[:200]


def check_server_settings(settings: Settings) -> RateLimitRules:
    """The rate-limit rules; raises ``RateLimitSettingsError`` for a setting the server cannot use."""
    if settings.trusted_proxy_hops < 0:
        raise RateLimitSettingsError("trusted_proxy_hops must be 0 or more")
    return RateLimitRules.from_settings(settings)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(JewelsearchError)
    def library_error(exc: JewelsearchError):
        status = exc.status if 400 <= exc.status < 600 else 400
        if status >= 500:
            log.error("request %s failed: %s", g.get("request_id"), exc)
        return jsonify(error=str(exc), status=status), status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        limit = app.config["JEWELSEARCH_SETTINGS"].max_upload_bytes
        return jsonify(error=f"the upload is too large; the image limit is {limit} bytes",
                       status=413), 413

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify(error=exc.description or exc.name, status=exc.code), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("request %s: unexpected error", g.get("request_id"))
        return jsonify(error="internal error; the request id is in the X-Request-Id header",
                       status=500), 500


def _start_autosave(service: SearchService, interval: float) -> None:
    """Persist the index shortly after writes, off the request path."""
    stop = threading.Event()

    def loop():
        while not stop.wait(interval):
            try:
                service.save()
            except Exception:  # a failed save is retried; the store stays the truth
                log.exception("saving the index failed")

    thread = threading.Thread(target=loop, name="index-autosave", daemon=True)
    thread.start()

    def final_save():
        stop.set()
        try:
            service.save()
        except Exception:
            log.exception("final index save failed")
    atexit.register(final_save)
