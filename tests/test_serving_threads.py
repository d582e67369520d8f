"""How many intra-op threads torch gets while serving (``wiring.serving_torch_threads``)."""

from __future__ import annotations

from jewelsearch.config import Settings
from jewelsearch.search.wiring import serving_torch_threads


def test_an_explicit_setting_wins():
    assert serving_torch_threads(Settings(torch_threads=3, server_threads=8), cpus=2) == 3


def test_the_cores_are_shared_out_among_the_request_threads():
    assert serving_torch_threads(Settings(server_threads=8), cpus=16) == 2
    assert serving_torch_threads(Settings(server_threads=4), cpus=16) == 4


def test_every_request_thread_gets_at_least_one():
    # The 2-core VM with the default 8 request threads: one each (measured faster than two).
    assert serving_torch_threads(Settings(server_threads=8), cpus=2) == 1
    assert serving_torch_threads(Settings(server_threads=0), cpus=1) == 1
