"""Ingest throughput on the bundled demo catalog: items per second, end to end.

Opens a fresh home with the default model and adds the 600 demo items (photos plus their
fields) in batches of 32: decode, embed and recognise, the store (with the word index where
the code has one), the index. The model load is not counted. Run it under two source trees
in turn (``PYTHONPATH=OTHER/src``) to compare them side by side.
Usage: python benchmarks/bench_ingest_throughput.py [--items 600]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from jewelsearch.config import Settings  # noqa: E402
from jewelsearch.ingest.demo import demo_dir, demo_items  # noqa: E402
from jewelsearch.search.wiring import open_service  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    args = parser.parse_args()
    items = demo_items(demo_dir())[:args.items]
    with tempfile.TemporaryDirectory() as scratch:
        service = open_service(Settings(home=Path(scratch)))
        started = time.perf_counter()
        for start in range(0, len(items), 32):
            service.add_items(items[start:start + 32])
        seconds = time.perf_counter() - started
        service.catalog.close()
    import jewelsearch
    print(f"{Path(jewelsearch.__file__).parent}: {len(items)} items in {seconds:.1f} s, "
          f"{len(items) / seconds:.1f} items/s")


if __name__ == "__main__":
    main()
