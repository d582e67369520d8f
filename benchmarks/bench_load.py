"""Mixed-traffic load test over loopback: searches, recommendations, writes and events.

Starts `jewelsearch serve` (API key set) on a copy of HOME, then runs C client threads
for D seconds: 80 % text/image searches, 15 % recommendations, 5 % item writes and
events. Reports request counts, 5xx count, lost writes (2xx item writes missing
afterwards) and latency percentiles. Prints figures; asserts nothing.
Usage: python benchmarks/bench_load.py HOME [--clients 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

KEY = "load-test-key"
TEXTS = ["oval sapphire pendant", "rose gold hoops", "diamond ring", "pearl necklace", "emerald earrings",
         "tennis bracelet", "blue topaz", "platinum band", "ruby studs", "amethyst three-stone ring"]


def image_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).resize((160, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


def multipart(fields: dict, image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
             for k, v in fields.items()]
    parts.append((f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
                  "Content-Type: image/jpeg\r\n\r\n").encode() + image + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("home", type=Path)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    home = work / "home"
    shutil.copytree(args.home, home)
    env = dict(os.environ, JEWELSEARCH_HOME=str(home), JEWELSEARCH_API_KEY=KEY, HF_HUB_OFFLINE="1")
    server = subprocess.Popen([sys.executable, "-m", "jewelsearch.cli", "serve", "--port", str(args.port),
                               "--threads", "8"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/api/ready", timeout=1).read()
                break
            except OSError:
                time.sleep(0.5)
        with urllib.request.urlopen(url + "/api/items?limit=500") as r:
            item_ids = [i["id"] for i in json.loads(r.read())["items"]]
        lock = threading.Lock()
        latencies: dict[str, list[float]] = {}
        statuses: dict[int, int] = {}
        written: list[tuple[int, str]] = []
        deadline = time.time() + args.seconds

        def client(n: int):
            rng = random.Random(n)
            while time.time() < deadline:
                roll = rng.random()
                if roll < 0.55:
                    kind, req = "text", urllib.request.Request(
                        url + "/api/search?k=10&q=" + urllib.parse.quote(rng.choice(TEXTS)))
                elif roll < 0.80:
                    body, ctype = multipart({"k": "10"}, image_bytes(rng.randrange(10**6)))
                    kind, req = "image", urllib.request.Request(url + "/api/search", data=body,
                                                                headers={"Content-Type": ctype})
                elif roll < 0.95:
                    kind, req = "recommend", urllib.request.Request(
                        url + f"/api/users/load-{rng.randrange(200)}/recommendations?k=10")
                elif roll < 0.975:
                    title = f"load-{n}-{uuid.uuid4().hex[:8]}"
                    body, ctype = multipart({"title": title, "category": "ring"}, image_bytes(rng.randrange(10**6)))
                    kind, req = "item_write", urllib.request.Request(
                        url + "/api/items", data=body, headers={"Content-Type": ctype, "X-API-Key": KEY})
                else:
                    body = json.dumps({"user_id": f"load-{rng.randrange(200)}", "item_id": rng.choice(item_ids),
                                       "kind": rng.choice(["view", "like", "purchase"])}).encode()
                    kind, req = "event", urllib.request.Request(
                        url + "/api/events", data=body, headers={"Content-Type": "application/json", "X-API-Key": KEY})
                started = time.perf_counter()
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        payload, status = r.read(), r.status
                except urllib.error.HTTPError as exc:
                    payload, status = exc.read(), exc.code
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.setdefault(kind, []).append(elapsed * 1000)
                    statuses[status] = statuses.get(status, 0) + 1
                    if kind == "item_write" and status == 201:
                        written.append((json.loads(payload)["id"], title))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        lost = 0
        for item_id, title in written:
            try:
                with urllib.request.urlopen(f"{url}/api/items/{item_id}") as r:
                    lost += json.loads(r.read())["title"] != title
            except urllib.error.HTTPError:
                lost += 1
        total = sum(statuses.values())
        print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}; "
              f"{args.clients} clients for {args.seconds:.0f} s against {args.home}")
        print(f"requests {total} ({total / args.seconds:.1f}/s); statuses {dict(sorted(statuses.items()))}; "
              f"5xx {sum(v for k, v in statuses.items() if k >= 500)}; item writes {len(written)}, lost {lost}")
        for kind, values in sorted(latencies.items()):
            v = np.array(values)
            print(f"  {kind:<11} n={len(v):>5}  p50 {np.percentile(v, 50):7.1f} ms  p99 {np.percentile(v, 99):7.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
