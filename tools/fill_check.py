"""What ingest would fill in for gemstone and cut, model against model, with and without the stone gate.

Ingest fills a missing gemstone or cut from recognition when the top guess clears the fill
threshold and is not "none", and (the gate) only where the localiser sees a stone
(``ingest.fill_decision``). Two sets:
* held-out studio renders (``held_out_render``: every seventh, which no head trains on). Their
  labels are exact: a piece whose gemstone is empty and whose mask has no gem pixel has no
  stone, so any gemstone filled in for it is false;
* with ``--products``, the products/val shop photos with a gemstone label (weak labels;
  "none" marks a plain piece).
Photos go through the recogniser the server builds (pooled maps, recognition top), in the
single pass ingest makes (``Recognizer.embed_and_locate``).

    python tools/fill_check.py --renders runs/demo-as-renders [--products ../shared/data/products] MODEL [...]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from jewelsearch.embed import load_encoder
from jewelsearch.embed.images import load_image_file
from jewelsearch.embed.vocab import NO_STONE
from jewelsearch.ingest.pipeline import fill_decision
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.recognize.evidence import stone_seen
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.train.labelled_data import read_products
from jewelsearch.train.localizer import held_out_render


def held_out_scenes(render_dir: Path) -> list[dict]:
    """Held-out renders as {image path, gemstone, cut, plain}."""
    with open(render_dir / "labels.jsonl") as fh:
        rows = [json.loads(line) for line in fh]
    return [{"path": render_dir / r["image"], "gemstone": r.get("gemstone"), "cut": r.get("cut"),
             "plain": not r.get("gemstone") and r.get("gem_pixels", 1) == 0}
            for r in rows if held_out_render(r["index"])]


def shop_photos(products_root: Path) -> list[dict]:
    """products/val photos with a gemstone label, in the same form ("none" is a plain piece)."""
    return [{"path": r.path, "gemstone": r.labels.get("gemstone"), "cut": r.labels.get("cut"),
             "plain": r.labels.get("gemstone") == NO_STONE}
            for r in read_products(products_root) if r.split == "val" and r.labels.get("gemstone")]


def outcome(truth: str | None, filled: str | None, plain: bool) -> str:
    if plain:
        return "plain: filled (false)" if filled else "plain: left empty"
    if truth is None:
        return "unlabelled"  # a stone the studio did not record: nothing to judge
    if filled is None:
        return "stone: left empty"
    return "stone: filled right" if filled == truth else "stone: filled wrong"


def check(recognizer: Recognizer, photos: list[dict]) -> dict:
    images = [load_image_file(p["path"]).image for p in photos]
    # One pass per photo, as ingest makes it: embedding, pooled maps and localisation together.
    vectors, pooled, located = recognizer.embed_and_locate(images)
    predictions = recognizer.recognize_embeddings(vectors, pooled)
    seen = [stone_seen(found) for found in located]
    out: dict = {"photos": len(photos), "plain": sum(p["plain"] for p in photos),
                 "stone_seen": sum(seen), "stone_seen_on_plain": sum(s for s, p in zip(seen, photos) if p["plain"])}
    for gate in (False, True):
        counts: dict[str, Counter] = {"gemstone": Counter(), "cut": Counter()}
        false_fills: Counter = Counter()
        for photo, prediction, stone in zip(photos, predictions, seen):
            for attribute in counts:
                filled = fill_decision(prediction[attribute][0], attribute, stone if gate else None)
                truth = photo[attribute] if photo[attribute] != NO_STONE else None
                counts[attribute][outcome(truth, filled, photo["plain"])] += 1
                if photo["plain"] and filled and attribute == "gemstone":
                    false_fills[filled] += 1
        out["with gate" if gate else "without gate"] = {
            **{attribute: dict(sorted(c.items())) for attribute, c in counts.items()},
            "false_gemstone_fills": dict(false_fills.most_common())}
    return out


def recognizer_for(model: Path) -> Recognizer:
    return load_recognizer(load_encoder(str(model)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=Path, required=True)
    parser.add_argument("--products", type=Path, help="products/ folder: also judge its val shop photos")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args()
    sets = {"held-out renders": held_out_scenes(args.renders)}
    if args.products:
        sets["products/val"] = shop_photos(args.products)
    results = {}
    for model in args.models:
        recognizer = recognizer_for(model)
        results[str(model)] = {name: check(recognizer, photos) for name, photos in sets.items()}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
