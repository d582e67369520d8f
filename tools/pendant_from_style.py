"""Pendants from the style head: recognition's category heads learned pendants as necklaces
(shop photos file them so: ``embed/vocab.CATEGORY_EQUIVALENT``), so a photos-only pendant
is never found by a "pendant" query. The style head, trained on renders, names a "pendant"
style. This measures, on studio render folders, the rule "a piece read as a necklace whose
style head says pendant with p >= t is a pendant": per threshold, how many true pendants and
true necklaces it calls pendants, and category accuracy (pendant and necklace told apart).

    python tools/pendant_from_style.py RENDERS [RENDERS ...] [--cache-dir runs/pendant-style] [--out F]

Features (one tower pass per render, as ingest makes it) are cached per folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jewelsearch.embed import load_encoder
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.train.render_features import RenderFeatures, render_features

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)  # 1.01: the rule never fires (today)


def sweep(recognizer, features: RenderFeatures) -> dict:
    probabilities = recognizer.probabilities(features.embeddings, features.pooled)
    categories = recognizer.vocabulary("category")
    styles = recognizer.vocabulary("style")
    read = [categories[i] for i in probabilities["category"].argmax(axis=1)]
    pendant_p = probabilities["style"][:, styles.index("pendant")]
    truth = [label["category"] for label in features.labels]
    out = {"photos": len(truth), "pendants": truth.count("pendant"), "necklaces": truth.count("necklace"),
           "by_threshold": {}}
    for t in THRESHOLDS:
        called = [("pendant" if r == "necklace" and p >= t else r) for r, p in zip(read, pendant_p)]
        out["by_threshold"][str(t)] = {
            "accuracy": round(float(np.mean([c == y for c, y in zip(called, truth)])), 4),
            "pendants_called_pendant": sum(c == "pendant" and y == "pendant" for c, y in zip(called, truth)),
            "necklaces_called_pendant": sum(c == "pendant" and y == "necklace" for c, y in zip(called, truth)),
            "others_called_pendant": sum(c == "pendant" and y not in ("pendant", "necklace")
                                         for c, y in zip(called, truth))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("renders", type=Path, nargs="+")
    parser.add_argument("--model", default="jewelclip-lite0")
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/pendant-style"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    recognizer = load_recognizer(load_encoder(str(args.model)), gem_specialist=False)
    report = {}
    for folder in args.renders:
        cache = args.cache_dir / f"{folder.name}.npz"
        if cache.is_file():
            features = RenderFeatures.load(cache)
        else:
            features = render_features(recognizer, folder)
            features.save(cache)
        report[folder.name] = sweep(recognizer, features)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
