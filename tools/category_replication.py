"""Category and metal recognition, model against model, on photos `eval model` does not judge.

`eval model` judges worn category on the evaluated half of worn/ (117 photos) and shop
category on products/val (164). A change of heads that trades a few photos on those sets
can be checked again here, on two sets no rule has looked at:

* the worn photos of the localiser's background half (the products ``localizer.json``
  lists), each judged, as in `eval model`, by the fold heads that never trained on its
  product. The localiser boxed these photos in training, so its piece map is better there
  than on unseen photos; that holds for every model compared, so the comparison stays fair;
* the held-out studio renders (every seventh, which no head trains on), judged by the
  shipped heads, with exact labels.

Each model after the first is compared with the first photo by photo: photos it gets right
that the first gets wrong (gained), and the reverse (lost).

    python tools/category_replication.py --worn ../shared/data/worn --renders runs/demo-as-renders \
        MODEL_A MODEL_B [...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jewelsearch.embed import load_encoder
from jewelsearch.embed.vocab import CATEGORY_EQUIVALENT
from jewelsearch.evaluate.recognition import judged_probabilities
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.train.labelled_data import product_of, read_renders, read_worn
from jewelsearch.train.localizer import held_out_render
from jewelsearch.train.photo_embeddings import embed_records
from jewelsearch.train.worn_folds import WornFolds, judge_by_fold

ATTRIBUTES = ("category", "metal")


def correct_per_photo(model: Path, sets: dict[str, list]) -> dict[str, dict[str, list[bool | None]]]:
    """For each set and attribute, per photo: whether the top guess is right (None: no label)."""
    recognizer = load_recognizer(load_encoder(str(model)))
    heads = recognizer.heads
    judge = judge_by_fold(WornFolds.load(recognizer.encoder.folder, heads), heads)
    out: dict = {}
    for name, records in sets.items():
        embeddings, pooled = embed_records(recognizer.embed, records)
        probabilities = judged_probabilities(recognizer, judge, embeddings, records, pooled)
        out[name] = {}
        for attribute in ATTRIBUTES:
            vocabulary = heads.vocabularies[attribute]
            guesses = [vocabulary[i] for i in np.argmax(probabilities[attribute], axis=1)]
            row = []
            for record, guess in zip(records, guesses):
                truth = record.labels.get(attribute)
                truth = CATEGORY_EQUIVALENT.get(truth, truth) if attribute == "category" else truth
                row.append(None if truth is None or truth not in vocabulary else guess == truth)
            out[name][attribute] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worn", type=Path, required=True)
    parser.add_argument("--renders", type=Path, required=True, help="a render folder (labels.jsonl)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args()
    localiser = json.loads((args.models[0] / "localizer.json").read_text())
    background = set(localiser["trained"]["worn_products_seen"])
    sets = {
        "worn_background_half": [r for r in read_worn(args.worn) if product_of(r) in background],
        "held_out_renders": [r for r in read_renders(args.renders, held_out_render) if r.split == "val"],
    }
    results = {name: len(records) for name, records in sets.items()}
    per_model = {str(m): correct_per_photo(m, sets) for m in args.models}
    report: dict = {"photos": results, "models": {}}
    first = per_model[str(args.models[0])]
    for model, found in per_model.items():
        entry = {}
        for name in sets:
            for attribute in ATTRIBUTES:
                row = found[name][attribute]
                base = first[name][attribute]
                judged = [i for i, ok in enumerate(row) if ok is not None]
                if not judged:
                    continue
                right = sum(bool(row[i]) for i in judged)
                entry[f"{name}/{attribute}"] = {
                    "n": len(judged), "right": right, "accuracy": round(right / len(judged), 4),
                    "gained_vs_first": sum(bool(row[i]) and not base[i] for i in judged),
                    "lost_vs_first": sum(bool(base[i]) and not row[i] for i in judged)}
        report["models"][model] = entry
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
