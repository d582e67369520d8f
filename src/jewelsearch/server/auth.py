"""API-key checks, and the web page's session (signed cookie + CSRF token).

With no key configured, writes are refused (403) unless the operator opted
out with ``--allow-unauthenticated-writes``, so a default install is not an
open catalog; a shopper's data is never opened that way (``server/shopper.py``).
Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from urllib.parse import urlsplit

from flask import current_app, request, session

from jewelsearch.errors import Forbidden, Unauthorized


def check_write_access() -> None:
    settings = current_app.config["JEWELSEARCH_SETTINGS"]
    if not settings.api_key:
        if settings.allow_unauthenticated_writes:
            return
        raise Forbidden("writes are disabled: set JEWELSEARCH_API_KEY (and send it as X-API-Key) "
                        "or start the server with --allow-unauthenticated-writes")
    check_api_key()


def check_api_key() -> None:
    """The request carries the configured key: 401 without one, 403 with a wrong one or when
    no key is configured (then only the shop's own page sessions get in)."""
    expected = current_app.config["JEWELSEARCH_SETTINGS"].api_key
    if not expected:
        raise Forbidden("this endpoint needs an API key, and none is configured: set JEWELSEARCH_API_KEY "
                        "(and send it as X-API-Key)")
    given = request.headers.get("X-API-Key", "")
    if not given:
        raise Unauthorized("this endpoint needs an API key in the X-API-Key header")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8")):
        raise Forbidden("the API key is not valid")


def key_given() -> bool:
    """The request names a key (valid or not): it speaks for the shop's backend, not a page."""
    return "X-API-Key" in request.headers


def csrf_token() -> str:
    """The page's CSRF token, created on first use and kept in the signed session cookie."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def page_session_ok() -> bool:
    """A same-origin request from our page: session cookie + matching CSRF header."""
    expected = session.get("csrf")
    given = request.headers.get("X-CSRF-Token", "")
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        return False
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin and urlsplit(origin).netloc != request.host:
        return False
    return True


def requires_write_key(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        check_write_access()
        return view(*args, **kwargs)
    return wrapper
