"""Attribute heads against each other on the real photos, paired: the same photos' features
(one tower pass, cached) judged by each model folder's heads.

Sets (as ``eval model`` judges them): products/val (category with pendant counted as
necklace; metal, gemstone and cut on the rows that carry those weak labels) and the held-out
gemstone photos recognised as jewelry (``subject=piece``, answers restricted to the 68 photo
classes). Per set and attribute: each folder's accuracy with a 95 % bootstrap interval over
photos, and each folder's paired difference from the first with its interval. Only the heads
may differ: every folder must share the first one's encoder (same model id).

    python tools/real_photo_heads_check.py --shared ../shared/data --cache runs/real-features.npz FOLDER [FOLDER ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jewelsearch.embed import load_encoder
from jewelsearch.embed.vocab import CATEGORY_EQUIVALENT, GEMSTONE_PHOTO_CLASSES
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.train.labelled_data import evaluation_sets
from jewelsearch.train.photo_embeddings import embed_records

SETS = ("products_val", "gemstones_val")
ROUNDS = 2000


def hits(probabilities: np.ndarray, vocab: list[str], truth: list[str], restrict=None) -> np.ndarray:
    probs = np.asarray(probabilities, dtype=np.float64).copy()
    if restrict is not None:
        probs[:, ~np.isin(vocab, list(restrict))] = -1
    return np.array([vocab[i] == t for i, t in zip(probs.argmax(1), truth)], dtype=float)


def interval(values: np.ndarray, rng: np.random.Generator) -> list[float]:
    means = values[rng.integers(0, len(values), (ROUNDS, len(values)))].mean(1)
    return [round(float(np.quantile(means, 0.025)), 3), round(float(np.quantile(means, 0.975)), 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    encoder = load_encoder(str(args.folders[0]))
    recognizer = load_recognizer(encoder, gem_specialist=False)
    sets = {k: v for k, v in evaluation_sets(shared_root=args.shared).items() if k in SETS}
    if args.cache and args.cache.is_file():
        saved = np.load(args.cache)
        features = {name: (saved[f"{name}_e"], saved[f"{name}_p"]) for name in sets}
    else:
        features = {name: embed_records(recognizer.embed, records) for name, records in sets.items()}
        if args.cache:
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.cache, **{f"{n}_{k}": v for n, (e, p) in features.items() for k, v in (("e", e), ("p", p))})
    report: dict = {"model_id": encoder.model_id, "sets": {}}
    for name, records in sets.items():
        embeddings, pooled = features[name]
        gem_task = name == "gemstones_val"
        attributes = ("gemstone",) if gem_task else ("category", "metal", "gemstone", "cut")
        report["sets"][name] = {}
        for attribute in attributes:
            keep = [i for i, r in enumerate(records) if r.labels.get(attribute)]
            truth = [records[i].labels[attribute] for i in keep]
            if attribute == "category":
                truth = [CATEGORY_EQUIVALENT.get(t, t) for t in truth]
            per_folder = {}
            for folder in args.folders:
                heads = AttributeHeads.load(folder)
                probs = recognizer.with_heads(heads).probabilities(embeddings[keep], pooled[keep],
                                                                   attributes=[attribute])[attribute]
                vocab = heads.vocabularies[attribute]
                known = [j for j, t in enumerate(truth) if t in vocab]
                per_folder[str(folder)] = hits(probs[known], vocab, [truth[j] for j in known],
                                               GEMSTONE_PHOTO_CLASSES if gem_task else None)
            first = per_folder[str(args.folders[0])]
            rng = np.random.default_rng(0)
            report["sets"][name][attribute] = {
                folder: {"n": len(h), "accuracy": round(float(h.mean()), 4), "interval": interval(h, rng),
                         **({} if folder == str(args.folders[0]) else
                            {"paired_difference": round(float((h - first).mean()), 4),
                             "difference_interval": interval(h - first, rng)})}
                for folder, h in per_folder.items()}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
