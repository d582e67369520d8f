"""Search latency through the HTTP server (waitress) on a synthetic catalog.

Starts `jewelsearch serve` as a subprocess on a catalog of N rows (real default
model, clustered stored vectors) and times text and image queries from this
process: p50/p99 end to end, including HTTP, encoding, FAISS and row lookup.
Text queries are all distinct (each pays the text encoder); a last column repeats
a few texts, which the server's text cache answers without encoding.

Image queries are timed for each setup given: ``--setups off`` ranks by the text-aligned
vectors alone (``instance_vectors = false``), ``on`` by stored instance vectors (the bundled
head's width), and ``on:aqe`` / ``on:kreciprocal`` with that re-ranking of the top 100; a third
part names the region (``on:none:auto``; default ``multi``, the server's default: the whole
photo and each piece found). One server per setup, in turn, on the same catalog rows. The query
photo is a demo piece pasted small onto a textured 640x480 scene, so the localiser finds it.

``--old-tree SRC`` (the ``src`` of another checkout, e.g. a worktree of the commit before a change)
times the old code against this tree side by side: for each setup one server per tree, each on
its own copy of the same catalog, both up at once, and the image queries alternate between them
query by query (the order flipped each time), so machine noise hits both alike; it prints each
tree's row and the ratio new/old of the medians.
Usage: python benchmarks/bench_api.py [--items 10000 100000] [--queries 200] [--setups off on on:none:auto]
       [--old-tree /tmp/old/src]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_catalog import build  # noqa: E402

QUERIES = ["oval sapphire pendant", "rose gold hoop earrings", "diamond solitaire ring", "pearl necklace",
           "emerald cut emerald ring in platinum", "tennis bracelet", "gold chain", "ruby studs"]


def wait_ready(url: str, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/api/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("server did not become ready")


def multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def timed(request_factory, n: int) -> np.ndarray:
    out = []
    for i in range(n):
        request = request_factory(i)
        t = time.perf_counter()
        with urllib.request.urlopen(request) as r:
            r.read()
        out.append(time.perf_counter() - t)
    return np.array(out) * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--setups", nargs="+", default=["off", "on"],
                        help="off | on | on:aqe | on:kreciprocal (instance vectors, re-ranking)")
    parser.add_argument("--old-tree", default=None, help="src of another checkout: time it against this tree")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from jewelsearch.embed import load_encoder
    encoder = load_encoder("jewelclip-lite0")
    rng = np.random.default_rng(0)
    photo = io.BytesIO()
    from jewelsearch.ingest.demo import demo_dir
    piece = Image.open(sorted(demo_dir().glob("images/*"))[0]).convert("RGB").resize((160, 160))
    scene = Image.fromarray((120 + rng.normal(0, 25, (480, 640, 3))).clip(0, 255).astype(np.uint8))
    scene.paste(piece, (400, 250))
    scene.save(photo, format="JPEG")
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}, model {encoder.model_id}")
    from jewelsearch.embed.instance import InstanceHead
    from jewelsearch.storage.embeddings import space_key
    head = InstanceHead.load(encoder.folder, encoder.model.visual)
    print(f"{'items':>8} {'setup':<15} {'index':<12} {'text p50':>9} {'text p99':>9} {'image p50':>10} "
          f"{'image p99':>10} {'repeated text p50':>18}  (ms)")
    if args.old_tree:
        side_by_side(args, encoder, head, photo.getvalue())
        return
    for n, setup in [(n, setup) for n in args.items for setup in args.setups]:
        instance, rerank, region = (setup.split(":") + ["", ""])[:3]
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            build(home, n, encoder.model_id, encoder.dim, instance_key=space_key(encoder.model_id, head.space_id),
                  instance_dim=head.dim).close()
            env = dict(os.environ, JEWELSEARCH_HOME=str(home), JEWELSEARCH_INSTANCE_VECTORS=str(instance == "on"),
                       JEWELSEARCH_RERANK=rerank or "none")
            server = subprocess.Popen([sys.executable, "-m", "jewelsearch.cli", "serve", "--port", str(args.port),
                                       "--threads", "4", "--no-rate-limits"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            try:
                url = f"http://127.0.0.1:{args.port}"
                wait_ready(url)
                import json
                with urllib.request.urlopen(url + "/api/stats") as r:
                    stats = json.loads(r.read())
                kind = stats["index_kind"] + (f"+{stats['instance']['index_kind']}" if stats["instance"] else "")
                text = lambda i: url + "/api/search?k=10&q=" + urllib.parse.quote(QUERIES[i % len(QUERIES)] + f" {i}")  # noqa: E731
                body, ctype = multipart(photo.getvalue())
                region_query = f"&region={region}" if region else ""
                image = lambda i: urllib.request.Request(url + "/api/search?k=10" + region_query, data=body,  # noqa: E731
                                                         headers={"Content-Type": ctype})
                timed(text, 10), timed(image, 5)  # warm-up
                t = timed(text, args.queries)
                im = timed(image, max(20, args.queries // 4))
                # The same few texts again, as when a shopper changes a filter or the page: the
                # server keeps recent texts' vectors, so these skip the text encoder.
                repeated = lambda i: url + "/api/search?k=10&q=" + urllib.parse.quote(QUERIES[i % len(QUERIES)])  # noqa: E731
                timed(repeated, len(QUERIES))
                again = timed(repeated, args.queries)
                print(f"{n:>8} {setup:<15} {kind:<12} {np.percentile(t, 50):>9.1f} {np.percentile(t, 99):>9.1f} "
                      f"{np.percentile(im, 50):>10.1f} {np.percentile(im, 99):>10.1f} "
                      f"{np.percentile(again, 50):>18.1f}", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)


def start_server(home: Path, port: int, tree: str, instance: str, rerank: str) -> subprocess.Popen:
    env = dict(os.environ, JEWELSEARCH_HOME=str(home), JEWELSEARCH_INSTANCE_VECTORS=str(instance == "on"),
               JEWELSEARCH_RERANK=rerank or "none", PYTHONPATH=tree)
    return subprocess.Popen([sys.executable, "-m", "jewelsearch.cli", "serve", "--port", str(port),
                             "--threads", "4", "--no-rate-limits"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def side_by_side(args, encoder, head, photo: bytes) -> None:
    """Image queries against the old tree's server and this tree's, alternating query by query."""
    from jewelsearch.storage.embeddings import space_key
    trees = {"old": str(Path(args.old_tree).resolve()), "new": str(Path(__file__).resolve().parents[1] / "src")}
    print(f"old tree {trees['old']}, new tree {trees['new']}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'items':>8} {'setup':<15} {'tree':<5} {'image p50':>10} {'image p90':>10} {'image p99':>10}  (ms)")
    body, ctype = multipart(photo)
    for n, setup in [(n, setup) for n in args.items for setup in args.setups]:
        instance, rerank, region = (setup.split(":") + ["", ""])[:3]
        region_query = f"&region={region}" if region else ""
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp) / "base"
            build(base, n, encoder.model_id, encoder.dim, instance_key=space_key(encoder.model_id, head.space_id),
                  instance_dim=head.dim).close()
            servers, urls = {}, {}
            try:
                for offset, name in enumerate(trees):
                    home = Path(tmp) / name
                    shutil.copytree(base, home)
                    urls[name] = f"http://127.0.0.1:{args.port + offset}"
                    servers[name] = start_server(home, args.port + offset, trees[name], instance, rerank)
                for url in urls.values():
                    wait_ready(url)
                request = {name: (lambda i, url=url: urllib.request.Request(  # noqa: E731
                    url + "/api/search?k=10" + region_query, data=body, headers={"Content-Type": ctype}))
                    for name, url in urls.items()}
                for name in trees:
                    timed(request[name], 5)  # warm-up
                times: dict[str, list[float]] = {name: [] for name in trees}
                count = max(20, args.queries)
                for i in range(count):
                    for name in (("old", "new") if i % 2 else ("new", "old")):
                        times[name].append(float(timed(request[name], 1)[0]))
                for name in trees:
                    t = np.array(times[name])
                    print(f"{n:>8} {setup:<15} {name:<5} {np.percentile(t, 50):>10.1f} {np.percentile(t, 90):>10.1f} "
                          f"{np.percentile(t, 99):>10.1f}", flush=True)
                ratio = np.median(times["new"]) / np.median(times["old"])
                print(f"{n:>8} {setup:<15} new/old p50 {ratio:.3f}; load average {os.getloadavg()[0]:.2f}", flush=True)
            finally:
                for server in servers.values():
                    server.terminate()
                    server.wait(timeout=30)


if __name__ == "__main__":
    import urllib.parse  # noqa: F401
    main()
