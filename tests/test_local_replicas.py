"""``serve --replicas N --engine local``: reader processes on one shared socket and one writer.

The in-process tests check the parts (a read-only opening never writes the writer's index
files; a reader opens the new catalog version; writes go to the writer, and a writer that does
not answer gives a retryable 503). The process tests start a real pool (two readers, one writer,
the tiny model) and stop it: a write is visible on every reader after its reload, with no failed
query meanwhile; a reader killed under load is replaced and no request fails beyond the client
library's retries.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pytest

from served import free_port
from conftest import API_KEY, make_image
from jewelsearch.config import Settings
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.wiring import open_service
from jewelsearch.server.app import create_app
from jewelsearch.server.local_replicas import (FORWARD_TOKEN_HEADER, VERSION_HEADER, ForwardWrites, LocalReplicas,
                                               ReloadingReader, RequireForwardToken, stop_with_supervisor)
from jewelsearch.server.replicas import REPLICA_HEADER

requests = pytest.importorskip("requests")


def _home(path, tiny_model_dir, items: int = 8) -> Settings:
    settings = Settings(home=path, model=str(tiny_model_dir), api_key=API_KEY, rate_limits=False)
    service = open_service(settings)
    service.add_items([NewItem(make_image(seed=n), {"title": f"gold ring {n}"}) for n in range(items)])
    service.save()
    service.catalog.close()
    return settings


def _index_files(settings: Settings) -> dict[str, bytes]:
    """Every file under the home's index folder (version folders and CURRENT pointers)."""
    return {str(p.relative_to(settings.index_dir)): p.read_bytes()
            for p in sorted(settings.index_dir.rglob("*")) if p.is_file()}


def test_a_read_only_opening_of_a_lagging_home_rebuilds_in_memory_and_writes_no_index(tmp_path, tiny_model_dir):
    settings = _home(tmp_path / "home", tiny_model_dir)
    writer = open_service(settings)
    writer.add_items([NewItem(make_image(seed=50), {"title": "new hoop"})])  # not saved: the index lags
    before = _index_files(settings)
    reader = open_service(settings, models_from=writer, read_only=True)
    assert len(reader.state.index) == 9 == writer.catalog.items.count()
    assert _index_files(settings) == before, "a read-only opening saved an index version"
    reader.catalog.close()
    writer.catalog.close()


def test_a_reader_opens_the_new_catalog_version_once_the_writer_saved_it(tmp_path, tiny_model_dir):
    settings = _home(tmp_path / "home", tiny_model_dir)
    reader = ReloadingReader(settings, 60.0, open_service, create_app, save_wait_seconds=60.0)
    app, version = reader.serving()
    old = reader.service
    assert reader.refresh() is False  # nothing changed
    writer = open_service(settings, models_from=reader.service)
    writer.add_items([NewItem(make_image(seed=60), {"title": "new hoop"})])
    assert reader.refresh() is False  # the writer has not saved the matching index yet
    writer.save()
    assert reader.refresh() is True
    same_app, new_version = reader.serving()
    assert new_version > version and same_app is app and reader.service is not old
    assert app.test_client().get("/api/stats").get_json()["indexed"] == 9
    assert len(old.state.index) == 8 and reader.retiring[0][1] is old  # in-flight requests finish on it
    assert reader.service.state.text_vectors is old.state.text_vectors  # the warm query-text cache stays
    writer.catalog.close()


def test_a_reader_stops_using_a_forgotten_shoppers_history_at_once(tmp_path, tiny_model_dir):
    """Without reopening: the reader's recommendation caches check the shared store's erasure
    count on every request."""
    settings = _home(tmp_path / "home", tiny_model_dir)
    writer = open_service(settings)
    for item in (1, 2, 3):
        writer.record_event({"user_id": "ann", "item_id": item, "kind": "purchase"})
    reader = ReloadingReader(settings, 60.0, open_service, create_app)
    client, key = reader.app.test_client(), {"X-API-Key": API_KEY}

    def recommended(user: str) -> list[int]:
        answer = client.get(f"/api/users/{user}/recommendations", headers=key)
        assert answer.status_code == 200
        return [row["id"] for row in answer.get_json()["results"]]
    assert recommended("ann") != recommended("nobody")  # her purchases shape her list
    writer.forget_user("ann")
    # A stranger's list changes too: her purchases no longer count in popularity.
    assert reader.refresh() is False and recommended("ann") == recommended("nobody")
    writer.catalog.close()


def test_a_reader_opens_a_newer_save_as_it_is_while_writes_go_on(tmp_path, tiny_model_dir):
    """Under a steady write stream the writer's save is always a little behind the store: the
    reader serves that save, not an in-memory rebuild, and picks up the rest at the next save."""
    settings = _home(tmp_path / "home", tiny_model_dir)
    reader = ReloadingReader(settings, 60.0, open_service, create_app, save_wait_seconds=60.0)
    writer = open_service(settings, models_from=reader.service)
    writer.add_items([NewItem(make_image(seed=62), {"title": "saved hoop"})])
    writer.save()
    writer.add_items([NewItem(make_image(seed=63), {"title": "unsaved hoop"})])  # the store moves on
    assert reader.refresh() is True
    assert len(reader.service.state.index) == 9  # the save's items, not a rebuild's 10
    assert reader.refresh() is False  # no newer save yet: keep serving
    writer.save()
    assert reader.refresh() is True
    assert reader.app.test_client().get("/api/stats").get_json()["indexed"] == 10
    writer.catalog.close()


def test_a_reader_rebuilds_in_memory_when_the_writer_does_not_save_in_time(tmp_path, tiny_model_dir):
    settings = _home(tmp_path / "home", tiny_model_dir)
    reader = ReloadingReader(settings, 60.0, open_service, create_app, save_wait_seconds=0.0)
    writer = open_service(settings, models_from=reader.service)
    writer.add_items([NewItem(make_image(seed=61), {"title": "new hoop"})])
    assert reader.refresh() is True
    assert reader.app.test_client().get("/api/stats").get_json()["indexed"] == 9
    writer.catalog.close()


def test_a_worker_stops_itself_once_its_supervisor_is_gone():
    """A supervisor killed with SIGKILL cannot stop its workers: each watches its parent."""
    parents = iter([41, 41, 1])  # the supervisor, then init adopting the orphan
    stopped = threading.Event()
    watch = stop_with_supervisor(41, stopped.set, interval=0.01, parent=lambda: next(parents))
    watch.join(5)
    assert stopped.is_set() and not watch.is_alive()


def test_writes_are_forwarded_and_a_silent_writer_gives_a_retryable_503(tmp_path, tiny_model_dir):
    from werkzeug.test import Client
    settings = _home(tmp_path / "home", tiny_model_dir, items=2)
    service = open_service(settings)
    app = create_app(settings, service, autosave_seconds=None)
    forward = ForwardWrites(lambda: (app, 7), ("127.0.0.1", free_port()), "reader-x", timeout=5)  # nobody listens
    client = Client(forward)
    read = client.get("/api/stats")
    assert read.status_code == 200 and read.headers[REPLICA_HEADER] == "reader-x"
    assert read.headers[VERSION_HEADER] == "7"
    write = client.post("/api/events", json={"user_id": "u1", "item_id": 1, "kind": "view"},
                        headers={"X-API-Key": API_KEY})
    assert write.status_code == 503 and write.headers["Retry-After"] == "1"
    assert "writer" in write.get_json()["error"]
    assert service.catalog.events.count() == 0  # the reader itself never wrote
    service.catalog.close()


def test_the_writer_answers_only_requests_with_the_pools_token():
    from werkzeug.test import Client
    seen = []

    def writer_app(environ, start_response):
        seen.append({k: v for k, v in environ.items() if k.startswith("HTTP_") or k == "REMOTE_ADDR"})
        start_response("201 Created", [("Content-Type", "application/json")])
        return [b"{}"]
    client = Client(RequireForwardToken(writer_app, "s3cret"))
    for headers in ({}, {FORWARD_TOKEN_HEADER: "guess"}, {FORWARD_TOKEN_HEADER: ""}):
        answer = client.post("/api/events", json={}, headers=headers)
        assert answer.status_code == 403 and "readers only" in answer.get_json()["error"]
    assert seen == []
    assert client.post("/api/events", json={}, headers={FORWARD_TOKEN_HEADER: "s3cret"}).status_code == 201
    assert len(seen) == 1 and "HTTP_X_JEWELSEARCH_FORWARD_TOKEN" not in seen[0]  # the app never sees it
    with pytest.raises(ValueError):
        RequireForwardToken(writer_app, "")


def test_a_reader_forwards_writes_with_the_token_and_the_clients_address(tmp_path, tiny_model_dir):
    import http.server
    from werkzeug.test import Client
    received = []

    class Writer(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append(dict(self.headers))
            self.send_response(201)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Writer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        forward = ForwardWrites(lambda: (None, 0), server.server_address[:2], "reader-x", timeout=5,
                                forward_token="s3cret")
        answer = Client(forward).post("/api/events", json={"user_id": "u1", "item_id": 1, "kind": "view"},
                                      headers={"X-API-Key": API_KEY, FORWARD_TOKEN_HEADER: "forged",
                                               "X-Forwarded-For": "6.6.6.6"},
                                      environ_base={"REMOTE_ADDR": "10.1.2.3"})
        assert answer.status_code == 201
    finally:
        server.shutdown()
    assert received[0][FORWARD_TOKEN_HEADER] == "s3cret"  # the client's forged one is replaced
    assert received[0]["X-Forwarded-For"] == "10.1.2.3"  # the address the reader saw, not the client's claim


# ----- a real pool of processes ---------------------------------------------------------------

@pytest.fixture(scope="module")
def pool(tmp_path_factory, tiny_model_dir):
    settings = _home(tmp_path_factory.mktemp("local") / "home", tiny_model_dir)
    settings = settings.with_overrides(host="127.0.0.1", port=0, server_threads=4)
    replicas = LocalReplicas(settings, 2, refresh_seconds=0.5)
    replicas.start()
    watcher = threading.Thread(target=replicas.watch, daemon=True)
    watcher.start()
    url = f"http://127.0.0.1:{replicas.address[1]}"
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 240  # three processes load the model on a busy machine
        while len(seen) < 2 and time.monotonic() < deadline:
            seen.add(requests.get(f"{url}/api/stats", timeout=60).headers[REPLICA_HEADER])
        assert len(seen) == 2, "both readers should answer"
        yield replicas, url
    finally:
        replicas.stop()
        watcher.join(5)
        assert all(w.process.exitcode is not None for w in replicas.workers), "a worker outlived stop()"


class Load:
    """Text queries in a loop on a thread: every answer's status and reader."""

    def __init__(self, url: str, session, read_again_if_cut: bool = False):
        self.url, self.session = url, session
        # A reader killed while it sends an answer cuts that answer off after its headers, where
        # urllib3's Retry no longer applies; a client reads an idempotent GET again (as a load
        # balancer or a browser's fetch retry would). Counted, so the test can bound it.
        self.read_again_if_cut = read_again_if_cut
        self.cut: list[str] = []
        # A new connection per request, as the benchmark's clients: the kernel hands each
        # connection to one reader, so a kept-alive one would stay on a single reader.
        session.headers["Connection"] = "close"
        self.statuses: Counter = Counter()
        self.readers: Counter = Counter()
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            for attempt in range(2):
                try:
                    answer = self.session.get(f"{self.url}/api/search", params={"q": "gold ring", "k": 5},
                                              timeout=60)
                    self.statuses[answer.status_code] += 1
                    self.readers[answer.headers.get(REPLICA_HEADER)] += 1
                except requests.exceptions.ChunkedEncodingError as exc:
                    if self.read_again_if_cut and attempt == 0:
                        self.cut.append(repr(exc))
                        continue
                    self.errors.append(repr(exc))
                except requests.RequestException as exc:
                    self.errors.append(repr(exc))
                break

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


@pytest.mark.slow
def test_a_write_is_visible_on_every_reader_after_reload_and_no_query_fails(pool):
    replicas, url = pool
    with Load(url, requests.Session()) as load:
        added = []
        for n in range(3):
            answer = requests.post(f"{url}/api/items", headers={"X-API-Key": API_KEY},
                                   files={"image": ("p.png", make_image(seed=100 + n))}, data={"title": f"new hoop {n}"})
            assert answer.status_code == 201, answer.text
            added.append(answer.json()["id"])
            assert requests.post(f"{url}/api/events", headers={"X-API-Key": API_KEY},
                                 json={"user_id": "u1", "item_id": added[-1], "kind": "view"}).status_code in (200, 201)
        current: dict[str, int] = {}
        deadline = time.monotonic() + 120
        while (len(current) < 2 or min(current.values()) < 11) and time.monotonic() < deadline:
            answer = requests.get(f"{url}/api/stats", timeout=60)
            assert answer.status_code == 200
            indexed = answer.json()["indexed"]
            reader = answer.headers[REPLICA_HEADER]
            assert indexed >= current.get(reader, 0), "a reader went back to an older copy"
            current[reader] = indexed
        assert current and all(v == 11 for v in current.values()) and len(current) == 2, current
        time.sleep(1.0)  # more queries while the readers' old copies retire
    assert not load.errors and set(load.statuses) == {200}, (load.statuses, load.errors)
    assert len(load.readers) == 2 and sum(load.statuses.values()) > 5


@pytest.mark.slow
def test_the_web_pages_shopper_session_works_across_readers_and_the_writer(pool):
    # The page is served by one reader, its events are written by the writer, and its
    # recommendations read by any reader: one session key for all, one shopper throughout.
    import re
    replicas, url = pool
    browser = requests.Session()
    page = browser.get(f"{url}/", timeout=60)
    assert page.status_code == 200
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    headers = {"X-CSRF-Token": token, "Connection": "close"}
    liked = browser.post(f"{url}/api/events", json={"item_id": 2, "kind": "like"}, headers=headers, timeout=60)
    assert liked.status_code == 201, liked.text  # the writer read the session a reader made
    # The page still cannot write without its token, nor for another shopper, through the writer.
    assert browser.post(f"{url}/api/events", json={"item_id": 3, "kind": "like"},
                        headers={"Connection": "close"}, timeout=60).status_code == 401
    assert browser.post(f"{url}/api/events", json={"item_id": 3, "kind": "like", "user_id": "someone-else"},
                        headers=headers, timeout=60).status_code == 403
    personal, readers = [], set()
    deadline = time.monotonic() + 60
    while (not personal or len(readers) < 2) and time.monotonic() < deadline:
        # New connections, so several readers answer for the same session; each sees the like
        # once it has opened the catalog version the writer saved after it.
        mine = browser.get(f"{url}/api/me/recommendations", params={"k": 3}, headers=headers, timeout=60)
        assert mine.status_code == 200, mine.text
        readers.add(mine.headers[REPLICA_HEADER])
        personal = [r for row in mine.json()["results"] for r in row["reasons"]
                    if r["type"] in {"engaged", "similar", "co_engaged", "taste"}]
    assert personal and len(readers) == 2, (personal, readers)


@pytest.mark.slow
def test_a_reader_killed_under_load_is_replaced_and_no_request_fails_beyond_retries(pool):
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    replicas, url = pool
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=Retry(total=5, backoff_factor=0.2, allowed_methods=None,
                                                           status_forcelist=(502, 503, 504))))
    with Load(url, session, read_again_if_cut=True) as load:
        time.sleep(1.0)
        before = {w.name for w in replicas.readers()}
        victim = replicas.readers()[0]
        os.kill(victim.process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 240
        while not set(load.readers) - before and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.0)
    assert replicas.replaced >= 1
    assert set(load.readers) - before, "no new reader answered within 240 s"
    assert victim.name not in {w.name for w in replicas.readers()}
    assert not load.errors and set(load.statuses) == {200}, (load.statuses, load.errors)
    # One client thread has at most one answer in flight on the killed reader.
    assert len(load.cut) <= 1, load.cut


@pytest.mark.slow
def test_the_readers_of_a_pool_count_one_rate_limit_between_them(tmp_path, tiny_model_dir):
    settings = _home(tmp_path / "home", tiny_model_dir, items=3)
    settings = settings.with_overrides(host="127.0.0.1", port=0, server_threads=4, rate_limits=True,
                                       rate_limit_text="8/minute")
    replicas = LocalReplicas(settings, 2, refresh_seconds=0.5)
    replicas.start()
    try:
        assert replicas.settings.rate_limit_storage.startswith("jewelsearch-shared://")
        url = f"http://127.0.0.1:{replicas.address[1]}"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # both readers up: health is in no rate class
            seen = {requests.get(f"{url}/api/health", timeout=60,
                                 headers={"Connection": "close"}).headers.get(REPLICA_HEADER) for _ in range(6)}
            if len(seen) == 2:
                break
        statuses, readers = Counter(), Counter()
        for _ in range(12):
            answer = requests.get(f"{url}/api/search", params={"q": "gold ring"}, headers={"Connection": "close"},
                                  timeout=60)
            statuses[answer.status_code] += 1
            readers[answer.headers.get(REPLICA_HEADER)] += 1
        # Counted in each reader's memory, two readers would have let up to 16 in.
        assert statuses == Counter({200: 8, 429: 4}), (statuses, readers)
    finally:
        replicas.stop()
    assert not os.path.exists(replicas.counters_dir)


@pytest.mark.parametrize("args, message", [
    (["--replicas", "0", "--engine", "local"], "--replicas must be 1 or more"),
    (["--replicas", "2", "--engine", "local", "--refresh-seconds", "0"], "--refresh-seconds must be more than 0"),
    (["--replicas", "2", "--engine", "local", "--address", "auto"], "--address and --ship-copies go with --engine ray"),
])
def test_serve_local_refuses_bad_options_with_a_clear_error(tmp_path, tiny_model_dir, args, message):
    from click.testing import CliRunner
    from jewelsearch.cli import main
    settings = _home(tmp_path / "home", tiny_model_dir, items=1)
    result = CliRunner().invoke(main, ["--home", str(settings.home), "--model", str(tiny_model_dir), "serve", *args])
    assert result.exit_code != 0 and message in result.output, result.output


def test_serve_on_ray_refuses_a_port_already_taken_before_starting_ray(tmp_path, tiny_model_dir, monkeypatch):
    import socket
    from click.testing import CliRunner
    from jewelsearch.cli import main
    from jewelsearch.search import ray_ingest
    monkeypatch.setattr(ray_ingest, "connect", lambda address: pytest.fail("Ray started on a taken port"))
    settings = _home(tmp_path / "home", tiny_model_dir, items=1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["--home", str(settings.home), "--model", str(tiny_model_dir), "serve",
                                           "--host", "127.0.0.1", "--port", str(port), "--replicas", "2",
                                           "--engine", "ray"])
    assert result.exit_code != 0 and f"cannot listen on 127.0.0.1:{port}" in result.output, result.output


@pytest.mark.parametrize("engine", [["--engine", "local"], []])  # local is also what plain --replicas picks
def test_serve_local_refuses_a_negative_accept_limit(tmp_path, tiny_model_dir, engine):
    from click.testing import CliRunner
    from jewelsearch.cli import main
    settings = _home(tmp_path / "home", tiny_model_dir, items=1)
    result = CliRunner().invoke(main, ["--home", str(settings.home), "--model", str(tiny_model_dir), "serve",
                                       "--replicas", "2", *engine],
                                env={"JEWELSEARCH_REPLICA_ACCEPT_LIMIT": "-1"})
    assert result.exit_code != 0 and "replica_accept_limit must be 0 (off) or more" in result.output, result.output


def test_the_auto_engine_picks_ray_only_where_a_cluster_is_asked_for():
    from jewelsearch.cli.serve import replica_engine
    assert replica_engine("auto", None, False) == "local"
    assert replica_engine("auto", "auto", False) == "ray"
    assert replica_engine("auto", "ray://head:10001", False) == "ray"
    assert replica_engine("auto", None, True) == "ray"
    assert replica_engine("ray", None, False) == "ray"
    assert replica_engine("local", None, False) == "local"


def test_serve_local_without_a_catalog_says_so(tmp_path, tiny_model_dir):
    from click.testing import CliRunner
    from jewelsearch.cli import main
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "empty"), "--model", str(tiny_model_dir),
                                       "serve", "--replicas", "2", "--engine", "local"])
    assert result.exit_code != 0 and "no catalog at" in result.output, result.output
