"""The mixed-traffic load driver shared by benchmarks/bench_load.py and tests/test_load.py.

C client threads for D seconds against a running server: 80 % text/image searches,
15 % recommendations, 5 % item writes and events. Every 2xx item write is read back
afterwards (a missing or different item is a lost write), and every search answer is
checked to hold exactly k results, because a half-built index would return fewer.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

TEXTS = ["oval sapphire pendant", "rose gold hoops", "diamond ring", "pearl necklace", "emerald earrings",
         "tennis bracelet", "blue topaz", "platinum band", "ruby studs", "amethyst three-stone ring"]
K = 10


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


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    writes_acknowledged: int = 0
    writes_lost: int = 0
    short_search_answers: int = 0  # searches that returned fewer than k results
    transport_errors: int = 0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(v for k, v in self.statuses.items() if k >= 500)

    def percentile(self, kind: str, q: float) -> float:
        return float(np.percentile(self.latencies_ms[kind], q))


def _build_request(url: str, key: str, rng: random.Random, item_ids: list[int], client: int):
    roll = rng.random()
    if roll < 0.55:
        return "text", urllib.request.Request(url + f"/api/search?k={K}&q=" + urllib.parse.quote(rng.choice(TEXTS))), None
    if roll < 0.80:
        body, ctype = multipart({"k": str(K)}, image_bytes(rng.randrange(10**6)))
        return "image", urllib.request.Request(url + "/api/search", data=body, headers={"Content-Type": ctype}), None
    if roll < 0.95:
        return "recommend", urllib.request.Request(  # a shopper's recommendations need the key
            url + f"/api/users/load-{rng.randrange(200)}/recommendations?k={K}", headers={"X-API-Key": key}), None
    if roll < 0.975:
        title = f"load-{client}-{uuid.uuid4().hex[:8]}"
        body, ctype = multipart({"title": title, "category": "ring"}, image_bytes(rng.randrange(10**6)))
        return "item_write", urllib.request.Request(
            url + "/api/items", data=body, headers={"Content-Type": ctype, "X-API-Key": key}), title
    body = json.dumps({"user_id": f"load-{rng.randrange(200)}", "item_id": rng.choice(item_ids),
                       "kind": rng.choice(["view", "like", "purchase"])}).encode()
    return "event", urllib.request.Request(
        url + "/api/events", data=body, headers={"Content-Type": "application/json", "X-API-Key": key}), None


def run_load(url: str, key: str, *, clients: int, seconds: float) -> LoadResult:
    """Drive the server at ``url`` (which must already hold ≥ k items) and read every write back."""
    with urllib.request.urlopen(url + "/api/items?limit=500") as r:
        item_ids = [i["id"] for i in json.loads(r.read())["items"]]
    if len(item_ids) < K:
        raise ValueError(f"the catalog needs at least {K} items for the exact-k check")
    result = LoadResult(seconds=seconds)
    lock = threading.Lock()
    written: list[tuple[int, str]] = []
    deadline = time.time() + seconds

    def client(n: int):
        rng = random.Random(n)
        while time.time() < deadline:
            kind, request, title = _build_request(url, key, rng, item_ids, n)
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as r:
                    payload, status = r.read(), r.status
            except urllib.error.HTTPError as exc:
                payload, status = exc.read(), exc.code
            except OSError:
                with lock:
                    result.transport_errors += 1
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            with lock:
                result.latencies_ms.setdefault(kind, []).append(elapsed_ms)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if kind == "item_write" and status == 201:
                    written.append((json.loads(payload)["id"], title))
                if kind in ("text", "image") and status == 200 and len(json.loads(payload)["results"]) != K:
                    result.short_search_answers += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.writes_acknowledged = len(written)
    for item_id, title in written:
        try:
            with urllib.request.urlopen(f"{url}/api/items/{item_id}") as r:
                result.writes_lost += json.loads(r.read())["title"] != title
        except urllib.error.HTTPError:
            result.writes_lost += 1
    return result
