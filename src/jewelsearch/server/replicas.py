"""``jewelsearch serve --replicas N``: read replicas and one writer on Ray Serve.

- **ReadReplica** (N of them, the HTTP ingress): each holds its own copy of the home (a
  snapshot shipped by the writer, ``search/replica_snapshot.py``) and the model, and answers
  reads (search, similar, recognise, explain, recommend, item pages) through the same Flask
  app a single server runs. Writes it forwards to the writer.
- **CatalogWriter** (one): the home itself. It takes every write (items, events, forgetting a
  shopper), so SQLite keeps one writer, and ships a fresh snapshot when a replica asks and the
  home changed since the replica's copy.

A replica on the writer's own node reads the writer's home directly, as a local read replica
does (``server/local_replicas.py``: opened read-only, opened again when the catalog version
moves and the writer has saved the matching index): on one machine, shipping and unpacking a
whole copy each time the catalog changed cost more CPU than the queries (``docs/scaling.md``).
``share_home=False`` ships snapshots to every replica, as on other nodes.

A replica elsewhere polls the writer every ``refresh_seconds``. A newer snapshot is unpacked into a new
folder and opened beside the serving one (reusing the loaded model); then one reference
assignment swaps the app. Requests in flight finish on the copy they started on, which is
closed and removed a grace period later, so a new index version costs no failed request.
A replica killed is replaced by Serve (it starts from the writer's current snapshot); the
proxy sends requests meanwhile to the others.

Rate limits and the shopper session key: every replica and the writer share one secret key
(generated once when none is configured), so a session cookie set by one is read by all.
Rate limits are counted per process, so with N replicas a client gets up to N times the rate.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jewelsearch.config import Settings
from jewelsearch.search.replica_snapshot import Snapshot, pack_snapshot, unpack_snapshot
from jewelsearch.server.app import create_app

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READS_BY_POST = frozenset({"/api/search", "/api/recognize", "/api/explain"})  # a body, but no write
WRITER_CPUS = 0.25
RETIRE_AFTER_SECONDS = 30.0  # an old copy stays open this long for the requests still on it
REPLICA_HEADER = "X-Jewelsearch-Replica"
QUIET = {"log_level": "WARNING", "enable_access_log": False}  # Serve logs every request at INFO otherwise
HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


def is_write(method: str, path: str) -> bool:
    return method.upper() in WRITE_METHODS and path.rstrip("/") not in READS_BY_POST


@dataclass(frozen=True)
class WireRequest:
    """An HTTP request as it travels from a replica to the writer (picklable)."""

    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes
    client: str = "127.0.0.1"


@dataclass(frozen=True)
class WireResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def run_wsgi(app, request: WireRequest) -> WireResponse:
    """Answer ``request`` with the Flask ``app`` (a full WSGI dispatch, no socket)."""
    client = app.test_client(use_cookies=False)
    headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_HEADERS]
    response = client.open(request.path, method=request.method, query_string=request.query_string,
                           headers=headers, data=request.body, environ_base={"REMOTE_ADDR": request.client})
    try:
        return WireResponse(response.status_code,
                            [(k, v) for k, v in response.headers.items() if k.lower() not in HOP_HEADERS],
                            response.get_data())
    finally:
        response.close()


def home_version(service) -> tuple[int, int, int]:
    """What a replica's copy must match: the catalog version, and the event log's change marker
    (newest event, erasures so far): events do not move the catalog version, recommendations
    read them."""
    newest_event, erasures = service.catalog.events.change_marker()
    return service.catalog.database.catalog_version(), newest_event, erasures


@dataclass(frozen=True)
class ReplicaPlan:
    reader_cpus: float
    writer_cpus: float


def plan_replicas(cluster_cpus: float, replicas: int) -> ReplicaPlan:
    """CPU per replica: the cluster's CPUs less the writer's share, split among the replicas,
    at most one each (a replica's torch runs on one thread; more replicas, not more threads)."""
    if replicas < 1:
        raise ValueError("--replicas must be 1 or more")
    usable = cluster_cpus - WRITER_CPUS
    if usable <= 0:
        raise ValueError(f"the Ray cluster has {cluster_cpus} CPUs; serving needs more than {WRITER_CPUS}")
    return ReplicaPlan(min(1.0, usable / replicas), WRITER_CPUS)


class CatalogWriter:
    """The one process that writes the home, and ships snapshots of it."""

    def __init__(self, settings: Settings, ship_interval_seconds: float = 1.0):
        import torch
        from jewelsearch.search.wiring import open_service
        torch.set_num_threads(1)
        self.settings = settings
        self.service = open_service(settings)
        self.app = create_app(settings, self.service)  # saves the index a moment after writes
        self.ship_interval = ship_interval_seconds
        self.lock = threading.Lock()
        self.shipped: tuple[tuple[int, int, int], Snapshot] | None = None
        self.shipped_at = 0.0

    def handle(self, request: WireRequest) -> WireResponse:
        return run_wsgi(self.app, request)

    def node(self) -> tuple[str, str]:
        """The Ray node this writer runs on, and its home (a replica on the same node reads it)."""
        import ray
        return ray.get_runtime_context().get_node_id(), str(self.settings.home)

    def snapshot_if_newer(self, have: tuple[int, int, int] | None) -> tuple[tuple[int, int, int], Snapshot] | None:
        """The home's snapshot and its version when it differs from ``have``; None when not.
        One snapshot serves every replica asking within ``ship_interval_seconds``."""
        with self.lock:
            current = home_version(self.service)
            if self.shipped is None or (self.shipped[0] != current
                                        and time.monotonic() - self.shipped_at >= self.ship_interval):
                with self.service.state.write_lock:
                    self.service.save()  # the shipped index version then matches the store
                    version = home_version(self.service)
                snapshot = pack_snapshot(self.settings.db_path, self.settings.images_dir, self.settings.index_dir)
                self.shipped, self.shipped_at = (version, snapshot), time.monotonic()
            return self.shipped if self.shipped[0] != have else None


class ReadReplica:
    """One read replica: its own home copy and model; the HTTP ingress (``__call__``)."""

    def __init__(self, settings: Settings, writer, refresh_seconds: float = 2.0, share_home: bool = True):
        import torch
        torch.set_num_threads(1)
        self.settings = settings
        self.writer = writer
        self.refresh_seconds = refresh_seconds
        self.share_home = share_home
        self.shared = None  # a ReloadingReader on the writer's home, when on the writer's node
        self.name = f"replica-{secrets.token_hex(3)}"
        self.root = Path(tempfile.mkdtemp(prefix="jewelsearch-replica-"))
        self.version: tuple[int, int, int] | None = None
        self.service = None
        self.app = None
        self.home: Path | None = None  # the folder of the copy being served
        self.retiring: list[tuple[float, Any, Path]] = []
        self.copies = 0
        self.stopped = threading.Event()
        # Serve nothing before the first copy is open. Fetched on a thread of its own: a
        # handle's blocking ``result()`` is refused on the replica's event loop.
        failure: list[BaseException] = []
        first = threading.Thread(target=lambda: _capture(self._first_copy, failure), name="replica-first-copy")
        first.start()
        first.join()
        if failure:
            raise failure[0]
        from jewelsearch.search.wiring import serve_query_texts
        serve_query_texts(settings, self.service)  # reopened copies keep the query encoder and its runtime
        if self.shared is not None:
            self.shared.start()  # its own thread reopens the home when the catalog moves
        else:
            self.thread = threading.Thread(target=self._poll, name="replica-refresh", daemon=True)
            self.thread.start()

    def _first_copy(self) -> None:
        import ray
        from jewelsearch.search.wiring import open_service
        from jewelsearch.server.local_replicas import ReloadingReader
        if self.share_home:
            node, home = self.writer.node.remote().result()
            if node == ray.get_runtime_context().get_node_id() and home == str(self.settings.home):
                self.shared = ReloadingReader(self.settings, self.refresh_seconds, open_service, create_app)
                self.service, self.app = self.shared.service, self.shared.app
                return
        self._refresh()

    async def __call__(self, request) -> Any:
        from starlette.responses import Response
        wire = WireRequest(request.method, request.url.path, request.url.query,
                           list(request.headers.items()), await request.body(),
                           request.client.host if request.client else "127.0.0.1")
        if is_write(wire.method, wire.path):
            answer = await self.writer.handle.remote(wire)
        else:
            answer = await asyncio.to_thread(run_wsgi, self.app, wire)  # a shared home's app swaps its service
        response = Response(content=answer.body, status_code=answer.status)
        for key, value in answer.headers:
            response.headers.append(key, value)
        response.headers[REPLICA_HEADER] = self.name
        return response

    def check_health(self) -> None:
        if self.app is None:
            raise RuntimeError("no copy of the catalog is open yet")

    def _poll(self) -> None:
        while not self.stopped.wait(self.refresh_seconds):
            try:
                self._refresh()
            except Exception:  # the copy being served stays; the next poll tries again
                log.exception("%s: cannot refresh its copy of the catalog", self.name)
            self._retire_old()

    def _refresh(self) -> None:
        from jewelsearch.search.wiring import open_service
        shipped = self.writer.snapshot_if_newer.remote(self.version).result()
        if shipped is None:
            return
        version, snapshot = shipped
        self.copies += 1
        home = unpack_snapshot(snapshot, self.root / f"copy-{self.copies}")
        settings = self.settings.with_overrides(home=home)
        service = open_service(settings, models_from=self.service)
        app = create_app(settings, service, autosave_seconds=None)
        old_service, old_home = self.service, self.home
        self.service, self.app, self.version, self.home = service, app, version, home  # the next request uses it
        if old_service is not None:
            self.retiring.append((time.monotonic() + RETIRE_AFTER_SECONDS, old_service, old_home))

    def _retire_old(self) -> None:
        now = time.monotonic()
        while self.retiring and self.retiring[0][0] <= now:
            _, service, home = self.retiring.pop(0)
            service.catalog.close()
            shutil.rmtree(home, ignore_errors=True)

    def __del__(self):
        self.stopped.set()
        if getattr(self, "shared", None) is not None:
            self.shared.stop()
        shutil.rmtree(getattr(self, "root", ""), ignore_errors=True)


def _capture(fn, failure: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:  # re-raised by the caller, on its own thread
        failure.append(exc)


def build_app(settings: Settings, replicas: int, cluster_cpus: float, *, refresh_seconds: float = 2.0,
              share_home: bool = True):
    """The Serve application: ``replicas`` read replicas in front of one writer. ``share_home``:
    replicas on the writer's node read its home instead of a shipped copy."""
    from ray import serve
    if not settings.secret_key:
        settings = settings.with_overrides(secret_key=secrets.token_hex(32))
    plan = plan_replicas(cluster_cpus, replicas)
    writer = serve.deployment(CatalogWriter, name="CatalogWriter", num_replicas=1,
                              ray_actor_options={"num_cpus": plan.writer_cpus}, logging_config=QUIET).bind(settings)
    return serve.deployment(ReadReplica, name="ReadReplica", num_replicas=replicas,
                            ray_actor_options={"num_cpus": plan.reader_cpus}, max_ongoing_requests=16,
                            health_check_period_s=2, graceful_shutdown_timeout_s=5, logging_config=QUIET
                            ).bind(settings, writer, refresh_seconds, share_home)
