"""What one rate-limit check costs: counters in this process's memory (``LocalCounters``)
against counters shared through a SQLite file (``SharedCounters``, what the local engine's
workers use), side by side in one run, alternating in rounds; also with two processes checking
the same shared file at once, as two readers under load would.

Each check is limits' sliding-window "hit" for one client key of 10 (the server's strategy).

Usage: python benchmarks/bench_rate_counters.py [--checks 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from limits import parse  # noqa: E402
from limits.strategies import SlidingWindowCounterRateLimiter  # noqa: E402

from jewelsearch.server.rate_limit_store import LocalCounters  # noqa: E402
from jewelsearch.server.shared_rate_counters import SCHEME, SharedCounters  # noqa: E402

RATE = parse("1000000/minute")  # never refuses: every check counts


def checks_per_second(storage, checks: int) -> float:
    limiter = SlidingWindowCounterRateLimiter(storage)
    started = time.perf_counter()
    for n in range(checks):
        limiter.hit(RATE, f"10.0.0.{n % 10}")
    return checks / (time.perf_counter() - started)


def _worker(uri: str, checks: int, out) -> None:
    out.put(checks_per_second(SharedCounters(uri), checks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load", os.getloadavg(), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        uri = f"{SCHEME}://{scratch}/counters.db"
        rates: dict[str, list[float]] = {"memory": [], "shared file": [], "shared file, 2 processes (each)": []}
        local, shared = LocalCounters(), SharedCounters(uri)
        for round_ in range(args.rounds):
            order = [("memory", local), ("shared file", shared)]
            for name, storage in (order if round_ % 2 == 0 else order[::-1]):
                rates[name].append(checks_per_second(storage, args.checks))
            queue = multiprocessing.get_context("spawn").Queue()
            workers = [multiprocessing.get_context("spawn").Process(target=_worker, args=(uri, args.checks, queue))
                       for _ in range(2)]
            for worker in workers:
                worker.start()
            rates["shared file, 2 processes (each)"] += [queue.get() for _ in workers]
            for worker in workers:
                worker.join()
    print(f"\n{platform.node()} {os.cpu_count()} CPUs, {args.checks} checks per run, {args.rounds} rounds")
    print("| counters | checks/s (median) | µs per check |")
    print("|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} | {1e6 / median:.1f} |")


if __name__ == "__main__":
    main()
