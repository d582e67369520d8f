"""Helpers for tests that run `jewelsearch serve` as a real subprocess on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, *extra_args: str) -> tuple[subprocess.Popen, str]:
    """`jewelsearch serve` on a free port, returned once /api/ready answers. Rate limits are off:
    these tests load the server from one address far past a shopper's allowance."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "jewelsearch.cli", "serve", "--port", str(port),
                               "--no-rate-limits", *extra_args],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/api/ready", timeout=1).read()
            return server, url
        except OSError:
            assert time.time() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)


def post_item(url: str, image: bytes, title: str, key: str, timeout: float = 10):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{title}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "/api/items", data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "X-API-Key": key})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()
