"""What an image query searches with: the part(s) of the photo, as vectors.

- ``region="auto"``: the most confident detected piece, or the whole photo when none is found
  or the piece fills it (``recognize/query_region.py``);
- ``region="whole"``: the whole photo; ``box=...``: the caller's box (whatever the region);
- ``region="multi"``: the whole photo and each usable detected piece (at most
  ``MULTI_MAX_PIECES``), each searched on its own; the lists are fused by the ranking
  (``search/image_ranking.py``), and each result says which part matched it.

Every part gets its text-aligned vector and, where queries rank by instance vectors, its
instance vector, from one tower pass: the whole photo's come from the pass that looked for
pieces, the pieces' from one batched pass over their crops (which also names each detected
piece's category, as ``/api/recognize`` does; the recognition top that names it runs on a
helper thread beside the tower's own blocks, ``ServiceState.helpers``). A multi-part query
hands its whole-photo part to the caller before the pieces' pass (``on_whole``), so the search
with it can run beside that pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image

from jewelsearch.embed.instance import InstanceHead, encode_with_instance
from jewelsearch.recognize.localizer import Localization, crop
from jewelsearch.recognize.query_region import can_locate, choose_region
from jewelsearch.search.recognition import label_boxes
from jewelsearch.search.state import ServiceState

MULTI_MAX_PIECES = 3
Box = tuple[int, int, int, int]


@dataclass
class QueryPart:
    label: str                        # "whole", "box", or "box N" (the N-th listed piece, from 1)
    aligned: np.ndarray               # unit text-aligned vector
    instance: np.ndarray | None = None  # unit instance vector, where an instance head was given


def image_parts(state: ServiceState, image_bytes: bytes, region: str, box: Box | None,
                head: InstanceHead | None, on_whole: Callable[[QueryPart], None] | None = None
                ) -> tuple[list[QueryPart], dict[str, Any]]:
    """The parts of the query photo to search with, and what the answer says about them.

    ``on_whole`` is handed the whole photo's part of a multi-part query as soon as it is known,
    before the pieces go through the tower, so the caller can start searching with it (on a
    helper thread) while they do."""
    image = state.ingestor.decode(image_bytes).image
    localizer = state.localizer
    located = None
    if localizer is not None and can_locate(image) and (box is not None or region != "whole"):
        # One pass finds the pieces and embeds the whole photo, for a query that falls back to it.
        # A search reads the boxes only, so the stone map is skipped.
        # The instance vector is pooled on a helper while the localiser's head runs.
        located = localizer.locate(image, instance_head=head, stones=False, beside=state.helpers)
    choice = choose_region(image, localizer, region="auto" if region == "multi" else region, box=box,
                           located=located)
    info = choice.describe(image.size)
    if region == "multi" and box is None:
        return _multi_parts(state, image, choice.localization, info, head, on_whole)
    if choice.used == "box":
        detected = [b for b in info["boxes"] if b["box"] == choice.box]
        aligned, instance = _embed(state, [choice.image], head, label=detected[:1])
        return [QueryPart("box", aligned[0], None if instance is None else instance[0])], info
    return [_whole(state, image, choice.localization, head)], info


def _multi_parts(state: ServiceState, image: Image.Image, localization: Localization | None,
                 info: dict[str, Any], head: InstanceHead | None,
                 on_whole: Callable[[QueryPart], None] | None) -> tuple[list[QueryPart], dict[str, Any]]:
    pieces = info["boxes"][:MULTI_MAX_PIECES]
    parts = [_whole(state, image, localization, head)]
    if pieces:
        if on_whole is not None:
            on_whole(parts[0])
        aligned, instance = _embed(state, [crop(image, tuple(b["box"])) for b in pieces], head, label=pieces)
        parts += [QueryPart(f"box {n}", aligned[n - 1], None if instance is None else instance[n - 1])
                  for n in range(1, len(pieces) + 1)]
        note = (f"searched the whole photo and {len(pieces)} piece(s) found; each result says which "
                "matched it (matched)")
    else:
        # Nothing but the whole photo was searched, so the answer says so ("used": "whole").
        note = f"{info['note']} (multi: no piece to search beside the whole photo)" if info["note"] \
            else "no piece found; searched the whole photo"
        return parts, dict(info, used="whole", box=None, searched=["whole"], note=note)
    return parts, dict(info, used="multi", box=None, searched=[p.label for p in parts], note=note)


def _whole(state: ServiceState, image: Image.Image, localization: Localization | None,
           head: InstanceHead | None) -> QueryPart:
    """The whole photo's vectors: from the locate pass where it made them, else one pass now."""
    if localization is not None and localization.embedding is not None \
            and (head is None or localization.instance is not None):
        return QueryPart("whole", localization.embedding, localization.instance)
    aligned, instance = _embed(state, [image], head)
    return QueryPart("whole", aligned[0], None if instance is None else instance[0])


def _embed(state: ServiceState, images: list[Image.Image], head: InstanceHead | None,
           label: list[dict] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(aligned, instance or None) for these crops, from one pass. With ``label`` (the listed
    boxes the crops show, in order) each box is named by its most likely category, from the
    pooled maps of the same pass."""
    recognizer = state.recognizer
    if label and recognizer is not None:
        passed = recognizer.embed_all(images, instance_head=head, beside=state.helpers)
        label_boxes(recognizer, label, passed.embeddings, passed.pooled)
        return passed.embeddings, passed.instance
    if head is not None:
        return encode_with_instance(state.encoder, head, images)
    return state.encoder.encode_images(images), None
