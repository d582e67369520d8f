"""Where one pipelined ingest spends its time, step by step (ms per photo and share).

A fresh home with the default model (its load not counted), a warm-up batch, then ``--items``
demo photos through ``SearchService.ingest_batches`` (the CLI's path). Each step below is
wrapped with a timer that records the wall time and the CPU time of the thread that ran it
(``time.thread_time``), so steps on the decode and writer threads are counted where they run.
Steps nest (the tower pass holds the recognition top; the write holds the store and files), so
the table gives each step's own figure, not a partition. ``--cprofile N`` also prints the main
thread's top N functions by cumulative time.

Usage: python benchmarks/profile_ingest.py [--items 160] [--photos given|bare] [--threads 1] [--cprofile 30]
       [--runtime auto|torch|openvino] [--precision auto|f32|bf16]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import os
import pstats
import resource
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STONE_AND_RECOGNISED = ("category", "metal", "gemstone", "stone_shape")
_lock = threading.Lock()
_totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])  # wall, thread cpu, calls


def _timed(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            with _lock:
                row = _totals[name]
                row[0] += time.perf_counter() - wall
                row[1] += time.thread_time() - cpu
                row[2] += 1
    return wrapper


def _timed_or_none(name: str, fn):
    return _timed(name, fn) if fn is not None else None


def _wrap(owner, attribute: str, name: str) -> None:
    setattr(owner, attribute, _timed(name, getattr(owner, attribute)))


def instrument(service) -> None:
    """Timers around each step; module functions are wrapped where their callers look them up."""
    from jewelsearch.ingest import pipeline, stream
    from jewelsearch.recognize import gem_features
    from jewelsearch.storage import images as image_files

    ingestor = service.state.ingestor
    # Steps on the decode threads.
    _wrap(stream, "_decode_all", "(decode submit)")
    ingestor.decode_for_model = _timed("decode + letterbox + histogram [decode threads]", ingestor.decode_for_model)
    ingestor._decode_for_ingest = _timed("  image decode (PIL) [decode threads]", ingestor._decode_for_ingest)
    # Main thread: prepare = lookups + tower + recognition + item texts.
    ingestor.prepare = _timed("prepare (all model work) [main]", ingestor.prepare)
    _wrap(gem_features, "tower_pass", "  tower pass + taps (+ recognition top) [main]")
    runtime = getattr(ingestor, "tower_runtime", None)
    if runtime is not None:  # the OpenVINO runner, where one runs the pass (its threads' CPU is not counted)
        pick = runtime.runner
        runtime.runner = lambda photos: _timed_or_none("  tower pass + taps + top on OpenVINO [main]", pick(photos))
    _wrap(gem_features, "_pooled", "  pooled maps + piece head [main]")
    _wrap(gem_features, "_locate_rows", "  localiser [main]")
    head = ingestor.instance_head
    if head is not None:
        head.vectors = _timed("  instance head [main]", head.vectors)
    if ingestor.recognizer is not None and ingestor.recognizer.recognition_top is not None:
        top = ingestor.recognizer.recognition_top
        top.forward = _timed("    recognition top [main]", top.forward)
    if hasattr(ingestor, "item_texts"):  # texts kept across batches
        _wrap(ingestor.item_texts, "vectors", "  item text tower [main]")
    else:  # a tree from before (``--old-tree``-style runs of this script)
        _wrap(pipeline, "encode_item_texts", "  item text tower [main]")
    _wrap(ingestor.catalog.embeddings, "find_by_image", "  reuse lookups (find_by_image) [main]")
    _wrap(ingestor.catalog.items, "find_by_source", "  source lookups [main]")
    # Writer thread.
    ingestor.write = _timed("write (store, files, indexes) [writer]", ingestor.write)
    ingestor.fill_predicted = _timed("  recognition heads / fill-in [writer]", ingestor.fill_predicted)
    _wrap(image_files.ImageFiles, "save_many", "  image files (write + fsync) [writer]")
    _wrap(ingestor.catalog.items, "insert", "  item rows + word index [writer]")
    _wrap(ingestor.catalog.embeddings, "put", "  vector rows [writer]")
    _wrap(ingestor.catalog.database, "write", "  (transaction enter)")
    for index_name in ("index",):
        index = getattr(service.state, index_name)
        index.add = _timed("  vector index add [writer]", index.add)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=160)
    parser.add_argument("--photos", default="given", choices=("given", "bare"))
    parser.add_argument("--cprofile", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default torch's); with 1, each step's thread CPU is all of its CPU, "
                             "as in one ingest worker process")
    parser.add_argument("--runtime", default=None, help="ingest_runtime (default: the setting's default)")
    parser.add_argument("--precision", default=None, help="ingest_precision (default: the setting's default)")
    args = parser.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)

    from jewelsearch.config import Settings
    from jewelsearch.ingest.demo import demo_dir, demo_items
    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.search.wiring import open_service

    items = demo_items(demo_dir())[:args.items + 8]
    if args.photos == "bare":
        items = [NewItem(i.image_bytes, {k: v for k, v in i.fields.items() if k not in STONE_AND_RECOGNISED},
                         source_path=i.source_path) for i in items]
    warm, items = items[args.items:], items[:args.items]
    with tempfile.TemporaryDirectory() as home:
        chosen = {"ingest_runtime": args.runtime, "ingest_precision": args.precision}
        service = open_service(Settings(home=Path(home), **{k: v for k, v in chosen.items() if v}))
        service.add_items(warm)
        instrument(service)
        batches = [items[i:i + 32] for i in range(0, len(items), 32)]
        profiler = cProfile.Profile() if args.cprofile else None
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        # The job's size, as the CLI gives it: with `auto`, a job picks its runtime by its size.
        for _ in service.ingest_batches(batches, photos=len(items)):
            pass
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
        service.catalog.close()
    n = len(items)
    print(f"{n} {args.photos} photos in {seconds:.2f} s: {n / seconds:.1f} photos/s, process CPU "
          f"{1000 * cpu / n:.1f} ms/photo, load average {os.getloadavg()[0]:.1f}")
    print(f"{'step [thread]':<58}{'wall ms/photo':>14}{'% of wall':>10}{'thread CPU ms/photo':>21}{'calls':>7}")
    for name, (wall, thread_cpu, calls) in _totals.items():
        print(f"{name:<58}{1000 * wall / n:>14.2f}{100 * wall / seconds:>9.1f}%{1000 * thread_cpu / n:>21.2f}{calls:>7}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.cprofile)
        print(out.getvalue())


if __name__ == "__main__":
    main()
