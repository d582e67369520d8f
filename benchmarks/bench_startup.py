"""Start-up: the wall time of a whole ``jewelsearch`` command, imports and model load included.

Times two commands on a copy of a home holding the demo catalog (``jewelsearch demo``): a
one-photo ingest (a new photo each run, so the model really runs) and one text search. Each
run is a fresh process. ``--old-tree`` runs the same commands on another source tree (e.g. the
main checkout's src), interleaved with this tree's, so both see the same machine load; medians
and the ratio are printed, of the wall time and of the CPU time (user + system) the command
used: on a loaded machine the wall time mostly measures the wait for a core, the CPU time much
less so.
Usage: python benchmarks/bench_startup.py --home DEMO_HOME [--runs 5] [--old-tree /work/main/src]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps


def a_new_photo(source: Path, seed: int, folder: Path) -> Path:
    """A demo photo, mirrored and tinted by ``seed``: new bytes, still a piece of jewelry."""
    image = Image.open(source).convert("RGB")
    image = ImageOps.mirror(image) if seed % 2 else image
    tint = Image.new("RGB", image.size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    path = folder / f"new-{seed}.jpg"
    buffer = io.BytesIO()
    Image.blend(image, tint, 0.08).save(buffer, format="JPEG", quality=90)
    path.write_bytes(buffer.getvalue())
    return path


def cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(tree: str, home: Path, *args: str) -> tuple[float, float]:
    """The command's wall seconds and CPU seconds."""
    env = {**os.environ, "PYTHONPATH": tree, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", "from jewelsearch.cli import main; main()", "--home", str(home), *args]
    cpu_before, start = cpu_seconds_of_children(), time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, cpu_seconds_of_children() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed under {tree}:\n{done.stderr[-2000:]}")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a home with the demo catalog")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--old-tree", default=None)
    args = parser.parse_args()
    trees = {"new": str(Path(__file__).resolve().parents[1] / "src")}
    if args.old_tree:
        trees = {"old": args.old_tree, **trees}
    photo = next((args.home / "images").rglob("*.jpg"))
    times: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        homes = {}
        for name in trees:
            homes[name] = scratch / name
            shutil.copytree(args.home, homes[name])
        for run in range(args.runs):
            for name in (list(trees) if run % 2 == 0 else list(trees)[::-1]):
                new = a_new_photo(photo, run * 10 + len(name), scratch)
                for command, argv in (("ingest one photo", ["ingest", str(new)]),
                                      ("text search", ["search", "--text", "oval sapphire pendant"])):
                    wall, used = timed(trees[name], homes[name], *argv)
                    times.setdefault((name, command), []).append(wall)
                    cpu.setdefault((name, command), []).append(used)
            print(f"run {run + 1} (load average {os.getloadavg()[0]:.1f}): " + ", ".join(f"{n} {c} {t[-1]:.2f} s" for (n, c), t in times.items()),
                  flush=True)
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average {os.getloadavg()[0]:.1f}, {args.runs} runs each")
    for command in ("ingest one photo", "text search"):
        for what, series in (("wall", times), ("CPU", cpu)):
            medians = {name: statistics.median(series[(name, command)]) for name in trees}
            line = ", ".join(f"{name} {m:.2f} s" for name, m in medians.items())
            if "old" in medians:
                line += f" (new/old {medians['new'] / medians['old']:.2f})"
            print(f"{command}: median {what} {line}")


if __name__ == "__main__":
    main()
