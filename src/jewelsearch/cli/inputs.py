"""Input files that several command groups read, turned into values or one clear error line."""

from __future__ import annotations

from pathlib import Path

from jewelsearch.cli import fail


def hand_boxes(csv_path: Path) -> dict[str, list]:
    """A boxes CSV (path, x0, y0, x1, y1), or a clear usage error."""
    from jewelsearch.train.photo_boxes import BoxFileError, read_boxes
    try:
        return read_boxes(csv_path)
    except (BoxFileError, OSError, UnicodeDecodeError) as exc:
        fail(str(exc))


def protected_photos(csv_path: Path) -> set[str]:
    """File names in a CSV's path column (e.g. hand-boxed validation photos) that training leaves out."""
    from jewelsearch.train.labelled_data import read_protected_photos
    try:
        return read_protected_photos(csv_path)
    except ValueError as exc:
        fail(str(exc))
