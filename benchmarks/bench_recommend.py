"""Recommendation latency for a heavy user (1,000 events) on a large synthetic catalog.

The catalog has N rows with clustered stored vectors; 200k background events
from 20k other shoppers feed co-engagement and popularity (built once, as the
service caches them).  Times SearchService.recommend in-process: history read,
interests, three candidate sources, blend, MMR and row lookup.
Usage: python benchmarks/bench_recommend.py [--items 100000] [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_catalog import build  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from jewelsearch.embed import load_encoder
    from jewelsearch.search.fitted_factors import fit_factors
    from jewelsearch.search.service import SearchService
    encoder = load_encoder("jewelclip-lite0")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        catalog = build(home, args.items, encoder.model_id, encoder.dim)
        now = time.time()
        kinds = ["view"] * 6 + ["like", "add_to_cart", "purchase"]
        weights = {"view": 1.0, "like": 4.0, "add_to_cart": 6.0, "purchase": 10.0}
        heavy = [("heavy", int(rng.integers(1, 2000)), k, now - float(rng.uniform(0, 90 * 86400)), weights[k])
                 for k in rng.choice(kinds, 1000)]
        background = [(f"u{int(rng.integers(0, 20_000))}", int(rng.integers(1, args.items + 1)), k,
                       now - float(rng.uniform(0, 90 * 86400)), weights[k]) for k in rng.choice(kinds, 200_000)]
        with catalog.database.write() as conn:
            conn.executemany("INSERT INTO events(user_id, item_id, kind, ts, weight) VALUES (?,?,?,?,?)",
                             heavy + background)
        t = time.perf_counter()
        service = SearchService(catalog, encoder, home / "index")
        open_s = time.perf_counter() - t
        t = time.perf_counter()
        service.collaborative_signals()
        signals_s = time.perf_counter() - t
        t = time.perf_counter()
        summary = fit_factors(catalog)
        fit_s = time.perf_counter() - t
        settings = service.recommendations.settings
        weights = settings.blend_weights
        if weights.factors <= 0:
            weights = replace(weights, factors=1.0)
        with_als = replace(settings, blend_weights=weights)
        without_als = replace(settings, blend_weights=replace(weights, factors=0.0))
        for variant in (with_als, without_als):  # warm-up: caches, the factors' first load
            service.recommendations.settings = variant
            service.recommend("heavy", 10)
        times, plain = [], []
        for _ in range(args.repeats):
            for variant, into in ((with_als, times), (without_als, plain)):
                service.recommendations.settings = variant
                t = time.perf_counter()
                result = service.recommend("heavy", 10)
                into.append(time.perf_counter() - t)
        service.recommendations.settings = with_als
        times, plain = np.array(times) * 1000, np.array(plain) * 1000
        cold = []
        for i in range(args.repeats):
            t = time.perf_counter()
            service.recommend(f"newcomer{i}", 10)
            cold.append(time.perf_counter() - t)
        print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}")
        print(f"catalog {args.items} items, index {service.index.kind}; 201,000 events; open {open_s:.1f}s, "
              f"collaborative signals built in {signals_s:.1f}s (cached between requests)")
        print(f"ALS factors fitted offline in {fit_s:.1f}s ({summary['items']} items, {summary['shoppers']} shoppers, "
              f"{summary['factors']} factors; ALS weight {with_als.blend_weights.factors})")
        print(f"heavy user (1,000 events), ALS source on: p50 {np.percentile(times, 50):.1f} ms, "
              f"p99 {np.percentile(times, 99):.1f} ms; off (interleaved): p50 {np.percentile(plain, 50):.1f} ms, "
              f"p99 {np.percentile(plain, 99):.1f} ms; ratio of medians "
              f"{np.percentile(times, 50) / np.percentile(plain, 50):.2f}; {len(result['results'])} results")
        print(f"cold-start user: p50 {1000 * np.percentile(cold, 50):.1f} ms")


if __name__ == "__main__":
    main()
