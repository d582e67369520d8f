"""Concurrent mixed load on a real server: zero 5xx, zero lost writes, never a short answer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import make_image
from served import post_item, start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from load_mix import run_load  # noqa: E402

CLIENTS = 20
SECONDS = 60


@pytest.mark.slow
def test_mixed_load_20_clients_60_seconds(tmp_path, tiny_model_dir):
    key = "load-key"
    env = dict(os.environ, JEWELSEARCH_HOME=str(tmp_path / "home"), JEWELSEARCH_API_KEY=key,
               JEWELSEARCH_MODEL=str(tiny_model_dir))
    server, url = start_server(env, "--threads", "8")
    try:
        for seed in range(30):
            assert post_item(url, make_image(seed=seed), f"seed-{seed}", key)[0] == 201
        result = run_load(url, key, clients=CLIENTS, seconds=SECONDS)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"{result.requests} requests, statuses {result.statuses}, writes {result.writes_acknowledged}")
    assert result.requests > 1000
    assert result.server_errors == 0, result.statuses
    assert result.transport_errors == 0
    assert result.writes_acknowledged > 0 and result.writes_lost == 0
    assert result.short_search_answers == 0
    assert set(result.latencies_ms) == {"text", "image", "recommend", "item_write", "event"}


@pytest.mark.slow
def test_stalled_uploads_are_cut_off_and_do_not_block_others(tmp_path, tiny_model_dir):
    """Slowloris-style clients: headers promise a body that never comes. Each connection is
    closed after the idle limit, and the server keeps answering everyone else meanwhile."""
    import socket
    import time
    import urllib.request
    env = dict(os.environ, JEWELSEARCH_HOME=str(tmp_path / "home"), JEWELSEARCH_API_KEY="k",
               JEWELSEARCH_MODEL=str(tiny_model_dir), JEWELSEARCH_REQUEST_TIMEOUT_SECONDS="2")
    server, url = start_server(env, "--threads", "2")
    port = int(url.rsplit(":", 1)[1])
    stalled = []
    try:
        for _ in range(6):  # more stalled clients than worker threads
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /api/items HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n")
            stalled.append(sock)
        started = time.monotonic()
        for _ in range(5):
            assert urllib.request.urlopen(url + "/api/health", timeout=5).status == 200
        assert time.monotonic() - started < 5  # not queued behind the stalled uploads
        for sock in stalled:
            sock.settimeout(15)
            assert sock.recv(1024) == b""  # closed by the server, nothing half-processed
        with urllib.request.urlopen(url + "/api/stats", timeout=5) as r:
            assert b'"items": 0' in r.read().replace(b'"items":0', b'"items": 0')
    finally:
        for sock in stalled:
            sock.close()
        server.terminate()
        server.wait(timeout=60)
