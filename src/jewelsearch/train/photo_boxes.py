"""Hand-drawn boxes around the jewelry in real photos: reading them, and photos that carry them.

Two sets exist (both drawn by eye on a coordinate grid; the photos stay in ../shared):
``reports/eval/worn_boxes.csv`` boxes 24 worn photos the localiser never trains on, for
validation; ``reports/localizer/worn_background_boxes.csv`` boxes the localiser's background
half of the worn photos, so real scenery stops teaching "real jewelry is background".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]
COLUMNS = ("path", "x0", "y0", "x1", "y1")


class BoxFileError(ValueError):
    """A boxes CSV that cannot be read as path, x0, y0, x1, y1 rows."""


def read_boxes(csv_path: Path) -> dict[str, list[Box]]:
    """File name → its boxes, in the photo's own pixel coordinates (one row per piece)."""
    boxes: dict[str, list[Box]] = {}
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BoxFileError(f"{csv_path}: missing column(s) {', '.join(missing)} (need {', '.join(COLUMNS)})")
        for line, row in enumerate(reader, start=2):
            try:
                x0, y0, x1, y1 = (int(float(row[k])) for k in COLUMNS[1:])
            except (TypeError, ValueError):
                raise BoxFileError(f"{csv_path}, line {line}: coordinates must be numbers") from None
            if not (0 <= x0 < x1 and 0 <= y0 < y1):
                raise BoxFileError(f"{csv_path}, line {line}: need 0 <= x0 < x1 and 0 <= y0 < y1")
            boxes.setdefault(Path(row["path"]).name, []).append((x0, y0, x1, y1))
    return boxes


@dataclass
class BoxedPhoto:
    """A real photo with every visible piece boxed; ``boxes`` in this image's pixels."""
    image: Image.Image
    boxes: list[Box] = field(default_factory=list)

    @classmethod
    def shrunk(cls, image: Image.Image, boxes: list[Box], max_side: int = 512) -> "BoxedPhoto":
        """The photo at most ``max_side`` px, its boxes scaled with it (and kept inside it)."""
        width, height = image.size
        image = image.copy()
        image.thumbnail((max_side, max_side))
        sx, sy = image.width / width, image.height / height
        scaled = []
        for x0, y0, x1, y1 in boxes:
            box = (max(0, int(x0 * sx)), max(0, int(y0 * sy)),
                   min(image.width, int(np.ceil(x1 * sx))), min(image.height, int(np.ceil(y1 * sy))))
            if box[0] < box[2] and box[1] < box[3]:
                scaled.append(box)
        return cls(image, scaled)


def ellipse_mask(height: int, width: int, boxes: list[Box]) -> np.ndarray:
    """Piece masks from boxes: the ellipse each box inscribes. A box is all a hand label gives;
    rings, stones, pendants and earrings are roundish, so the ellipse is closer to the piece
    than the filled box, whose corners are mostly skin or cloth."""
    mask = np.zeros((height, width), np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    for x0, y0, x1, y1 in boxes:
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        mask[inside] = 1
    return mask
