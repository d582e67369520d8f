"""Serving latency with torch's intra-op threads at every core vs. `serve`'s default, side by side.

`jewelsearch serve` runs each request on a waitress worker thread. This starts the server on
one synthetic catalog twice per round, alternating: once with ``JEWELSEARCH_TORCH_THREADS``
set to the machine's core count (torch's own default, what `serve` used before), once with
`serve`'s default (the cores shared out among the request threads). It times text and image
queries one at a time (p50) and text queries from 4 concurrent clients (queries per second).
The query photo is a bundled demo render, so the localiser finds a piece and crops it.

Usage: python benchmarks/bench_serve_threads.py [--items 10000] [--rounds 2] [--queries 100]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_api import multipart, timed, wait_ready  # noqa: E402
from synthetic_catalog import build  # noqa: E402

DEMO_IMAGES = Path(__file__).resolve().parent.parent / "src" / "jewelsearch" / "demo" / "images"


def concurrent_rate(url: str, clients: int, per_client: int) -> float:
    """Text queries per second with ``clients`` clients each sending ``per_client`` in turn."""
    def client(c: int) -> None:
        for i in range(per_client):
            query = urllib.parse.quote(f"gold ring {c} {i}")
            with urllib.request.urlopen(f"{url}/api/search?k=10&q={query}") as r:
                r.read()
    workers = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return clients * per_client / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--port", type=int, default=8768)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from jewelsearch.embed import load_encoder
    encoder = load_encoder("jewelclip-lite0")
    photo = io.BytesIO()
    Image.open(sorted(DEMO_IMAGES.iterdir())[3]).convert("RGB").save(photo, format="JPEG")
    body, ctype = multipart(photo.getvalue())
    cores = os.cpu_count() or 1
    setups = {f"torch threads = cores ({cores})": str(cores), "serve's default": None}
    print(f"machine: {platform.node()} {cores} cpus, {time.strftime('%Y-%m-%d')}, model {encoder.model_id}, "
          f"{args.items} items, 8 request threads")
    print(f"{'round':>5} {'setting':<26} {'text p50':>9} {'image p50':>10} {'4-client text q/s':>18}")
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in setups}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        build(home, args.items, encoder.model_id, encoder.dim).close()
        for round_ in range(args.rounds):
            for name, threads in setups.items():
                env = dict(os.environ, JEWELSEARCH_HOME=str(home))
                env.pop("JEWELSEARCH_TORCH_THREADS", None)
                if threads is not None:
                    env["JEWELSEARCH_TORCH_THREADS"] = threads
                server = subprocess.Popen([sys.executable, "-m", "jewelsearch.cli", "serve", "--port",
                                           str(args.port), "--threads", "8", "--no-rate-limits"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    url = f"http://127.0.0.1:{args.port}"
                    wait_ready(url)
                    text = lambda i: f"{url}/api/search?k=10&q=" + urllib.parse.quote(f"pearl necklace {i}")  # noqa: E731
                    image = lambda i: urllib.request.Request(f"{url}/api/search?k=10", data=body,  # noqa: E731
                                                             headers={"Content-Type": ctype})
                    timed(text, 10), timed(image, 5)  # warm-up
                    t = float(np.median(timed(text, args.queries)))
                    im = float(np.median(timed(image, max(20, args.queries // 3))))
                    rate = concurrent_rate(url, 4, max(10, args.queries // 4))
                    results[name].append((t, im, rate))
                    print(f"{round_:>5} {name:<26} {t:>9.1f} {im:>10.1f} {rate:>18.1f}", flush=True)
                finally:
                    server.terminate()
                    server.wait(timeout=30)
    old, new = (np.array(results[name]) for name in setups)
    ratio = np.median(new / old, axis=0)
    print(f"median ratio, serve's default / all cores: text {ratio[0]:.2f}, image {ratio[1]:.2f}, "
          f"4-client rate {ratio[2]:.2f}")


if __name__ == "__main__":
    main()
