"""Batch norm folded into the image tower's convolutions (what serving does) against the tower
as loaded, side by side: one photo embedded by each in turn, order alternating, medians.

    python benchmarks/bench_fold.py --repeats 60
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
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from jewelsearch.embed import load_encoder  # noqa: E402
from jewelsearch.embed.fold_batch_norm import fold_batch_norm  # noqa: E402
from jewelsearch.ingest.demo import demo_dir, demo_items  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--model", default="jewelclip-lite0")
    args = parser.parse_args()
    plain, folded = load_encoder(args.model), load_encoder(args.model)
    if not fold_batch_norm(folded.model.visual):
        sys.exit(f"{args.model}: no foldable batch norms")
    photo = Image.open(io.BytesIO(demo_items(demo_dir())[0].image_bytes)).convert("RGB").resize((512, 432))
    cosine = float((plain.encode_images([photo]) * folded.encode_images([photo])).sum())
    times: dict[str, list[float]] = {"as loaded": [], "folded": []}
    for n in range(args.repeats):
        order = (("as loaded", plain), ("folded", folded))
        for name, encoder in order if n % 2 else order[::-1]:
            started = time.perf_counter()
            encoder.encode_images([photo])
            times[name].append(time.perf_counter() - started)
    medians = {k: 1000 * float(np.median(v[3:])) for k, v in times.items()}
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}; one 512×432 photo, "
          f"{args.repeats} repeats each, interleaved")
    for name, ms in medians.items():
        print(f"  {name:<10} median {ms:6.1f} ms")
    print(f"  folded is {medians['as loaded'] / medians['folded']:.2f}× faster; embedding cosine {cosine:.7f}")


if __name__ == "__main__":
    main()
