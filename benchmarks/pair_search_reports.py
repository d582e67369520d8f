"""Two ``jewelsearch eval search`` reports of the same queries, compared query by query.

For each group (attribute / understanding, per language): mean R-precision@10 in each, the
paired difference (second minus first) with a 95 % bootstrap interval over queries (2,000
resamples, seed 0), and how many queries changed.
Usage: python benchmarks/pair_search_reports.py FIRST/search.json SECOND/search.json
"""
import json, sys
import numpy as np
a, b = (json.load(open(p))["engine"] for p in sys.argv[1:3])
cols = a["query_columns"]
ia, ib = {tuple(r[:3]): r for r in a["query_rows"]}, {tuple(r[:3]): r for r in b["query_rows"]}
assert ia.keys() == ib.keys()
rp = cols.index("r_precision")
for group in sorted({k[2] + "/" + k[1] for k in ia}):
    keys = [k for k in ia if k[2] + "/" + k[1] == group]
    d = np.array([ib[k][rp] - ia[k][rp] for k in keys])
    rng = np.random.default_rng(0)
    boots = [rng.choice(d, len(d)).mean() for _ in range(2000)]
    print(f"{group}: n={len(d)} R-prec@10 {np.mean([ia[k][rp] for k in keys]):.3f} -> {np.mean([ib[k][rp] for k in keys]):.3f}, "
          f"paired diff {d.mean():+.4f} (95% {np.percentile(boots, 2.5):+.4f} to {np.percentile(boots, 97.5):+.4f}), "
          f"queries changed {int((d != 0).sum())}")
