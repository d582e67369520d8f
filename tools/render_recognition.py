"""How recognition reads a studio render folder, as ingest does for a photos-only catalog:
per attribute, top-1 accuracy against the exact labels, the commonest confusions, and what
ingest fills in (rate, precision) at its threshold and over a sweep.

    python tools/render_recognition.py RENDERS [--model F] [--cache runs/x.npz] [--out report.json]

The features (one tower pass per render) are cached with ``--cache``, so a second model folder
whose heads differ but whose encoder is the same reads the same cache.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jewelsearch.embed import load_encoder
from jewelsearch.evaluate.render_recognition import diagnose
from jewelsearch.train.render_features import RenderFeatures, render_features
from jewelsearch.recognize.builder import load_recognizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("renders", type=Path)
    parser.add_argument("--model", default="jewelclip-lite0", help="model folder or bundled model name")
    parser.add_argument("--cache", type=Path, help="features file: read if it exists, else written")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    recognizer = load_recognizer(load_encoder(str(args.model)), gem_specialist=False)
    if args.cache and args.cache.is_file():
        features = RenderFeatures.load(args.cache)
    else:
        features = render_features(recognizer, args.renders, limit=args.limit)
        if args.cache:
            features.save(args.cache)
    probabilities = recognizer.probabilities(features.embeddings, features.pooled)
    vocabularies = {a: recognizer.vocabulary(a) for a in probabilities}
    report = diagnose(probabilities, vocabularies, features)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
