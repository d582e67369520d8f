"""Box AP, piece and stone mask IoU of localisers on the same held-out composites.

The held-out scenes are made as `train localizer` makes its own: held-out render cut-outs
(every seventh) and, with --products, products/val photos cut from their white sweep, pasted
onto procedural and (with --worn) real background scenery. They are made once and judged by
every model folder given, which must share the image tower (the maps are computed once).

    python tools/stone_iou.py --renders runs/demo-as-renders --products ../shared/data/products \
        --worn ../shared/data/worn --protect reports/eval/worn_boxes.csv \
        --boxes reports/localizer/worn_background_boxes.csv MODEL [MODEL ...]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from jewelsearch.embed import load_encoder
from jewelsearch.recognize.localizer import Localizer
from jewelsearch.train.composites import render_cutouts
from jewelsearch.train.localizer import (
    background_photos,
    evaluate_scenes,
    held_out_render,
    prepare_scenes,
    product_cutouts,
)
from jewelsearch.train.photo_boxes import read_boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=Path, required=True)
    parser.add_argument("--products", type=Path)
    parser.add_argument("--worn", type=Path)
    parser.add_argument("--protect", type=Path, help="CSV with a path column: photos never used as scenery")
    parser.add_argument("--boxes", type=Path, help="hand-drawn boxes of background-half worn photos")
    parser.add_argument("--scenes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args()
    encoders = [load_encoder(str(m)) for m in args.models]
    if len({e.model_id for e in encoders}) != 1:
        parser.error("the model folders must share the image tower (one model id)")
    cutouts = render_cutouts(args.renders, keep=held_out_render)
    if args.products:
        cutouts += product_cutouts(args.products, "val")
    protected = set()
    if args.protect:
        with open(args.protect, newline="") as fh:
            protected = {row["path"] for row in csv.DictReader(fh)}
    boxes = read_boxes(args.boxes) if args.boxes else None
    photos = background_photos(args.worn, protected, boxes)
    scenes = prepare_scenes(encoders[0], cutouts, args.scenes, args.seed, photos=photos)
    results = {}
    for model, encoder in zip(args.models, encoders):
        localizer = Localizer.load(encoder, encoder.folder)
        if localizer is None:
            parser.error(f"{model} has no localiser")
        results[str(model)] = dict(evaluate_scenes(localizer, scenes), stone_branch=localizer.stone_branch is not None)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
