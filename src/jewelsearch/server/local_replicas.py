"""``jewelsearch serve --replicas N --engine local``: N read worker processes and one writer on
one machine, without Ray.

Why: on one machine a Ray Serve replica pays for Ray's HTTP proxy and handle calls, and for a
whole copy of the home shipped each time the catalog changes, all on the same cores as the
queries (``docs/scaling.md``). Worker processes on the same machine can read the home itself.

- **One listening socket, shared.** The supervisor (this process; it loads no model) binds the
  public address once and every reader accepts on it, prefork style: the kernel hands each
  connection to one reader. A reader that dies leaves the socket open in the others, so
  connections waiting in its queue are not lost; only the requests that reader held fail (the
  client library retries those).
- **Reads in the workers.** Each reader opens the home read-only (``open_service(read_only=True)``:
  SQLite in WAL mode lets readers in other processes see each commit; an index that lags the
  store is rebuilt in memory, never saved over the writer's) and runs the Flask app on waitress.
- **Writes to the one writer.** Writes (items, events, forgetting a shopper) are forwarded over
  HTTP to the writer process, which owns the home as ``jewelsearch serve`` does. It listens on a
  loopback socket the supervisor also keeps, so a restarted writer takes the same address, and
  answers only requests that carry the pool's secret (``FORWARD_TOKEN_HEADER``): no other
  process on the machine can write through it or name a client by X-Forwarded-For.
- **New index versions without a restart.** A reader checks the catalog version every
  ``refresh_seconds``; when it moved, it waits (up to ``SAVE_WAIT_SECONDS``) for the writer to
  save a newer index version, opens the home again beside the serving copy with that save as
  it is (reusing the loaded model and the Flask app; items written after the save show at the
  next one) and swaps the service by one assignment. Requests in flight
  finish on the old copy, which is closed a grace period later. Loading the writer's save
  costs a few tens of ms; rebuilding the indexes in memory cost about 0.3 s on the demo.
- **A killed worker is replaced.** The supervisor polls its children and starts a new one in
  the place of any that exited while it was not stopping.
"""

from __future__ import annotations

import hmac
import http.client
import json
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from jewelsearch.config import Settings
from jewelsearch.index.persist import read_manifest
from jewelsearch.server.replicas import HOP_HEADERS, REPLICA_HEADER, RETIRE_AFTER_SECONDS, is_write
from jewelsearch.server.shared_rate_counters import SCHEME as SHARED_COUNTERS

log = logging.getLogger(__name__)

VERSION_HEADER = "X-Jewelsearch-Catalog-Version"  # the catalog version of the copy that answered
# A forwarded write carries the pool's secret: the writer's loopback port answers only its own
# readers, so no other process on the machine can write, or name a client by X-Forwarded-For.
FORWARD_TOKEN_HEADER = "X-Jewelsearch-Forward-Token"
WATCH_SECONDS = 0.5  # how often the supervisor looks for a worker that exited
STOP_SECONDS = 40.0  # a worker's graceful stop (waitress finishes in-flight requests) before a kill
SAVE_WAIT_SECONDS = 5.0  # the writer saves its index about 2 s after a write (``create_app``'s autosave)


def listening_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    sock = socket.create_server((host, port), backlog=backlog, reuse_port=False)
    sock.set_inheritable(True)
    return sock


class ForwardWrites:
    """WSGI: reads to the reader's current app, writes to the writer over HTTP."""

    def __init__(self, reads: Callable[[], Any], writer: tuple[str, int], name: str, timeout: float = 60.0,
                 forward_token: str = ""):
        self.reads = reads  # called per request: the app of the copy being served now
        self.writer = writer
        self.name = name
        self.timeout = timeout
        self.forward_token = forward_token

    def __call__(self, environ, start_response):
        def named(status, headers, exc_info=None):
            return start_response(status, [*headers, (REPLICA_HEADER, self.name)], exc_info)

        if is_write(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")):
            return self._forward(environ, named)
        app, version = self.reads()

        def versioned(status, headers, exc_info=None):
            return named(status, [*headers, (VERSION_HEADER, str(version))], exc_info)
        return app(environ, versioned)

    def _forward(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items()
                   if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in HOP_HEADERS}
        headers.pop("X-Forwarded-For", None)  # the writer trusts only what this reader says
        headers["X-Forwarded-For"] = environ.get("REMOTE_ADDR", "127.0.0.1")
        headers.pop(FORWARD_TOKEN_HEADER.title(), None)
        headers[FORWARD_TOKEN_HEADER] = self.forward_token
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        path = environ.get("PATH_INFO", "/") + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        connection = http.client.HTTPConnection(*self.writer, timeout=self.timeout)
        try:
            connection.request(environ["REQUEST_METHOD"], path, body=body, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
        except OSError as exc:  # the writer is restarting: a retryable answer, not a 500
            log.warning("%s: the writer did not answer: %s", self.name, exc)
            message = json.dumps({"error": "the catalog writer is restarting; retry shortly"}).encode()
            start_response("503 Service Unavailable", [("Content-Type", "application/json"),
                                                       ("Retry-After", "1"),
                                                       ("Content-Length", str(len(message)))])
            return [message]
        finally:
            connection.close()
        kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_HEADERS]
        start_response(f"{answer.status} {answer.reason}", [*kept, ("Content-Length", str(len(payload)))])
        return [payload]


class RequireForwardToken:
    """WSGI, in front of the writer: only requests carrying the pool's token (its readers'
    forwarded writes) get through; anything else that reaches the loopback port is refused."""

    def __init__(self, app, token: str):
        if not token:
            raise ValueError("the writer needs a forward token")
        self.app = app
        self.token = token.encode()

    def __call__(self, environ, start_response):
        given = environ.pop("HTTP_" + FORWARD_TOKEN_HEADER.upper().replace("-", "_"), "")
        if not hmac.compare_digest(given.encode(), self.token):
            message = json.dumps({"error": "this port takes writes from the pool's own readers only"}).encode()
            start_response("403 Forbidden", [("Content-Type", "application/json"),
                                             ("Content-Length", str(len(message)))])
            return [message]
        return self.app(environ, start_response)


class ReloadingReader:
    """A read-only service on a home another process writes, opened again (reusing the model)
    when the catalog version moves; the old copy closes ``RETIRE_AFTER_SECONDS`` later."""

    def __init__(self, settings: Settings, refresh_seconds: float, open_service: Callable[..., Any],
                 create_app: Callable[..., Any], save_wait_seconds: float = SAVE_WAIT_SECONDS):
        self.settings = settings
        self.refresh_seconds = refresh_seconds
        self.save_wait_seconds = save_wait_seconds
        self._open_service = open_service
        self.service = open_service(settings, read_only=True)
        self.app = create_app(settings, self.service, autosave_seconds=None)
        self.current = (self.app, self._version(self.service))
        self.index_version = self._index_version(self.service)  # the writer's save this copy serves
        self.moved_at: float | None = None  # when this reader first saw the version move
        self.retiring: list[tuple[float, Any]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="reader-refresh", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def serving(self) -> tuple[Any, int]:
        """The app and the catalog version of the copy serving now."""
        return self.current

    @staticmethod
    def _version(service) -> int:
        return service.catalog.database.catalog_version()

    @staticmethod
    def _index_version(service) -> int:
        return service.state.manifest.catalog_version

    def refresh(self) -> bool:
        """Open the home again when its catalog version moved; True when it did."""
        from jewelsearch.server.app import use_service
        version = self._version(self.service)  # read before the open: the new copy holds at least this
        if version == self.current[1] and self.index_version >= version:
            self.moved_at = None  # the copy and its indexes are as new as the store
            return False
        now = time.monotonic()
        self.moved_at = self.moved_at or now
        saved = read_manifest(self.settings.index_dir)
        newer_save = saved is not None and saved.catalog_version > self.index_version
        if not newer_save and now - self.moved_at < self.save_wait_seconds:
            return False  # the writer's save is due in a moment; loading it is cheaper than a rebuild
        # A newer save is opened as it is, even where the store moved on since: under a steady
        # write stream the writer's save (every 2 s) is always a few items behind the store, and
        # waiting for an exact match ended in an in-memory rebuild of every index each time.
        # Items written after that save show at the next one. Without a newer save in time (a
        # writer that stopped saving), the indexes are rebuilt from the store.
        service = self._open_service(self.settings, models_from=self.service, read_only=True,
                                     saved_behind_ok=newer_save)
        old = self.service
        use_service(self.app, service)
        self.service, self.current, self.moved_at = service, (self.app, version), None  # the next request uses it
        self.index_version = self._index_version(service)
        self.retiring.append((time.monotonic() + RETIRE_AFTER_SECONDS, old))
        return True

    def _poll(self) -> None:
        while not self.stopped.wait(self.refresh_seconds):
            try:
                self.refresh()
            except Exception:  # the copy being served stays; the next poll tries again
                log.exception("cannot open the catalog again; serving the copy already open")
            now = time.monotonic()
            while self.retiring and self.retiring[0][0] <= now:
                self.retiring.pop(0)[1].catalog.close()

    def stop(self) -> None:
        self.stopped.set()


def stop_with_supervisor(supervisor: int, stop: Callable[[], None], interval: float = 1.0,
                         parent: Callable[[], int] = os.getppid) -> threading.Thread:
    """Call ``stop`` once this process's parent is no longer ``supervisor``. A supervisor killed
    with SIGKILL cannot stop its workers, and they would keep the port open with nobody
    replacing them; a worker that notices it was orphaned stops itself gracefully instead."""
    def watch():
        while parent() == supervisor:
            time.sleep(interval)
        log.warning("the supervisor (pid %d) is gone; stopping", supervisor)
        stop()
    thread = threading.Thread(target=watch, name="supervisor-watch", daemon=True)
    thread.start()
    return thread


def _stop_this_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # ``serve`` finishes the requests in flight, then returns


def _reader_main(settings: Settings, sock: socket.socket, writer: tuple[str, int], refresh_seconds: float,
                 name: str, forward_token: str) -> None:
    """A reader process (spawned): load the model, open the home read-only, serve on ``sock``."""
    stop_with_supervisor(os.getppid(), _stop_this_process)
    from jewelsearch.search.wiring import open_service, serve_query_texts, use_serving_threads
    from jewelsearch.server.app import create_app
    from jewelsearch.server.graceful import serve
    use_serving_threads(settings)
    reader = ReloadingReader(settings, refresh_seconds, open_service, create_app)
    serve_query_texts(settings, reader.service)  # reopened copies keep the query encoder and its runtime
    reader.start()
    app = ForwardWrites(reader.serving, writer, name, timeout=max(60.0, settings.request_timeout_seconds),
                        forward_token=forward_token)
    try:
        serve(app, sock=sock, threads=settings.server_threads, idle_timeout=settings.request_timeout_seconds,
              accept_limit=settings.replica_accept_limit)
    finally:
        reader.stop()


def _writer_main(settings: Settings, sock: socket.socket, forward_token: str) -> None:
    """The writer process (spawned): the home itself, on the loopback socket the readers forward to."""
    stop_with_supervisor(os.getppid(), _stop_this_process)
    from jewelsearch.search.wiring import open_service, use_serving_threads
    from jewelsearch.server.app import create_app
    from jewelsearch.server.graceful import serve
    service = open_service(settings)
    use_serving_threads(settings)
    app = RequireForwardToken(create_app(settings, service), forward_token)  # saves the index a moment after writes
    serve(app, sock=sock, threads=settings.server_threads, idle_timeout=settings.request_timeout_seconds,
          trusted_proxy="127.0.0.1", on_stop=lambda: service.save())


@dataclass
class Worker:
    role: str  # "writer" or "reader"
    name: str
    process: Any  # multiprocessing.Process


class LocalReplicas:
    """The supervisor: binds the sockets, starts the writer and ``replicas`` readers, replaces
    any that exit, and stops them all gracefully."""

    def __init__(self, settings: Settings, replicas: int, refresh_seconds: float = 2.0):
        if replicas < 1:
            raise ValueError("--replicas must be 1 or more")
        if refresh_seconds <= 0:
            raise ValueError("--refresh-seconds must be more than 0")
        if settings.replica_accept_limit < 0:
            raise ValueError("replica_accept_limit must be 0 (off) or more")
        if not settings.secret_key:  # one session key for every process, so a cookie works on all
            settings = settings.with_overrides(secret_key=secrets.token_hex(32))
        self.settings = settings
        self.replicas = replicas
        self.refresh_seconds = refresh_seconds
        self.forward_token = secrets.token_hex(32)
        self.counters_dir: str | None = None  # the shared rate counters' folder (``_share_rate_counters``)
        self.context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        self.public: socket.socket | None = None
        self.internal: socket.socket | None = None
        self.workers: list[Worker] = []
        self.replaced = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        return self.public.getsockname()[:2]

    def start(self) -> None:
        self._share_rate_counters()
        self.public = listening_socket(self.settings.host, self.settings.port)
        self.internal = listening_socket("127.0.0.1", 0)
        self.workers.append(self._spawn("writer", "writer"))  # slot 0; readers take slots 1..N
        for n in range(self.replicas):
            self.workers.append(self._spawn("reader", f"local-{n}-{secrets.token_hex(2)}"))

    def _share_rate_counters(self) -> None:
        """Counters in each worker's memory would let a client spread over N readers make N
        times each rate: unless a shared backend is set, every worker counts in one SQLite file
        in a private temporary folder, removed at ``stop``."""
        settings = self.settings
        if not settings.rate_limits or settings.rate_limit_storage.strip() != "memory://":
            return
        self.counters_dir = tempfile.mkdtemp(prefix="jewelsearch-pool-")
        self.settings = settings.with_overrides(
            rate_limit_storage=f"{SHARED_COUNTERS}://{os.path.join(self.counters_dir, 'rate-counters.db')}")

    def _spawn(self, role: str, name: str) -> Worker:
        if role == "writer":
            process = self.context.Process(target=_writer_main, args=(self.settings, self.internal, self.forward_token),
                                           name=f"jewelsearch-{name}", daemon=False)
        else:
            process = self.context.Process(target=_reader_main, args=(
                self.settings, self.public, self.internal.getsockname()[:2], self.refresh_seconds, name,
                self.forward_token),
                name=f"jewelsearch-{name}", daemon=False)
        process.start()
        return Worker(role, name, process)

    def readers(self) -> list[Worker]:
        with self.lock:
            return [w for w in self.workers if w.role == "reader"]

    def watch(self) -> None:
        """Replace any worker that exits, until ``stop``."""
        while not self.stopping.wait(WATCH_SECONDS):
            with self.lock:
                for n, worker in enumerate(self.workers):
                    if worker.process.exitcode is not None and not self.stopping.is_set():
                        log.warning("%s exited (code %s); starting another", worker.name, worker.process.exitcode)
                        name = "writer" if worker.role == "writer" else f"local-{n - 1}-{secrets.token_hex(2)}"
                        self.workers[n] = self._spawn(worker.role, name)
                        self.replaced += 1

    def stop(self) -> None:
        """SIGTERM to every worker (each finishes the requests it holds), then a kill after
        ``STOP_SECONDS`` for any still running; the sockets close last."""
        self.stopping.set()
        with self.lock:
            workers = list(self.workers)
        for worker in workers:
            if worker.process.exitcode is None and worker.process.pid:
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
        for sock in (self.public, self.internal):
            if sock is not None:
                sock.close()
        if self.counters_dir:
            shutil.rmtree(self.counters_dir, ignore_errors=True)
