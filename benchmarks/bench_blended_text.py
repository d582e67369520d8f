"""Text query latency with the blended index against the two-index way and vector-only search,
side by side in one process on one synthetic catalog, in process and over HTTP.

- vector only: the text vector, FAISS for the top k, k rows (``search.query.search_vector``);
- hybrid, two indexes: the shipped hybrid query searching the image and item text indexes apart
  (``item_text_space.blended_semantic``; the service with its blended index set aside);
- hybrid, blended index: the same query taking its semantic step from the one blended index.

Both hybrid paths run at the shipped ``text_field_weight``. Over HTTP one waitress server (4
threads) serves the service while the blended index is set aside or put back between requests,
so the two paths meet the same server and the same noise. Queries alternate between paths. The
text cache is off: every query pays the text encoder. Also reported: the blended index's build
time when the service opens, the cost of refreshing it for one 64-item write batch, and its
size per item.
Usage: python benchmarks/bench_blended_text.py [--items 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_text_search import queries  # noqa: E402
from synthetic_catalog import build  # noqa: E402

from jewelsearch.config import Settings  # noqa: E402
from jewelsearch.embed import load_encoder  # noqa: E402
from jewelsearch.search import blended_space  # noqa: E402
from jewelsearch.search.item_text_space import item_text_key  # noqa: E402
from jewelsearch.search.query import search_vector  # noqa: E402
from jewelsearch.search.service import SearchService  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from waitress import create_server

    from jewelsearch.server import create_app
    encoder = load_encoder("jewelclip-lite0")
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"date {time.strftime('%Y-%m-%d')}, queries {args.queries} (distinct, text cache off)", flush=True)
    for n in args.items:
        with tempfile.TemporaryDirectory() as scratch:
            home = Path(scratch)
            catalog = build(home, n, encoder.model_id, encoder.dim, text_key=item_text_key(encoder.model_id))
            SearchService(catalog, encoder, home / "index", text_cache_size=0, blended_index=False).save(force=True)
            started = time.perf_counter()
            service = SearchService(catalog, encoder, home / "index", text_cache_size=0)
            open_s = time.perf_counter() - started
            state = service.state
            blended = state.blended
            started = time.perf_counter()
            rebuilt = blended_space.build_blended(catalog, blended.image_key, blended.text_key, blended.weight,
                                                  encoder.dim, state.index_settings)
            build_s = time.perf_counter() - started
            del rebuilt
            size = {name: len(faiss.serialize_index(index._index)) / len(index)
                    for name, index in (("image", state.index), ("item text", state.item_text.index),
                                        ("blended", blended.index))}
            batch = state.index.ids()[:64].tolist()
            refresh = []
            for _ in range(20):
                started = time.perf_counter()
                blended_space.refresh(blended, state.index, state.item_text.index, batch)
                refresh.append((time.perf_counter() - started) * 1000)
            print(f"{n:>7} items  blended index ({blended.index.kind}): built in {build_s:.2f} s "
                  f"(service open with it {open_s:.2f} s); refresh of a 64-item batch p50 "
                  f"{statistics.median(refresh):.2f} ms; bytes per item "
                  + ", ".join(f"{k} {v:.0f}" for k, v in size.items()), flush=True)

            texts = queries(args.queries)
            timings: dict[str, list[float]] = {"vector only": [], "hybrid, two indexes": [],
                                               "hybrid, blended index": []}
            service.query(text="warm up", k=10)
            for text in texts:
                started = time.perf_counter()
                search_vector(state, state.text_vectors.vector(text), 10, None, [])
                timings["vector only"].append((time.perf_counter() - started) * 1000)
                for name, space in (("hybrid, two indexes", None), ("hybrid, blended index", blended)):
                    state.blended = space
                    started = time.perf_counter()
                    service.query(text=text, k=10)
                    timings[name].append((time.perf_counter() - started) * 1000)
            state.blended = blended
            print(f"load average now {os.getloadavg()[0]:.1f}", flush=True)
            _report(n, "in process", timings)

            settings = Settings(home=home, model="jewelclip-lite0", rate_limits=False)
            app = create_app(settings, service, autosave_seconds=None)
            server = create_server(app, host="127.0.0.1", port=0, threads=4)
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            url = f"http://127.0.0.1:{server.effective_port}/api/search?k=10&q="
            http: dict[str, list[float]] = {"hybrid, two indexes": [], "hybrid, blended index": []}
            for text in texts[:5]:
                urllib.request.urlopen(url + urllib.parse.quote("warm " + text)).read()
            for i, text in enumerate(texts):
                for name, space in (("hybrid, two indexes", None), ("hybrid, blended index", blended)):
                    state.blended = space
                    started = time.perf_counter()
                    # A distinct text per path, so neither meets the other's encoded vector.
                    urllib.request.urlopen(url + urllib.parse.quote(f"{text} {name[8:11]}{i}")).read()
                    http[name].append((time.perf_counter() - started) * 1000)
            state.blended = blended
            server.close()  # waitress may log a closed trigger from a finishing thread
            _report(n, "over HTTP", http, base_name="hybrid, two indexes")
            catalog.close()


def _report(n: int, where: str, timings: dict[str, list[float]], base_name: str = "vector only") -> None:
    base = statistics.median(timings[base_name])
    for name, values in timings.items():
        p50 = statistics.median(values)
        print(f"{n:>7} items  {where:10s} {name:24s} p50 {p50:6.2f} ms  p99 {np.percentile(values, 99):6.2f} ms  "
              f"({p50 / base:.2f}x {base_name} p50)", flush=True)


if __name__ == "__main__":
    main()
