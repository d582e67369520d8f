"""Whole photo vs. detected piece, side by side, on photos of jewelry being worn.

For every worn photo the localiser picks its most confident piece (the same rule image
queries use, ``localizer.piece_crop``); the photo is then embedded whole and as that crop. Measured both ways:
same-product retrieval (one photo of a product queries the others) and category accuracy
from the trained heads. A photo with no usable box, or whose piece fills it, falls back to the whole
image, exactly as a query would, so the region numbers include the localiser's misses.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from jewelsearch.embed.images import load_image_file
from jewelsearch.embed.vocab import CATEGORY_EQUIVALENT
from jewelsearch.evaluate import metrics
from jewelsearch.evaluate.recognition import Judge, judged_probabilities
from jewelsearch.recognize.localizer import Localizer, piece_crop
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.train.labelled_data import Record
from jewelsearch.train.region_metrics import box_average_precision


def evaluate_regions(recognizer: Recognizer, localizer: Localizer, records: Sequence[Record],
                     hand_boxes: dict[str, list[tuple[int, int, int, int]]] | None = None,
                     judge: Judge | None = None) -> dict:
    """``judge`` picks the heads per photo for category accuracy (see ``judged_probabilities``)."""
    wholes, crops, found_any, predictions, truths = [], [], 0, [], []
    locate_seconds, top_box_hits = [], []
    for record in records:
        image = load_image_file(record.path).image
        started = time.perf_counter()
        found = localizer.locate(image)
        locate_seconds.append(time.perf_counter() - started)
        boxes = localizer.usable_boxes(found)
        found_any += bool(boxes)
        wholes.append(image)
        piece = piece_crop(image, boxes)
        crops.append(image if piece is None else piece)
        if hand_boxes is not None and record.path.name in hand_boxes:
            predictions.append([((b.x0, b.y0, b.x1, b.y1), b.confidence) for b in found.boxes])
            truths.append(hand_boxes[record.path.name])
            top_box_hits.append(bool(boxes) and any(boxes[0].centre_inside(t) for t in truths[-1]))
    whole, whole_pooled = recognizer.embed(wholes)
    region, region_pooled = recognizer.embed(crops)
    both = region + whole
    both /= np.linalg.norm(both, axis=1, keepdims=True)
    groups = [r.group for r in records]
    out = {
        "photos": len(records),
        "photos_with_a_box": found_any,
        "locate_ms_median": round(1000 * float(np.median(locate_seconds)), 1) if locate_seconds else None,
        "same_product": {
            "whole_to_whole": metrics.same_product_retrieval(whole, groups),
            "region_to_whole": metrics.same_product_retrieval(region, groups, gallery=whole),
            "region_to_region": metrics.same_product_retrieval(region, groups),
            "region_plus_whole_to_whole": metrics.same_product_retrieval(both, groups, gallery=whole),
        },
    }
    if recognizer.heads is not None:
        vocab = recognizer.heads.vocabularies["category"]
        keep = [i for i, r in enumerate(records)
                if CATEGORY_EQUIVALENT.get(r.labels.get("category"), r.labels.get("category")) in vocab]
        truth = [CATEGORY_EQUIVALENT.get(records[i].labels["category"], records[i].labels["category"]) for i in keep]
        out["category"] = {}
        # "Both" averages the two photos' probabilities (their embeddings for the retrieval above).
        chosen = [records[i] for i in keep]
        whole_p, region_p = (judged_probabilities(recognizer, judge, vectors[keep], chosen,
                                                  None if pooled is None else pooled[keep])["category"]
                             for vectors, pooled in ((whole, whole_pooled), (region, region_pooled)))
        for name, probs in (("whole", whole_p), ("region", region_p), ("region_plus_whole", (whole_p + region_p) / 2)):
            result = metrics.classification(truth, probs, vocab)
            out["category"][name] = {"accuracy": result["accuracy"], "macro_recall": result["macro_recall"],
                                     "n": len(keep)}
    if truths:
        # What a region query uses is the top box: how often it lands on a real piece.
        out["hand_boxed"] = {"photos": len(truths),
                             "box_ap50": round(box_average_precision(predictions, truths), 4),
                             "top_box_on_a_piece": round(float(np.mean(top_box_hits)), 4)}
    return out
