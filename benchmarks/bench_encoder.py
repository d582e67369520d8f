"""Encoder throughput: images/s and texts/s at batch 32, default model vs open_clip ViT-B-32.

Both models run in the same process, interleaved, so machine noise hits both;
figures are medians over repeats.  ViT-B-32 has random weights (no download).
Usage: python benchmarks/bench_encoder.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from jewelsearch.embed import load_encoder  # noqa: E402

TEXTS = ["oval blue sapphire solitaire ring in 18k yellow gold", "pearl drop earrings",
         "rose gold tennis bracelet with diamonds", "emerald cut emerald pendant on a chain"] * 8


def images(n=32, size=(400, 400)):
    rng = np.random.default_rng(0)
    return [Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)) for _ in range(n)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    encoders = {"jewelclip-lite0": load_encoder("jewelclip-lite0"),
                "ViT-B-32 (random)": load_encoder("ViT-B-32")}
    batch = images()
    for enc in encoders.values():  # warm-up
        enc.encode_images(batch[:4])
        enc.encode_texts(TEXTS[:4])
    img_times = {k: [] for k in encoders}
    txt_times = {k: [] for k in encoders}
    single_txt = {k: [] for k in encoders}
    single_img = {k: [] for k in encoders}
    for _ in range(args.repeats):
        for name, enc in encoders.items():
            t = time.perf_counter(); enc.encode_images(batch); img_times[name].append(time.perf_counter() - t)
            t = time.perf_counter(); enc.encode_texts(TEXTS); txt_times[name].append(time.perf_counter() - t)
            for _ in range(5):
                t = time.perf_counter(); enc.encode_texts(["oval sapphire pendant"])
                single_txt[name].append(time.perf_counter() - t)
                t = time.perf_counter(); enc.encode_images(batch[:1])
                single_img[name].append(time.perf_counter() - t)
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {time.strftime('%Y-%m-%d')}")
    print(f"{'model':<20} {'img/s (b32)':>12} {'txt/s (b32)':>12} {'1 img ms':>9} {'1 txt ms':>9}")
    for name in encoders:
        print(f"{name:<20} {32 / statistics.median(img_times[name]):>12.1f} "
              f"{32 / statistics.median(txt_times[name]):>12.1f} "
              f"{1000 * statistics.median(single_img[name]):>9.1f} {1000 * statistics.median(single_txt[name]):>9.1f}")
    ratio = statistics.median(img_times["ViT-B-32 (random)"]) / statistics.median(img_times["jewelclip-lite0"])
    print(f"image throughput ratio lite0 / ViT-B-32: {ratio:.2f}x")


if __name__ == "__main__":
    main()
