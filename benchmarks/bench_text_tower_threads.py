"""The query text tower under concurrent request threads: torch against OpenVINO's tower with
one stream (what ``serve`` compiles) and with one stream per core (threads pinned to cores or
not), each request on one thread.

``serve`` runs each request's tower on one thread (``serving_torch_threads``). An OpenVINO infer
request is not thread-safe, so each request thread gets its own (``embed/openvino_text.py``);
how many run at once is the compiled model's stream count. For 1, 2 and 4 client threads each
runtime encodes distinct benchmark queries one at a time, interleaved round by round; printed:
texts per second and the p50 of one call, with the load average.

Usage: python benchmarks/bench_text_tower_threads.py [--seconds 4] [--rounds 3] [--clients 1 2 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def drive(encode, texts: list[str], clients: int, seconds: float) -> tuple[float, list[float]]:
    """(texts per second, per-call seconds) with ``clients`` threads calling ``encode`` for ``seconds``."""
    calls: list[float] = []
    stop = time.perf_counter() + seconds
    lock = threading.Lock()

    def client(offset: int) -> None:
        mine, i = [], offset
        while time.perf_counter() < stop:
            started = time.perf_counter()
            encode([texts[i % len(texts)]])
            mine.append(time.perf_counter() - started)
            i += clients
        with lock:
            calls.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(calls) / (time.perf_counter() - started), calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    torch.set_num_threads(1)  # serve's one thread per request on this machine
    sys.path.insert(0, str(HERE))
    from bench_text_search import queries

    from jewelsearch.embed import load_encoder, openvino_text
    encoder = load_encoder("jewelclip-lite0")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as cache:
        runtimes = {"torch": encoder.encode_texts}
        for streams, pinned in sorted({(1, False), (cores, False), (cores, True)}):
            tower = openvino_text.open_text_tower(encoder, Path(cache), threads=1, streams=streams, pinned=pinned)
            runtimes[f"openvino, {streams} stream{'s' * (streams > 1)}{', pinned' * pinned}"] = \
                (lambda t: lambda texts: encoder.encode_texts_from_ids(texts, t))(tower)
        texts = queries(400)
        for encode in runtimes.values():
            drive(encode, texts, 1, 0.5)  # warm up
        print(f"machine: {platform.node()} {cores} cpus, date {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{args.rounds} rounds of {args.seconds:g} s, load average {os.getloadavg()[0]:.1f}", flush=True)
        rates = {(name, c): [] for name in runtimes for c in args.clients}
        calls = {(name, c): [] for name in runtimes for c in args.clients}
        for round_ in range(args.rounds):
            for clients in args.clients:
                names = list(runtimes)
                for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                    rate, durations = drive(runtimes[name], texts, clients, args.seconds)
                    rates[name, clients].append(rate)
                    calls[name, clients].extend(durations)
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        for clients in args.clients:
            base = statistics.median(rates["torch", clients])
            for name in runtimes:
                rate = statistics.median(rates[name, clients])
                print(f"{clients} client(s) {name:31s} {rate:7.1f} texts/s ({rate / base:.2f}x torch) | "
                      f"one call p50 {statistics.median(calls[name, clients]) * 1000:6.2f} ms", flush=True)


if __name__ == "__main__":
    main()
