"""Helpers for tests that run `jewelsearch serve` as a real subprocess on loopback."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
import urllib.request
import uuid


def _ephemeral_range() -> range:
    try:
        low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port() -> int:
    """A free loopback port outside the kernel's ephemeral range (and outside Ray's worker ports,
    10002-19999). A port the kernel handed out with bind(0) is free only until the next process asks
    for an ephemeral port: Ray's many processes did, and took it before Serve's proxy bound it."""
    ephemeral = _ephemeral_range()
    candidates = [port for port in range(20000, 32768) if port not in ephemeral]
    for port in random.sample(candidates, len(candidates)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port between 20000 and 32767")


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
