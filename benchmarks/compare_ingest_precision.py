"""Ingest's OpenVINO graphs in f32 against bf16 on real photos: stored vectors, filled attributes,
category accuracy and finding the same worn piece, paired on the same photos.

Ingests the real photo sets (``products/`` train and val, ``worn/``; no attributes given, so
all recognition runs) once per precision into fresh homes, the model loaded once, through the
CLI's pipelined path with ``ingest_runtime = "openvino"``. Then compares:
- each photo's stored embedding and instance vector: cosine to the first precision's;
- the category, metal, gemstone and cut ingest filled in: agreement with the first precision;
- category accuracy of the filled category on ``products/val`` (held out) and ``worn/``
  (pendant counts as necklace, as the evaluation does; an unfilled category counts as wrong);
- worn -> same product as image search runs it: each worn photo whose product has another
  photo is a query (``service.query(image_bytes=...)``, encoded by torch's fp32 tower as users'
  queries are, against each catalog's stored vectors); hit@1 and hit@10 on another photo of its
  product, itself left out; paired: queries that went hit -> miss and miss -> hit;
- the top-10 ids of those image queries and of a few text queries: how many are identical.
Usage: python benchmarks/compare_ingest_precision.py [--data ../shared/data] [--precisions f32,bf16]
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

RECOGNISED = ("category", "metal", "gemstone", "stone_shape")
EQUIVALENT = {"pendant": "necklace"}
QUERIES = ("gold ring", "silver earrings", "pearl necklace", "watch with a leather strap", "diamond ring",
           "bracelet", "blue stone pendant", "hoop earrings")


def read_photos(data: Path) -> list[dict]:
    """Every photo with its set, path, label category and (worn) product."""
    photos = []
    with open(data / "products" / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            photos.append({"set": "products/" + row["split"], "path": data / "products" / row["path"],
                           "category": row["category"], "product": None})
    with open(data / "worn" / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            photos.append({"set": "worn", "path": data / "worn" / row["path"], "category": row["category"],
                           "product": row["product"]})
    return [p for p in photos if p["path"].exists()]


def ingest(service, photos: list[dict]) -> list[int]:
    from jewelsearch.ingest.pipeline import NewItem
    items = [NewItem(p["path"].read_bytes(), {}, source_path=str(p["path"])) for p in photos]
    batches = [items[i:i + 32] for i in range(0, len(items), 32)]
    results = [r for _, done in service.ingest_batches(batches, photos=len(items)) for r in done]
    failed = [r for r in results if r.item_id is None]
    if failed:
        raise SystemExit(f"{len(failed)} photos failed to ingest: {failed[:3]}")
    return [r.item_id for r in results]


def cosines(a: dict, b: dict, ids: list[int]) -> np.ndarray:
    x = np.stack([a[i] for i in ids]).astype(np.float64)
    y = np.stack([b[i] for i in ids]).astype(np.float64)
    return (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)


def same_category(filled, label) -> bool:
    return filled is not None and EQUIVALENT.get(filled, filled) == EQUIVALENT.get(label, label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--precisions", default="f32,bf16")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (a quick look)")
    args = parser.parse_args()
    if not (args.data / "products" / "labels.csv").exists():
        parser.error(f"no real photo sets under {args.data} (products/labels.csv)")

    from jewelsearch.config import Settings
    from jewelsearch.search.wiring import open_service

    photos = read_photos(args.data)[:args.limit or None]
    precisions = args.precisions.split(",")
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{len(photos)} photos, load average {os.getloadavg()[0]:.1f}", flush=True)
    worn_rows = [n for n, p in enumerate(photos) if p["product"]]
    by_product: dict[str, set[int]] = {}
    for n in worn_rows:
        by_product.setdefault(photos[n]["product"], set()).add(n)
    queries = [n for n in worn_rows if len(by_product[photos[n]["product"]]) > 1]
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        first = None
        for precision in precisions:
            settings = Settings(home=Path(scratch) / precision, ingest_runtime="openvino", ingest_precision=precision)
            service = open_service(settings, models_from=first)
            first = first or service
            started = time.perf_counter()
            ids = ingest(service, photos)
            seconds = time.perf_counter() - started
            runtime = service.state.ingestor.tower_runtime
            row_of = {item_id: n for n, item_id in enumerate(ids)}
            embeddings = service.catalog.embeddings
            instance_key = service.state.ingestor.instance_key
            image_answers, hits = [], {}
            for n in queries:
                found = [row_of.get(hit["id"]) for hit in
                         service.query(image_bytes=photos[n]["path"].read_bytes(), k=11)["results"]]
                found = [m for m in found if m != n][:10]
                image_answers.append(found)
                others = by_product[photos[n]["product"]] - {n}
                hits[n] = (bool(found[:1]) and found[0] in others, any(m in others for m in found))
            runs[precision] = {
                "tower": f"{runtime.name} {runtime.precision}", "seconds": seconds,
                "rows": [service.catalog.items.get(i) for i in ids],
                "photo": embeddings.get_many(ids, service.encoder.model_id),
                "instance": embeddings.get_many(ids, instance_key) if instance_key else {},
                "ids": ids, "hits": hits, "image_answers": image_answers,
                "text_answers": [[row_of.get(h["id"]) for h in service.query(text=q, k=10)["results"]]
                                 for q in QUERIES],
            }
            print(f"{precision}: tower on {runs[precision]['tower']}, {len(ids)} photos ingested in {seconds:.1f} s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
            service.catalog.close()
    report(photos, queries, precisions, runs)


def report(photos, queries, precisions, runs) -> None:
    base_name = precisions[0]
    base = runs[base_name]
    for name in precisions:
        run = runs[name]
        for label, subset in (("products/val", "products/val"), ("worn", "worn")):
            rows = [n for n, p in enumerate(photos) if p["set"] == subset]
            right = sum(same_category(run["rows"][n]["category"], photos[n]["category"]) for n in rows)
            print(f"{name}: category accuracy {label}: {right} of {len(rows)} ({right / max(1, len(rows)):.3f})")
        for k, at in ((1, 0), (10, 1)):
            found = sum(hit[at] for hit in run["hits"].values())
            print(f"{name}: worn -> same product recall@{k}: {found} of {len(queries)} ({found / max(1, len(queries)):.3f})")
    for name in precisions[1:]:
        run = runs[name]
        print(f"--- {name} against {base_name}")
        for space in ("photo", "instance"):
            if not base[space]:
                continue
            pairs = [(a, b) for a, b in zip(base["ids"], run["ids"]) if a in base[space] and b in run[space]]
            value = cosines(base[space], {a: run[space][b] for a, b in pairs}, [a for a, _ in pairs])
            print(f"{space} vectors: cosine to {base_name} mean {value.mean():.5f}, min {value.min():.5f}, "
                  f"5th percentile {np.percentile(value, 5):.5f} ({len(pairs)} photos)")
        for field in RECOGNISED:
            same = sum(a[field] == b[field] for a, b in zip(base["rows"], run["rows"]))
            print(f"filled {field}: the same on {same} of {len(photos)} ({same / len(photos):.4f})")
        for k, at in ((1, 0), (10, 1)):
            lost = sum(base["hits"][n][at] and not run["hits"][n][at] for n in queries)
            won = sum(run["hits"][n][at] and not base["hits"][n][at] for n in queries)
            print(f"worn -> same product hit@{k}: {lost} queries hit -> miss, {won} miss -> hit (net {won - lost:+d})")
        for label, subset in (("products/val", "products/val"), ("worn", "worn")):
            rows = [n for n, p in enumerate(photos) if p["set"] == subset]
            lost = sum(same_category(base["rows"][n]["category"], photos[n]["category"])
                       and not same_category(run["rows"][n]["category"], photos[n]["category"]) for n in rows)
            won = sum(same_category(run["rows"][n]["category"], photos[n]["category"])
                      and not same_category(base["rows"][n]["category"], photos[n]["category"]) for n in rows)
            print(f"category {label}: {lost} right -> wrong, {won} wrong -> right (net {won - lost:+d})")
        for label, key in (("image", "image_answers"), ("text", "text_answers")):
            same = sum(a == b for a, b in zip(base[key], run[key]))
            overlap = np.mean([len(set(a) & set(b)) / max(1, len(a)) for a, b in zip(base[key], run[key])])
            print(f"{label} queries: top-10 identical {same} of {len(base[key])}, mean overlap {overlap:.3f}")


if __name__ == "__main__":
    main()
