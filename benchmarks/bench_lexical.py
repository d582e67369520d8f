"""The lexical (FTS5) index at catalog scale: query latency, rebuild time, write overhead.

Builds an N-item catalog of store rows with shop-like titles, descriptions and attributes
(a tenth with Chinese titles, a tenth with recognition-filled attributes), fills the lexical
index with ``rebuild`` (the same path as the schema migration's backfill), then:

- times ``LexicalIndex.search`` (limit 200) over a few hundred one- to four-word queries,
  English and Chinese, some matching nothing, unfiltered and with an allowed-id filter;
- times single-item inserts, one transaction each as an API ingest writes them, through
  ``ItemStore.insert`` with and without the lexical write, alternating in blocks.

Prints medians and p99; asserts nothing.
Usage: python benchmarks/bench_lexical.py [--items 100000] [--queries 300] [--writes 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from jewelsearch.storage import Catalog
from jewelsearch.storage.items import ItemStore

CATEGORIES = ["ring", "necklace", "pendant", "earrings", "bracelet"]
METALS = ["yellow gold", "rose gold", "white gold", "platinum", "silver"]
GEMS = ["diamond", "ruby", "sapphire blue", "emerald", "pearl", "amethyst", "opal", "topaz",
        "sapphire pink", "garnet", None]
SHAPES = ["round", "oval", "pear", "marquise", "princess", "cushion", "heart", None]
STYLES = ["solitaire", "halo", "three-stone", "eternity", "drop", "stud", "hoop", "tennis",
          "cluster", "vintage", "minimalist", "statement"]
FINISHES = ["High-polish finish.", "Brushed finish.", "Hammered texture.", "Milgrain edges."]
ZH = ["蓝宝石吊坠", "钻石戒指", "珍珠耳环", "红宝石项链", "黄金手链", "铂金戒指", "祖母绿吊坠"]
QUERY_WORDS = ["oval", "sapphire", "pendant", "rings", "earrings", "gold", "rose", "diamond",
               "halo", "vintage", "18k", "pearl", "drop", "blue", "platinum", "tennis",
               "bracelet", "cushion", "emerald", "opal", "heart", "silver", "hammered"]
ZH_QUERIES = ["吊坠", "蓝宝石", "戒指", "钻石戒指", "珍珠", "项链", "金"]


class NoLexical:
    """Stands in for the lexical index to time the insert path without it."""

    def write(self, conn, item_id, row) -> None:
        pass

    def write_stored(self, conn, item_id) -> None:
        pass

    def delete(self, conn, item_id) -> None:
        pass


def make_item(i: int, rng: random.Random) -> tuple[dict, dict]:
    category, metal = rng.choice(CATEGORIES), rng.choice(METALS)
    gem, shape, style = rng.choice(GEMS), rng.choice(SHAPES), rng.choice(STYLES)
    gem_words = " ".join(reversed(gem.split())) if gem else ""
    title = " ".join(w for w in [shape if gem else None, gem_words, style, category,
                                 f"in 18k {metal}" if "gold" in metal else f"in {metal}"] if w)
    if i % 10 == 3:
        title = rng.choice(ZH)
    description = (f"{title.capitalize()}. A {rng.choice([0.5, 1, 1.5, 2, 3])} ct "
                   f"{shape or 'plain'} {gem_words or 'metal'} piece in a {style} setting. "
                   f"{rng.choice(FINISHES)}")
    fields = {"sku": f"SKU-{i:07d}", "title": title, "description": description,
              "category": category, "metal": metal, "gemstone": gem, "stone_shape": shape,
              "color": gem.split()[-1] if gem and " " in gem else None, "price": rng.randint(50, 9000)}
    attributes: dict = {}
    if i % 10 == 7:  # recognition filled the category and metal
        attributes = {"predicted": {"category": {"label": category, "p": 0.8},
                                    "metal": {"label": metal, "p": 0.7}}}
    return fields, attributes


def build(home: Path, n: int) -> tuple[Catalog, float]:
    """Rows by one executemany, then the lexical index by ``rebuild``; returns its seconds."""
    catalog = Catalog.open(home / "catalog.db", home / "images")
    rng = random.Random(0)
    now = time.time()
    cols = ("id", "sku", "title", "description", "category", "metal", "gemstone", "stone_shape",
            "color", "price", "image_path", "image_sha256", "attributes", "created_at", "updated_at")
    rows = []
    for i in range(n):
        fields, attributes = make_item(i, rng)
        rows.append((i + 1, *(fields[c] for c in cols[1:10]), "ab/x.jpg", "ab" * 32,
                     json.dumps(attributes), now, now))
    with catalog.database.write() as conn:
        conn.executemany(f"INSERT INTO items ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
    started = time.perf_counter()
    catalog.lexical.rebuild()
    return catalog, time.perf_counter() - started


def queries(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for q in range(count):
        if q % 10 == 0:
            out.append(rng.choice(ZH_QUERIES))
        elif q % 10 == 1:
            out.append(f"{rng.choice(QUERY_WORDS)} zirconia unobtainium")  # AND finds nothing
        else:
            out.append(" ".join(rng.sample(QUERY_WORDS, rng.randint(1, 4))))
    return out


def time_search(catalog: Catalog, texts: list[str], allowed=None) -> np.ndarray:
    times = []
    for text in texts:
        started = time.perf_counter()
        catalog.lexical.search([text], limit=200, allowed_ids=allowed)
        times.append(time.perf_counter() - started)
    return np.array(times) * 1000


def time_writes(catalog: Catalog, writes: int, block: int = 100) -> dict[str, np.ndarray]:
    stores = {"with lexical": catalog.items, "without": ItemStore(catalog.database, NoLexical())}
    rng = random.Random(2)
    times: dict[str, list[float]] = {name: [] for name in stores}
    i = 10_000_000
    for _ in range(writes // block):
        for name, store in stores.items():
            for _ in range(block):
                fields, attributes = make_item(i, rng)
                fields = {k: v for k, v in fields.items() if v is not None}
                i += 1
                started = time.perf_counter()
                with catalog.database.write() as conn:
                    store.insert(conn, fields, image_path="ab/x.jpg", image_sha256="ab" * 32,
                                 attributes=attributes)
                times[name].append(time.perf_counter() - started)
    return {name: np.array(values) * 1000 for name, values in times.items()}


def describe(ms: np.ndarray) -> str:
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog, rebuild_s = build(Path(tmp), args.items)
        texts = queries(args.queries)
        time_search(catalog, texts[:20])  # warm the page cache
        plain = time_search(catalog, texts)
        filtered_ids = catalog.items.filter_ids({"category": "ring"})
        few_ids = filtered_ids[:300]
        filtered = time_search(catalog, texts, allowed=filtered_ids)
        few = time_search(catalog, texts, allowed=few_ids)
        hits = [len(catalog.lexical.search([t], limit=200)) for t in texts]
        writes = time_writes(catalog, args.writes)
        size = os.path.getsize(Path(tmp) / "catalog.db")
        print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}")
        print(f"catalog {args.items:,} items; lexical rebuild {rebuild_s:.1f} s "
              f"({args.items / rebuild_s:,.0f} items/s); database {size / 2**20:.0f} MiB")
        print(f"search, {len(texts)} queries, limit 200 (median {np.median(hits):.0f} hits): {describe(plain)}")
        print(f"search within one category ({len(filtered_ids):,} allowed ids): {describe(filtered)}")
        print(f"search within {len(few_ids)} allowed ids: {describe(few)}")
        for name, ms in writes.items():
            print(f"insert one item per transaction, {name}: {describe(ms)}")
        overhead = np.median(writes["with lexical"]) - np.median(writes["without"])
        print(f"lexical write overhead per item (median difference): {overhead:.3f} ms")


if __name__ == "__main__":
    main()
