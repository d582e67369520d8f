"""API-key checks for write endpoints.

With no key configured, writes are refused (403) unless the operator opted
out with ``--allow-unauthenticated-writes``, so a default install is not an
open catalog.  Keys are compared in constant time and never logged.
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
    expected = settings.api_key
    if not expected:
        if settings.allow_unauthenticated_writes:
            return
        raise Forbidden("writes are disabled: set JEWELSEARCH_API_KEY (and send it as X-API-Key) "
                        "or start the server with --allow-unauthenticated-writes")
    given = request.headers.get("X-API-Key", "")
    if not given:
        raise Unauthorized("this endpoint needs an API key in the X-API-Key header")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8")):
        raise Forbidden("the API key is not valid")


def csrf_token() -> str:
    """The page's CSRF token, created on first use and kept in the signed session cookie."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def browser_session_ok() -> bool:
    """A same-origin request from our page: session cookie + matching CSRF header."""
    settings = current_app.config["JEWELSEARCH_SETTINGS"]
    if not settings.browser_events:
        return False
    expected = session.get("csrf")
    given = request.headers.get("X-CSRF-Token", "")
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        return False
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin and urlsplit(origin).netloc != request.host:
        return False
    return True


def requires_write_key_or_page_session(view):
    """Events may come from our own page (session + CSRF) or from a client with the key."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not browser_session_ok():
            check_write_access()
        return view(*args, **kwargs)
    return wrapper


def requires_write_key(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        check_write_access()
        return view(*args, **kwargs)
    return wrapper
