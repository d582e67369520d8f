"""The ceiling for read replicas on this machine: one serving process against two plain ones.

Question: while one ``jewelsearch serve`` process answers the Ray benchmark's text queries (and
a writer adds 1 item/s + 4 events/s), how many cores does it use, and on which threads? And how
many queries/s do two plain serving processes (no Ray; each with one torch thread) give with the
same clients split between them? That second figure bounds what any replica layer can reach.

Setups, alternated within each round (the same clients, the same query stream):
- ``one``: one ``jewelsearch serve`` (waitress, 8 request threads, one torch thread each);
- ``ray``: ``jewelsearch serve --replicas 2`` (Ray Serve; replicas on this node read the home);
  ``ray-copies`` the same with ``--ship-copies`` (every replica gets shipped copies, as every
  replica did before 2026-12-07, and replicas on other nodes do); ``ray-direct`` the same
  with ``RAY_SERVE_ENABLE_DIRECT_INGRESS=1`` (in Ray 2.60 each replica then listens on a port
  of its own, but the public port still goes through a proxy on the head node);
- ``local``: ``jewelsearch serve --replicas 2 --engine local`` (two reader processes on one
  shared socket, one writer; ``server/local_replicas.py``); ``local-2`` the same with
  ``replica_accept_limit`` 2 and ``local-ungated`` with 0 (a reader accepts whenever the socket
  is ready, as before 2026-12-07's accept gate);
- ``one-torch`` and ``local-torch``: ``one`` and ``local`` with the query text tower on torch
  (``text_query_runtime = "torch"``), the others run it as ``serve`` does by default (OpenVINO);
- ``two``: two ``jewelsearch serve`` processes on copies of the same home; the clients alternate
  between them, the writer writes to the first (the second never sees the writes: this is a
  ceiling, not a product).

CPU is read from ``/proc/<pid>/stat`` for each server process and every process below it (Ray's
raylet, GCS, controller, proxy, replicas, writer), and ``/proc/<pid>/task/*/stat``, before and
after each row, summed by process name: cores used = CPU seconds / wall seconds; the busiest threads are listed. The load generator's
own CPU is reported as well: it shares the same cores.

Usage: python benchmarks/bench_serve_ceiling.py [--setups one two ray ray-direct] [--clients 2 4]
       [--seconds 15] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ray import _start_server, _stop_server, run_load  # noqa: E402  (the same load as the replica benchmark)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def thread_seconds(pid: int) -> dict[str, float]:
    """CPU seconds per thread, keyed by 'name/tid'."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            raw = (task / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[f"{name}/{task.name}"] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Ray's raylet, workers and actors included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def process_name(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    first = raw[0].decode(errors="replace")
    if first.startswith("ray::"):
        return first.split()[0].replace("ServeReplica:jewelsearch:", "")
    joined = " ".join(a.decode(errors="replace") for a in raw)
    if "jewelsearch.cli" in joined:
        return "jewelsearch serve"
    if "multiprocessing.spawn" in joined:
        return "local worker"
    if "resource_tracker" in joined:
        return "multiprocessing tracker"
    return Path(first).name or "?"


def tree_seconds(pid: int) -> dict[int, tuple[str, float]]:
    out = {}
    for member in descendants(pid):
        try:
            out[member] = (process_name(member), cpu_seconds(member))
        except OSError:
            continue
    return out


SETUPS = {"one": (1, None, {}), "two": (2, None, {}), "ray": (1, 2, {}),
          "ray-direct": (1, 2, {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"}),
          "local": (1, 2, {"engine": "local"}),
          "local-ungated": (1, 2, {"engine": "local", "JEWELSEARCH_REPLICA_ACCEPT_LIMIT": "0"}),
          "local-2": (1, 2, {"engine": "local", "JEWELSEARCH_REPLICA_ACCEPT_LIMIT": "2"}), "ray-copies": (1, 2, {"flags": "--ship-copies"}),
          # The query text tower on torch, as before ``text_query_runtime`` (whose default
          # ``auto`` runs it on OpenVINO in every setup above).
          "one-torch": (1, None, {"JEWELSEARCH_TEXT_QUERY_RUNTIME": "torch"}),
          "local-torch": (1, 2, {"engine": "local", "JEWELSEARCH_TEXT_QUERY_RUNTIME": "torch"})}


def start(home: Path, port: int, replicas: int | None = None, env_extra: dict | None = None) -> subprocess.Popen:
    """A setup's server: ``env_extra``'s ``engine`` and ``flags`` become serve options, the rest
    environment variables."""
    env_extra = dict(env_extra or {})
    extra_args = ("--engine", env_extra.pop("engine", "ray"), *env_extra.pop("flags", "").split())
    return _start_server(home, port, replicas, extra_args, env_extra)


def measure(processes: list[subprocess.Popen], urls: list[str], clients: int, seconds: float) -> dict:
    trees_before = [tree_seconds(p.pid) for p in processes]
    threads_before = [thread_seconds(p.pid) for p in processes]
    me_before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    row = run_load(urls, clients, seconds)
    wall = time.perf_counter() - t0
    me_after = resource.getrusage(resource.RUSAGE_SELF)
    trees_after = [tree_seconds(p.pid) for p in processes]
    threads_after = [thread_seconds(p.pid) for p in processes]
    by_name: dict[str, float] = {}
    for before, after in zip(trees_before, trees_after):
        for pid, (name, seconds) in after.items():
            by_name[name] = by_name.get(name, 0.0) + (seconds - before.get(pid, (name, 0.0))[1]) / wall
    row["server_cores"] = sum(by_name.values())
    row["cores_by_process"] = {k: round(v, 3) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1]) if v >= 0.005}
    row["client_cores"] = ((me_after.ru_utime + me_after.ru_stime) - (me_before.ru_utime + me_before.ru_stime)) / wall
    busiest = []
    for tb, ta in zip(threads_before, threads_after):
        used = sorted(((ta[k] - tb.get(k, 0.0)) / wall, k) for k in ta)
        busiest.append([f"{k.split('/')[0]} {c:.2f}" for c, k in used[::-1][:4] if c >= 0.02])
    row["busiest_threads"] = busiest
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--demo-home", type=Path, default=None,
                        help="a home made by `jewelsearch demo` to copy (default: make one, minutes on a busy machine)")
    parser.add_argument("--setups", nargs="+", default=["one", "two"], choices=sorted(SETUPS))
    args = parser.parse_args()
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load", os.getloadavg(), flush=True)
    results: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "demo"
        if args.demo_home:
            shutil.copytree(args.demo_home, base)
        else:
            subprocess.run([sys.executable, "-m", "jewelsearch.cli", "--home", str(base), "demo"], check=True,
                           stdout=subprocess.DEVNULL)
        for round_ in range(args.rounds):
            for setup in (args.setups if round_ % 2 == 0 else args.setups[::-1]):
                count, replicas, env_extra = SETUPS[setup]
                homes = []
                for n in range(count):
                    homes.append(Path(scratch) / f"home-{round_}-{setup}-{n}")
                    shutil.copytree(base, homes[-1])
                ports = [8800 + round_ * 20 + 4 * args.setups.index(setup) + n for n in range(count)]
                processes = [start(h, p, replicas, env_extra) for h, p in zip(homes, ports)]
                urls = [f"http://127.0.0.1:{p}" for p in ports]
                try:
                    run_load(urls, 2, 4)  # warm-up
                    for clients in args.clients:
                        row = measure(processes, urls, clients, args.seconds)
                        row["load"] = os.getloadavg()[0]
                        results.setdefault((setup, clients), []).append(row)
                        print(setup, clients, {k: (round(v, 2) if isinstance(v, float) else v)
                                               for k, v in row.items()}, flush=True)
                finally:
                    for process in processes:
                        _stop_server(process)
    print(f"\n{platform.node()} {os.cpu_count()} CPUs, demo catalog, {args.seconds} s per row, {args.rounds} rounds")
    print("| setup | clients | queries/s | p50 ms | p99 ms | failed | server cores | client cores | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (setup, clients), rows in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        med = {k: statistics.median(r[k] for r in rows) for k in
               ("qps", "p50_ms", "p99_ms", "server_cores", "client_cores", "load")}
        print(f"| {setup} | {clients} | {med['qps']:.1f} | {med['p50_ms']:.0f} | {med['p99_ms']:.0f} | "
              f"{sum(r['failed_queries'] for r in rows)} | {med['server_cores']:.2f} | {med['client_cores']:.2f} | "
              f"{med['load']:.1f} |")
    print("CPU per query (server side, all processes), ms:")
    for (setup, clients), rows in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"  {setup} {clients}: {statistics.median(1000 * r['server_cores'] / r['qps'] for r in rows):.1f}")
    for clients in args.clients:
        one = statistics.median(r["qps"] for r in results[("one", clients)])
        for setup in args.setups[1:]:
            other = statistics.median(r["qps"] for r in results[(setup, clients)])
            print(f"clients {clients}: {setup} / one queries/s = {other / one:.2f}")


if __name__ == "__main__":
    main()
