"""API-key checks for write endpoints.

With no key configured, writes are refused (403) unless the operator opted
out with ``--allow-unauthenticated-writes``, so a default install is not an
open catalog.  Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import functools
import hmac

from flask import current_app, request

from ..errors import Forbidden, Unauthorized


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


def requires_write_key(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        check_write_access()
        return view(*args, **kwargs)
    return wrapper
