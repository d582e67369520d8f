"""Text search latency: hybrid (words + understood attributes + text vector) against the
vector-only path text search had before, side by side in one process on one synthetic catalog.

Both pay the text encoder per query (the text cache is off). Vector-only is what a text query
did before hybrid search: the text vector, FAISS for the top k, k rows. The hybrid path adds
query understanding, the word index, 200 candidates from each list, attribute matching,
fusion, facets and folding. "hybrid + item text vector" also searches the items' own text
vectors (a second index, ``search/item_text_space.py``) and blends each candidate's image and
text-field similarity (``text_field_weight`` 0.5 here, whatever the shipped default). Queries
alternate between the paths so machine noise hits all alike.
Usage: python benchmarks/bench_text_search.py [--items 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_catalog import build  # noqa: E402

from jewelsearch.embed import load_encoder  # noqa: E402
from jewelsearch.search.item_text_space import item_text_key  # noqa: E402
from jewelsearch.search.query import search_vector  # noqa: E402
from jewelsearch.search.service import SearchService  # noqa: E402

SHAPES = ["oval", "round", "pear", "cushion", ""]
GEMS = ["sapphire", "ruby", "diamond", "emerald", "pearl", "amethyst", "blue stone"]
PIECES = ["ring", "pendant", "earrings", "necklace", "bracelet", "studs", "hoops"]
METALS = ["", "in rose gold", "in platinum", "in white gold", "18k gold", "silver"]
CHINESE = ["椭圆蓝宝石吊坠", "珍珠耳环", "玫瑰金钻石戒指", "铂金红宝石项链", "500美元以下的手链"]


def queries(n: int) -> list[str]:
    english = [" ".join(w for w in combo if w) for combo in itertools.product(SHAPES, GEMS, PIECES, METALS)]
    rng = np.random.default_rng(0)
    picked = [english[i] for i in rng.choice(len(english), n - len(CHINESE), replace=False)]
    return picked + CHINESE


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    encoder = load_encoder("jewelclip-lite0")
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"date {time.strftime('%Y-%m-%d')}, queries {args.queries} (distinct, text cache off)")
    for n in args.items:
        with tempfile.TemporaryDirectory() as scratch:
            home = Path(scratch)
            catalog = build(home, n, encoder.model_id, encoder.dim, text_key=item_text_key(encoder.model_id))
            service = SearchService(catalog, encoder, home / "index", text_cache_size=0)
            state = service.state
            timings: dict[str, list[float]] = {"vector only": [], "hybrid": [], "hybrid + item text vector": [],
                                               "lexical index alone": []}
            without_text = dataclasses.replace(state.hybrid, text_field_weight=0.0)
            with_text = dataclasses.replace(state.hybrid, text_field_weight=0.5)
            service.query(text="warm up", k=10)
            for text in queries(args.queries):
                started = time.perf_counter()
                search_vector(state, state.text_vectors.vector(text), 10, None, [])
                timings["vector only"].append((time.perf_counter() - started) * 1000)
                for name, hybrid in (("hybrid", without_text), ("hybrid + item text vector", with_text)):
                    state.hybrid = hybrid
                    started = time.perf_counter()
                    service.query(text=text, k=10)
                    timings[name].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                catalog.lexical.search(text.split(), limit=state.hybrid.pool)
                timings["lexical index alone"].append((time.perf_counter() - started) * 1000)
            base = statistics.median(timings["vector only"])
            for name, values in timings.items():
                print(f"{n:>7} items  {name:32s} p50 {statistics.median(values):6.2f} ms  "
                      f"p99 {percentile(values, 99):6.2f} ms  ({statistics.median(values) / base:.2f}x vector-only p50)")
            catalog.close()


if __name__ == "__main__":
    main()
