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
