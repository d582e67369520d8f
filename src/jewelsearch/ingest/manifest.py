"""What a batch ingest is asked to add: photo paths with the item fields each comes with.

A distributed ingest (``search/ray_ingest.py``) takes the same inputs as the local one (files
and folders of photos, with an optional CSV or JSONL of fields keyed by path), and also a
manifest: a CSV, JSONL or Parquet file with one row per photo, a ``path`` (or ``image`` /
``file``) column and any item fields beside it. A manifest's relative paths are read against
the manifest's own folder, so a manifest travels with its photos.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jewelsearch.ingest.sources import SourceError, find_images, read_metadata

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".parquet")
PATH_COLUMNS = ("path", "image", "file")


@dataclass(frozen=True)
class PhotoInput:
    path: str  # absolute, the item's source path
    fields: dict[str, Any] = field(default_factory=dict)


def read_inputs(paths: list[str], metadata: Path | None = None) -> list[PhotoInput]:
    """The photos named by ``paths`` (files, folders, or manifests), each with its fields,
    in the order given; a photo named twice is kept once (its first fields win)."""
    meta = read_metadata(metadata) if metadata else {}
    found: list[PhotoInput] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            found.extend(read_manifest(path))
            continue
        for file in find_images([raw]):
            row = meta.get(str(file)) or meta.get(file.name) or {}
            found.append(PhotoInput(str(file.resolve()), _fields(row)))
    seen: set[str] = set()
    unique = []
    for photo in found:
        if photo.path not in seen:
            seen.add(photo.path)
            unique.append(photo)
    return unique


def read_manifest(path: Path) -> list[PhotoInput]:
    """The rows of a CSV, JSONL or Parquet manifest as photo inputs."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq  # only manifests in Parquet need it
            rows = pq.read_table(path).to_pylist()
        elif suffix == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        else:
            import csv
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
    except Exception as exc:  # any unreadable manifest is one clear line for the user
        raise SourceError(f"cannot read manifest {path}: {exc}") from exc
    photos = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise SourceError(f"{path}: row {n} is not an object")
        name = next((row[c] for c in PATH_COLUMNS if row.get(c)), None)
        if not name:
            raise SourceError(f"{path}: row {n} has no path (or image/file) column")
        photo = Path(str(name))
        if not photo.is_absolute():
            photo = path.parent / photo
        photos.append(PhotoInput(str(photo.resolve()), _fields(row)))
    return photos


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    """A row's item fields: everything but its path column (the ingest validates them)."""
    return {k: v for k, v in row.items() if k not in PATH_COLUMNS and v is not None}
