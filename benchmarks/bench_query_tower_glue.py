"""One query's OpenVINO text tower, with torch tensors around it (the path before
2026-12-07's change) and with NumPy arrays only (``Encoder.encode_texts_from_ids``, what
``serve`` runs), alone and beside another thread of the same process, as a text query's helper
thread runs beside the tower.

Why it matters: every torch op gives up the GIL and must take it back; while another thread
runs Python, each take-back can wait. The two paths feed the same compiled graph the same ids,
interleaved query by query, so the machine's drift falls on both alike.

    python benchmarks/bench_query_tower_glue.py [--queries 200] [--cache DIR]
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
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def python_neighbour(stop: threading.Event) -> None:
    """Python work in short bursts with pauses, as a helper thread reading SQLite does."""
    count = 0
    while not stop.is_set():
        count += 1
        if count % 2000 == 0:
            time.sleep(0.0002)


def numpy_neighbour(stop: threading.Event) -> None:
    """Work that mostly runs without the GIL but competes for the cores and memory."""
    block = np.random.default_rng(0).random((2000, 2000), dtype=np.float32)
    while not stop.is_set():
        block.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=None, help="OpenVINO graph cache (default: a temporary folder)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(HERE))
    from bench_text_search import queries

    from jewelsearch.embed import load_encoder, openvino_text

    torch.set_num_threads(1)
    encoder = load_encoder("jewelclip-lite0")
    cache = args.cache or Path(tempfile.mkdtemp(prefix="glue-"))
    tower = openvino_text.open_text_tower(encoder, cache, threads=1)

    def torch_around(ids: torch.Tensor) -> torch.Tensor:  # the glue as it was
        return torch.from_numpy(tower(ids.numpy()))

    paths = {"torch around the graph": lambda text: encoder.encode_texts_with([text], torch_around),
             "NumPy only (serve)": lambda text: encoder.encode_texts_from_ids([text], tower)}
    texts = queries(args.queries)
    worst = max(float(np.abs(paths["NumPy only (serve)"](t) - encoder.encode_texts([t])).max()) for t in texts[:50])
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, date {time.strftime('%Y-%m-%d %H:%M')}, "
          f"queries {len(texts)}, load average {os.getloadavg()[0]:.1f}; NumPy path vs torch tower: "
          f"largest difference {worst:.1e}")
    for label, neighbour in (("alone", None), ("beside a Python thread", python_neighbour),
                             ("beside a NumPy thread", numpy_neighbour)):
        stop = threading.Event()
        thread = threading.Thread(target=neighbour, args=(stop,), daemon=True) if neighbour else None
        if thread is not None:
            thread.start()
        times: dict[str, list[float]] = {name: [] for name in paths}
        try:
            for i, text in enumerate(texts):
                order = list(paths) if i % 2 == 0 else list(reversed(paths))
                for name in order:
                    started = time.perf_counter()
                    paths[name](text)
                    times[name].append((time.perf_counter() - started) * 1000)
        finally:
            stop.set()
            if thread is not None:
                thread.join()
        before, after = (statistics.median(times[name]) for name in paths)
        print(f"{label:24s} torch around {before:6.3f} ms | NumPy only {after:6.3f} ms ({after / before:.2f}x) "
              f"| load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
