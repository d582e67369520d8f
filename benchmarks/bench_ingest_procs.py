"""One process with two torch threads against two processes with one torch thread each, on
ingest's model work (decode, tower pass, recognition, localiser, item texts: ``Ingestor.prepare``
without the write), side by side.

On 2 cores the tower's OpenMP threads meet at a barrier after every operation; two processes
each with one thread never wait for each other. Each round runs the same photos both ways
(the order alternating): ``one``: one child process, ``--threads`` torch threads, all batches;
``two``: two child processes at once, one thread each, half the batches each. A child loads the
model, warms up on one batch, then waits for a start file so the model loads are not timed.
Wall time from the start signal to the last child's end; photos/s medians and ratio. (The gain
here did not carry over to a whole ingest, whose threaded pipeline already decodes beside the
model: docs/experiments/2026-12-07-ingest-worker-processes.md.)

Usage: python benchmarks/bench_ingest_procs.py [--items 128] [--rounds 3] [--photos given|bare]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
STONE_AND_RECOGNISED = ("category", "metal", "gemstone", "stone_shape")


def child(threads: int, start: int, stop: int, photos: str, go: Path) -> dict:
    import torch
    torch.set_num_threads(threads)
    from jewelsearch.config import Settings
    from jewelsearch.ingest.demo import demo_dir, demo_items
    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.search.wiring import open_service

    items = demo_items(demo_dir())
    if photos == "bare":
        items = [NewItem(i.image_bytes, {k: v for k, v in i.fields.items() if k not in STONE_AND_RECOGNISED})
                 for i in items]
    warm, mine = items[-32:], items[start:stop]
    with tempfile.TemporaryDirectory() as home:
        service = open_service(Settings(home=Path(home)))
        ingestor = service.state.ingestor
        ingestor.prepare(warm)
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.005)
        cpu = time.process_time()
        for i in range(0, len(mine), 32):
            part = mine[i:i + 32]
            decoded = {n: ingestor.decode_for_model(item.image_bytes, item.fields) for n, item in enumerate(part)}
            ingestor.prepare(part, decoded=decoded)
        ended = time.time()
        service.catalog.close()
    return {"ended": ended, "cpu": time.process_time() - cpu}


def run(layout: str, items: int, photos: str, threads: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as scratch:
        go = Path(scratch) / "go"
        parts = [(threads, 0, items)] if layout == "one" else [(1, 0, items // 2), (1, items // 2, items)]
        children = [subprocess.Popen([sys.executable, __file__, "--child", str(t), str(a), str(b), photos, str(go)],
                                     stdout=subprocess.PIPE, text=True) for t, a, b in parts]
        for c in children:
            assert c.stdout.readline().strip() == "ready"
        started = time.time()
        go.touch()
        done = [json.loads(c.communicate()[0].strip().splitlines()[-1]) for c in children]
    wall = max(d["ended"] for d in done) - started
    return items / wall, 1000 * sum(d["cpu"] for d in done) / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--photos", default="given")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        t, a, b, photos, go = args.child
        print(json.dumps(child(int(t), int(a), int(b), photos, Path(go))))
        return
    print(f"{time.strftime('%Y-%m-%d %H:%M')} {os.cpu_count()} cpus, {args.items} {args.photos} photos, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    runs: dict[str, list[tuple[float, float]]] = {"one": [], "two": []}
    for round_ in range(args.rounds):
        for layout in (("one", "two") if round_ % 2 == 0 else ("two", "one")):
            speed, cpu = run(layout, args.items, args.photos, args.threads)
            runs[layout].append((speed, cpu))
            print(f"round {round_ + 1} {layout}: {speed:.1f} photos/s, {cpu:.1f} CPU ms/photo, "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
    base = statistics.median(s for s, _ in runs["one"])
    for layout, done in runs.items():
        speed = statistics.median(s for s, _ in done)
        print(f"{layout}: median {speed:.1f} photos/s ({speed / base:.2f}x), "
              f"CPU {statistics.median(c for _, c in done):.1f} ms/photo")


if __name__ == "__main__":
    main()
