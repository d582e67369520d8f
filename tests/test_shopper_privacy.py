"""Who may read a shopper's data: the API key, or that same shopper's page session.

The hostile-user test plays a second page session, a keyless client and a client with a wrong
key against every route that takes or could reveal a shopper, and checks that none of them
gets anything of shopper A: refused (401/403), or answered exactly as a brand-new visitor is.
"""

from __future__ import annotations

import json
import logging
import re

import pytest
from conftest import API_KEY, make_image

from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.server.shopper import PAGE_SHOPPER_PREFIX, SESSION_KEY

PERSONAL_REASONS = {"engaged", "similar", "co_engaged", "taste"}
CATEGORIES = ["ring", "necklace", "earrings", "bracelet"]


@pytest.fixture
def items(service):
    results = service.add_items([NewItem(make_image(seed=i, size=(64, 64)),
                                         {"title": f"Piece {i}", "category": CATEGORIES[i % 4], "price": 100 + i})
                                 for i in range(12)])
    return [r.item_id for r in results]


class Page:
    """A browser on our page: its own cookie jar, and the CSRF token the page carries."""

    def __init__(self, app):
        self.client = app.test_client()
        html = self.client.get("/").get_data(as_text=True)
        self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
        self.headers = {"X-CSRF-Token": self.csrf}

    @property
    def shopper(self) -> str:
        with self.client.session_transaction() as session:
            return session[SESSION_KEY]

    def like(self, item_id, **extra):
        return self.client.post("/api/events", json={"item_id": item_id, "kind": "like", **extra},
                                headers=self.headers)

    def for_you(self, query=""):
        return self.client.get("/api/me/recommendations?k=6" + query, headers=self.headers)


def personal(results) -> list[dict]:
    return [r for row in results for r in row["reasons"] if r["type"] in PERSONAL_REASONS]


def test_the_page_draws_an_anonymous_shopper_and_records_its_events_under_it(app, service, items):
    page = Page(app)
    shopper = page.shopper
    assert shopper.startswith(PAGE_SHOPPER_PREFIX) and len(shopper) > 20
    assert page.like(items[3]).status_code == 201
    assert page.like(items[5], user_id=shopper).status_code == 201  # naming itself is fine
    assert [r[0] for r in service.catalog.events.rows_for_user(shopper)] == [items[5], items[3]]
    answer = page.for_you()
    assert answer.status_code == 200
    assert {r["item_id"] for r in personal(answer.json["results"])} <= {items[3], items[5]}
    assert personal(answer.json["results"])
    # The same shopper may also read itself through the path route.
    assert page.client.get(f"/api/users/{shopper}/recommendations", headers=page.headers).status_code == 200
    # A second page load keeps the shopper (the cookie is permanent, not per tab).
    again = page.client.get("/")
    assert page.shopper == shopper and again.status_code == 200


def test_cold_start_for_a_fresh_session(app, service, items):
    empty = Page(app).for_you()
    assert empty.status_code == 200 and len(empty.json["results"]) == 6  # no events at all: the catalog
    others = Page(app)
    for item in items[:4]:
        assert others.like(item).status_code == 201
    fresh = Page(app).for_you()
    assert fresh.status_code == 200 and len(fresh.json["results"]) == 6
    assert not personal(fresh.json["results"])
    assert {r["type"] for row in fresh.json["results"] for r in row["reasons"]} <= {"popular", "catalog"}


def test_hostile_second_session_and_keyless_clients_get_nothing_of_shopper_a(app, client, auth, service, items):
    answered: list[int] = []  # statuses of the hostile requests, for docs/reliability.md (pytest -s)
    app.after_request(lambda response: answered.append(response.status_code) or response)
    a = Page(app)
    for item in (items[2], items[7], items[9]):
        assert a.like(item).status_code == 201
    assert client.post("/api/events", json={"user_id": "ann@example.com", "item_id": items[4], "kind": "purchase"},
                       headers=auth).status_code == 201
    victims = [a.shopper, "ann@example.com"]
    events_before = {v: service.catalog.events.count_for_user(v) for v in victims}
    assert all(events_before.values())

    b = Page(app)
    keyless = app.test_client()
    answered.clear()
    wrong_key = {"X-API-Key": "wrong-" + API_KEY}
    # What a brand-new visitor is shown; B may see that much and no more.
    public = Page(app).for_you().json["results"]

    for victim in victims:
        url = f"/api/users/{victim}/recommendations?k=6"
        assert keyless.get(url).status_code == 401
        assert keyless.get(url, headers={"X-CSRF-Token": b.csrf}).status_code == 401  # a token without its cookie
        assert keyless.get(url, headers=wrong_key).status_code == 403
        assert b.client.get(url).status_code == 401  # the cookie without the page's token
        assert b.client.get(url, headers=b.headers).status_code == 403
        for query in ("", "&exclude_seen=true", "&q=ring", f"&seed={items[0]}"):
            response = b.client.get(url + query, headers=b.headers)
            assert response.status_code == 403 and victim not in response.get_data(as_text=True)
        # Writing into A's history is refused too, from the page and without the key.
        assert b.like(items[0], user_id=victim).status_code == 403
        assert keyless.post("/api/events", json={"user_id": victim, "item_id": items[0], "kind": "like"}
                            ).status_code == 401
        # Erasing A needs the key; a page session is not enough.
        assert keyless.delete(f"/api/users/{victim}").status_code == 401
        assert b.client.delete(f"/api/users/{victim}", headers=b.headers).status_code == 401
        assert keyless.delete(f"/api/users/{victim}", headers=wrong_key).status_code == 403

    # The session route answers B about B: exactly what a new visitor sees.
    mine = b.for_you()
    assert mine.status_code == 200 and not personal(mine.json["results"])
    assert [r["id"] for r in mine.json["results"]] == [r["id"] for r in public]
    assert not any(v in mine.get_data(as_text=True) for v in victims)
    assert keyless.get("/api/me/recommendations").status_code == 401
    assert keyless.get("/api/me/recommendations", headers={"X-CSRF-Token": b.csrf}).status_code == 401

    # Routes without a shopper ignore one smuggled in, and name no shopper.
    for url in (f"/api/items/{items[2]}/similar?k=5", f"/api/explain?item={items[2]}&query_item={items[7]}",
                "/api/search?q=ring&k=5", f"/api/items/{items[2]}", "/api/items", "/api/stats"):
        plain = keyless.get(url)
        smuggled = keyless.get(url + ("&" if "?" in url else "?") + f"user_id={a.shopper}")
        assert plain.status_code == smuggled.status_code == 200, url
        body = smuggled.get_data(as_text=True)
        assert not any(v in body for v in victims) and '"reasons"' not in body, url

    # A forged cookie naming A (signed with another key) is no session at all.
    from flask import Flask
    forger = Flask("forger")
    forger.secret_key = "not-the-server-key"
    fake = forger.session_interface.get_signing_serializer(forger)
    forged = app.test_client()
    forged.set_cookie("session", fake.dumps({SESSION_KEY: a.shopper, "csrf": "x"}))
    assert forged.get("/api/me/recommendations", headers={"X-CSRF-Token": "x"}).status_code == 401
    assert forged.get(f"/api/users/{a.shopper}/recommendations", headers={"X-CSRF-Token": "x"}).status_code == 401

    # B's "Forget my history" erases B, never A.
    assert b.client.delete("/api/me", headers=b.headers).json["events_removed"] == 0
    assert keyless.delete("/api/me").status_code == 401

    from collections import Counter
    print(f"hostile: {len(answered)} requests, statuses {sorted(Counter(answered).items())}")

    # Nothing above changed A's history, and A and the backend still read it.
    assert {v: service.catalog.events.count_for_user(v) for v in victims} == events_before
    assert personal(a.for_you().json["results"])
    assert personal(client.get("/api/users/ann@example.com/recommendations?k=6", headers=auth).json["results"])


def test_unauthenticated_writes_do_not_open_histories(settings, service, items):
    from jewelsearch.server import create_app
    settings.api_key = None
    settings.allow_unauthenticated_writes = True
    client = create_app(settings, service, autosave_seconds=None).test_client()
    assert client.post("/api/events", json={"user_id": "ann", "item_id": items[0], "kind": "like"}).status_code == 201
    assert client.get("/api/users/ann/recommendations").status_code == 401
    refused = client.get("/api/users/ann/recommendations", headers={"X-API-Key": "anything"})
    assert refused.status_code == 403 and "none is configured" in refused.json["error"]


def test_page_events_follow_the_browser_events_setting(settings, service, items):
    from jewelsearch.server import create_app
    settings.browser_events = False
    app = create_app(settings, service, autosave_seconds=None)
    page = Page(app)
    assert page.like(items[0]).status_code == 401
    assert service.catalog.events.count() == 0
    assert page.for_you().status_code == 200  # reading its own (empty) history still works


def test_the_access_log_never_shows_a_shopper_id(client, auth, items, caplog):
    caplog.set_level(logging.INFO, logger="jewelsearch.access")
    client.post("/api/events", json={"user_id": "ann@example.com", "item_id": items[0], "kind": "like"}, headers=auth)
    assert client.get("/api/users/ann@example.com/recommendations", headers=auth).status_code == 200
    assert client.get("/api/users/ann@example.com").status_code == 405
    assert client.delete("/api/users/ann@example.com", headers=auth).status_code == 200
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "jewelsearch.access"]
    assert [line["path"] for line in lines][1:] == ["/api/users/<user_id>/recommendations",
                                                     "/api/users/<user_id>", "/api/users/<user_id>"]
    assert "ann" not in caplog.text


def test_forget_my_history_erases_the_page_shopper_and_draws_a_new_one(app, service, items):
    page = Page(app)
    old = page.shopper
    for item in items[:3]:
        assert page.like(item).status_code == 201
    assert personal(page.for_you().json["results"])
    answer = page.client.delete("/api/me", headers=page.headers)
    assert answer.status_code == 200 and answer.json["events_removed"] == 3
    assert service.catalog.events.count_for_user(old) == 0
    assert page.shopper != old and page.shopper.startswith(PAGE_SHOPPER_PREFIX)
    assert not personal(page.for_you().json["results"])
    assert page.client.delete("/api/me").status_code == 401  # the page's token is required
