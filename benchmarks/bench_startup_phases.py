"""Where a command's start goes: wall and CPU seconds of each step, in fresh processes.

The steps of a text search's start, in the order a command takes them: ``import torch``; FAISS
and sqlite-utils (which imports pandas and pyarrow); the jewelsearch serving modules; the
model (``load_encoder``, plain torch or open_clip by ``--loader``); the instance head; the
recogniser with batch-norm folding; the first text query. Each run is a new interpreter, the
loaders alternated run by run; medians over ``--runs``. On a loaded machine the CPU column
says more than the wall column.
Usage: python benchmarks/bench_startup_phases.py [--runs 5] [--loaders plain open_clip]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

STEPS = """
import json, sys, time
marks = [("start", time.perf_counter(), time.process_time())]
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))
import torch
mark("import torch")
import faiss, jewelsearch.storage.db
mark("import faiss, the store (sqlite-utils)")
import jewelsearch.cli, jewelsearch.search.wiring, jewelsearch.ingest.pipeline
mark("import jewelsearch serving modules")
from jewelsearch.embed import load_encoder
encoder = load_encoder("jewelclip-lite0", loader=sys.argv[1])
mark("load the model")
from jewelsearch.embed.instance import InstanceHead
InstanceHead.load(encoder.folder, encoder.model.visual)
mark("instance head")
from jewelsearch.recognize.builder import load_recognizer
load_recognizer(encoder, fold_for_serving=True)
mark("recogniser (heads, localiser, top, folding)")
encoder.encode_texts(["oval sapphire pendant"])
mark("first text query")
print(json.dumps([[b[0], b[1] - a[1], b[2] - a[2]] for a, b in zip(marks, marks[1:])]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--loaders", nargs="+", default=["plain", "open_clip"], choices=("plain", "open_clip"))
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "HF_HUB_OFFLINE": "1"}
    walls: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    totals: dict[str, list[tuple[float, float]]] = {}
    loads = []
    for run in range(args.runs):
        for loader in (args.loaders if run % 2 == 0 else args.loaders[::-1]):
            done = subprocess.run([sys.executable, "-c", STEPS, loader], env=env, capture_output=True,
                                  text=True, check=True)
            loads.append(os.getloadavg()[0])
            steps = json.loads(done.stdout.strip().splitlines()[-1])
            for name, wall, cpu in steps:
                walls.setdefault((loader, name), []).append(wall)
                cpus.setdefault((loader, name), []).append(cpu)
            totals.setdefault(loader, []).append((sum(s[1] for s in steps), sum(s[2] for s in steps)))
    print(f"{args.runs} runs per loader, load average {min(loads):.1f}-{max(loads):.1f}; "
          "median wall s / median CPU s")
    print(f"{'step':48s}" + "".join(f" {loader:>18s}" for loader in args.loaders))
    names = list(dict.fromkeys(name for _, name in walls))
    for name in names:
        print(f"{name:48s}" + "".join(f" {statistics.median(walls[(l, name)]):8.2f} /{statistics.median(cpus[(l, name)]):7.2f}"
                                      for l in args.loaders))
    print(f"{'total (median of the runs totals)':48s}" + "".join(
        f" {statistics.median(t[0] for t in totals[l]):8.2f} /{statistics.median(t[1] for t in totals[l]):7.2f}"
        for l in args.loaders))


if __name__ == "__main__":
    main()
