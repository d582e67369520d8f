"""What the day-two operations cost: rate limiting and metrics per request, backup and restore.

1. Per request, in process (Flask's test client, so the HTTP transport does not drown the
   difference): a cheap limited request (``GET /api/items/<unknown>/similar``, a 404 in the
   "text" class) and an unlimited one (``/api/health``), with rate limits off and on,
   alternating in rounds; medians. Metrics are always on, so their two hooks are timed directly
   in a request context; a scrape of ``/metrics`` is timed too.
2. ``backup`` and ``restore`` of a synthetic catalog (real rows and a saved index; one shared
   photo, so the figures are the database's and the index's), with the backup size.

Usage: python benchmarks/bench_ops.py [--items 10000] [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_catalog import build  # noqa: E402

from jewelsearch.config import Settings  # noqa: E402
from jewelsearch.search.backup import create_backup  # noqa: E402
from jewelsearch.search.restore import restore_backup  # noqa: E402
from jewelsearch.search.wiring import open_service  # noqa: E402
from jewelsearch.server import create_app  # noqa: E402

KEY = "bench-key"


def per_request_us(client, path: str, n: int, headers=None) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        client.get(path, headers=headers or {})
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def metrics_hooks_us(app, n: int) -> float:
    """The metrics timer and recorder, called as Flask calls them, per request."""
    start_timer = next(f for f in app.before_request_funcs[None] if f.__name__ == "start_timer")
    record = next(f for f in app.after_request_funcs[None] if f.__name__ == "record")
    response = app.response_class("x")
    with app.test_request_context("/api/items/1/similar"):
        start = time.perf_counter()
        for _ in range(n):
            start_timer()
            record(response)
        return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.python_version()}, {args.items} items")
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        settings = Settings(home=home, api_key=KEY, rate_limits=False)
        service = open_service(settings)  # loads the model; the catalog is empty for now
        build(home, args.items, service.encoder.model_id, service.encoder.dim).close()
        service = open_service(settings)  # opens the synthetic rows, builds and saves the index
        off = create_app(settings, service, autosave_seconds=None).test_client()
        # Rates far above what the run sends, so every request is counted and none refused.
        on = create_app(dataclasses.replace(settings, rate_limits=True, rate_limit_text="1000000/minute"),
                        service, autosave_seconds=None).test_client()
        rows = []
        for round_number in range(args.rounds):
            for name, client in (("off", off), ("on", on)):
                rows.append((round_number, name,
                             per_request_us(client, "/api/items/999999999/similar", args.requests),
                             per_request_us(client, "/api/health", args.requests)))
        print("| round | rate limits | limited 404 (µs) | /api/health (µs) |\n|---|---|---|---|")
        for row in rows:
            print(f"| {row[0]} | {row[1]} | {row[2]:.0f} | {row[3]:.0f} |")
        for name in ("off", "on"):
            mine = [r for r in rows if r[1] == name]
            print(f"median, limits {name}: limited {statistics.median(r[2] for r in mine):.0f} µs, "
                  f"health {statistics.median(r[3] for r in mine):.0f} µs")
        print(f"metrics hooks per request: {metrics_hooks_us(off.application, args.requests * 5):.1f} µs")
        scrape = per_request_us(off, "/metrics", 200, headers={"X-API-Key": KEY})
        print(f"/metrics scrape: {scrape / 1000:.2f} ms")

        start = time.perf_counter()
        manifest = create_backup(settings.db_path, settings.images_dir, settings.index_dir, Path(scratch) / "bk")
        backup_s = time.perf_counter() - start
        size = sum(f.stat().st_size for f in (Path(scratch) / "bk").rglob("*") if f.is_file())
        start = time.perf_counter()
        restore_backup(Path(scratch) / "bk", Path(scratch) / "restored")
        restore_s = time.perf_counter() - start
        print(f"backup of {manifest.items} items ({size / 1e6:.1f} MB, index matches: "
              f"{manifest.index['matches_catalog']}): {backup_s:.2f} s; restore (checks every file): "
              f"{restore_s:.2f} s")


if __name__ == "__main__":
    main()
