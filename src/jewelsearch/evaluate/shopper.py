"""Shopper photos against a clean catalog, whole photo vs. detected piece.

The worn/ proxy (one worn photo finds the other photos of its product) rewards matching the
shoot: the other photos share the model, the clothes and the backdrop. A shop's real case is
a shopper's photo against clean catalog shots, where nothing but the piece is shared. No
real pairs of that kind exist here, so this builds them: a held-out catalog photo, cut from
its white sweep, is pasted small onto a real worn photo (which keeps its own jewelry, as a
shopper's photo would), and must find its own catalog photo among all of them. The piece
is the catalog photo's own pixels, rotated, relit and resized, so this is closer to
near-duplicate search than real shopper photos are: read it as "does the query look at the
piece", not as real-world recall. The scenery's own jewelry competes with the pasted piece for
the top box, as a second ring or an earring would in a shopper's photo; "box picked by the
shopper" searches the listed box on the pasted piece, as a click on the page would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from jewelsearch.embed.encoder import Encoder
from jewelsearch.embed.images import load_image_file
from jewelsearch.recognize.localizer import Localizer, crop, piece_crop
from jewelsearch.train.composites import cut_from_white, paste_piece


def _rank_recall(queries: np.ndarray, gallery: np.ndarray, answers: Sequence[int]) -> dict:
    sims = queries @ gallery.T
    ranks = [int((sims[i] > sims[i, answer]).sum()) for i, answer in enumerate(answers)]
    return {"recall@1": float(np.mean([r < 1 for r in ranks])), "recall@10": float(np.mean([r < 10 for r in ranks])),
            "mrr": float(np.mean([1 / (r + 1) for r in ranks]))}


def evaluate_shopper_photos(encoder: Encoder, localizer: Localizer, catalog_paths: Sequence[Path],
                            scenery: Sequence[Image.Image], count: int = 200, seed: int = 0) -> dict:
    """``catalog_paths``: clean catalog photos (all form the gallery; those on a plain sweep
    are pasted); ``scenery``: real photos the localiser never trained on."""
    rng = np.random.default_rng(seed)
    catalog = [load_image_file(p).image for p in catalog_paths]
    pieces = [(n, cut) for n, image in enumerate(catalog) if (cut := cut_from_white(image)) is not None]
    if not pieces or not scenery:
        raise ValueError("need catalog photos on a plain sweep and at least one scenery photo")
    queries, answers, truths = [], [], []
    while len(queries) < count:
        n, cut = pieces[int(rng.integers(len(pieces)))]
        scene = paste_piece(rng, cut, scenery[int(rng.integers(len(scenery)))])
        if scene is not None:
            queries.append(scene.image)
            answers.append(n)
            truths.append(scene.boxes[0])
    crops, picked, on_piece, listed = [], [], [], []
    for image, truth in zip(queries, truths):
        boxes = localizer.usable_boxes(localizer.locate(image))
        piece = piece_crop(image, boxes)
        crops.append(image if piece is None else piece)
        on_piece.append(bool(boxes) and boxes[0].centre_inside(truth))
        # A photo can show several pieces; the page lists every box so the shopper can pick theirs.
        mine = next((b for b in boxes if b.centre_inside(truth)), None)
        listed.append(mine is not None)
        picked.append(crop(image, mine) if mine is not None else crops[-1])
    gallery = encoder.encode_images(catalog)
    whole, region, chosen = (encoder.encode_images(images) for images in (queries, crops, picked))
    both = region + whole
    both /= np.linalg.norm(both, axis=1, keepdims=True)
    return {"queries": len(queries), "catalog_photos": len(catalog), "pasted_pieces": len(pieces),
            "scenery_photos": len(scenery), "top_box_on_the_piece": round(float(np.mean(on_piece)), 4),
            "piece_among_the_boxes": round(float(np.mean(listed)), 4),
            "whole": _rank_recall(whole, gallery, answers), "region": _rank_recall(region, gallery, answers),
            "region_plus_whole": _rank_recall(both, gallery, answers),
            "box_picked_by_the_shopper": _rank_recall(chosen, gallery, answers)}
