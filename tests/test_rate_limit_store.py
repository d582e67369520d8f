"""The rate limiter's counters: in this process (server/rate_limit_store.py) and shared by the
processes of a local pool in a SQLite file (server/shared_rate_counters.py). The sliding window
counts as limits' strategy expects, counters expire as they are read or swept, no request starts
a thread, and shared counters add up across processes."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from limits import parse
from limits.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from jewelsearch.server import create_app
from jewelsearch.server.rate_limit_store import SWEEP_SECONDS, LocalCounters
from jewelsearch.server.shared_rate_counters import SCHEME as SHARED, SharedCounters


class Clock:
    def __init__(self, now: float = 1_000_040.0):  # 20 s into a one-minute window
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local", "shared"])
def counters_on(request, tmp_path):
    """Counters of either kind, reading the given clock."""
    if request.param == "local":
        return lambda clock: LocalCounters(clock=clock)
    return lambda clock: SharedCounters(f"{SHARED}://{tmp_path}/counters.db", clock=clock)


def test_the_sliding_window_admits_the_limit_then_weighs_the_previous_window(counters_on):
    clock = Clock()
    counters = counters_on(clock)
    limiter = SlidingWindowCounterRateLimiter(counters)
    rate = parse("4/minute")
    assert [limiter.hit(rate, "10.0.0.1") for _ in range(5)] == [True] * 4 + [False]
    assert limiter.hit(rate, "10.0.0.2")  # another client has its own counter
    clock.now += 60  # next window, 20 s in: the previous window's 4 count for 40/60 of themselves
    assert limiter.get_window_stats(rate, "10.0.0.1").remaining == 4 - 2  # floor(4 * 40/60) = 2
    assert [limiter.hit(rate, "10.0.0.1") for _ in range(3)] == [True, True, False]
    clock.now += 120  # two windows later every counter has lapsed
    assert [limiter.hit(rate, "10.0.0.1") for _ in range(5)] == [True] * 4 + [False]


def test_plain_counters_expire_with_their_first_count(counters_on):
    clock = Clock()
    counters = counters_on(clock)
    assert counters.incr("k", 10) == 1 and counters.incr("k", 10, amount=2) == 3
    assert counters.get_expiry("k") == clock.now + 10
    clock.now += 5
    assert counters.incr("k", 10) == 4 and counters.get_expiry("k") == clock.now + 5
    assert counters.decr("k", 9) == 0 and counters.decr("gone") == 0
    clock.now += 5
    assert counters.get("k") == 0 and counters.incr("k", 10) == 1
    counters.clear("k")
    assert counters.get("k") == 0 and counters.reset() == 0 and counters.check()


def test_counters_of_clients_that_went_away_are_swept(counters_on):
    clock = Clock()
    counters = counters_on(clock)
    for client in range(100):
        counters.incr(f"c{client}", 60)
    assert len(counters) == 100
    clock.now += SWEEP_SECONDS + 1  # all expired; the next count sweeps them in passing
    counters.incr("late", 60)
    assert len(counters) == 1


def test_memory_storage_setting_uses_the_local_counters_and_no_request_starts_a_thread(settings, service):
    app = create_app(dataclasses.replace(settings, rate_limits=True, rate_limit_text="1000/minute"), service,
                     autosave_seconds=None)
    client = app.test_client()
    assert client.get("/api/search?q=ring").status_code == 200  # the first request's own set-up
    limiter = next(iter(app.extensions["limiter"]))
    assert isinstance(limiter.storage, LocalCounters) and len(limiter.storage) == 1
    before = {thread.ident for thread in threading.enumerate()}
    started = []
    for _ in range(8):
        # limits' own memory storage re-armed a timer thread on a request 10 ms after its last run
        time.sleep(0.02)
        assert client.get("/api/search?q=ring").status_code == 200
        started += [t.name for t in threading.enumerate() if t.ident not in before and "helper" not in t.name]
    assert started == []


def test_a_shared_backend_is_used_as_given():
    assert not isinstance(storage_from_string("memory://"), LocalCounters)
    assert isinstance(storage_from_string("jewelsearch-memory://"), LocalCounters)


def test_shared_counters_add_up_across_processes_and_never_let_more_than_the_limit_in(tmp_path):
    uri = f"{SHARED}://{tmp_path}/counters.db"
    # Two storages on one file stand for two worker processes (each thread has its own
    # connection, as each process would).
    first, second = SharedCounters(uri), storage_from_string(uri)
    assert isinstance(second, SharedCounters)
    rate = parse("50/minute")
    limiters = [SlidingWindowCounterRateLimiter(first), SlidingWindowCounterRateLimiter(second)]
    admitted = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for _ in range(40):
            allowed = limiters[n % 2].hit(rate, "10.0.0.9")
            with lock:
                admitted.append(allowed)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 50 and len(admitted) == 160  # exactly the limit, whichever process asked
    assert not limiters[0].hit(rate, "10.0.0.9") and limiters[1].hit(rate, "10.0.0.10")


def test_shared_counters_need_a_path():
    with pytest.raises(ValueError, match="needs a file path"):
        SharedCounters(f"{SHARED}://")


def test_a_counter_store_failing_at_run_time_lets_requests_through(settings, service, tmp_path, monkeypatch):
    import sqlite3
    app = create_app(dataclasses.replace(settings, rate_limits=True, rate_limit_text="2/minute",
                                         rate_limit_storage=f"{SHARED}://{tmp_path}/counters.db"),
                     service, autosave_seconds=None)
    client = app.test_client()
    assert [client.get("/api/search?q=ring").status_code for _ in range(3)] == [200, 200, 429]

    def unwritable(self):
        raise sqlite3.OperationalError("unable to open database file")
    monkeypatch.setattr(SharedCounters, "_connection", unwritable)
    # The store is gone: the request is answered (not a 500), unlimited until it comes back.
    assert [client.get("/api/search?q=ring").status_code for _ in range(3)] == [200, 200, 200]


def test_a_shared_counter_file_that_cannot_be_opened_is_refused_at_start(settings, service, tmp_path):
    from jewelsearch.server.rate_limits import RateLimitSettingsError
    with pytest.raises(RateLimitSettingsError, match="rate_limit_storage"):
        create_app(dataclasses.replace(settings, rate_limits=True,
                                       rate_limit_storage=f"{SHARED}://{tmp_path}/missing-dir/counters.db"),
                   service, autosave_seconds=None)
