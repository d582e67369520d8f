"""Browsing speed: ``search/browse.browse`` (what ``GET /api/items`` answers) on a catalog home, a page
of 24 in each order, with no filter and with filters, at the first page and deep in the list, and
the first page with facet counts over every allowed item, counted by the store and from the
in-memory ranking columns (what ``serve`` uses). Prints p50 / p99 in milliseconds per
case. Figures, never asserts.

Usage: python benchmarks/bench_browse.py HOME [--repeats 30]
(HOME is only read; ``bench_text_speed.py --home`` builds a 100k-item one.)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

from jewelsearch.search.browse import SORTS, browse
from jewelsearch.search.params import Filters
from jewelsearch.search.ranking_columns import RankingColumnsKeeper
from jewelsearch.storage import Catalog

FILTERS = {"none": None, "category=ring": Filters(category="ring"), "gemstone=sapphire (family)": Filters(
    gemstone="sapphire"), "max_price=500": Filters(max_price=500.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    catalog = Catalog.open(args.home / "catalog.db", args.home / "images")
    priced = catalog.database.conn.execute("SELECT COUNT(price) FROM items").fetchone()[0]
    print(f"{platform.node()} {platform.machine()}, {time.strftime('%Y-%m-%d %H:%M')}, {catalog.items.count()} "
          f"items ({priced} priced), page of 24, {args.repeats} repeats per case")
    columns = RankingColumnsKeeper(catalog.items).read_all()  # what a serving process keeps in memory
    # (offset, facets counted by): none, the store's GROUP BY passes, or the ranking columns
    cases = ((0, None), (5000, None), (0, "store"), (0, "columns"))
    for label, filters in FILTERS.items():
        for sort in SORTS:
            for offset, counted_by in cases:
                times = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    page = browse(catalog, filters, sort=sort, limit=24, offset=offset, facets=bool(counted_by),
                                  columns=columns if counted_by == "columns" else None)
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                facets = f"facets ({counted_by})" if counted_by else ""
                print(f"  {label:28s} {sort:10s} offset {offset:>5} {facets:17s} "
                      f"total {page['total']:>6}  p50 {statistics.median(times):6.2f} ms  "
                      f"p99 {times[int(0.99 * (len(times) - 1))]:6.2f} ms")
    catalog.close()


if __name__ == "__main__":
    main()
