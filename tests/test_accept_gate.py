"""The accept gate of local read replicas (``server/graceful.py``, ``accept_only_below``): a
process that already holds work leaves new connections in the kernel's queue for another."""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.request

import pytest
import waitress

from jewelsearch.server.graceful import accept_only_below


class Blocking:
    """A WSGI app whose ``/slow`` requests wait for ``release``; every path it is called with is kept."""

    def __init__(self):
        self.calls: list[str] = []
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        self.calls.append(path)
        self.entered.release()
        if path.startswith("/slow"):
            self.release.wait(20)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode()]


@pytest.fixture
def server_for():
    running = []

    def start(app, limit: int):
        sock = socket.create_server(("127.0.0.1", 0))
        server = waitress.create_server(app, sockets=[sock], threads=4)
        if limit:
            accept_only_below(server, limit)
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                server.asyncore.loop(timeout=0.05, map=server._map, count=1)
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        running.append((server, stop, thread))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield start
    for server, stop, thread in running:
        stop.set()
        thread.join(5)
        server.close()
        server.task_dispatcher.shutdown(timeout=5)


def _get_in_thread(url: str, answers: dict) -> threading.Thread:
    def get():
        with urllib.request.urlopen(url, timeout=20) as answer:
            answers[url] = answer.read()
    thread = threading.Thread(target=get)
    thread.start()
    return thread


def _second_while_first_is_held(base: str, app: Blocking, second_enters: bool) -> dict:
    """Hold a first request in the app, send a second, and say whether the app took the second
    while the first was held; then let both finish. Returns every answer by URL."""
    answers: dict = {}
    first = _get_in_thread(f"{base}/slow-first", answers)
    assert app.entered.acquire(timeout=10)
    second = _get_in_thread(f"{base}/second", answers)
    # The connection is made either way (the kernel queues it); the gate decides when it is taken.
    assert app.entered.acquire(timeout=1.0 if not second_enters else 10) is second_enters, app.calls
    app.release.set()
    first.join(20)
    second.join(20)
    return answers


def test_a_gated_server_leaves_a_second_connection_queued_until_the_first_is_answered(server_for):
    app = Blocking()
    base = server_for(app, limit=1)
    answers = _second_while_first_is_held(base, app, second_enters=False)
    assert answers == {f"{base}/slow-first": b"/slow-first", f"{base}/second": b"/second"}
    assert app.calls == ["/slow-first", "/second"]


def test_without_the_gate_a_busy_server_takes_the_second_connection_at_once(server_for):
    # The control: the behaviour the gate exists to change.
    app = Blocking()
    base = server_for(app, limit=0)
    assert len(_second_while_first_is_held(base, app, second_enters=True)) == 2


def test_an_idle_kept_alive_connection_does_not_hold_the_gate_shut(server_for):
    # A browser keeps its connection open between requests; that must not stop the process
    # from taking other shoppers' connections.
    app = Blocking()
    base = server_for(app, limit=1)
    host, port = base.removeprefix("http://").split(":")
    idle = http.client.HTTPConnection(host, int(port), timeout=10)
    idle.request("GET", "/kept-alive")
    assert idle.getresponse().read() == b"/kept-alive"
    with urllib.request.urlopen(f"{base}/other", timeout=5) as answer:
        assert answer.read() == b"/other"
    idle.request("GET", "/kept-alive-again")  # the kept connection still works
    assert idle.getresponse().read() == b"/kept-alive-again"
    idle.close()


def test_a_slow_upload_or_a_slow_reader_does_not_hold_the_gate_shut(server_for):
    # Receiving a request body and sending an answer are the event loop's work, not a worker's:
    # a shopper uploading a photo over a slow line must not keep the process from taking others.
    app = Blocking()
    base = server_for(app, limit=1)
    host, port = base.removeprefix("http://").split(":")
    uploading = socket.create_connection((host, int(port)), timeout=10)
    uploading.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                      b"Content-Length: 100000\r\n\r\n" + b"x" * 1000)  # the rest never comes
    time.sleep(0.7)  # past the window in which a fresh connection counts as work
    # Served while the upload is still coming (gated on it, this request would wait for ever).
    with urllib.request.urlopen(f"{base}/other", timeout=10) as answer:
        assert answer.read() == b"/other"
    assert app.calls == ["/other"]
    uploading.close()
