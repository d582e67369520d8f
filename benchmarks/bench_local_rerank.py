"""What the local-feature check (index/local_match.py) costs an image query, side by side with
the query's own embedding: one photo through the shipped tower pass (text-aligned + instance
vector), its local descriptors, the mutual-nearest-neighbour check over the top candidates
given their stored descriptors, and those candidates' descriptors computed on the fly (what a
server without stored descriptors would pay). Interleaved, order alternating, medians.

    python benchmarks/bench_local_rerank.py --repeats 30
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from jewelsearch.embed import load_encoder  # noqa: E402
from jewelsearch.embed.instance import InstanceHead, encode_with_instance  # noqa: E402
from jewelsearch.embed.local_features import SALIENT_POSITIONS, local_descriptors  # noqa: E402
from jewelsearch.index.local_match import LOCAL_CANDIDATES, local_rerank  # noqa: E402
from jewelsearch.ingest.demo import demo_dir, demo_items  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--model", default="jewelclip-lite0")
    parser.add_argument("--candidates", type=int, default=LOCAL_CANDIDATES)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a serving request thread runs
    encoder = load_encoder(args.model)
    head = InstanceHead.load(encoder.folder, encoder.model.visual)
    items = demo_items(demo_dir())[:args.candidates + 1]
    photos = [Image.open(io.BytesIO(item.image_bytes)).convert("RGB") for item in items]
    query, candidates = photos[0], photos[1:]
    stored = local_descriptors(encoder, candidates)
    query_rows = local_descriptors(encoder, [query])[0]
    scores = np.linspace(0.9, 0.7, len(stored)).astype(np.float32)
    steps = {
        "query tower pass (aligned + instance vector)": lambda: encode_with_instance(encoder, head, [query]),
        "query local descriptors (own pass)": lambda: local_descriptors(encoder, [query]),
        f"check of {len(stored)} candidates, stored descriptors": lambda: local_rerank(query_rows, stored, scores),
        f"{len(stored)} candidates' descriptors on the fly": lambda: local_descriptors(encoder, candidates),
    }
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for n in range(args.repeats):
        for name in names if n % 2 else names[::-1]:
            started = time.perf_counter()
            steps[name]()
            times[name].append((time.perf_counter() - started) * 1000)
    print(f"{platform.node()} · {os.cpu_count()} CPUs · torch {torch.__version__} · 1 torch thread · "
          f"{args.repeats} repeats, medians")
    reference = float(np.median(times[names[0]]))
    for name in names:
        median = float(np.median(times[name]))
        print(f"| {name} | {median:.2f} ms | {median / reference:.2f}× the query pass |")
    per_item = SALIENT_POSITIONS * stored[0].shape[1] * 2
    print(f"stored descriptors: {SALIENT_POSITIONS} × {stored[0].shape[1]} float16 = {per_item / 1024:.0f} KiB per item")


if __name__ == "__main__":
    main()
