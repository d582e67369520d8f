"""Queries with their side work beside them, against the same queries in sequence, interleaved
per query in one process (so machine noise hits both alike).

- Text (``--text-items``, default 100k): the text tower on a helper thread while the word index
  is read, against encoding first (what text search did before). The text cache is off, so every
  query pays the encoder; "vector only" (text vector, FAISS top 10, 10 rows) is the reference the
  issue's 1.3x target names.
- Image (``--image-items``, default 10k): the default search (``region=multi``, instance vectors)
  with the recognition top beside the crops' tower pass and a locate pass without the stone map,
  against both in sequence (the stone map drawn as before).

"In sequence" runs the very same code with an executor that runs each task at once in the
calling thread, which is the order the code had before. Besides wall time, each path reports its
CPU time (all threads of the process: the work done) and the request thread's own CPU time (its
critical path, which is what the wall time comes to where a free core takes the side work); on
a machine that other jobs keep busy, wall times swing by several per cent either way, the CPU
times much less. Torch runs one intra-op thread, as
serving does with the default four request threads on two cores
(``search.wiring.serving_torch_threads``).
Usage: python benchmarks/bench_query_overlap.py [--text-items 100000] [--image-items 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_text_search import queries  # noqa: E402
from synthetic_catalog import build  # noqa: E402

from jewelsearch.config import load_settings  # noqa: E402
from jewelsearch.embed import load_encoder  # noqa: E402
from jewelsearch.embed.instance import InstanceHead  # noqa: E402
from jewelsearch.search.item_text_space import item_text_key  # noqa: E402
from jewelsearch.search.query import search_vector  # noqa: E402
from jewelsearch.search.service import SearchService  # noqa: E402
from jewelsearch.storage.embeddings import space_key  # noqa: E402


class InOrder(Executor):
    """Runs each task at once, in the caller's thread: the sequence the code had before."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, as a pool would
            future.set_exception(exc)
        return future


class WithStones:
    """The localiser as the search called it before: the stone map drawn too."""

    def __init__(self, localizer):
        self._localizer = localizer

    def locate(self, image, max_boxes=5, instance_head=None, stones=True, beside=None):
        return self._localizer.locate(image, max_boxes, instance_head=instance_head, stones=True)

    def __getattr__(self, name):
        return getattr(self._localizer, name)


class Clock:
    """Wall time, and two CPU times that a busy machine disturbs far less: the whole process's
    (the work done, on any thread) and the request thread's own (its critical path: what the
    wall time comes to where a free core takes the side work)."""

    def __init__(self):
        self.wall, self.cpu, self.own = [], [], []

    def __enter__(self):
        self._start = (time.perf_counter(), time.process_time(), time.thread_time())
        return self

    def __exit__(self, *exc):
        wall, cpu, own = self._start
        self.wall.append((time.perf_counter() - wall) * 1000)
        self.cpu.append((time.process_time() - cpu) * 1000)
        self.own.append((time.thread_time() - own) * 1000)


def summary(clocks: dict[str, Clock], base: str) -> None:
    reference = statistics.median(clocks[base].wall)
    for name, clock in clocks.items():
        print(f"  {name:36s} wall p50 {statistics.median(clock.wall):7.2f} ms  p90 {np.percentile(clock.wall, 90):7.2f} ms "
              f"({statistics.median(clock.wall) / reference:.2f}x {base})  CPU p50: process "
              f"{statistics.median(clock.cpu):6.2f} ms, request thread {statistics.median(clock.own):6.2f} ms", flush=True)


def text_bench(encoder, n: int, count: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        catalog = build(home, n, encoder.model_id, encoder.dim, text_key=item_text_key(encoder.model_id))
        service = SearchService(catalog, encoder, home / "index", text_cache_size=0)
        state = service.state
        state.hybrid = dataclasses.replace(state.hybrid, text_field_weight=0.75)
        helpers, in_order = state.helpers, InOrder()
        timings = {name: Clock() for name in ("vector only", "hybrid, in sequence (before)",
                                              "hybrid, encoder beside word index")}
        service.query(text="warm up", k=10)
        for number, text in enumerate(queries(count)):
            with timings["vector only"]:
                search_vector(state, state.text_vectors.vector(text), 10, None, [])
            paths = [("hybrid, in sequence (before)", in_order), ("hybrid, encoder beside word index", helpers)]
            answers = []
            for name, executor in paths if number % 2 else paths[::-1]:
                state.helpers = executor
                with timings[name]:
                    answers.append(service.query(text=text, k=10))
            first, second = ([{k: v for k, v in a.items() if k != "took_ms"} for a in answers])
            assert first == second, f"answers differ for {text!r}"
        state.helpers = helpers
        print(f"text queries, {n:,} items ({state.index.kind} index), {count} distinct texts, cache off; "
              "answers identical on every query")
        summary(timings, "vector only")
        catalog.close()


def image_bench(encoder, n: int, count: int) -> None:
    from jewelsearch.ingest.demo import demo_dir
    from jewelsearch.search.wiring import open_service
    head = InstanceHead.load(encoder.folder, encoder.model.visual)
    rng = np.random.default_rng(0)
    photos = []
    for path in sorted(demo_dir().glob("images/*"))[:8]:
        piece = Image.open(path).convert("RGB").resize((160, 160))
        scene = Image.fromarray((120 + rng.normal(0, 25, (480, 640, 3))).clip(0, 255).astype(np.uint8))
        scene.paste(piece, (int(rng.integers(20, 440)), int(rng.integers(20, 300))))
        buffer = io.BytesIO()
        scene.save(buffer, format="JPEG")
        photos.append(buffer.getvalue())
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        build(home, n, encoder.model_id, encoder.dim, instance_key=space_key(encoder.model_id, head.space_id),
              instance_dim=head.dim).close()
        service = open_service(load_settings(str(home)))
        torch.set_num_threads(1)
        state = service.state
        helpers, localizer = state.helpers, state.localizer
        before = ("image, in sequence (before)", InOrder(), WithStones(localizer))
        after = ("image, top beside, no stone map", helpers, localizer)
        timings = {before[0]: Clock(), after[0]: Clock()}
        pieces = []
        for photo in photos:
            service.query(image_bytes=photo, k=10)
        for number in range(count):
            photo = photos[number % len(photos)]
            answers = []
            for name, executor, used in (before, after) if number % 2 else (after, before):
                state.helpers, state.localizer = executor, used
                with timings[name]:
                    answers.append(service.query(image_bytes=photo, k=10))
            first, second = ([{k: v for k, v in a.items() if k != "took_ms"} for a in answers])
            assert first == second, "image answers differ"
            pieces.append(len(first["region"].get("searched", ["whole"])) - 1)
        state.helpers, state.localizer = helpers, localizer
        print(f"image queries, {n:,} items, region=multi, {answers[0]['vector']} vectors, {len(photos)} photos "
              f"(pieces searched beside the whole photo: median {statistics.median(pieces):.0f}); "
              "answers identical on every query")
        summary(timings, before[0])
        service.catalog.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text-items", type=int, default=100_000)
    parser.add_argument("--image-items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--only", choices=["text", "image"])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    encoder = load_encoder("jewelclip-lite0")
    torch.set_num_threads(1)
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"date {time.strftime('%Y-%m-%d %H:%M')}, torch threads {torch.get_num_threads()}", flush=True)
    if args.only != "image":
        text_bench(encoder, args.text_items, args.queries)
    if args.only != "text":
        image_bench(encoder, args.image_items, max(20, args.queries // 2))
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
