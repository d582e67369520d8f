"""Where catalog input comes from: image files and folders, item metadata files, event files.

These readers turn what a shop hands over (a folder of photos, a CSV or JSONL of item fields,
a CSV or JSONL of user events) into plain Python values for the ingest pipeline and the event
store. They raise ``SourceError`` with a one-line message for input that cannot be read; the
caller decides how to report it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from jewelsearch.embed.images import IMAGE_SUFFIXES


class SourceError(ValueError):
    """An input file or folder that cannot be read as asked."""


def read_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of a CSV or JSONL keyed by their ``path``/``image``/``file`` column, as given and
    by file name (the first row with a file name wins it).

    A CSV ``path,title`` with the row ``photos/a.jpg,Ring`` gives
    ``{"photos/a.jpg": row, "a.jpg": row}``.
    """
    rows: list[dict[str, Any]]
    try:
        if path.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        else:
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
    except (OSError, ValueError, csv.Error) as exc:
        raise SourceError(f"cannot read metadata {path}: {exc}") from exc
    keyed: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row.get("path") or row.get("image") or row.get("file")
        if not key:
            raise SourceError(f"{path}: every row needs a path (or image/file) column")
        keyed[str(key)] = row
        keyed.setdefault(Path(str(key)).name, row)
    return keyed


def find_images(paths: Iterable[str]) -> list[Path]:
    """The files named, and the image files (by suffix) anywhere under the folders named,
    each folder's in sorted order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise SourceError(f"no such file or directory: {raw}")
    return found


def read_event_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Event rows from a CSV or JSONL file, lazily. A JSONL line that is not a JSON object
    becomes ``{"_error": ...}`` for the importer to report; a CSV weight is read as a number
    where it is one (the importer rejects the rest)."""
    if path.suffix.lower() == ".jsonl":
        with open(path) as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        row = {"_error": f"line {n} is not JSON"}
                    yield row if isinstance(row, dict) else {"_error": f"line {n} is not an object"}
    else:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("weight") not in (None, ""):
                    try:
                        row["weight"] = float(row["weight"])
                    except ValueError:
                        pass
                yield row
