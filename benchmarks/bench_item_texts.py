"""The item text tower at ingest: a batch's titles in one pass (padded to the longest) against
the same titles sorted by token count and run in groups, side by side.

Every ingest batch embeds its items' words (``embed/item_text.py``); the tokenizer pads each pass
to its longest text, so in a batch of 32 with titles of 38-107 characters about a quarter of the
tokens are padding. Variants alternate batch by batch; medians; max |diff| of the vectors.

    python benchmarks/bench_item_texts.py --batches 12 --groups 1,2,4
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from jewelsearch.embed import load_encoder  # noqa: E402
from jewelsearch.embed.item_text import encode_item_texts, item_text  # noqa: E402
from jewelsearch.ingest.demo import demo_dir, demo_items  # noqa: E402


def grouped(encode_texts, texts: list[str], groups: int) -> dict:
    """``encode_item_texts`` on the texts sorted by length and cut into ``groups`` passes."""
    unique = sorted(dict.fromkeys(t for t in texts if t), key=len)
    size = -(-len(unique) // groups)
    out: dict = {}
    for start in range(0, len(unique), size):
        out.update(encode_item_texts(encode_texts, unique[start:start + size]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--groups", default="1,2,4", help="group counts to compare; 1 is one pass per batch")
    parser.add_argument("--model", default="jewelclip-lite0")
    args = parser.parse_args()
    encoder = load_encoder(args.model)
    texts = [item_text(item.fields) for item in demo_items(demo_dir())]
    batches = [texts[i:i + args.batch] for i in range(0, args.batches * args.batch, args.batch)]
    counts = [int(g) for g in args.groups.split(",")]
    times: dict[int, list[float]] = {g: [] for g in counts}
    vectors: dict[int, list[dict]] = {g: [] for g in counts}
    grouped(encoder.encode_texts, batches[0], 1)  # warm-up
    for n, batch in enumerate(batches):
        order = counts[n % len(counts):] + counts[:n % len(counts)]
        for groups in order:
            started = time.perf_counter()
            vectors[groups].append(grouped(encoder.encode_texts, batch, groups))
            times[groups].append(time.perf_counter() - started)
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{args.batches} batches of {args.batch} demo item texts, load average {os.getloadavg()[0]:.1f}")
    base = statistics.median(times[counts[0]])
    for groups in counts:
        median = statistics.median(times[groups])
        diff = max(float(np.abs(a[t] - b[t]).max()) for a, b in zip(vectors[groups], vectors[counts[0]]) for t in a)
        print(f"  {groups} group(s): {1000 * median:7.1f} ms/batch  {base / median:5.2f}x  "
              f"max |diff| vs {counts[0]} group(s) {diff:.1e}")


if __name__ == "__main__":
    main()
