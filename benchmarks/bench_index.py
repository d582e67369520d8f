"""Index kinds at 100k and 1M clustered 256-d vectors: build time, latency, recall, memory.

For each size, the kind the chooser picks at the default 2 GiB budget is
measured, plus IVF-PQ (what a tighter budget picks).  Recall@10 is against
exact brute force on held-out queries.  Prints figures; asserts nothing.

``--dim`` measures another width (the instance vectors of the default head are 1280-d).
``--instance-dim D`` then prints, side by side, the memory per item of one vector (the
256-d text-aligned index) and of two (that index plus a D-d instance index, each of the kind
the chooser picks at the budget), as the chooser estimates it for 10k to 10M items.
Usage: python benchmarks/bench_index.py [--sizes 100000 1000000] [--queries 300] [--dim 256]
       [--instance-dim 1280]
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
BUDGET = 2 << 30


def clustered(n, seed, clusters=2000, noise=0.35, dim=DIM):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centres[rng.integers(0, clusters, m)] + noise * rng.normal(size=(m, dim)).astype(np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def two_vector_memory(instance_dim: int) -> None:
    """Bytes per item the chooser estimates for one index (256-d) and for two (plus the instance
    index), each at the kind it picks within the default budget."""
    print(f"\nmemory per item, one vector ({DIM}-d) vs two (+ {instance_dim}-d instance), chooser's "
          f"estimate at the {BUDGET >> 30} GiB budget per index")
    print(f"{'items':>10} {'kind':<6} {'bytes/item':>10} {'instance kind':<13} {'bytes/item':>10} "
          f"{'both':>8} {'x one':>6}")
    for n in (10_000, 50_000, 100_000, 1_000_000, 10_000_000):
        one = choose_kind(n, DIM, BUDGET)
        two = choose_kind(n, instance_dim, BUDGET)
        one_bytes = estimated_bytes(one.kind, n, DIM, default_params(one.kind, n, DIM)) / n
        two_bytes = estimated_bytes(two.kind, n, instance_dim, default_params(two.kind, n, instance_dim)) / n
        print(f"{n:>10} {one.kind:<6} {one_bytes:>10.0f} {two.kind:<13} {two_bytes:>10.0f} "
              f"{one_bytes + two_bytes:>8.0f} {(one_bytes + two_bytes) / one_bytes:>6.1f}")


def exact_top10(queries, vectors):
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index.search(queries, 10)[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--kinds", nargs="+", default=None, help="Measure only these kinds.")
    parser.add_argument("--dim", type=int, default=DIM, help="Vector width (1280: the default instance head).")
    parser.add_argument("--instance-dim", type=int, default=None,
                        help="Also print the memory per item of one index vs two (this width for the second).")
    args = parser.parse_args()
    dim = args.dim
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, faiss {faiss.__version__}, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"{'n':>9} {'kind':<6} {'chosen':<7} {'build s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'recall@10':>9} {'bytes/vec':>9}")
    for n in args.sizes:
        data = clustered(n + args.queries, seed=n, dim=dim)
        vectors, queries = data[:n], data[n:]
        ids = np.arange(n, dtype=np.int64)
        truth = exact_top10(queries, vectors)
        chosen = choose_kind(n, dim, BUDGET).kind
        kinds = args.kinds or ([chosen] + [k for k in ("ivfpq",) if k != chosen])
        for kind in kinds:
            source = (lambda wanted: vectors[wanted]) if kind == "ivfpq" else None
            params = default_params(kind, n, dim)
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
    print(f"(estimated bytes/vector used by the chooser at 1M, {dim}-d: flat {estimated_bytes('flat', 1, dim)}, "
          f"hnsw {estimated_bytes('hnsw', 1, dim)}, ivfpq ~{estimated_bytes('ivfpq', 10**6, dim) // 10**6})")
    if args.instance_dim:
        two_vector_memory(args.instance_dim)


if __name__ == "__main__":
    main()
