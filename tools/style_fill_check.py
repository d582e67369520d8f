"""What ingest would fill in as a style on photos without words, and how often it is right.

Ingest fills a style only for an item the shop gave no title or description, within the styles
of the item's category (here: the category recognition would fill in) and above the style
head's threshold (``StyleHead.fill``). Two sets:
* ``--renders DIR``: studio renders with exact style labels (use held-out ones: seed 7919):
  fill rate and precision of the filled styles;
* ``--products DIR``: the products/val shop photos, which carry no style labels: the fill rate
  per predicted category and style, and a sample of filled photos (path, the shop's category
  and description) to look at by eye.
Photos go through the recogniser the server builds, in the single pass ingest makes.

    python tools/style_fill_check.py --renders runs/search-eval-renders --products ../shared/data/products \
        [--limit N] [--out reports/style-fill.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from jewelsearch.embed import load_encoder
from jewelsearch.embed.images import load_image_file
from jewelsearch.ingest.pipeline import fill_decision
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.train.labelled_data import read_products
from jewelsearch.train.style_head import THRESHOLDS

SAMPLE = 24


def style_fills(recognizer: Recognizer, paths: list[Path], batch: int = 32) -> list[dict]:
    """Per photo: the category ingest would fill, the style head's top guess and what is filled."""
    out = []
    for start in range(0, len(paths), batch):
        images = [load_image_file(p).image for p in paths[start:start + batch]]
        vectors, pooled = recognizer.embed(images)
        for prediction in recognizer.recognize_embeddings(vectors, pooled):
            category = fill_decision(prediction["category"][0])
            best = prediction["style"][0]
            out.append({"category": category, "guess": best["label"], "p": best["p"],
                        "filled": recognizer.style_head.fill(best, category)})
    return out


def sweep(recognizer: Recognizer, fills: list[dict], truths: list[str] | None = None) -> list[dict]:
    """Fill rate (and, with ``truths``, precision) at each threshold the trainer considers."""
    head, out = recognizer.style_head, []
    for threshold in THRESHOLDS:
        filled = [(f["guess"], t) for f, t in zip(fills, truths or [None] * len(fills))
                  if f["p"] >= threshold and head.fill({"label": f["guess"], "p": 1.0}, f["category"])]
        row = {"threshold": threshold, "fill_rate": round(len(filled) / max(len(fills), 1), 4)}
        if truths is not None:
            row["precision"] = round(sum(g == t for g, t in filled) / len(filled), 4) if filled else None
        out.append(row)
    return out


def renders(recognizer: Recognizer, folder: Path, limit: int | None) -> dict:
    rows = [json.loads(line) for line in (folder / "labels.jsonl").read_text().splitlines()][:limit]
    fills = style_fills(recognizer, [folder / r["image"] for r in rows])
    filled = [(f["filled"], r["style"]) for f, r in zip(fills, rows) if f["filled"]]
    by_style = Counter(r["style"] for r in rows)
    right_by_style = Counter(truth for got, truth in filled if got == truth)
    return {"photos": len(rows), "filled": len(filled), "fill_rate": round(len(filled) / max(len(rows), 1), 4),
            "precision": round(sum(g == t for g, t in filled) / len(filled), 4) if filled else None,
            "top_guess_accuracy": round(sum(f["guess"] == r["style"] for f, r in zip(fills, rows)) / len(rows), 4),
            "found_per_style": {s: f"{right_by_style[s]}/{n}" for s, n in sorted(by_style.items())},
            "wrong_fills": dict(Counter(f"{t} -> {g}" for g, t in filled if g != t).most_common()),
            "sweep": sweep(recognizer, fills, [r["style"] for r in rows])}


def products(recognizer: Recognizer, root: Path) -> dict:
    records = [r for r in read_products(root) if r.split == "val"]
    fills = style_fills(recognizer, [r.path for r in records])
    filled = [(f, r) for f, r in zip(fills, records) if f["filled"]]
    return {"photos": len(records), "filled": len(filled), "fill_rate": round(len(filled) / max(len(records), 1), 4),
            "filled_by_style": dict(Counter(f["filled"] for f, _ in filled).most_common()),
            "filled_by_shop_category": dict(Counter(r.labels.get("category") for _, r in filled).most_common()),
            "sweep": sweep(recognizer, fills),
            "sample": [{"path": str(r.path.relative_to(root)), "shop_category": r.labels.get("category"),
                        "description": r.description or "", "filled": f["filled"], "p": f["p"]}
                       for f, r in filled[::max(1, len(filled) // SAMPLE)][:SAMPLE]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=Path)
    parser.add_argument("--products", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="at most this many renders")
    parser.add_argument("--model", default="jewelclip-lite0")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    recognizer = load_recognizer(load_encoder(args.model), gem_specialist=False)
    if recognizer.style_head is None:
        parser.error("this model folder has no style head (jewelsearch train style-head)")
    results = {"fill_threshold": recognizer.style_head.fill_threshold}
    if args.renders:
        results["renders"] = renders(recognizer, args.renders, args.limit)
    if args.products:
        results["products/val"] = products(recognizer, args.products)
    text = json.dumps(results, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
