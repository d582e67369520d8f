"""Suggestion speed: ``search/suggest.suggestions`` on a catalog home, for prefixes of the
text-search benchmark's queries as a shopper types them (every prefix of 2+ characters of the
last word). Prints p50 / p99 / max in milliseconds. Figures, never asserts.

Usage: python benchmarks/bench_suggest.py HOME [--queries 100]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_text_search import queries  # noqa: E402

from jewelsearch.query import default_glossary  # noqa: E402
from jewelsearch.search.suggest import suggestions  # noqa: E402
from jewelsearch.storage import Catalog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    catalog = Catalog.open(args.home / "catalog.db", args.home / "images")
    glossary = default_glossary()
    typed = []
    for text in queries(args.queries):
        head, _, last = text.rpartition(" ")
        typed += [f"{head} {last[:n]}".strip() for n in range(2, len(last) + 1)]
    suggestions(catalog.lexical, glossary, typed[0], 6)  # the vocabulary views, made once per connection
    times, offered = [], 0
    for text in typed:
        started = time.perf_counter()
        offered += bool(suggestions(catalog.lexical, glossary, text, 6))
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(f"{platform.node()} {platform.machine()}, {catalog.items.count()} items, {len(typed)} prefixes "
          f"({offered} with suggestions): p50 {statistics.median(times):.2f} ms, "
          f"p99 {times[int(0.99 * (len(times) - 1))]:.2f} ms, max {times[-1]:.2f} ms")
    catalog.close()


if __name__ == "__main__":
    main()
