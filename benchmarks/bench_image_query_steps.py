"""Where an image query's time goes, step by step, and one tree's image query against another's.

Steps (default): one image query as the server runs it (``region=multi``, instance vectors,
torch on one intra-op thread, 10k synthetic catalog rows, the pasted-piece photo of
``bench_api.py``), its steps timed one by one, each as the search code calls it, with the
median of wall time and of the calling thread's CPU time over ``--queries`` queries: decode,
preprocess, the locate pass (tower, localiser head, boxes, instance vector), choose_region, the
crops' pass with the recognition top beside it, box labels, the FAISS search per part with and
without αQE, fusion, row reads, JSON; then the whole ``SearchService.query`` (no HTTP).

``--old-tree SRC`` (the ``src`` of another checkout): the whole query in one worker process per
tree, each on its own copy of the same catalog, taking turns in blocks of ``--block`` queries
(the order flipped each round), so machine noise hits both alike. Each reports wall time, the
request thread's own CPU time (its critical path, what the wall time comes to where a core is
free for the side work) and the whole process's CPU time (all the work done), medians, and the
answers' digest, which must agree between the trees.
Usage: python benchmarks/bench_image_query_steps.py [--queries 60] [--old-tree /tmp/old/src --rounds 8]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_catalog import build  # noqa: E402

SETUPS = ("none", "aqe")  # the re-ranking of each query, alternating


def query_photo() -> bytes:
    """The photo ``bench_api.py`` sends: a demo piece pasted small onto a textured scene."""
    from jewelsearch.ingest.demo import demo_dir
    rng = np.random.default_rng(0)
    piece = Image.open(sorted(demo_dir().glob("images/*"))[0]).convert("RGB").resize((160, 160))
    scene = Image.fromarray((120 + rng.normal(0, 25, (480, 640, 3))).clip(0, 255).astype(np.uint8))
    scene.paste(piece, (400, 250))
    buffer = io.BytesIO()
    scene.save(buffer, format="JPEG")
    return buffer.getvalue()


def make_catalog(home: Path, n: int) -> None:
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.instance import InstanceHead
    from jewelsearch.storage.embeddings import space_key
    encoder = load_encoder("jewelclip-lite0")
    head = InstanceHead.load(encoder.folder, encoder.model.visual)
    build(home, n, encoder.model_id, encoder.dim, instance_key=space_key(encoder.model_id, head.space_id),
          instance_dim=head.dim).close()


def open_for_serving(home: Path):
    import torch

    from jewelsearch.config import load_settings
    from jewelsearch.search.wiring import open_service
    service = open_service(load_settings(str(home)))
    torch.set_num_threads(1)  # as serving runs it with four request threads on two cores
    return service


def answer_digest(answer: dict) -> str:
    kept = {k: v for k, v in answer.items() if k != "took_ms"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def steps(args) -> None:
    import torch

    from jewelsearch.embed.dense_features import tower_pass
    from jewelsearch.recognize.localizer import crop
    from jewelsearch.recognize.query_region import choose_region
    from jewelsearch.search.image_ranking import fuse_by_max, image_space, ranked
    from jewelsearch.search.items import public_item
    from jewelsearch.search.recognition import label_boxes

    photo = query_photo()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        make_catalog(home, args.items)
        service = open_for_serving(home)
        state = service.state
        space = image_space(state)
        head, encoder, localizer = space.head, state.encoder, state.localizer
        times: dict[str, list[tuple[float, float]]] = {}

        def timed(name, fn):
            wall, cpu = time.perf_counter(), time.thread_time()
            out = fn()
            times.setdefault(name, []).append(((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000))
            return out

        for _ in range(5):
            service.query(image_bytes=photo, k=10)
        for _ in range(args.queries):
            image = timed("decode", lambda: state.ingestor.decode(photo).image)
            tensor = timed("preprocess (letterbox to 224, normalise)", lambda: encoder.preprocess(image))
            batch = tensor[None].contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                passed = timed("locate: tower pass", lambda: tower_pass(encoder.model.visual, batch))
                grids = timed("locate: localiser head", lambda: localizer.grids(passed.search_taps, stones=False))
                found = timed("locate: boxes from the piece map",
                              lambda: localizer.from_maps(image.size, grids[0][0], None))
                whole = timed("locate: instance vector", lambda: head.vectors(passed).numpy()[0])
            found.embedding, found.instance = passed.embedding[0].numpy(), whole
            choice = timed("choose_region", lambda: choose_region(image, localizer, region="auto", located=found))
            pieces = choice.describe(image.size)["boxes"][:3]
            crops = [crop(image, tuple(p["box"])) for p in pieces]
            out = timed("crops: tower pass, top beside, pooled maps",
                        lambda: state.recognizer.embed_all(crops, instance_head=head, beside=state.helpers))
            timed("crops: box labels (category)", lambda: label_boxes(state.recognizer, pieces, out.embeddings,
                                                                      out.pooled))
            parts = [("whole", whole)] + [(f"box {n + 1}", out.instance[n]) for n in range(len(pieces))]
            lists = timed("FAISS search, all parts", lambda: [(label, *ranked(state, space, v, 10, None, [], "none"))
                                                            for label, v in parts])
            timed("FAISS search + αQE, all parts", lambda: [ranked(state, space, v, 10, None, [], "aqe")
                                                          for _, v in parts])
            hits = timed("fusion", lambda: fuse_by_max(lists, 10))
            rows = timed("row reads", lambda: state.catalog.items.get_many([h[0] for h in hits]))
            timed("JSON", lambda: json.dumps([dict(public_item(rows[h[0]]), score=h[1]) for h in hits]))
            timed("whole SearchService.query", lambda: service.query(image_bytes=photo, k=10))
            timed("whole SearchService.query, αQE", lambda: service.query(image_bytes=photo, k=10, rerank="aqe"))
        print(f"{args.items:,} items, photo {image.size}, pieces searched beside the whole photo: {len(pieces)}; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'step':48s} {'wall p50':>9} {'thread CPU p50':>15}  (ms)")
        for name, values in times.items():
            print(f"{name:48s} {statistics.median(v for v, _ in values):9.2f} "
                  f"{statistics.median(c for _, c in values):15.2f}")
        service.catalog.close()


def worker(home: str) -> None:
    """Serve timing requests from the parent: a line with a count and a re-ranking -> a JSON line."""
    service = open_for_serving(Path(home))
    photo = query_photo()
    for rerank in SETUPS:
        for _ in range(3):
            service.query(image_bytes=photo, k=10, rerank=rerank)
    print("ready", flush=True)
    for line in sys.stdin:
        count, rerank = line.split()
        wall, own, cpu, digests = [], [], [], set()
        for _ in range(int(count)):
            start = (time.perf_counter(), time.thread_time(), time.process_time())
            answer = service.query(image_bytes=photo, k=10, rerank=rerank)
            wall.append((time.perf_counter() - start[0]) * 1000)
            own.append((time.thread_time() - start[1]) * 1000)
            cpu.append((time.process_time() - start[2]) * 1000)
            digests.add(answer_digest(answer))
        print(json.dumps({"wall": wall, "own": own, "cpu": cpu, "digests": sorted(digests)}), flush=True)


def trees(args) -> None:
    here = str(Path(__file__).resolve().parents[1] / "src")
    sources = {"old": str(Path(args.old_tree).resolve()), "new": here}
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        make_catalog(base, args.items)
        workers = {}
        for name, src in sources.items():
            home = Path(scratch) / name
            shutil.copytree(base, home)
            workers[name] = subprocess.Popen(
                [sys.executable, __file__, "--worker", str(home)], env=dict(os.environ, PYTHONPATH=src),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for process in workers.values():
            assert process.stdout.readline().strip() == "ready"
        results = {(name, rerank): {"wall": [], "own": [], "cpu": [], "digests": set()}
                   for name in sources for rerank in SETUPS}
        loads = []
        for round_ in range(args.rounds):
            for rerank in SETUPS:
                for name in (("old", "new") if round_ % 2 else ("new", "old")):
                    process = workers[name]
                    process.stdin.write(f"{args.block} {rerank}\n")
                    process.stdin.flush()
                    got = json.loads(process.stdout.readline())
                    for key in ("wall", "own", "cpu"):
                        results[(name, rerank)][key] += got[key]
                    results[(name, rerank)]["digests"].update(got["digests"])
            loads.append(os.getloadavg()[0])
        for process in workers.values():
            process.stdin.close()
            process.wait(timeout=60)
        print(f"{args.items:,} items, {args.rounds} rounds of {args.block} queries per tree and re-ranking; "
              f"load average {min(loads):.2f}-{max(loads):.2f}")
        print(f"{'rerank':7s} {'tree':4s} {'wall p50':>9} {'request thread CPU p50':>23} {'process CPU p50':>16}  "
              "answers")
        for rerank in SETUPS:
            for name in sources:
                r = results[(name, rerank)]
                print(f"{rerank:7s} {name:4s} {statistics.median(r['wall']):9.2f} {statistics.median(r['own']):23.2f} "
                      f"{statistics.median(r['cpu']):16.2f}  {','.join(sorted(r['digests']))}")
            old, new = results[("old", rerank)], results[("new", rerank)]
            ratios = {key: statistics.median(new[key]) / statistics.median(old[key]) for key in ("wall", "own", "cpu")}
            same = "identical" if old["digests"] == new["digests"] else "DIFFERENT"
            print(f"{rerank:7s} new/old: wall {ratios['wall']:.3f}, request thread CPU {ratios['own']:.3f}, "
                  f"process CPU {ratios['cpu']:.3f}; answers {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--old-tree", default=None)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        worker(args.worker)
        return
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d %H:%M')} UTC")
    if args.old_tree:
        trees(args)
    else:
        steps(args)


if __name__ == "__main__":
    main()
