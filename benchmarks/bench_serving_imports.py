"""Start-up imports: wall and CPU seconds to import the modules a search or an ingest loads
before the model, in fresh interpreters, this tree against another, interleaved.

The model's own imports (open_clip, transformers) happen later, inside ``load_encoder``; this
isolates what jewelsearch's modules import. CPU time (user + system of the child) is the
steadier figure on a loaded machine. Also prints which heavy libraries each tree loaded.
Usage: python benchmarks/bench_serving_imports.py --old-tree /path/to/old/src [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODULES = ("jewelsearch.cli", "jewelsearch.storage.db", "jewelsearch.search.wiring",
           "jewelsearch.ingest.pipeline", "jewelsearch.recognize.localizer",
           "jewelsearch.recognize.evidence", "jewelsearch.recommend.interests")
HEAVY = ("torch", "faiss", "sqlite_utils", "pandas", "pyarrow", "scipy", "open_clip", "transformers")
CODE = ("import importlib, json, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one(tree: str) -> tuple[float, float, list[str]]:
    env = {**os.environ, "PYTHONPATH": tree}
    cpu, start = cpu_of_children(), time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, cpu_of_children() - cpu
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return wall, cpu, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-tree", required=True)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    trees = {"old": args.old_tree, "new": str(Path(__file__).resolve().parents[1] / "src")}
    rows: dict[str, list[tuple[float, float, list[str]]]] = {name: [] for name in trees}
    for run in range(args.runs):
        for name in (list(trees) if run % 2 == 0 else list(trees)[::-1]):
            rows[name].append(one(trees[name]))
        print(f"run {run + 1} (load average {os.getloadavg()[0]:.1f}): "
              + ", ".join(f"{n} {r[-1][0]:.2f} s wall, {r[-1][1]:.2f} s CPU" for n, r in rows.items()),
              flush=True)
    for name, series in rows.items():
        print(f"{name}: median wall {statistics.median(r[0] for r in series):.2f} s, median CPU "
              f"{statistics.median(r[1] for r in series):.2f} s; loaded: {', '.join(series[0][2])}")
    wall = {n: statistics.median(r[0] for r in s) for n, s in rows.items()}
    cpu = {n: statistics.median(r[1] for r in s) for n, s in rows.items()}
    print(f"new/old: wall {wall['new'] / wall['old']:.2f}, CPU {cpu['new'] / cpu['old']:.2f}")


if __name__ == "__main__":
    main()
