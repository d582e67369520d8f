"""Fill thresholds per attribute: what ingest fills in (rate, precision) over a sweep of
thresholds, on the tuning renders and on the real shop photos (products/val) through the same
fill rule, and the threshold the rule in docs/experiments/2026-12-07-fill-thresholds.md picks.

Tuning renders: the seed-4111 renders in the render refit's tuning part
(``splits.in_render_refit_tuning``) and the demo's every-seventh render (``held_out_render``),
read from the features ``train render-heads`` cached. Never the held-out search renders.
Shop photos: products/val, one pass per photo as ingest makes it (embedding, pooled maps and
the localiser's stone gate), cached with ``--products-cache``; weak labels, a photo without one
is left out of that attribute.

    python tools/fill_thresholds.py --tuning runs/render-heads/renders-tune-renders-4111-all-TAG.npz \
        --demo runs/render-heads/renders-demo-all-TAG.npz --products ../shared/data/products \
        --products-cache runs/diag/products-val-gate.npz --out report.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jewelsearch.embed import load_encoder
from jewelsearch.embed.images import load_image_file
from jewelsearch.embed.vocab import CATEGORY_EQUIVALENT
from jewelsearch.evaluate.render_recognition import fills
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.recognize.evidence import stone_seen
from jewelsearch.train.labelled_data import read_products
from jewelsearch.train.render_features import RenderFeatures
from jewelsearch.train.splits import held_out_render, in_render_refit_tuning

ATTRIBUTES = ("category", "metal", "gemstone", "cut")
GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(13))  # 0.30 ... 0.90
TODAY = 0.5
ROUNDS = 2000


def tuning_renders(tuning: Path, demo: Path) -> RenderFeatures:
    seed_part = RenderFeatures.load(tuning)
    demo_part = RenderFeatures.load(demo)
    keep_seed = [in_render_refit_tuning(k) for k in seed_part.keys]
    keep_demo = [held_out_render(int(Path(k).stem)) if Path(k).stem.isdigit() else False for k in demo_part.keys]
    return RenderFeatures.concatenate([seed_part.subset(keep_seed), demo_part.subset(keep_demo)])


def products_val(recognizer, root: Path, cache: Path | None) -> RenderFeatures:
    """products/val as ingest sees it, with its weak labels (None where a label is missing)."""
    if cache is not None and cache.is_file():
        return RenderFeatures.load(cache)
    records = [r for r in read_products(root) if r.split == "val"]
    embeddings, pooled, seen = [], [], []
    for start in range(0, len(records), 16):
        chunk = records[start:start + 16]
        vectors, maps, located = recognizer.embed_and_locate([load_image_file(r.path).image for r in chunk])
        embeddings.append(vectors)
        pooled.append(maps)
        seen.extend(bool(stone_seen(f)) if f is not None else True for f in located or [None] * len(chunk))
    labels = [{a: r.labels.get(a) for a in ATTRIBUTES} for r in records]
    for x in labels:
        x["category"] = CATEGORY_EQUIVALENT.get(x["category"], x["category"])
    features = RenderFeatures([str(r.path) for r in records], labels, np.concatenate(embeddings),
                              np.concatenate(pooled), np.array(seen, dtype=bool))
    if cache is not None:
        features.save(cache)
    return features


def outcomes(filled: list, truth: list) -> tuple[np.ndarray, np.ndarray]:
    """Per photo: filled (0/1) and filled right (0/1)."""
    done = np.array([f is not None for f in filled], dtype=float)
    right = np.array([f is not None and f == t for f, t in zip(filled, truth)], dtype=float)
    return done, right


def figures(done: np.ndarray, right: np.ndarray, rng: np.random.Generator | None = None) -> dict:
    n = len(done)
    out = {"n": n, "fill_rate": round(float(done.mean()), 4),
           "precision": round(float(right.sum() / done.sum()), 4) if done.sum() else None,
           "net": round(float((2 * right - done).mean()), 4)}  # right fills minus wrong fills, per photo
    if rng is not None:
        draws = rng.integers(0, n, (ROUNDS, n))
        rates = done[draws].mean(1)
        precisions = right[draws].sum(1) / np.maximum(done[draws].sum(1), 1)
        out["fill_rate_interval"] = [round(float(np.quantile(rates, q)), 4) for q in (0.025, 0.975)]
        out["precision_interval"] = [round(float(np.quantile(precisions, q)), 4) for q in (0.025, 0.975)]
    return out


def sweep(recognizer, features: RenderFeatures, attribute: str, category_as_necklace: bool) -> dict:
    vocab = recognizer.vocabulary(attribute)
    keep = np.array([x.get(attribute) in vocab for x in features.labels])
    probs = recognizer.probabilities(features.embeddings[keep], features.pooled[keep])[attribute]
    if category_as_necklace and attribute == "category" and "pendant" in vocab:
        # products/val's weak labels do not tell a pendant from a necklace (as ``eval model`` reads them)
        probs = probs.copy()
        probs[:, vocab.index("necklace")] += probs[:, vocab.index("pendant")]
        probs[:, vocab.index("pendant")] = 0
    truth = [x[attribute] for x, k in zip(features.labels, keep) if k]
    seen = features.stone_seen[keep]
    out = {}
    for threshold in GRID:
        done, right = outcomes(fills(probs, vocab, attribute, seen, threshold), truth)
        out[str(threshold)] = figures(done, right, np.random.default_rng(0) if threshold == TODAY else None)
    return out


def choose(render_sweep: dict, real_sweep: dict) -> dict:
    """The rule: the grid threshold with the highest net on the tuning renders among those whose
    products/val fill rate and precision both stay inside today's (0.5) 95 % intervals; a tie
    goes to the threshold nearest 0.5. Today's 0.5 always qualifies."""
    today = real_sweep[str(TODAY)]
    allowed = []
    for key, real in real_sweep.items():
        rate_ok = real["fill_rate"] >= today["fill_rate_interval"][0]
        precision_ok = real["precision"] is None and today["precision"] is None or (
            real["precision"] is not None and real["precision"] >= today["precision_interval"][0])
        if rate_ok and precision_ok:
            allowed.append(key)
    best = max(allowed, key=lambda k: (render_sweep[k]["net"], -abs(float(k) - TODAY)))
    return {"threshold": float(best), "allowed": allowed, "tuning_net_today": render_sweep[str(TODAY)]["net"],
            "tuning_net_chosen": render_sweep[best]["net"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuning", type=Path, required=True)
    parser.add_argument("--demo", type=Path, required=True)
    parser.add_argument("--products", type=Path, required=True)
    parser.add_argument("--products-cache", type=Path)
    parser.add_argument("--model", default="jewelclip-lite0")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    recognizer = load_recognizer(load_encoder(str(args.model)), gem_specialist=False)
    renders = tuning_renders(args.tuning, args.demo)
    real = products_val(recognizer, args.products, args.products_cache)
    report: dict = {"tuning_renders": len(renders.keys), "products_val": len(real.keys),
                    "products_val_stone_seen": int(real.stone_seen.sum()), "attributes": {}}
    for attribute in ATTRIBUTES:
        render_sweep = sweep(recognizer, renders, attribute, False)
        real_sweep = sweep(recognizer, real, attribute, True)
        report["attributes"][attribute] = {"choice": choose(render_sweep, real_sweep),
                                           "tuning_renders": render_sweep, "products_val": real_sweep}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
