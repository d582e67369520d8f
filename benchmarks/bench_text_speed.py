"""Text query latency, old tree against new, side by side: in process and over HTTP, with
vector-only search and the word index alone measured in the same processes.

Each tree runs in its own child process (``PYTHONPATH`` = that tree's ``src``) on one shared
synthetic catalog (``synthetic_catalog.py``, item text vectors and a saved blended index), with
the text cache off and torch given the threads ``serve`` gives it (``--torch-threads`` to
override). The parent sends every query to each child in turn (the order rotating query by
query), and each child times, one after another:

- vector only: the text vector, FAISS top k, k rows (``search.query.search_vector``);
- hybrid: the shipped text query (``SearchService.query``);
- the word index alone (``LexicalIndex.search``, limit 200, AND then OR).

Over HTTP each child serves its service with waitress (4 threads); the parent asks the
servers in turn, over one keep-alive connection each. ``--rate-limits`` turns the server's rate
limits on, as ``serve`` has them by default (the text class raised so the bench is never refused);
each tree then counts with its own in-memory storage. Every answer (ids, scores, folded
variants, facets, what was understood) is compared between the children, in process and over
HTTP. ``--setups`` names the children: ``old`` (the ``--old-tree``), ``new`` (this tree) and
``new:inline`` (this tree with no helper thread: every step of a text query in sequence) and
``new:int8`` (this tree with ``text_query_int8``: query texts through the dynamic int8 tower,
vector-only search included) and ``new:poolN`` (this tree with ``HybridSettings.pool`` N). Their
answers differ by design, so only the other setups' answers are compared. ``new:openvino`` is
this tree with the query text tower ``serve`` runs by default (``text_query_runtime``: OpenVINO,
opened as ``serve`` opens it, before the first query here; vector-only search included): its
vectors are torch's within 1e-5, so its answers are compared too, scores within 1e-5 (they are
rounded to 6 decimals, and a vector 1e-7 away can move the last one). ``new:openvinoN`` is the
same with N streams instead of one, ``new:openvinoNpin`` with their threads pinned to cores.

Usage: python benchmarks/bench_text_speed.py --items 100000 --queries 300 --old-tree OLD/src
       [--home DIR (reused when it holds a catalog)] [--old-home DIR] [--setups old new new:openvino] [--rate-limits]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NEW_SRC = HERE.parent / "src"


class InOrder(Executor):
    """Runs each task at once in the calling thread (the tower on the request thread)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        done: Future = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as error:  # handed back through the future, as a pool would
            done.set_exception(error)
        return done


def same_answers(setup: str) -> bool:
    """Whether a setup must answer as the old tree does (int8 and pool setups change rankings)."""
    tower = setup.partition(":")[2]
    return tower in ("", "helper", "inline") or tower.startswith("openvino")


def close(a, b, tolerance: float = 1e-5) -> bool:
    """Equal answers, numbers within ``tolerance``."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y, tolerance) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, int):
        return abs(a - b) <= tolerance
    return a == b


def first_difference(a, b, path: str = "", tolerance: float = 1e-5) -> str | None:
    """Where two answers first differ beyond ``tolerance`` (a path and the two values), or None."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return next((d for k in a if (d := first_difference(a[k], b[k], f"{path}.{k}", tolerance))), None)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return next((d for i, (x, y) in enumerate(zip(a, b))
                     if (d := first_difference(x, y, f"{path}[{i}]", tolerance))), None)
    return None if close(a, b, tolerance) else f"{path}: {json.dumps(a)[:200]} / {json.dumps(b)[:200]}"


def differ_in(answers: dict) -> tuple[bool, bool]:
    """(the torch setups' answers differ at all, any compared setups' differ beyond 1e-5 in a number)."""
    compared = [answer for name, answer in answers.items() if same_answers(name)]
    on_torch = [answer for name, answer in answers.items() if same_answers(name) and ":openvino" not in name]
    exact = len({json.dumps(a, sort_keys=True) for a in on_torch}) > 1
    return exact, any(not close(compared[0], other) for other in compared[1:])


# Not compared: the timing, ``coverage`` (trees before 2026-12-07 evening lack it; it is
# counted from the same candidates the compared ranking, facets and understanding come from), and
# the page's ``offset`` / ``next_offset`` (trees before 2026-12-07 late night lack them; the
# results they describe are compared).
NOT_COMPARED = ("took_ms", "coverage", "offset", "next_offset")


def digest(payload: dict) -> dict:
    """What must not change between trees: everything but ``NOT_COMPARED``."""
    return {key: value for key, value in payload.items() if key not in NOT_COMPARED}


def child(home: Path, tower: str, torch_threads: int | None, rate_limits: bool = False) -> None:
    """Serve commands from stdin, one JSON line each, answering on stdout."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import threading

    import torch
    from waitress import create_server

    from jewelsearch.config import Settings
    from jewelsearch.embed import load_encoder
    from jewelsearch.query.parser import understand
    from jewelsearch.search.query import search_vector
    from jewelsearch.search.service import SearchService
    from jewelsearch.server import create_app
    from jewelsearch.storage import Catalog

    if torch_threads:
        torch.set_num_threads(torch_threads)
    encoder = load_encoder("jewelclip-lite0")
    catalog = Catalog.open(home / "catalog.db", home / "images")
    service = SearchService(catalog, encoder, home / "index", text_cache_size=0)
    state = service.state
    if tower == "inline":
        state.helpers = InOrder()
    if tower == "int8":
        from jewelsearch.embed.query_tower import int8_query_encoder
        from jewelsearch.embed.text_cache import TextVectorCache
        quick = int8_query_encoder(encoder)
        state.text_vectors = TextVectorCache(quick.encode_texts, 0, max_chars=quick.max_text_chars)
    if tower.startswith("openvino"):
        from jewelsearch.embed.query_text_runtime import QueryTextTower
        from jewelsearch.embed.text_cache import TextVectorCache
        from jewelsearch.search.wiring import serve_query_texts
        service.query_encoder = QueryTextTower(encoder)
        settings = Settings(home=home, model="jewelclip-lite0", text_query_runtime="openvino",
                            openvino_cache_dir=str(home / "openvino"), torch_threads=torch_threads or 0)
        # ``openvinoN``: N streams (``openvinoNpin``: their threads pinned to cores).
        option = tower[len("openvino"):]
        runtime = serve_query_texts(settings, service, streams=int(option.removesuffix("pin") or 1),
                                    pinned=option.endswith("pin"))
        if runtime != "openvino":
            raise SystemExit("the OpenVINO text tower could not be opened (see the warning above)")
        state.text_vectors = TextVectorCache(service.query_encoder.encode_texts, 0, max_chars=encoder.max_text_chars)
    if tower.startswith("pool"):
        import dataclasses
        state.hybrid = dataclasses.replace(state.hybrid, pool=int(tower[len("pool"):]))
    limits = {"rate_limits": True, "rate_limit_text": "1000000/minute"} if rate_limits else {"rate_limits": False}
    app = create_app(Settings(home=home, model="jewelclip-lite0", **limits), service, autosave_seconds=None)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    service.query(text="warm up", k=10)
    keeper = getattr(state, "ranking_columns", None)  # trees before the in-memory columns lack it
    if keeper is not None:
        keeper.wait()  # a server reads them once at start; queries are timed after that
    out = sys.stdout
    out.write(json.dumps({"port": server.effective_port, "torch_threads": torch.get_num_threads()}) + "\n")
    out.flush()
    clock = time.perf_counter

    def timed_vector_only(text: str) -> float:
        started = clock()
        search_vector(state, state.text_vectors.vector(text), 10, None, [])
        return clock() - started

    def timed_hybrid(text: str) -> tuple[float, dict]:
        started = clock()
        payload = service.query(text=text, k=10)
        return clock() - started, payload

    for number, line in enumerate(sys.stdin):
        message = json.loads(line)
        text = message["text"]
        if "warm" in message:  # ``--warm``: an untimed query first, so the timed pair finds a busy process
            service.query(text=message["warm"], k=10)
            search_vector(state, state.text_vectors.vector(message["warm"]), 10, None, [])
        # Which search runs first alternates: the first after the child sat idle (while the
        # other setups answered) meets the caches as they left them. With vector-only always
        # first, consecutive runs gave the same tree 1.15x with 2 setups and 1.49x with 3.
        if number % 2 == 0:
            vector_only = timed_vector_only(text)
            hybrid, payload = timed_hybrid(text)
        else:
            hybrid, payload = timed_hybrid(text)
            vector_only = timed_vector_only(text)
        terms = understand(text, state.glossary).terms
        started = clock()
        catalog.lexical.search(terms, limit=state.hybrid.pool)
        lexical = clock() - started
        out.write(json.dumps({"vector only": vector_only * 1000, "hybrid": hybrid * 1000,
                              "word index": lexical * 1000, "answer": digest(payload)}) + "\n")
        out.flush()
    server.close()
    catalog.close()


def prepare(home: Path, items: int) -> None:
    """The synthetic catalog and its saved indexes, so each child opens it without building."""
    if (home / "catalog.db").exists():
        return
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(NEW_SRC))
    from synthetic_catalog import build

    from jewelsearch.embed import load_encoder
    from jewelsearch.search.item_text_space import item_text_key
    from jewelsearch.search.service import SearchService
    encoder = load_encoder("jewelclip-lite0")
    home.mkdir(parents=True, exist_ok=True)
    catalog = build(home, items, encoder.model_id, encoder.dim, text_key=item_text_key(encoder.model_id))
    SearchService(catalog, encoder, home / "index", text_cache_size=0).save(force=True)
    catalog.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--old-tree", type=Path, help="the old tree's src folder (setup 'old')")
    parser.add_argument("--home", type=Path, help="catalog home to build or reuse")
    parser.add_argument("--old-home", type=Path,
                        help="the home setup 'old' opens, where --home's schema is newer than the old tree reads "
                             "(a copy of it at the old schema, sharing its index and images); default --home")
    parser.add_argument("--setups", nargs="+", default=["old", "new", "new:inline"])
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads in each child (default: what serve gives, 1 here)")
    parser.add_argument("--rate-limits", action="store_true",
                        help="serve with rate limits on, as `serve` does by default (a limit the bench never reaches)")
    parser.add_argument("--warm", action="store_true",
                        help="each child answers one other, untimed query just before each timed pair "
                             "(a busy server's state, whatever the number of setups)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tower", default="helper", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.tower, args.torch_threads, args.rate_limits)
        return
    if "old" in args.setups and args.old_tree is None:
        parser.error("the 'old' setup needs --old-tree")
    threads = args.torch_threads or max(1, (os.cpu_count() or 1) // 8)  # serve: cores // request threads
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or Path(scratch) / "home"
        prepare(home, args.items)
        run(args, home, threads)


def report_difference(text: str, answers: dict) -> None:
    """Print where a compared setup's answer differs from the first one's beyond 1e-5."""
    compared = [(name, answer) for name, answer in answers.items() if same_answers(name)]
    for name, answer in compared[1:]:
        where = first_difference(compared[0][1], answer)
        if where:
            print(f"  {text!r}: {compared[0][0]} / {name} differ at {where}", flush=True)


def run(args, home: Path, threads: int) -> None:
    sys.path.insert(0, str(HERE))
    from bench_text_search import queries

    children = {}
    for setup in args.setups:
        tree, _, tower = setup.partition(":")
        src = args.old_tree if tree == "old" else NEW_SRC
        opened = (args.old_home or home) if tree == "old" else home
        env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
        process = subprocess.Popen([sys.executable, __file__, "--child", str(opened), "--tower", tower or "helper",
                                    "--torch-threads", str(threads)] + (["--rate-limits"] if args.rate_limits else []),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        hello = json.loads(process.stdout.readline())
        children[setup] = (process, http.client.HTTPConnection("127.0.0.1", hello["port"]))
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, date {time.strftime('%Y-%m-%d %H:%M')}, "
          f"items {args.items}, queries {args.queries} (distinct, text cache off), torch threads {threads}, "
          f"rate limits {'on' if args.rate_limits else 'off'}, warm {'on' if args.warm else 'off'}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    texts = queries(args.queries)
    # ``--warm``: other texts than the timed ones, so the warm-up never reads a timed query's pages.
    timed = set(texts)
    warm_texts = [t for t in queries(3 * args.queries) if t not in timed] if args.warm else []
    names = list(children)
    timings = {setup: {"vector only": [], "hybrid": [], "word index": [], "http": []} for setup in names}
    differ = {"in process": 0, "in process beyond 1e-5": 0, "over HTTP": 0, "over HTTP beyond 1e-5": 0}
    for i, text in enumerate(texts):
        order = names[i % len(names):] + names[:i % len(names)]
        answers = {}
        for setup in order:
            process, _ = children[setup]
            message = {"text": text, **({"warm": warm_texts[i % len(warm_texts)]} if warm_texts else {})}
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
            reply = json.loads(process.stdout.readline())
            answers[setup] = reply.pop("answer")
            for name, value in reply.items():
                timings[setup][name].append(value)
        for where, count in zip(("in process", "in process beyond 1e-5"), differ_in(answers)):
            differ[where] += count
        report_difference(text, answers)
    print(f"load average after the in-process part {os.getloadavg()[0]:.1f}", flush=True)
    for i, text in enumerate(texts):
        order = names[i % len(names):] + names[:i % len(names)]
        bodies = {}
        for setup in order:
            _, connection = children[setup]
            if warm_texts:  # an untimed request first, as in process
                connection.request("GET", "/api/search?k=10&q=" + urllib.parse.quote(warm_texts[i % len(warm_texts)]))
                connection.getresponse().read()
            started = time.perf_counter()
            connection.request("GET", "/api/search?k=10&q=" + urllib.parse.quote(text))
            response = connection.getresponse()
            body = response.read()
            timings[setup]["http"].append((time.perf_counter() - started) * 1000)
            bodies[setup] = digest(json.loads(body))
        for where, count in zip(("over HTTP", "over HTTP beyond 1e-5"), differ_in(bodies)):
            differ[where] += count
        report_difference(text, bodies)
    print(f"load average at the end {os.getloadavg()[0]:.1f}", flush=True)
    for process, connection in children.values():
        connection.close()
        process.stdin.close()
        process.wait(timeout=120)
    base = names[0]
    for setup in names:
        t = timings[setup]
        vo, hy = statistics.median(t["vector only"]), statistics.median(t["hybrid"])
        print(f"{setup:12s} vector only p50 {vo:6.2f} ms | hybrid p50 {hy:6.2f} p99 {np.percentile(t['hybrid'], 99):6.2f} ms "
              f"({hy / vo:.2f}x vector only; {hy / statistics.median(timings[base]['hybrid']):.2f}x {base}) | "
              f"word index p50 {statistics.median(t['word index']):5.2f} p99 {np.percentile(t['word index'], 99):5.2f} ms | "
              f"HTTP p50 {statistics.median(t['http']):6.2f} p99 {np.percentile(t['http'], 99):6.2f} ms "
              f"({statistics.median(t['http']) / statistics.median(timings[base]['http']):.2f}x {base})", flush=True)
    print(f"queries whose answers differ between the torch setups: in process {differ['in process']} of "
          f"{len(texts)}, over HTTP {differ['over HTTP']}; between any compared setups (OpenVINO too) beyond "
          f"1e-5 in a number: in process {differ['in process beyond 1e-5']}, over HTTP "
          f"{differ['over HTTP beyond 1e-5']}")


if __name__ == "__main__":
    main()
