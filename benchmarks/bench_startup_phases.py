"""Where a command's start goes: wall and CPU seconds of each step, in fresh processes.

The steps of a text search's start, in the order a command takes them: ``import torch``; FAISS
and sqlite-utils (which imports pandas and pyarrow); the jewelsearch serving modules; the
model (``load_encoder``, plain torch or open_clip by ``--loader``); the instance head; the
recogniser with batch-norm folding; the first text query. Each run is a new interpreter;
medians over ``--runs``. On a loaded machine the CPU column says more than the wall column.
Usage: python benchmarks/bench_startup_phases.py [--runs 5] [--loader plain|open_clip]
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
import faiss, sqlite_utils
mark("import faiss, sqlite-utils (pandas, pyarrow)")
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
    parser.add_argument("--loader", default="plain", choices=("plain", "open_clip"))
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "HF_HUB_OFFLINE": "1"}
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    loads = []
    for _ in range(args.runs):
        done = subprocess.run([sys.executable, "-c", STEPS, args.loader], env=env, capture_output=True,
                              text=True, check=True)
        loads.append(os.getloadavg()[0])
        for name, wall, cpu in json.loads(done.stdout.strip().splitlines()[-1]):
            walls.setdefault(name, []).append(wall)
            cpus.setdefault(name, []).append(cpu)
    print(f"loader {args.loader}, {args.runs} runs, load average {min(loads):.1f}-{max(loads):.1f}")
    print(f"{'step':48s} {'wall s':>8s} {'CPU s':>8s}")
    for name in walls:
        print(f"{name:48s} {statistics.median(walls[name]):8.2f} {statistics.median(cpus[name]):8.2f}")
    totals = [sum(run) for run in zip(*walls.values())], [sum(run) for run in zip(*cpus.values())]
    print(f"{'total (median of the runs totals)':48s} {statistics.median(totals[0]):8.2f} "
          f"{statistics.median(totals[1]):8.2f}")


if __name__ == "__main__":
    main()
