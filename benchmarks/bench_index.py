"""Index kinds at 100k and 1M clustered 256-d vectors: build time, latency, recall, memory.

For each size, the kind the chooser picks at the default 2 GiB budget is
measured, plus IVF-PQ (what a tighter budget picks).  Recall@10 is against
exact brute force on held-out queries.  Prints figures; asserts nothing.
Usage: python benchmarks/bench_index.py [--sizes 100000 1000000] [--queries 300]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import faiss
import numpy as np

from jewelsearch.index import IndexChoice, VectorIndex, choose_kind
from jewelsearch.index.kinds import default_params, estimated_bytes

DIM = 256


def clustered(n, seed, clusters=2000, noise=0.35):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centres[rng.integers(0, clusters, m)] + noise * rng.normal(size=(m, DIM)).astype(np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_top10(queries, vectors):
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)
    return index.search(queries, 10)[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--kinds", nargs="+", default=None, help="Measure only these kinds.")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, faiss {faiss.__version__}, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"{'n':>9} {'kind':<6} {'chosen':<7} {'build s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'recall@10':>9} {'bytes/vec':>9}")
    for n in args.sizes:
        data = clustered(n + args.queries, seed=n)
        vectors, queries = data[:n], data[n:]
        ids = np.arange(n, dtype=np.int64)
        truth = exact_top10(queries, vectors)
        chosen = choose_kind(n, DIM, 2 << 30).kind
        kinds = args.kinds or ([chosen] + [k for k in ("ivfpq",) if k != chosen])
        for kind in kinds:
            source = (lambda wanted: vectors[wanted]) if kind == "ivfpq" else None
            params = default_params(kind, n, DIM)
            t = time.perf_counter()
            index = VectorIndex.build(ids, vectors, IndexChoice(kind, params), source)
            build = time.perf_counter() - t
            latencies, hits = [], 0
            for q, want in zip(queries, truth):
                t = time.perf_counter()
                got, _ = index.search(q, 10)[0]
                latencies.append(time.perf_counter() - t)
                hits += len(set(got.tolist()) & set(want.tolist()))
            latencies = np.array(latencies) * 1000
            serialized = len(index.state()["faiss"])
            per_vec = serialized / n + 8 + 1  # faiss structure + id map + alive flag
            print(f"{n:>9} {kind:<6} {'yes' if kind == chosen else 'no':<7} {build:>8.1f} "
                  f"{np.percentile(latencies, 50):>7.2f} {np.percentile(latencies, 99):>7.2f} "
                  f"{hits / (10 * len(queries)):>9.3f} {per_vec:>9.0f}", flush=True)
            del index
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"(estimated bytes/vector used by the chooser at 1M: flat {estimated_bytes('flat', 1, DIM)}, "
          f"hnsw {estimated_bytes('hnsw', 1, DIM)}, ivfpq ~{estimated_bytes('ivfpq', 10**6, DIM) // 10**6})")


if __name__ == "__main__":
    main()
