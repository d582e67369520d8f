"""Item text vectors in bf16 (OpenVINO's text tower) against torch f32: the vectors and text
search on them, paired on the same texts and queries (docs/experiments/2026-12-07-ingest-100.md).

Texts: every distinct item text of the demo catalog (title plus attribute phrases, as ingest
builds it) and every product description in ``products/labels.csv`` (as an item title),
embedded in batches of 32 as ingest sends them. Queries: the text queries of
``compare_ingest_precision.py`` plus one per distinct (stone type, category) pair of the
labelled products, encoded by torch f32 (as users' queries are). Reports each text vector's
cosine to f32's, the top-10 overlap per query, and the labelled queries' hits (a top-10 text
that is a product description with that stone type and category).
Usage: python benchmarks/compare_item_text_precision.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from compare_ingest_precision import QUERIES  # noqa: E402

BATCH = 32


def product_texts(data: Path) -> list[dict]:
    with open(data / "products" / "labels.csv", newline="") as handle:
        return [{"title": row["description"].strip(), "category": row["category"], "stone": row["stone_type"]}
                for row in csv.DictReader(handle) if row["description"].strip()]


def embed(texts: list[str], encode) -> np.ndarray:
    return np.concatenate([encode(texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    if not (args.data / "products" / "labels.csv").exists():
        raise SystemExit(f"no real photos' labels at {args.data} (see /work/shared/data/README.md)")

    from jewelsearch.embed import load_encoder, openvino_text
    from jewelsearch.embed.item_text import item_text
    from jewelsearch.ingest.demo import demo_dir, demo_items

    encoder = load_encoder("jewelclip-lite0")
    products = product_texts(args.data)
    demo = list(dict.fromkeys(item_text(item.fields) for item in demo_items(demo_dir())))
    described = list(dict.fromkeys(item_text({"title": p["title"]}) for p in products))
    texts = demo + described
    with tempfile.TemporaryDirectory() as cache:
        bf16 = openvino_text.open_text_tower(encoder, Path(cache), threads=2, precision="bf16")
        want = embed(texts, encoder.encode_texts)
        got = embed(texts, lambda part: encoder.encode_texts_from_ids(part, bf16))
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"OpenVINO text tower in {bf16.precision}; {len(demo)} demo texts, {len(described)} product descriptions")
    cosine = np.sum(want * got, axis=1)
    print(f"(a) cosine to f32: lowest {cosine.min():.6f}, mean {cosine.mean():.6f} over {len(texts)} texts")

    labelled = sorted({(p["stone"].strip().lower(), p["category"]) for p in products if p["stone"].strip()})
    queries = list(QUERIES) + [f"{stone} {category}" for stone, category in labelled]
    query_vectors = encoder.encode_texts(queries)
    by_text = {item_text({"title": p["title"]}): p for p in products}
    overlaps, hits = [], {"f32": 0, "bf16": 0}
    lost = gained = 0
    for n, (query, vector) in enumerate(zip(queries, query_vectors)):
        tops = {name: set(np.argsort(-(vectors @ vector))[:10].tolist()) for name, vectors in
                (("f32", want), ("bf16", got))}
        overlaps.append(len(tops["f32"] & tops["bf16"]))
        if n < len(QUERIES):
            continue
        stone, category = labelled[n - len(QUERIES)]
        relevant = {i for i, text in enumerate(texts) if text in by_text and by_text[text]["category"] == category
                    and by_text[text]["stone"].strip().lower() == stone}
        for name in hits:
            hits[name] += len(tops[name] & relevant)
        lost += len((tops["f32"] - tops["bf16"]) & relevant)
        gained += len((tops["bf16"] - tops["f32"]) & relevant)
    print(f"(b) {len(queries)} queries: top-10 overlap with f32 mean {np.mean(overlaps):.2f} of 10, "
          f"lowest {min(overlaps)}; identical sets {sum(o == 10 for o in overlaps)}")
    print(f"    {len(labelled)} labelled queries: top-10 hits f32 {hits['f32']}, bf16 {hits['bf16']} "
          f"(hits only f32 found {lost}, only bf16 found {gained})")


if __name__ == "__main__":
    main()
