"""Worn same-product search by whole-image embedding on all of worn/, model against model.

Each worn photo of a product with at least two photos queries every other worn photo; a hit
is another photo of the same product at rank 1 (R@1) or in the top 10 (R@10). This is the
metric of ``jewelsearch eval``'s ``same_product`` with a larger gallery: evaluation keeps
to the worn products no part of the model trained on, but whole-image search reads only the
tower and the projection, so where neither saw a worn photo every photo is fair. The
queries are split into the evaluated half and the localiser's background half (the products
``localizer.json`` lists), and the first model is compared to each other one with a paired
bootstrap over the queries.

    python tools/worn_replication.py --worn ../shared/data/worn MODEL_A MODEL_B [...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jewelsearch.embed import load_encoder
from jewelsearch.embed.images import load_image_file
from jewelsearch.evaluate.metrics import paired_drop_interval, same_product_hits
from jewelsearch.train.labelled_data import product_of, read_worn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worn", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args()
    records = read_worn(args.worn)
    groups = [r.group or "" for r in records]
    localiser = json.loads((args.models[0] / "localizer.json").read_text())
    background = set(localiser["trained"]["worn_products_seen"])
    half = np.array(["background" if product_of(r) in background else "evaluated" for r in records])
    results: dict = {"photos": len(records), "models": {}}
    per_model = {}
    for model in args.models:
        encoder = load_encoder(model)
        embeddings = encoder.encode_images([load_image_file(r.path).image for r in records])
        at_1, at_10, queries = same_product_hits(embeddings, groups)
        per_model[model] = (at_1, at_10)
        figures = {"queries": len(queries)}
        for name in ("all", "evaluated", "background"):
            mask = np.ones(len(queries), bool) if name == "all" else half[queries] == name
            figures[name] = {"queries": int(mask.sum()), "recall@1": round(float(at_1[mask].mean()), 4),
                             "recall@10": round(float(at_10[mask].mean()), 4)}
        results["models"][str(model)] = figures
        print(model, json.dumps(figures), flush=True)
    base = args.models[0]
    for model in args.models[1:]:
        comparison = {}
        for k, name in ((0, "recall@1"), (1, "recall@10")):
            a, b = per_model[base][k], per_model[model][k]
            low, high = paired_drop_interval(b, a)  # of mean(b) - mean(a), in points
            comparison[name] = {"difference_points": round(100 * float((b - a).mean()), 2),
                                "gained": int((b > a).sum()), "lost": int((b < a).sum()),
                                "interval_points": [round(low, 1), round(high, 1)]}
        results.setdefault("against_first", {})[str(model)] = comparison
        print(model, "against", base, json.dumps(comparison), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
