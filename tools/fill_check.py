"""What ingest would fill in for gemstone and cut on held-out studio renders, model against model.

Ingest fills a missing gemstone or cut from recognition when the top guess clears the fill
threshold and is not "none" (``ingest.fill_decision``). The renders' labels are exact: a piece
whose gemstone is empty and whose mask has no gem pixel has no stone, so any gemstone filled in
for it is false. Only the renders no head trained on are read (``held_out_render``: every
seventh), through the same recogniser the server builds (pooled maps, recognition top).

    python tools/fill_check.py --renders runs/demo-as-renders MODEL_A MODEL_B [...]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from jewelsearch.embed import load_encoder
from jewelsearch.embed.gem_head import GemSpecialist
from jewelsearch.embed.heads import AttributeHeads
from jewelsearch.embed.images import load_image_file
from jewelsearch.embed.localizer import Localizer
from jewelsearch.embed.recognition_top import load_recognition_top
from jewelsearch.embed.recognize import Recognizer
from jewelsearch.embed.train_localizer import held_out_render
from jewelsearch.ingest import fill_decision


def held_out_scenes(render_dir: Path) -> list[dict]:
    with open(render_dir / "labels.jsonl") as fh:
        rows = [json.loads(line) for line in fh]
    return [r for r in rows if held_out_render(r["index"])]


def outcome(truth: str | None, filled: str | None, plain: bool) -> str:
    if plain:
        return "plain: filled (false)" if filled else "plain: left empty"
    if truth is None:
        return "unlabelled"  # a stone the studio did not record: nothing to judge
    if filled is None:
        return "stone: left empty"
    return "stone: filled right" if filled == truth else "stone: filled wrong"


def check(model: Path, render_dir: Path, scenes: list[dict]) -> dict:
    encoder = load_encoder(str(model))
    recognizer = Recognizer(encoder, AttributeHeads.load(encoder.folder),
                            gem_specialist=GemSpecialist.load(encoder.folder),
                            localizer=Localizer.load(encoder, encoder.folder),
                            recognition_top=load_recognition_top(encoder))
    images = [load_image_file(render_dir / s["image"]).image for s in scenes]
    predictions = recognizer.recognize_images(images)
    counts: dict[str, Counter] = {"gemstone": Counter(), "cut": Counter()}
    false_fills: Counter = Counter()
    for scene, prediction in zip(scenes, predictions):
        plain = not scene.get("gemstone") and scene.get("gem_pixels", 1) == 0
        for attribute in counts:
            filled = fill_decision(prediction[attribute][0])
            counts[attribute][outcome(scene.get(attribute), filled, plain)] += 1
            if plain and filled and attribute == "gemstone":
                false_fills[filled] += 1
    return {"scenes": len(scenes), "plain_scenes": sum(not s.get("gemstone") and s.get("gem_pixels", 1) == 0
                                                       for s in scenes),
            **{attribute: dict(sorted(c.items())) for attribute, c in counts.items()},
            "false_gemstone_fills": dict(false_fills.most_common())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args()
    scenes = held_out_scenes(args.renders)
    results = {str(model): check(model, args.renders, scenes) for model in args.models}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
