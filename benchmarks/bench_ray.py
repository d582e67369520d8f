"""Ray ingest against local ingest, and Ray Serve replicas against one server, side by side.

``ingest``: the same shop photos (``/work/shared/data/products``, the first N in path order)
ingested into a fresh home, rounds alternating local (``SearchService.add_items`` in batches of
32, the ``jewelsearch ingest`` path) and Ray (``search/ray_ingest.py`` with ``--workers``
actors on a local cluster of this machine's CPUs, started once before the rounds). Reported:
wall time including the model load(s), and photos/s with the model load excluded: for local the
ingest loop alone, for Ray from the moment the first actor had loaded its model (the other
actors' loads overlap the work, and count).

``serve``: a copy of the demo home served by one ``jewelsearch serve`` process and by
``jewelsearch serve --replicas N``, in turn. For each, C client threads send text queries (no
two alike in a row, so the text cache rarely answers) for D seconds while a writer adds one item
per second and five events per second through the same endpoint. Reported: queries/s, p50 and
p99 latency, failed queries and failed writes.

``write``: the driver's side alone: synthetic finished items written into a fresh store.

Usage: python benchmarks/bench_ray.py ingest [--photos 300] [--rounds 2] [--workers 2]
       python benchmarks/bench_ray.py write [--items 2000] [--rounds 3]
       python benchmarks/bench_ray.py serve [--replicas 2] [--clients 2 4] [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PRODUCTS = Path("/work/shared/data/products")
API_KEY = "bench-key-0123456789"
METALS = ["gold", "silver", "rose gold", "white gold", "platinum", "yellow gold"]
STONES = ["diamond", "sapphire", "emerald", "ruby", "pearl", "amethyst", "opal", "onyx", "topaz", "garnet"]
KINDS = ["ring", "necklace", "earrings", "bracelet", "pendant", "hoops", "studs", "bangle"]
WORDS = ["", "vintage", "small", "oval", "halo", "simple", "chunky", "delicate"]


# ----- ingest ---------------------------------------------------------------------------------

def bench_ingest(args) -> None:
    import ray

    from jewelsearch.config import Settings
    from jewelsearch.ingest.manifest import read_inputs
    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.search.ray_ingest import ray_ingest
    from jewelsearch.search.wiring import open_service

    photos = read_inputs([str(PRODUCTS / "train")])[:args.photos]
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    cluster_start = time.perf_counter() - started
    rows = {"local": [], "ray": []}
    for round_ in range(args.rounds):
        for mode in (("local", "ray") if round_ % 2 == 0 else ("ray", "local")):
            with tempfile.TemporaryDirectory() as scratch:
                settings = Settings(home=Path(scratch) / "home")
                if mode == "local":
                    t0 = time.perf_counter()
                    service = open_service(settings)
                    t1 = time.perf_counter()
                    # The path ``jewelsearch ingest`` takes: decode threads, the model, a writer
                    # thread (``ingest_batches``), in batches of 32. Before 2026-12-07 (evening)
                    # this compared with ``add_items`` per batch, which is not the best local path.
                    batches = ([NewItem(Path(p.path).read_bytes(), p.fields, source_path=p.path)
                                for p in photos[start:start + 32]] for start in range(0, len(photos), 32))
                    for _ in service.ingest_batches(batches):
                        pass
                    service.save()
                    t2 = time.perf_counter()
                    service.catalog.close()
                    rows[mode].append({"wall": t2 - t0, "rate": len(photos) / (t2 - t1)})
                else:
                    t0 = time.perf_counter()
                    report = ray_ingest(settings, photos, workers=args.workers)
                    t2, done_at = time.perf_counter(), time.time()
                    assert report.added == len(photos), report
                    # From the first actor's model being loaded (the second one's load overlaps).
                    rows[mode].append({"wall": t2 - t0, "rate": len(photos) / (done_at - report.first_actor_ready)})
            print(mode, {k: round(v, 2) for k, v in rows[mode][-1].items()}, flush=True)
    ray.shutdown()
    local_rate = statistics.median(r["rate"] for r in rows["local"])
    ray_rate = statistics.median(r["rate"] for r in rows["ray"])
    print(f"\n{platform.node()} {os.cpu_count()} CPUs, {len(photos)} photos, {args.rounds} rounds, "
          f"Ray cluster start {cluster_start:.1f} s (not counted), {args.workers} Ray actors")
    print("| path | wall incl. model load, s (median) | photos/s, model load excluded (median) |")
    print("|---|---|---|")
    for mode in ("local", "ray"):
        print(f"| {mode} | {statistics.median(r['wall'] for r in rows[mode]):.1f} | "
              f"{statistics.median(r['rate'] for r in rows[mode]):.1f} |")
    print(f"ray / local photos/s: {ray_rate / local_rate:.2f}")


# ----- the driver's writes -------------------------------------------------------------------

def bench_write(args) -> None:
    """Finished items per second the driver writes (one transaction per 64, as ``ray_ingest``):
    synthetic items shaped like the default model's (256 + 512 + 256 floats, a 30 kB photo)."""
    import numpy as np

    from jewelsearch.search.finished_items import FinishedItem, write_finished
    from jewelsearch.storage import Catalog
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as scratch:
            catalog = Catalog.open(Path(scratch) / "catalog.db", Path(scratch) / "images")
            items = []
            for n in range(args.items):
                photo = rng.bytes(30_000)
                items.append(FinishedItem(f"/photos/{n}.jpg", f"{n:064x}", {"title": f"gold ring {n}", "category": "ring"},
                                          {"predicted": {"metal": {"label": "gold", "p": 0.9}}}, photo, "jpg",
                                          {"m": rng.random(256, dtype=np.float32), "m#inst": rng.random(512, dtype=np.float32),
                                           "m#text": rng.random(256, dtype=np.float32)}))
            started = time.perf_counter()
            for start in range(0, len(items), 64):
                write_finished(catalog, items[start:start + 64])
            rates.append(len(items) / (time.perf_counter() - started))
            catalog.close()
    print(f"driver writes: {statistics.median(rates):.0f} items/s (median of {args.rounds}: "
          f"{', '.join(f'{r:.0f}' for r in rates)}), {args.items} items per round")


# ----- serve ----------------------------------------------------------------------------------

def _get(url: str, timeout: float = 30.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, "X-API-Key": API_KEY})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _photo(seed: int) -> bytes:
    from PIL import Image
    rng = random.Random(seed)
    image = Image.new("RGB", (96, 96), tuple(rng.randrange(256) for _ in range(3)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def _multipart(fields: dict, image: bytes) -> tuple[bytes, str]:
    boundary = "benchboundary7f3a"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
                 f'Content-Type: image/jpeg\r\n\r\n'.encode() + image + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _queries(seed: int):
    rng = random.Random(seed)
    while True:
        yield " ".join(w for w in (rng.choice(WORDS), rng.choice(METALS), rng.choice(STONES), rng.choice(KINDS)) if w)


_streams = itertools.count(1)


def run_load(url: str | list[str], clients: int, seconds: float) -> dict:
    """C clients send text queries for ``seconds`` while a writer writes; with several ``url``s
    client n queries ``url[n % len(url)]`` and the writer writes to the first. Every client of
    every call gets a query stream of its own: with the same seeds in each call (before
    2026-12-07), half of a row's queries repeated the warm-up's and earlier rows', and a server
    with one warm text cache answered those without the text tower."""
    urls = [url] if isinstance(url, str) else list(url)
    first_stream = 1000 * next(_streams)
    latencies: list[float] = []
    failed = [0, 0]  # queries, writes
    writes = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def client(n: int) -> None:
        for text in _queries(first_stream + n):
            if stop.is_set():
                return
            started = time.perf_counter()
            try:
                status, _ = _get(f"{urls[n % len(urls)]}/api/search?" + urllib.parse.urlencode({"q": text, "k": 10}))
            except OSError:
                status = 0
            with lock:
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    failed[0] += 1

    def writer() -> None:
        n = 0
        while not stop.wait(0.2):
            n += 1
            try:
                if n % 5 == 0:
                    body, kind = _multipart({"title": f"bench ring {n}", "category": "ring"}, _photo(n))
                    status = _post(f"{urls[0]}/api/items", body, kind)
                else:
                    status = _post(f"{urls[0]}/api/events", json.dumps(
                        {"user_id": f"u{n % 7}", "item_id": 1 + n % 500, "kind": "view"}).encode(), "application/json")
            except OSError:
                status = 0
            writes[0] += 1
            if status not in (200, 201):
                failed[1] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)] + [threading.Thread(target=writer)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"qps": len(latencies) / elapsed, "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))], "failed_queries": failed[0],
            "writes": writes[0], "failed_writes": failed[1]}


def _start_server(home: Path, port: int, replicas: int | None, extra_args: tuple[str, ...] = (),
                  env_extra: dict | None = None) -> subprocess.Popen:
    """``jewelsearch serve`` on ``port`` (with replicas if asked), once it answers a search.
    ``extra_args`` go after the replica options (e.g. ``--engine local``)."""
    command = [sys.executable, "-m", "jewelsearch.cli", "--home", str(home), "serve", "--port", str(port),
               "--no-rate-limits"]
    if replicas:
        command += ["--replicas", str(replicas), "--refresh-seconds", "2", *extra_args]
    env = dict(os.environ, JEWELSEARCH_API_KEY=API_KEY, **(env_extra or {}))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if _get(f"http://127.0.0.1:{port}/api/search?q=ring", timeout=5)[0] == 200:
                return process
        except OSError:
            pass
        time.sleep(1)
    _stop_server(process)
    raise RuntimeError(f"the server on port {port} did not answer within 240 s")


def _stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def bench_serve(args) -> None:
    results: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "demo"
        subprocess.run([sys.executable, "-m", "jewelsearch.cli", "--home", str(base), "demo"], check=True,
                       stdout=subprocess.DEVNULL)
        for round_ in range(args.rounds):
            modes = [("one process", None), (f"{args.replicas} replicas", args.replicas)]
            for name, replicas in (modes if round_ % 2 == 0 else modes[::-1]):
                home = Path(scratch) / f"home-{round_}-{replicas or 0}"
                shutil.copytree(base, home)
                port = 8900 + round_ * 10 + (replicas or 0)
                server = _start_server(home, port, replicas)
                try:
                    run_load(f"http://127.0.0.1:{port}", 2, 5)  # warm-up, not counted
                    for clients in args.clients:
                        row = run_load(f"http://127.0.0.1:{port}", clients, args.seconds)
                        results.setdefault((name, clients), []).append(row)
                        print(name, clients, {k: round(v, 1) for k, v in row.items()}, flush=True)
                finally:
                    _stop_server(server)
    print(f"\n{platform.node()} {os.cpu_count()} CPUs, demo catalog, {args.seconds} s per row, "
          f"{args.rounds} rounds; writer: 1 item/s + 4 events/s")
    print("| serving | clients | queries/s | p50 ms | p99 ms | failed queries | writes (failed) |")
    print("|---|---|---|---|---|---|---|")
    for (name, clients), rows in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"| {name} | {clients} | {med['qps']:.1f} | {med['p50_ms']:.0f} | {med['p99_ms']:.0f} | "
              f"{sum(r['failed_queries'] for r in rows)} | {sum(r['writes'] for r in rows)} "
              f"({sum(r['failed_writes'] for r in rows)}) |")
    for clients in args.clients:
        one = statistics.median(r["qps"] for r in results[("one process", clients)])
        many = statistics.median(r["qps"] for r in results[(f"{args.replicas} replicas", clients)])
        print(f"clients {clients}: replicas / one process queries/s = {many / one:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    ingest = sub.add_parser("ingest")
    ingest.add_argument("--photos", type=int, default=300)
    ingest.add_argument("--rounds", type=int, default=2)
    ingest.add_argument("--workers", type=int, default=2)
    write = sub.add_parser("write")
    write.add_argument("--items", type=int, default=2000)
    write.add_argument("--rounds", type=int, default=3)
    serve = sub.add_parser("serve")
    serve.add_argument("--replicas", type=int, default=2)
    serve.add_argument("--clients", type=int, nargs="+", default=[2, 4])
    serve.add_argument("--seconds", type=float, default=20)
    serve.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), flush=True)
    {"ingest": bench_ingest, "write": bench_write, "serve": bench_serve}[args.what](args)


if __name__ == "__main__":
    import urllib.parse  # noqa: F401  (used by run_load)
    main()
