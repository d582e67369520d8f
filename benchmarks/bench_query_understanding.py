"""Query understanding speed: ``jewelsearch.query.understand`` over a few hundred queries.

The queries are the demo catalog's titles, a set of shopper phrasings in English and Chinese
(with prices, colours, karats and words the glossaries do not know) and a few long or odd
strings. Each query is understood ``--repeats`` times after one warm-up pass; prints the
glossary load time and p50 / p99 / max per query in microseconds. Figures, never asserts.
Usage: python benchmarks/bench_query_understanding.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from jewelsearch.query import load_glossary, understand

DEMO = Path(__file__).parents[1] / "src" / "jewelsearch" / "demo" / "items.jsonl"
SHOPPER = [
    "oval sapphire pendant", "椭圆蓝宝石吊坠", "pearl earrings", "珍珠耳环", "blue stone pendant",
    "diamond ring under $900", "studs", "white gold hoops", "gold chain necklace", "18K白金钻戒",
    "rose gold engagement ring between 1k and 2k", "玫瑰金耳钉 500美元以下", "emerald-cut emerald ring",
    "vintage art deco halo ring for my wife", "粉色蓝宝石手链 1000到2000之间", "tennis bracelet over $3000",
    "around $800 amethyst drop earrings", "铂金项链 2千以上", "sterling silver cuff", "14k yellow gold studs",
    "black onyx signet ring", "蓝色宝石戒指", "heart shaped ruby pendant < 500", "tiger's eye bracelet",
    "something sparkly for under 200 bucks", "红宝石 or emerald ring", "三石戒指 白金", "cz stud earrings",
]
ODD = ['title:ring AND (gold OR "white gold") NOT silver*', "NEAR(ring pendant)", "^ring -gold",
       "ring " * 60, "蓝宝石" * 80, "\u200bring\u200d🙂💍 戒指"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    start = time.perf_counter()
    glossary = load_glossary()
    load_ms = (time.perf_counter() - start) * 1000
    titles = [json.loads(line)["title"] for line in DEMO.read_text().splitlines()][:300]
    queries = titles + SHOPPER + ODD
    for text in queries:
        understand(text, glossary)
    timings = []
    for _ in range(args.repeats):
        for text in queries:
            start = time.perf_counter_ns()
            understand(text, glossary)
            timings.append((time.perf_counter_ns() - start) / 1000)
    timings.sort()
    p99 = timings[int(len(timings) * 0.99) - 1]
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"glossary load: {load_ms:.0f} ms ({len(glossary.phrases)} phrases, files {', '.join(glossary.files)})")
    print(f"{len(queries)} queries x {args.repeats}: p50 {statistics.median(timings):.0f} us, "
          f"p99 {p99:.0f} us, max {timings[-1]:.0f} us")


if __name__ == "__main__":
    main()
