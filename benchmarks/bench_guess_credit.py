"""What weighing recognition's guesses (``HybridSettings.guess_full_at``) costs a text query's
attribute scoring on a photos-only catalog, where every item carries guesses: the column form
(``search.attribute_match.attribute_scores``) over a query's candidates, with the guesses
weighed and without, side by side in one process, and the memory the guess columns take.

A synthetic catalog of ``--items`` photos-only rings (three guesses each for metal, gemstone and
cut, drawn with seed 0); ``--candidates`` of them scored for "platinum oval sapphire ring" (four
understood fields, a gem family), ``--repeats`` times per setting, the settings alternating.

    python benchmarks/bench_guess_credit.py --items 100000 --candidates 400 --repeats 300
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
import tracemalloc

import numpy as np

from jewelsearch.search.attribute_match import attribute_scores
from jewelsearch.search.ranking_columns import ColumnsBuilder
from jewelsearch.storage.items import MAX_GUESSES

METALS = ("yellow gold", "white gold", "rose gold", "silver", "platinum")
GEMS = ("diamond", "ruby", "sapphire blue", "sapphire pink", "emerald", "opal", "pearl", "amethyst")
CUTS = ("round", "oval", "pear", "cushion", "princess")
BOOSTS = {"category": ("ring",), "metal": ("platinum",), "gemstone": ("sapphire blue", "sapphire pink"),
          "stone_shape": ("oval",)}
PREFERRED = {"gemstone": ("sapphire blue",)}


def photos_only_rows(count: int, rng: random.Random) -> list[dict]:
    def guesses(values):
        picks = rng.sample(values, MAX_GUESSES)
        chances = sorted((rng.random() for _ in range(MAX_GUESSES)), reverse=True)
        return tuple((value, round(p, 4)) for value, p in zip(picks, chances))

    rows = []
    for item in range(count):
        guessed = {"metal": guesses(METALS), "gemstone": guesses(GEMS), "stone_shape": guesses(CUTS)}
        rows.append({"id": item + 1, "title": "", "category": "ring", "metal": guessed["metal"][0][0],
                     "gemstone": None, "stone_shape": None, "price": None,
                     "predicted": frozenset({"category", "metal"}), "guesses": guessed})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(0)
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, date {time.strftime('%Y-%m-%d %H:%M')}, "
          f"items {args.items}, candidates {args.candidates}, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = photos_only_rows(args.items, rng)
    tracemalloc.start()
    columns = ColumnsBuilder().build(1, rows)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    guess_bytes = sum(array.nbytes for kind in (columns.guess_codes, columns.guess_p) for array in kind.values())
    print(f"columns: {held / args.items:.0f} bytes an item held, of which the guesses {guess_bytes / args.items:.0f}")
    candidates = np.array(sorted(rng.sample(range(args.items), args.candidates)))
    times: dict[str, list[float]] = {"top guess only (None)": [], "guesses weighed (0.5)": []}
    for _ in range(args.repeats):
        for name, full_at in (("top guess only (None)", None), ("guesses weighed (0.5)", 0.5)):
            started = time.perf_counter()
            attribute_scores(columns, candidates, BOOSTS, 0.5, PREFERRED, full_at)
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times["top guess only (None)"])
    for name, taken in times.items():
        median = statistics.median(taken)
        print(f"{name:24s} p50 {1000 * median:.3f} ms per call ({median / base:.2f}x)")


if __name__ == "__main__":
    main()
