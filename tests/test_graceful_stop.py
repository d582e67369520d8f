"""What a stopping server still waits for (``server/graceful.py``, ``_busy``): an upload whose
body is still arriving and a connection taken from the kernel's queue at the stop keep it
draining; an idle kept-alive connection does not. Before, a slow upload that had reached the
server was cut off at SIGTERM (``test_consistency.py::test_sigterm_finishes_in_flight_requests``
failed under load)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import waitress

from jewelsearch.server.graceful import FIRST_REQUEST_WAIT_SECONDS, _busy


def answer(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture
def served():
    sock = socket.create_server(("127.0.0.1", 0))
    server = waitress.create_server(answer, sockets=[sock], threads=2)
    stop = threading.Event()
    lock = threading.Lock()

    def loop():
        while not stop.is_set():
            with lock:
                server.asyncore.loop(timeout=0.02, map=server._map, count=1)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    clients = []

    def connect() -> socket.socket:
        client = socket.create_connection(sock.getsockname())
        clients.append(client)
        return client

    def busy(after: float = 0.0) -> bool:
        time.sleep(0.2)  # the event loop reads what was sent
        with lock:
            return _busy(server, time.time() + after)
    yield connect, busy
    stop.set()
    thread.join(5)
    for client in clients:
        client.close()
    server.close()
    server.task_dispatcher.shutdown(timeout=5)


def test_an_upload_still_arriving_keeps_the_server_busy(served):
    connect, busy = served
    upload = connect()
    upload.sendall(b"POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    assert busy(after=FIRST_REQUEST_WAIT_SECONDS + 1)  # long after its connection was new
    upload.sendall(b"x" * 990)
    assert upload.recv(1024).startswith(b"HTTP/1.1 200")
    assert not busy(after=FIRST_REQUEST_WAIT_SECONDS + 1)  # answered, now an idle keep-alive


def test_a_connection_that_has_sent_nothing_yet_counts_only_while_new(served):
    connect, busy = served
    connect()
    assert busy()
    assert not busy(after=FIRST_REQUEST_WAIT_SECONDS + 1)
