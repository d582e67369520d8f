"""JPEG draft decoding on large photos: speed of decode, and what it does to the vectors and
to recognition.

Real shop photos are often 1,000-2,000 px, and the evaluation sets here are at most 512 px (where
draft decoding never starts: it needs a long side of at least twice ``draft_side``, 448 px). So
this upscales the products/val photos to ``--side`` px (bicubic, JPEG quality 90) and decodes
each twice, fully and with ``draft_side``; then embeds both with the bundled model and compares:
the cosine of the search embeddings and of the instance vectors, the localiser's stone check,
and the category head's top-1 accuracy against the labels. Decode times are medians per photo,
interleaved. Needs /work/shared/data (or ``--data``).
Usage: python benchmarks/bench_draft_decode.py [--side 1600] [--limit 200]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from jewelsearch.config import Settings  # noqa: E402
from jewelsearch.embed.images import load_image  # noqa: E402
from jewelsearch.recognize.evidence import stone_seen  # noqa: E402
from jewelsearch.search.wiring import open_service  # noqa: E402


def upscaled(path: Path, side: int) -> bytes:
    image = Image.open(path).convert("RGB")
    scale = side / max(image.size)
    buffer = io.BytesIO()
    image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC).save(
        buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--side", type=int, default=1600)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    rows = [r for r in csv.DictReader(open(args.data / "products" / "labels.csv")) if r["split"] == "val"]
    rows = rows[:args.limit]
    with tempfile.TemporaryDirectory() as home:
        service = open_service(Settings(home=Path(home)))
        ingestor = service.state.ingestor
        recognizer = ingestor.recognizer
        draft_side = 2 * ingestor.encoder.preprocess.size
        full_ms, draft_ms, full_images, draft_images, labels = [], [], [], [], []
        for n, row in enumerate(rows):
            data = upscaled(args.data / "products" / row["path"], args.side)
            for side, times, out in ((0, full_ms, full_images), (draft_side, draft_ms, draft_images))[::1 if n % 2 else -1]:
                start = time.perf_counter()
                image = load_image(data, draft_side=side).image
                times.append((time.perf_counter() - start) * 1000)
                out.append(image)
            labels.append(row["category"])
        results = {}
        for name, images in (("full", full_images), ("draft", draft_images)):
            passed = recognizer.embed_all(images, [True] * len(images), instance_head=ingestor.instance_head)
            predictions = recognizer.recognize_embeddings(passed.embeddings, passed.pooled)
            results[name] = (passed, [p["category"][0]["label"] for p in predictions],
                             [stone_seen(found) for found in passed.located])
        service.catalog.close()
    full, draft = results["full"][0], results["draft"][0]
    cos = (full.embeddings * draft.embeddings).sum(1)
    cos_instance = (full.instance * draft.instance).sum(1)
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{len(rows)} products/val photos upscaled to {args.side} px, draft_side {draft_side}")
    print(f"decoded size: full {full_images[0].size}, draft {draft_images[0].size} (first photo)")
    print(f"decode ms per photo, median: full {statistics.median(full_ms):.1f}, draft {statistics.median(draft_ms):.1f} "
          f"({statistics.median(full_ms) / statistics.median(draft_ms):.2f}x)")
    print(f"embedding cosine draft vs full: mean {cos.mean():.5f}, min {cos.min():.5f}")
    print(f"instance vector cosine draft vs full: mean {cos_instance.mean():.5f}, min {cos_instance.min():.5f}")
    for name in ("full", "draft"):
        _, guesses, stones = results[name]
        accuracy = np.mean([g == label for g, label in zip(guesses, labels)])
        print(f"{name:>5}: category top-1 {accuracy:.3f}, stone seen on {sum(stones)} photos")
    agree = np.mean([a == b for a, b in zip(results["full"][1], results["draft"][1])])
    stones_agree = np.mean([a == b for a, b in zip(results["full"][2], results["draft"][2])])
    print(f"category guess agreement {agree:.3f}, stone check agreement {stones_agree:.3f}")


if __name__ == "__main__":
    main()
