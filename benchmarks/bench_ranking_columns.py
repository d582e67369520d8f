"""Text queries over the in-memory ranking columns against rows, side by side in one process.

For each of N distinct queries (text vectors cached first, so the text tower is out of the
picture, and the word side run in line) the same query is answered from the columns and from
rows, alternately, and the answers compared. Also: the full read (time, memory the columns
hold), and what one write costs the next query (an incremental refresh).

    python benchmarks/bench_ranking_columns.py --home HOME [--queries 300]

HOME is a catalog home, e.g. the 100k-item one ``bench_text_speed.py --home`` builds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
from concurrent.futures import Future
from pathlib import Path

HERE = Path(__file__).resolve().parent


class InLine:
    """Runs a submitted task at once, so each step's time is the query's own."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from bench_text_search import queries

    from jewelsearch.embed import load_encoder
    from jewelsearch.search.ranking_columns import RankingColumnsKeeper
    from jewelsearch.search.service import SearchService
    from jewelsearch.storage import Catalog

    encoder = load_encoder("jewelclip-lite0")
    catalog = Catalog.open(args.home / "catalog.db", args.home / "images")
    service = SearchService(catalog, encoder, args.home / "index", text_cache_size=1_000_000)
    state = service.state
    state.helpers = InLine()
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, date {time.strftime('%Y-%m-%d %H:%M')}, "
          f"items {catalog.items.count()}, queries {args.queries}, load average {os.getloadavg()[0]:.1f}", flush=True)

    keeper = RankingColumnsKeeper(catalog.items)
    tracemalloc.start()
    started = time.perf_counter()
    columns = keeper.read_all()
    took = time.perf_counter() - started
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"full read: {took:.2f} s, {len(columns)} items, about {held / len(columns):.0f} bytes an item "
          f"held ({held / 2**20:.1f} MiB)")

    texts = queries(args.queries)
    for text in texts:  # cache every text vector: the tower is not what is compared
        service.query(text=text, k=10)
    times = {"columns": [], "rows": []}
    differ = 0
    for text in texts:
        answers = {}
        for name, source in (("columns", keeper), ("rows", None)):
            state.ranking_columns = source
            started = time.perf_counter()
            payload = service.query(text=text, k=10)
            times[name].append((time.perf_counter() - started) * 1000)
            payload.pop("took_ms")
            answers[name] = payload
        differ += answers["columns"] != answers["rows"]
    columns_p50, rows_p50 = (statistics.median(times[name]) for name in ("columns", "rows"))
    print(f"text query without its tower, p50: columns {columns_p50:.2f} ms, rows {rows_p50:.2f} ms "
          f"({columns_p50 / rows_p50:.2f}x); answers differ in {differ} of {len(texts)}")

    middle = len(columns.ids) // 2
    item, price = int(columns.ids[middle]), float(columns.price[middle])
    refresh = []
    for round_ in range(5):
        with catalog.database.write() as conn:
            catalog.items.update(conn, item, {"price": 100.0 + round_})
        started = time.perf_counter()
        keeper.current()
        refresh.append((time.perf_counter() - started) * 1000)
    with catalog.database.write() as conn:  # leave the item as it was found
        catalog.items.update(conn, item, {"price": None if price != price else price})
    print(f"one write, then the next query's refresh: p50 {statistics.median(refresh):.2f} ms of 5")
    catalog.close()


if __name__ == "__main__":
    main()
