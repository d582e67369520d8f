"""Would one index over blended item vectors make a text query's semantic step cheaper?

A text query's semantic score is ``(1 - a)·(q·image) + a·(q·text)`` for items with words and
``q·image`` for the rest (``search/item_text_space.py``). That is ``q·b`` with the blended
vector ``b = (1 - a)·image + a·text`` (``b = image`` without words), so one index over ``b``
gives the same scores with one search. This measures, on the synthetic catalog, side by side
per query (text vectors encoded beforehand, so the encoder is not in either figure):

- shipped: the image index's top ``pool``, the item text index's top ``text_field_pool``, and
  each candidate's missing similarity from the two indexes' stored vectors;
- blended: the blended index's top ``pool`` and the word-index candidates' scores from its
  stored vectors;

and checks that every candidate both paths score gets the same score (within 1e-5). The
candidate sets differ (the blended top ``pool`` is not the union of the two lists), so the
ranking may move: the report counts the queries whose semantic top 10 differ.
Usage: python benchmarks/bench_blended_index.py [--items 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_text_search import queries  # noqa: E402
from synthetic_catalog import build  # noqa: E402

from jewelsearch.embed import load_encoder  # noqa: E402
from jewelsearch.index import VectorIndex  # noqa: E402
from jewelsearch.index.kinds import IndexChoice  # noqa: E402
from jewelsearch.query.parser import understand  # noqa: E402
from jewelsearch.search.item_text_space import blended_semantic, item_text_key  # noqa: E402
from jewelsearch.search.service import SearchService  # noqa: E402


def blended_index(main: VectorIndex, texts: VectorIndex, weight: float) -> VectorIndex:
    ids = main.ids()
    vectors = main.vectors_for(ids.tolist()).astype(np.float32)
    worded = np.array([int(i) in texts for i in ids], dtype=bool)
    vectors[worded] = (1.0 - weight) * vectors[worded] + weight * texts.vectors_for(ids[worded].tolist())
    return VectorIndex.build(ids, vectors, IndexChoice(main.kind, dict(main.params)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    encoder = load_encoder("jewelclip-lite0")
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"date {time.strftime('%Y-%m-%d')}, queries {args.queries}")
    for n in args.items:
        with tempfile.TemporaryDirectory() as scratch:
            home = Path(scratch)
            catalog = build(home, n, encoder.model_id, encoder.dim, text_key=item_text_key(encoder.model_id))
            service = SearchService(catalog, encoder, home / "index", text_cache_size=0)
            state = service.state
            settings = state.hybrid
            weight, pool, text_pool = settings.text_field_weight, settings.pool, settings.text_field_pool
            main_index, text_index = state.index, state.item_text.index
            started = time.perf_counter()
            blended = blended_index(main_index, text_index, weight)
            build_s = time.perf_counter() - started
            texts = queries(args.queries)
            vectors = encoder.encode_texts(texts)
            lexical = [[item for item, _ in catalog.lexical.search(understand(t, state.glossary).terms, limit=pool)]
                       for t in texts]
            timings: dict[str, list[float]] = {"shipped (two indexes)": [], "blended (one index)": []}
            worst, moved, overlap = 0.0, 0, []
            for vector, words in zip(vectors, lexical):
                started = time.perf_counter()
                (ids, scores), = main_index.search(vector, pool)
                shipped = blended_semantic(vector, main_index, text_index, dict(zip(ids.tolist(), scores.tolist())),
                                           text_pool, weight, None, extra=words)
                timings["shipped (two indexes)"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                (ids, scores), = blended.search(vector, pool)
                one = dict(zip(ids.tolist(), scores.tolist()))
                extra = [item for item in words if item not in one and item in blended]
                if extra:
                    one.update(zip(extra, (blended.vectors_for(extra) @ vector).tolist()))
                timings["blended (one index)"].append((time.perf_counter() - started) * 1000)
                common = shipped.keys() & one.keys()
                worst = max([worst] + [abs(shipped[i] - one[i]) for i in common])
                overlap.append(len(common) / len(shipped.keys() | one.keys()))
                top = lambda scores: sorted(scores, key=lambda i: (-scores[i], i))[:10]  # noqa: E731
                moved += top(shipped) != top(one)
            base = statistics.median(timings["shipped (two indexes)"])
            print(f"{n:>7} items, {main_index.kind} indexes, blended index built in {build_s:.1f} s")
            for name, values in timings.items():
                print(f"  semantic step, {name:22s} p50 {statistics.median(values):6.3f} ms  "
                      f"p99 {np.percentile(values, 99):6.3f} ms  ({statistics.median(values) / base:.2f}x shipped)")
            print(f"  largest score difference on a shared candidate: {worst:.2e}; "
                  f"candidate sets overlap {statistics.median(overlap):.2f} (median Jaccard); "
                  f"semantic top 10 differs on {moved}/{len(texts)} queries")
            catalog.close()


if __name__ == "__main__":
    main()
