"""What ingest's stone check costs: adding a catalog item with and without it.

Ingest runs the localiser on each new photo that lacks a gemstone or a cut, so that those
fields are filled in only where a stone is seen; it reads the taps of ingest's own tower pass
(``Ingestor._embed``, ``Recognizer.embed_and_locate``). This times ``add_items`` of one demo
item with no gemstone and no cut, the check on and (patched out) off, interleaved in one
process on two fresh homes so machine noise hits both alike, and also a separate localiser
pass (what the check cost before it shared the pass). Items are distinct demo renders, so no
embedding is reused.
Prints medians and the ratio. Asserts nothing.
Usage: python benchmarks/bench_ingest.py [--items 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from jewelsearch.config import Settings  # noqa: E402
from jewelsearch.ingest.demo import demo_dir, demo_items  # noqa: E402
from jewelsearch.ingest.pipeline import NewItem  # noqa: E402
from jewelsearch.search.wiring import open_service  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    items = demo_items(demo_dir())[: 2 * args.items]
    # No gemstone and no cut given: the case that pays for the check.
    bare = [NewItem(i.image_bytes, {k: v for k, v in i.fields.items() if k not in ("gemstone", "stone_shape")})
            for i in items]
    with tempfile.TemporaryDirectory() as tmp:
        checked = open_service(Settings(home=Path(tmp) / "on"))
        unchecked = open_service(Settings(home=Path(tmp) / "off"))
        unchecked.ingestor._embed = functools.partial(unchecked.ingestor._embed, locate=False)
        checked.add_items(bare[-1:])  # warm both: first calls pay for lazy set-up
        unchecked.add_items(bare[-2:-1])
        on, off, alone = [], [], []
        localizer = checked.ingestor.recognizer.localizer
        for n in range(args.items):
            first, second = (checked, on), (unchecked, off)
            for service, times in (first, second) if n % 2 == 0 else (second, first):
                item = bare[2 * n + (times is off)]
                start = time.perf_counter()
                service.add_items([item])
                times.append((time.perf_counter() - start) * 1000)
            image = checked.ingestor.decode(bare[2 * n].image_bytes).image
            start = time.perf_counter()
            localizer.locate(image)
            alone.append((time.perf_counter() - start) * 1000)
        filled = sum(1 for row in checked.catalog.items.list(10_000, 0) if row.get("gemstone"))
        filled_off = sum(1 for row in unchecked.catalog.items.list(10_000, 0) if row.get("gemstone"))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch threads {args.threads}")
    print(f"items: {args.items} per variant, one per add_items call, no gemstone or cut given")
    print(f"add_items with the stone check:    median {statistics.median(on):6.1f} ms")
    print(f"add_items without the stone check: median {statistics.median(off):6.1f} ms")
    print(f"ratio with/without: {statistics.median(on) / statistics.median(off):.2f}")
    print(f"a separate localiser pass:         median {statistics.median(alone):6.1f} ms")
    print(f"gemstones filled in: {filled} with the check, {filled_off} without")


if __name__ == "__main__":
    main()
