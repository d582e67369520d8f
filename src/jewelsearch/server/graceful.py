"""Serving with waitress and a graceful stop.

On SIGTERM or SIGINT the server stops accepting connections, lets requests
already received finish and flush their responses (up to ``grace`` seconds),
then saves the index and exits.  waitress's own stop drops in-flight replies,
so the event loop is driven here one iteration at a time.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from typing import Callable

import waitress
from waitress.channel import HTTPChannel

log = logging.getLogger(__name__)


def _busy(server, now: float) -> bool:
    """Whether a stopping server still owes a client an answer: a task queued or running, a
    whole request waiting, an answer not yet sent, a request whose body is still arriving (an
    upload that reached the server before the stop), or a connection taken from the kernel's
    queue at the stop whose request has not started to arrive yet (for ``FIRST_REQUEST_WAIT_SECONDS``)."""
    dispatcher = server.task_dispatcher
    if dispatcher.queue or dispatcher.active_count:
        return True
    for channel in list(server._map.values()):
        if not isinstance(channel, HTTPChannel):
            continue
        if channel.requests or channel.total_outbufs_len or channel.request is not None:
            return True
        if _awaiting_first_request(channel, now):
            return True
    return False


# A connection that sent nothing yet counts as work this long: a client's request follows its
# handshake at once, and one that never sends holds a gate no longer than this.
FIRST_REQUEST_WAIT_SECONDS = 0.5


def _awaiting_first_request(channel: HTTPChannel, now: float) -> bool:
    """A connection accepted less than ``FIRST_REQUEST_WAIT_SECONDS`` ago that has sent nothing yet."""
    return channel.last_activity == channel.creation_time and now - channel.creation_time < FIRST_REQUEST_WAIT_SECONDS


def _channels_at_work(server, now: float) -> int:
    """Connections holding a worker thread's work: a whole request queued or being answered
    (``channel.requests``), or a fresh connection whose first request has not arrived yet.
    Reading a request's body and sending an answer are the event loop's work, not a worker's, so
    a slow upload or a slow reader does not count; nor does an idle keep-alive connection."""
    count = 0
    for channel in list(server._map.values()):
        if not isinstance(channel, HTTPChannel):
            continue
        if channel.requests or _awaiting_first_request(channel, now):
            count += 1
    return count


def accept_only_below(server, limit: int) -> None:
    """Let ``server`` accept a new connection only while fewer than ``limit`` of its connections
    hold work. Why: processes sharing one listening socket all wake for each connection, and
    waitress's event loop accepts even while its worker threads are busy, so a busy process took
    connections that an idle one could have answered at once. With the gate, a connection waits
    in the kernel's queue until some process has room, which balances by load, not by chance.
    The event loop re-asks ``readable`` after every answer (the worker pulls waitress's
    trigger), so a gated server starts accepting as soon as it has room."""
    ungated = server.readable

    def readable() -> bool:
        return ungated() and _channels_at_work(server, time.time()) < limit
    server.readable = readable


def _accept_backlog(server, limit: int = 1024) -> None:
    """Take in connections the kernel already queued for us: closing the listening socket
    would reset them, and those clients did reach the server before it was told to stop."""
    server.socket.setblocking(False)
    for _ in range(limit):
        before = len(server._map)
        server.handle_accept()
        if len(server._map) == before:
            return


def serve(app, *, host: str | None = None, port: int | None = None, threads: int, grace: float = 30.0,
          idle_timeout: int = 30, on_stop: Callable[[], None] | None = None,
          ready: Callable[[int], None] | None = None, sock: socket.socket | None = None,
          trusted_proxy: str | None = None, accept_limit: int = 0) -> None:
    """Serve on ``host``:``port``, or on the listening socket ``sock`` (shared by several worker
    processes: the kernel hands each connection to one of them). ``trusted_proxy``: the address
    whose X-Forwarded-For names the client (a local read replica forwarding a write).
    ``accept_limit`` > 0: accept only while fewer connections hold work (``accept_only_below``)."""
    # waitress buffers a request body before the app sees it; ``channel_timeout`` closes a
    # connection that stays silent that long, so a stalled upload never holds a worker thread.
    where = {"sockets": [sock]} if sock is not None else {"host": host, "port": port}
    if trusted_proxy:
        where |= {"trusted_proxy": trusted_proxy, "trusted_proxy_headers": {"x-forwarded-for"},
                  "trusted_proxy_count": 1}
    server = waitress.create_server(app, threads=threads, channel_timeout=idle_timeout,
                                    cleanup_interval=max(1, idle_timeout // 2),
                                    clear_untrusted_proxy_headers=True, ident="jewelsearch", **where)
    if accept_limit > 0:
        accept_only_below(server, accept_limit)
    stopping = threading.Event()

    def request_stop(signum, frame):
        log.info("signal %s: finishing in-flight requests, then stopping", signum)
        stopping.set()
    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    if ready:
        ready(server.effective_port)
    try:
        while not stopping.is_set():
            server.asyncore.loop(timeout=0.5, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
        _accept_backlog(server)
        server.accepting = False
        server.del_channel()  # stop listening; connections already open keep being served
        server.socket.close()
        deadline = time.monotonic() + grace
        while _busy(server, time.time()) and time.monotonic() < deadline:
            server.asyncore.loop(timeout=0.05, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if on_stop:
            on_stop()
