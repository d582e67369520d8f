"""Metal from the zero-shot text prompts combined with the metal head: top-1 accuracy and the
fills at the metal fill threshold on the tuning renders, and top-1 accuracy on products/val
(paired against the head alone), for combined = softmax(log p_head + w * log p_prompts)
(``recognize.prompt_blend``).

Reads the features ``tools/fill_thresholds.py`` reads (the products/val cache it writes).

    python tools/metal_text_prompts.py --tuning runs/render-heads/renders-tune-renders-4111-all-TAG.npz \
        --demo runs/render-heads/renders-demo-all-TAG.npz --products-cache runs/diag/products-val-gate.npz \
        --out report.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from jewelsearch.embed import load_encoder
from jewelsearch.evaluate.render_recognition import fills
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.recognize.prompt_blend import blend_with_prompts
from jewelsearch.recognize.recognizer import ZERO_SHOT_VOCABULARIES
from jewelsearch.train.render_features import RenderFeatures

sys.path.insert(0, str(Path(__file__).parent))
from fill_thresholds import outcomes, tuning_renders  # noqa: E402  (a sibling tool)

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
ROUNDS = 2000


def metal_probabilities(recognizer, features: RenderFeatures) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """The head's and the prompts' metal probabilities, for the photos whose metal label the
    head can name, with the head's vocabulary and the labels."""
    vocab = recognizer.vocabulary("metal")
    keep = np.array([x.get("metal") in vocab for x in features.labels])
    head = recognizer.probabilities(features.embeddings[keep], features.pooled[keep], attributes=["metal"])["metal"]
    prompts = recognizer.zero_shot_probabilities(features.embeddings[keep], ["metal"])["metal"]
    return head, prompts, vocab, [x["metal"] for x, k in zip(features.labels, keep) if k]


def interval(values: np.ndarray, rng: np.random.Generator) -> list[float]:
    means = values[rng.integers(0, len(values), (ROUNDS, len(values)))].mean(1)
    return [round(float(np.quantile(means, q)), 4) for q in (0.025, 0.975)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuning", type=Path, required=True)
    parser.add_argument("--demo", type=Path, required=True)
    parser.add_argument("--products-cache", type=Path, required=True)
    parser.add_argument("--model", default="jewelclip-lite0")
    parser.add_argument("--threshold", type=float, default=0.5, help="the metal fill threshold")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    # The heads alone: the blend is what is measured.
    recognizer = load_recognizer(load_encoder(str(args.model)), gem_specialist=False, prompt_weights={})
    sets = {"tuning_renders": tuning_renders(args.tuning, args.demo),
            "products_val": RenderFeatures.load(args.products_cache)}
    report: dict = {"threshold": args.threshold, "weights": {}}
    base: dict = {}
    for name, features in sets.items():
        head, prompts, vocab, truth = metal_probabilities(recognizer, features)
        for weight in WEIGHTS:
            probs = blend_with_prompts(head, vocab, prompts, ZERO_SHOT_VOCABULARIES["metal"], weight)
            hits = np.array([vocab[i] == t for i, t in zip(probs.argmax(1), truth)], dtype=float)
            done, right = outcomes(fills(probs, vocab, "metal", features.stone_seen, args.threshold), truth)
            base.setdefault(name, hits)
            rng = np.random.default_rng(0)
            row = {"n": len(truth), "accuracy": round(float(hits.mean()), 4), "interval": interval(hits, rng),
                   "paired_difference": round(float((hits - base[name]).mean()), 4),
                   "difference_interval": interval(hits - base[name], rng),
                   "fill_rate": round(float(done.mean()), 4),
                   "fill_precision": round(float(right.sum() / max(done.sum(), 1)), 4),
                   "net": round(float((2 * right - done).mean()), 4)}
            report["weights"].setdefault(str(weight), {})[name] = row
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
