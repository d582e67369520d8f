"""Mixed-traffic load test over loopback: searches, recommendations, writes and events.

Starts `jewelsearch serve` (API key set) on a copy of HOME, then runs C client threads
for D seconds: 80 % text/image searches, 15 % recommendations, 5 % item writes and
events. Reports request counts, 5xx count, lost writes (2xx item writes missing
afterwards) and latency percentiles. Prints figures; asserts nothing.
Usage: python benchmarks/bench_load.py HOME [--clients 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from load_mix import run_load

KEY = "load-test-key"


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
                               "--threads", "8", "--no-rate-limits"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/api/ready", timeout=1).read()
                break
            except OSError:
                time.sleep(0.5)
        result = run_load(url, KEY, clients=args.clients, seconds=args.seconds)
        print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}; "
              f"{args.clients} clients for {args.seconds:.0f} s against {args.home}")
        print(f"requests {result.requests} ({result.requests / args.seconds:.1f}/s); "
              f"statuses {dict(sorted(result.statuses.items()))}; 5xx {result.server_errors}; "
              f"transport errors {result.transport_errors}; item writes {result.writes_acknowledged}, "
              f"lost {result.writes_lost}; searches with fewer than k results {result.short_search_answers}")
        for kind, values in sorted(result.latencies_ms.items()):
            print(f"  {kind:<11} n={len(values):>5}  p50 {result.percentile(kind, 50):7.1f} ms  "
                  f"p99 {result.percentile(kind, 99):7.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
