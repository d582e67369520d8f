"""The rate limiter's counters in this process's memory, expired as they are read.

``limits``' own in-memory storage (``memory://``) expires its counters on a ``threading.Timer``
that it starts again on most requests (any that come more than 10 ms after the timer last ran):
a new OS thread per request, paid on the request thread (cProfile, 2026-12-07). This storage
keeps the same counts with no thread at all: an expired counter is dropped when it is next read,
and a sweep over all counters, run inline at most once a minute, drops those nobody reads again
(a client that went away), so memory stays bounded by the clients of the last two windows.

It supports the sliding-window-counter strategy the server uses (``rate_limits.py``) and the
plain counter calls (fixed window). ``create_app`` uses it wherever the setting says
``memory://``; a shared backend (``redis://…``) is used as given.
"""

from __future__ import annotations

import threading
import time
from math import floor
from typing import Callable

from limits.storage import Storage
from limits.storage.base import SlidingWindowCounterSupport, TimestampedSlidingWindow

SCHEME = "jewelsearch-memory"
SWEEP_SECONDS = 60.0  # how often, at most, every counter is checked for expiry


class LocalCounters(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """Counters by key, each with the time it expires; one lock guards them all (each call holds it
    for a few dictionary operations)."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 clock: Callable[[], float] = time.time, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        # Wall-clock time, as limits' window keys are made from it (``sliding_window_keys``).
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self._next_sweep = clock() + SWEEP_SECONDS

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    # -- plain counters ---------------------------------------------------------------------
    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = self._clock()
        with self._lock:
            self._sweep(now)
            return self._add(key, expiry, amount, now)

    def decr(self, key: str, amount: int = 1) -> int:
        now = self._clock()
        with self._lock:
            entry = self._live(key, now)
            if entry is None:
                return 0
            count = max(entry[0] - amount, 0)
            self._counts[key] = (count, entry[1])
            return count

    def get(self, key: str) -> int:
        with self._lock:
            entry = self._live(key, self._clock())
        return entry[0] if entry else 0

    def get_expiry(self, key: str) -> float:
        now = self._clock()
        with self._lock:
            entry = self._live(key, now)
        return entry[1] if entry else now

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)

    def check(self) -> bool:
        return True

    def reset(self) -> int:
        with self._lock:
            cleared = len(self._counts)
            self._counts.clear()
        return cleared

    def __len__(self) -> int:
        """Counters held, live or not yet swept."""
        return len(self._counts)

    # -- sliding window counter ----------------------------------------------------------------
    # The window of ``expiry`` seconds a request falls in has its own counter; the previous
    # window's counter, weighted by how much of it still overlaps the last ``expiry`` seconds,
    # is added to it. Counters live two windows, as long as they can be read as "previous".
    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = self._clock()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        with self._lock:  # the check and the count in one step: no other request slips between
            self._sweep(now)
            previous, previous_ttl, current, _ = self._window(previous_key, current_key, expiry, now)
            if floor(previous * previous_ttl / expiry + current) + amount > limit:
                return False
            self._add(current_key, 2 * expiry, amount, now)
            return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = self._clock()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        with self._lock:
            return self._window(previous_key, current_key, expiry, now)

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        for window_key in self.sliding_window_keys(key, expiry, self._clock()):
            self.clear(window_key)

    # -- under the lock ------------------------------------------------------------------------
    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._counts.get(key)
        if entry is not None and entry[1] <= now:
            del self._counts[key]
            return None
        return entry

    def _add(self, key: str, expiry: float, amount: int, now: float) -> int:
        entry = self._live(key, now)
        # A counter's life starts with its first count, as in limits' own storages.
        count, expires = (amount, now + expiry) if entry is None else (entry[0] + amount, entry[1])
        self._counts[key] = (count, expires)
        return count

    def _window(self, previous_key: str, current_key: str, expiry: int,
                now: float) -> tuple[int, float, int, float]:
        previous = self._live(previous_key, now)
        current = self._live(current_key, now)
        previous_count = previous[0] if previous else 0
        # Seconds left until the previous window no longer overlaps the last ``expiry`` seconds.
        previous_ttl = 0.0 if previous_count == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous_count, previous_ttl, current[0] if current else 0, current_ttl

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._counts = {key: entry for key, entry in self._counts.items() if entry[1] > now}
        self._next_sweep = now + SWEEP_SECONDS
