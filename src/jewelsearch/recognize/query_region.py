"""Which part of a query photo to search with: a detected piece, a box the user chose, or all of it.

A ring is a few percent of a photo of a hand; embedding the whole photo matches the
sleeve. With a localiser, image queries use the most confident detected piece (cropped
from the full-resolution photo, so a small piece gets the encoder's whole input) and fall
back to the whole image, with a note saying why, when nothing is found or when the piece
already fills the photo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from jewelsearch.errors import InvalidInput
from jewelsearch.recognize.localizer import Localization, Localizer, crop, piece_crop
from jewelsearch.recognize.recognizer import SUBJECTS

REGION_MODES = ("auto", "whole")
# Search also takes "multi": the whole photo and each piece, each searched (search/image_query.py).
SEARCH_REGION_MODES = ("auto", "whole", "multi")
# Image search looks at the whole photo and every piece found: a shopper's photo often shows
# more than one piece, and the localiser's most confident one is often not the one they mean
# (docs/experiments/2026-12-06-instance-head.md: pasted shopper photos R@1 0.18 -> 0.41).
SEARCH_DEFAULT_REGION = "multi"


@dataclass
class RegionChoice:
    image: Image.Image                      # what gets embedded
    used: str                               # "box" or "whole"
    box: list[int] | None = None
    boxes: list[dict] = field(default_factory=list)
    note: str | None = None
    localization: Localization | None = None

    def describe(self, image_size: tuple[int, int]) -> dict:
        return {"used": self.used, "box": self.box, "boxes": self.boxes, "note": self.note,
                "image_size": list(image_size)}

    def embed(self, encoder) -> np.ndarray:
        """The searched image's unit embedding; for the whole photo, the one its locate pass made."""
        if self.used == "whole" and self.localization is not None and self.localization.embedding is not None:
            return self.localization.embedding
        return encoder.encode_images([self.image])[0]


def parse_box(raw) -> tuple[int, int, int, int] | None:
    """``"x0,y0,x1,y1"`` or a 4-list of pixel coordinates; None when absent."""
    if raw is None or raw == "":
        return None
    parts = raw.split(",") if isinstance(raw, str) else raw
    try:
        values = [int(round(float(p))) for p in parts]
    except (TypeError, ValueError):
        raise InvalidInput("box must be four numbers: x0,y0,x1,y1 (pixels of the query photo)") from None
    if len(values) != 4:
        raise InvalidInput("box must be four numbers: x0,y0,x1,y1 (pixels of the query photo)")
    return tuple(values)  # type: ignore[return-value]


def parse_subject(raw) -> str:
    """What a recognise request's photo shows: "piece" (default) or "stone"."""
    value = (raw or "piece").strip().lower() if isinstance(raw, str) or raw is None else raw
    if value not in SUBJECTS:
        raise InvalidInput(f"subject must be one of {', '.join(SUBJECTS)}")
    return value


def parse_region(raw, modes: tuple[str, ...] = REGION_MODES, default: str = "auto") -> str:
    value = (raw or default).strip().lower() if isinstance(raw, str) or raw is None else raw
    if value not in modes:
        raise InvalidInput(f"region must be one of {', '.join(modes)}")
    return value


def can_locate(image: Image.Image) -> bool:
    """Whether a photo is large enough to look for a piece in."""
    return min(image.size) >= 32


def choose_region(image: Image.Image, localizer: Localizer | None, *, region: str = "auto",
                  box: tuple[int, int, int, int] | None = None,
                  located: Localization | None = None) -> RegionChoice:
    """``located``: the photo's ``Localization`` where the caller's own tower pass already made
    it (recognition does), so the photo is not passed through the tower a second time."""
    width, height = image.size
    if box is not None:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise InvalidInput(f"box {list(box)} is not inside the {width}×{height} photo")
        # The pieces are still listed, so a page can keep offering them.
        listed = []
        if localizer is not None and can_locate(image):
            found = located if located is not None else localizer.locate(image)
            listed = [b.as_dict() for b in localizer.usable_boxes(found)]
        # The same context padding as for detected boxes, so picking a listed box repeats its search.
        return RegionChoice(crop(image, box), "box", list(box), listed, note="box chosen by the caller")
    if region == "whole":
        return RegionChoice(image, "whole", note="whole image requested")
    if localizer is None:
        return RegionChoice(image, "whole", note="this model has no localiser; searched the whole image")
    if not can_locate(image):
        return RegionChoice(image, "whole", note="photo too small to look for a piece; searched the whole image")
    found = located if located is not None else localizer.locate(image)
    boxes = localizer.usable_boxes(found)
    listed = [b.as_dict() for b in boxes]
    if not boxes:
        return RegionChoice(image, "whole", boxes=listed, localization=found,
                            note="no piece found with confidence; searched the whole image")
    piece = piece_crop(image, boxes)
    if piece is None:
        return RegionChoice(image, "whole", boxes=listed, localization=found,
                            note="the piece fills most of the photo; searched the whole image "
                                 "(pass box=… to search the piece alone)")
    return RegionChoice(piece, "box", listed[0]["box"], listed, localization=found,
                        note="searched the most confident piece; pass box=… to use another, region=whole for all")
