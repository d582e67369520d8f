"""Ingest end to end, old path against the pipelined one and its settings, side by side.

Each run is a fresh process on a fresh home with the default model (the model load is not
counted): a warm-up batch, then ``--items`` demo photos ingested in batches, recognition,
the localiser's stone check, the item text vectors, the store, the image files and the
indexes included. The variants run interleaved, round by round in a rotating order, so the
machine's load hits all alike; the table gives medians and the ratio to the first variant.

Variants (``--variants``, comma-separated):
  old          ``--old-tree`` (another checkout's src, e.g. a worktree of the commit before the
               pipeline: ``git worktree add /tmp/old 3bf8695``), ``add_items`` per batch
  old-pipe     ``--old-tree``'s ``ingest_batches``: the pipeline as another checkout runs it
  seq          this tree, ``add_items`` per batch
  pipe         this tree, ``ingest_batches`` (decode threads, model, writer thread), default
               settings (``ingest_runtime`` auto: OpenVINO for a job of 128 photos or more where its
               graphs are saved, which this script makes sure of first; opening it is counted)
  pipe-torch   the same with ``ingest_runtime`` torch
  pipe-ov      the same with ``ingest_runtime`` openvino in f32 (``ingest_precision``), opened in
               the warm-up (not counted)
  pipe-ov-bf16 the same in bf16
  pipe-ov-bf16-2s  the same with each batch split over two streams of one thread each
  pipe-128     ``pipe`` with ``auto`` opening OpenVINO for jobs of 128 photos or more (opening counted)
  pipe-128-f32 the same with ``ingest_precision`` f32 (a CPU without bf16)
  pipe-b64     the same with batches of 64
  pipe-b16     the same with batches of 16
  pipe-t1      the same with one torch thread (the decode threads get the other core)
  pipe-w1      one decode thread
  pipe-draft   pipelined with JPEG draft decoding
Photo sets (``--photos``): given (the demo items' fields), bare (no attributes given: all
recognition work runs), large (the demo photos upscaled to 1,600 px, fields given).
Usage: python benchmarks/bench_ingest_pipeline.py [--items 400] [--rounds 3]
       [--variants seq,pipe] [--photos given] [--old-tree /tmp/old/src]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STONE_AND_RECOGNISED = ("category", "metal", "gemstone", "stone_shape")
LARGE_SIDE = 1600


def photo_set(kind: str, count: int, cache: Path):
    from PIL import Image

    from jewelsearch.ingest.demo import demo_dir, demo_items
    from jewelsearch.ingest.pipeline import NewItem

    items = demo_items(demo_dir())[:count]
    if kind == "bare":
        return [NewItem(i.image_bytes, {k: v for k, v in i.fields.items() if k not in STONE_AND_RECOGNISED})
                for i in items]
    if kind == "large":
        cache.mkdir(parents=True, exist_ok=True)
        out = []
        for n, item in enumerate(items):
            path = cache / f"{n:05d}.jpg"
            if not path.exists():
                image = Image.open(io.BytesIO(item.image_bytes)).convert("RGB")
                scale = LARGE_SIDE / max(image.size)
                image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC) \
                    .save(path, quality=90)
            out.append(NewItem(path.read_bytes(), item.fields))
        return out
    return items


def child(variant: str, kind: str, count: int, cache: Path) -> dict:
    import torch

    from jewelsearch.config import Settings
    from jewelsearch.search.wiring import open_service

    batch = {"pipe-b64": 64, "pipe-b16": 16}.get(variant, 32)
    runtime = {"pipe-torch": {"ingest_runtime": "torch"},
               "pipe-ov": {"ingest_runtime": "openvino", "ingest_precision": "f32"},
               "pipe-ov-bf16": {"ingest_runtime": "openvino", "ingest_precision": "bf16"},
               "pipe-ov-bf16-2s": {"ingest_runtime": "openvino", "ingest_precision": "bf16"},
               "pipe-128-f32": {"ingest_precision": "f32"}}.get(variant, {})
    if variant == "pipe-t1":
        torch.set_num_threads(1)
    items = photo_set(kind, count + 8, cache)
    warm, items = items[count:], items[:count]
    with tempfile.TemporaryDirectory() as home:
        service = open_service(Settings(home=Path(home), **runtime))
        if variant != "old":  # draft decoding only where the variant asks for it (old-pipe: off)
            ingestor = service.state.ingestor
            ingestor.draft_side = 2 * ingestor.encoder.preprocess.size if variant == "pipe-draft" else 0
        if variant == "pipe-ov-bf16-2s":
            service.state.ingestor.tower_runtime = two_stream_runtime(service)
        if variant.startswith("pipe-128"):
            service.state.ingestor.tower_runtime.min_photos = 128
        service.add_items(warm)  # first calls pay for lazy set-up
        batches = [items[i:i + batch] for i in range(0, len(items), batch)]
        cpu_started = _cpu_seconds()
        started = time.perf_counter()
        if variant in ("old", "seq"):
            for part in batches:
                service.add_items(part)
        else:
            workers = 1 if variant == "pipe-w1" else 2
            # The job's size, as the CLI gives it (the old tree's ingest_batches takes none).
            sized = {} if variant.startswith("old") else {"photos": len(items)}
            for _ in service.ingest_batches(batches, decode_workers=workers, **sized):
                pass
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_started  # with worker processes, theirs too (reaped children)
        added = service.catalog.items.count() - len(warm)
        service.catalog.close()
    runtime = getattr(service.state.ingestor, "tower_runtime", None)
    tower = getattr(runtime, "name", "torch")
    if tower == "openvino":
        tower += " " + getattr(runtime, "precision", "f32")
    return {"photos/s": count / seconds, "cpu ms/photo": 1000 * cpu / count, "added": added, "tower": tower}


def two_stream_runtime(service):
    """OpenVINO in bf16 with each batch split over two streams (``OpenVinoTower(streams=2)``)."""
    from jewelsearch.embed import openvino_cache
    from jewelsearch.ingest.tower_runtime import TowerRuntime

    encoder, top = service.encoder, service.recognizer.recognition_top
    return TowerRuntime("openvino", lambda convert: openvino_cache.open_tower(
        encoder.model.visual, top, int(encoder.preprocess.size), encoder.model_id,
        openvino_cache.default_cache_dir(), convert_if_missing=convert, precision="bf16", streams=2))


def save_openvino_graphs() -> None:
    """Convert and save the default model's OpenVINO graphs once (what a first large ingest does),
    so that the ``auto`` runs find them."""
    from jewelsearch.config import Settings
    from jewelsearch.search.wiring import open_service

    with tempfile.TemporaryDirectory() as home:
        service = open_service(Settings(home=Path(home), ingest_runtime="openvino"))
        print(f"OpenVINO graphs: {service.state.ingestor.tower_runtime.runner(1) is not None}", flush=True)
        service.catalog.close()


def _cpu_seconds() -> float:
    """This process's CPU time, all threads: less swayed by other jobs than the wall clock."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # worker processes, once they have exited
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="seq,pipe")
    parser.add_argument("--photos", default="given")
    parser.add_argument("--old-tree", default=None, help="src of another checkout, for the old variant")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "jewelsearch-bench-large")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PHOTOS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "save-openvino":
            save_openvino_graphs()
        else:
            print(json.dumps(child(*args.child, args.items, args.cache)))
        return
    variants = args.variants.split(",")
    if any(v.startswith("old") for v in variants) and not args.old_tree:
        parser.error("the old variant needs --old-tree (the src of a checkout of the old code)")
    here = str(Path(__file__).resolve().parents[1] / "src")
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{args.items} photos per run, load average {os.getloadavg()[0]:.1f}", flush=True)
    if any(v in ("pipe", "pipe-ov") or v.startswith(("pipe-128", "pipe-ov-bf16")) for v in variants):
        subprocess.run([sys.executable, __file__, "--child", "save-openvino", "-"],
                       env={**os.environ, "PYTHONPATH": here}, check=True)
    for kind in args.photos.split(","):
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for round_ in range(args.rounds):
            order = variants[round_ % len(variants):] + variants[:round_ % len(variants)]
            for variant in order:
                tree = args.old_tree if variant.startswith("old") else here
                env = {**os.environ, "PYTHONPATH": tree}
                done = subprocess.run([sys.executable, __file__, "--child", variant, kind, "--items",
                                       str(args.items), "--cache", str(args.cache)],
                                      env=env, capture_output=True, text=True, check=True)
                run = json.loads(done.stdout.strip().splitlines()[-1])
                runs[variant].append(run)
                print(f"{kind} round {round_ + 1} {variant}: {run['photos/s']:.1f} photos/s, "
                      f"{run['cpu ms/photo']:.1f} CPU ms/photo ({run['added']} added, tower on "
                      f"{run.get('tower', 'torch')}, load {os.getloadavg()[0]:.1f})", flush=True)
        base = statistics.median(r["photos/s"] for r in runs[variants[0]])
        base_cpu = statistics.median(r["cpu ms/photo"] for r in runs[variants[0]])
        print(f"{kind}: {'variant':<12}{'median photos/s':>18}{'ratio':>8}{'CPU ms/photo':>15}{'ratio':>8}")
        for variant, done in runs.items():
            median = statistics.median(r["photos/s"] for r in done)
            cpu = statistics.median(r["cpu ms/photo"] for r in done)
            print(f"{kind}: {variant:<12}{median:>18.1f}{median / base:>8.2f}{cpu:>15.1f}{cpu / base_cpu:>8.2f}")


if __name__ == "__main__":
    main()
