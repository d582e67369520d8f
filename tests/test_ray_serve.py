"""Serving replicas on a local Ray cluster (2 CPUs): two read replicas in front of one writer.

Both ways a replica gets the catalog are run: reading the writer's home on its node, and copies
shipped to it. A write is visible on every replica once it reloads, and reloading costs no request; a replica
killed under load is replaced, and no request fails beyond the client library's retries.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from served import free_port
from conftest import API_KEY, make_image
from jewelsearch.config import Settings
from jewelsearch.ingest.pipeline import NewItem

ray = pytest.importorskip("ray")
requests = pytest.importorskip("requests")

pytestmark = pytest.mark.slow  # starts a Ray cluster and Serve (about 30 s)


@pytest.fixture(scope="module", params=[True, False], ids=["shared-home", "shipped-copies"])
def served(request, tmp_path_factory, tiny_model_dir):
    """Replicas on the writer's node reading its home (the default), and replicas sent copies
    (what a replica on another node gets)."""
    from ray import serve
    from jewelsearch.search.wiring import open_service
    from jewelsearch.server.replicas import build_app

    settings = Settings(home=tmp_path_factory.mktemp("served") / "home", model=str(tiny_model_dir),
                        api_key=API_KEY, rate_limits=False)
    service = open_service(settings)
    service.add_items([NewItem(make_image(seed=n), {"title": f"gold ring {n}"}) for n in range(8)])
    service.save()
    service.catalog.close()
    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 << 20, logging_level="ERROR")
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": "WARNING"})
    serve.run(build_app(settings, 2, 2, refresh_seconds=0.5, share_home=request.param), name="jewelsearch",
              route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()


class Load:
    """Text queries in a loop on a thread: every answer's status and replica."""

    def __init__(self, url: str, session):
        self.url, self.session = url, session
        self.statuses: Counter = Counter()
        self.replicas: Counter = Counter()
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                answer = self.session.get(f"{self.url}/api/search", params={"q": "gold ring", "k": 5}, timeout=30)
                self.statuses[answer.status_code] += 1
                self.replicas[answer.headers.get("X-Jewelsearch-Replica")] += 1
            except requests.RequestException as exc:
                self.errors.append(repr(exc))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_a_write_is_visible_on_every_replica_and_reloads_fail_no_request(served):
    with Load(served, requests.Session()) as load:
        added = []
        for n in range(3):
            answer = requests.post(f"{served}/api/items", headers={"X-API-Key": API_KEY},
                                   files={"image": ("p.png", make_image(seed=100 + n))}, data={"title": f"new hoop {n}"})
            assert answer.status_code == 201, answer.text
            added.append(answer.json()["id"])
            assert requests.post(f"{served}/api/events", headers={"X-API-Key": API_KEY},
                                 json={"user_id": "u1", "item_id": added[-1], "kind": "view"}).status_code in (200, 201)
        showing: set[str] = set()
        deadline = time.monotonic() + 60
        while len(showing) < 2 and time.monotonic() < deadline:
            answer = requests.get(f"{served}/api/items/{added[-1]}")
            replica = answer.headers["X-Jewelsearch-Replica"]
            if answer.status_code == 200:
                showing.add(replica)
            else:
                assert replica not in showing, "a replica that showed the item lost it again"
        assert len(showing) == 2
        time.sleep(1.0)  # more queries while the replicas' old copies retire
    assert not load.errors and set(load.statuses) == {200}, (load.statuses, load.errors)
    assert len(load.replicas) == 2 and sum(load.statuses.values()) > 20


def test_a_replica_killed_mid_load_is_replaced_and_no_request_fails_beyond_retries(served):
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=Retry(total=5, backoff_factor=0.1, allowed_methods=None,
                                                           status_forcelist=(500, 502, 503, 504))))
    with Load(served, session) as load:
        time.sleep(1.0)
        before = set(load.replicas)
        # A write first, so the replica is killed while it fetches and opens the new copy.
        assert requests.post(f"{served}/api/items", headers={"X-API-Key": API_KEY},
                             files={"image": ("p.png", make_image(seed=200))}, data={"title": "late hoop"}
                             ).status_code == 201
        time.sleep(0.6)
        victim = next(a for a in ray.util.list_named_actors(all_namespaces=True) if "ReadReplica" in a["name"])
        ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=True)
        deadline = time.monotonic() + 90
        while not set(load.replicas) - before and time.monotonic() < deadline:
            time.sleep(0.5)
        replaced = set(load.replicas) - before
        time.sleep(1.0)
    assert replaced, "no new replica answered within 90 s"
    assert not load.errors and set(load.statuses) == {200}, (load.statuses, load.errors)
