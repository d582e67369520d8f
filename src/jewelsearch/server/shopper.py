"""Who may read or write a shopper's data: the shop's backend, or that shopper's own page.

- A request with ``X-API-Key`` speaks for the shop's backend: with the valid key it may read
  and write any shopper's data; a wrong key is refused (403) whatever else the request holds.
- The web page has no key. Its session (the signed cookie, with the CSRF token in a header)
  carries an anonymous shopper id that the server draws when it first renders a page. Events
  the page sends are recorded under that id, and its "For you" reads that id's
  recommendations. The page cannot name another shopper: the id comes from the cookie, which
  only the server can sign, and a body naming anyone else is refused.
- Anyone else gets 401, and a page asking for another shopper's data 403. A shopper's data is
  never opened by ``--allow-unauthenticated-writes``: that flag opens writes, not histories.
"""

from __future__ import annotations

import secrets
from typing import Any, Mapping

from flask import current_app, session

from jewelsearch.errors import Forbidden, Unauthorized
from jewelsearch.server.auth import check_api_key, check_write_access, csrf_token, key_given, page_session_ok

SESSION_KEY = "shopper"
# Page shoppers are drawn at random, so they never meet a backend's own ids by chance.
PAGE_SHOPPER_PREFIX = "page-"


def page_shopper_id() -> str:
    """This browser's anonymous shopper id, drawn on first use and kept in the session cookie.

    The cookie is made permanent (Flask's ``PERMANENT_SESSION_LIFETIME``, 31 days, renewed on
    each visit) so a shopper's history outlives closing the browser."""
    shopper = session.get(SESSION_KEY)
    if not isinstance(shopper, str) or not shopper.startswith(PAGE_SHOPPER_PREFIX):
        shopper = new_page_shopper()
    return shopper


def new_page_shopper() -> str:
    """Draw a new anonymous shopper for this session (first visit, or after "Forget my history")."""
    shopper = PAGE_SHOPPER_PREFIX + secrets.token_urlsafe(16)
    session[SESSION_KEY] = shopper
    session.permanent = True
    return shopper


def start_page_session() -> str:
    """What a rendered page needs: its CSRF token, with the shopper drawn at the same time so
    the page's first requests (its "For you" and a quick click) cannot draw two ids."""
    page_shopper_id()
    return csrf_token()


def require_page_shopper() -> str:
    """The shopper of this page session; 401 for a request that is not from our page."""
    if not page_session_ok():
        raise Unauthorized("this route answers the shop's own page only: it needs the page's session "
                           "cookie and its X-CSRF-Token header (a backend uses /api/users/<id>/... "
                           "with the API key)")
    return page_shopper_id()


def require_shopper_access(user_id: str) -> None:
    """Reading ``user_id``'s data needs the API key or that same shopper's page session."""
    if key_given():
        check_api_key()
        return
    if page_session_ok():
        if session.get(SESSION_KEY) == user_id:
            return
        raise Forbidden("a page session may read only its own shopper's data (/api/me/recommendations)")
    raise Unauthorized("a shopper's data needs the API key (X-API-Key) or that shopper's own page session")


def event_for_caller(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event body to record, after checking who sends it: the backend (key) for any
    shopper, the page (session + CSRF) for its own shopper only."""
    if not key_given() and current_app.config["JEWELSEARCH_SETTINGS"].browser_events and page_session_ok():
        shopper = page_shopper_id()
        named = raw.get("user_id")
        if named not in (None, "") and named != shopper:
            raise Forbidden("the page records events only for its own shopper; leave user_id out")
        return {**raw, "user_id": shopper}
    check_write_access()
    return raw
