"""``ItemStore.any_priced`` at catalog scale, the old tree's against this tree's, interleaved.

Text search asks it when a query's words name a price, to leave an unusable price filter off a
catalog without prices. Both versions run in one process on the same database file: the old
tree's ``storage/items.py`` is loaded under another module name and called on this tree's store.

Usage: python benchmarks/bench_any_priced.py --items 100000 --old-tree OLD/src
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

from jewelsearch.storage import Catalog
from jewelsearch.storage.items import normalise_item_fields

CATEGORIES = ["ring", "necklace", "pendant", "earrings", "bracelet"]
METALS = ["yellow gold", "white gold", "silver", "platinum"]
FILTERS = {"no filter": {}, "category": {"category": "ring"},
           "category + metal": {"category": "ring", "metal": "silver"}}


def old_any_priced(old_src: Path):
    spec = importlib.util.spec_from_file_location("old_storage_items", old_src / "jewelsearch/storage/items.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ItemStore.any_priced


def fill(catalog: Catalog, items: int, priced_share: float) -> None:
    """``items`` rows over five categories; the first ``priced_share`` of them priced, except rings
    (never priced: a filter on rings over a partly priced catalog is the slow case left)."""
    with catalog.database.write() as conn:
        for n in range(items):
            fields = {"category": CATEGORIES[n % len(CATEGORIES)], "metal": METALS[n % len(METALS)]}
            if n < items * priced_share and fields["category"] != "ring":
                fields["price"] = 100 + n % 900
            catalog.items.insert(conn, normalise_item_fields(fields), image_path="ab/x.jpg", image_sha256="ab" * 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--old-tree", type=Path, required=True, help="the old tree's src folder")
    args = parser.parse_args()
    old = old_any_priced(args.old_tree)
    print(f"{args.items} items; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for label, share in (("unpriced catalog", 0.0), ("priced except rings", 1.0)):
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Catalog.open(Path(tmp) / "c.db", Path(tmp) / "images")
            started = time.perf_counter()
            fill(catalog, args.items, share)
            print(f"\n{label} (filled in {time.perf_counter() - started:.1f} s)")
            print("| filters | old ms (median) | new ms (median) | new / old | answers agree |")
            print("|---|---|---|---|---|")
            for name, filters in FILTERS.items():
                times = {"old": [], "new": []}
                answers = set()
                for _ in range(args.repeats):
                    for which, call in (("old", lambda: old(catalog.items, filters)),
                                        ("new", lambda: catalog.items.any_priced(filters))):
                        start = time.perf_counter()
                        answers.add((which, call()))
                        times[which].append(time.perf_counter() - start)
                o, n = statistics.median(times["old"]) * 1e3, statistics.median(times["new"]) * 1e3
                agree = len({a for _, a in answers}) == 1
                print(f"| {name} | {o:.3f} | {n:.3f} | {n / o:.3f} | {agree} |")
            catalog.close()
    print(f"\nload average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
