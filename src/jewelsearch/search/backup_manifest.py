"""The layout of a backup folder and its manifest, shared by ``backup`` and ``restore``.

A backup folder holds::

    manifest.json   what was backed up: date, catalog version, counts, model id, the index version
    SHA256SUMS      one "<sha256>  <path>" line per file below (``sha256sum -c SHA256SUMS`` checks it)
    catalog.db      the database as of one commit
    index/          the saved index version current at the time (CURRENT and one v... folder)
    images/         exactly the photos that database references

The manifest records the checksum of SHA256SUMS, so one file vouches for all the others.
Settings (``jewelsearch.toml``, which may hold the API key) are configuration, not data, and
are never part of a backup.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jewelsearch.errors import JewelsearchError

FORMAT = 1
MANIFEST = "manifest.json"
CHECKSUMS = "SHA256SUMS"
DATABASE = "catalog.db"
INDEX = "index"
IMAGES = "images"
CHUNK = 1 << 20


class BackupError(JewelsearchError):
    """A backup cannot be made, or a folder is not a sound backup to restore."""

    status = 400


@dataclass
class BackupManifest:
    created_at: str  # ISO 8601, UTC
    jewelsearch_version: str
    schema_version: int
    catalog_version: int
    items: int
    events: int
    images: int
    model_id: str | None  # the model the saved index was built with (else the most used one)
    model_embeddings: dict[str, int]
    # The saved index version copied ({"version", "kind", "count", "catalog_version",
    # "model_id", "matches_catalog"}); None when the home had none. When it does not match the
    # catalog (the server had not saved it yet), the index is rebuilt from the stored
    # embeddings on first open, which needs no re-encoding.
    index: dict[str, Any] | None
    checksums_sha256: str
    # Photos the catalog references that were already missing from the home (`check` lists them).
    missing_images: list[str] = field(default_factory=list)
    format: int = FORMAT


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_hashed(source: Path, target: Path) -> str:
    """Copy one file, returning the sha256 of the bytes written (one read of the source)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
    shutil.copystat(source, target)
    return digest.hexdigest()


def write_checksums(folder: Path, sums: dict[str, str]) -> str:
    """Write SHA256SUMS (sorted, sha256sum's format) and return its own checksum."""
    text = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(sums.items()))
    (folder / CHECKSUMS).write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_manifest(folder: Path, manifest: BackupManifest) -> None:
    (folder / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True), encoding="utf-8")


def read_manifest(folder: Path) -> tuple[BackupManifest, dict[str, str]]:
    """The manifest and the listed checksums (path -> sha256) of a backup folder, checked for
    form; raises ``BackupError`` naming what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a folder; give the folder `jewelsearch backup` wrote")
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{folder} is not a jewelsearch backup: it has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder / MANIFEST} is unreadable ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError(f"{folder / MANIFEST} is not a backup manifest of format {FORMAT}")
    try:
        manifest = BackupManifest(**data)
    except TypeError as exc:
        raise BackupError(f"{folder / MANIFEST} is damaged ({exc})") from None
    try:
        text = (folder / CHECKSUMS).read_bytes()
    except OSError:
        raise BackupError(f"the backup in {folder} has no {CHECKSUMS} file") from None
    if hashlib.sha256(text).hexdigest() != manifest.checksums_sha256:
        raise BackupError(f"{folder / CHECKSUMS} does not match the manifest: the backup was changed or damaged")
    sums: dict[str, str] = {}
    for line in text.decode("utf-8").splitlines():
        digest, _, rel = line.partition("  ")
        if not _safe_relative(rel) or len(digest) != 64:
            raise BackupError(f"{folder / CHECKSUMS} has a malformed line: {line[:120]!r}")
        sums[rel] = digest
    if DATABASE not in sums:
        raise BackupError(f"the backup in {folder} lists no {DATABASE}")
    return manifest, sums


def _safe_relative(rel: str) -> bool:
    """A path inside the backup: relative, no '..', no hidden tricks."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def flush_to_disk(folder: Path) -> None:
    """Make everything written so far durable before a rename publishes it: one ``sync`` rather
    than an fsync per photo (thousands of files), then the folder's own entry."""
    os.sync()
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
