"""``jewelsearch backup DEST``: a consistent copy of a home while the server runs and writes.

1. The database is copied as of one commit (``storage.snapshot``, SQLite's online backup API).
2. Then the photos that copy references are copied. A photo is written before the row that
   names it commits, so every photo of the snapshot is on disk, unless the item was deleted
   (or its photo replaced) after the snapshot. Then a fresh snapshot is taken, which no longer
   names it, and only the photos still missing are copied (photos are content-addressed, so
   the earlier copies stay valid); copies the final snapshot does not name are dropped, so the
   restored home has no orphan files.
3. Then the saved index version that is current (``index.persist.copy_current_version``). It
   may be a little older or newer than the snapshot; the manifest says whether it matches, and
   an index that does not is rebuilt from the snapshot's stored embeddings on first open.

Everything is written into a hidden folder beside DEST and renamed to DEST at the end, so a
failed or interrupted backup leaves no DEST behind.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from jewelsearch import __version__
from jewelsearch.index.persist import copy_current_version
from jewelsearch.search.backup_manifest import (DATABASE, IMAGES, INDEX, BackupError, BackupManifest,
                                                copy_hashed, flush_to_disk, sha256_file, write_checksums,
                                                write_manifest)
from jewelsearch.storage.images import ImageFiles
from jewelsearch.storage.snapshot import SnapshotFacts, read_facts, snapshot_database

log = logging.getLogger(__name__)

SNAPSHOT_ATTEMPTS = 4  # fresh snapshots taken when photos vanish under the copy (deletes meanwhile)


def create_backup(db_path: Path, images_dir: Path, index_dir: Path, dest: Path, *,
                  on_snapshot: Callable[[], None] | None = None) -> BackupManifest:
    """Back up the home whose parts are given into the new folder ``dest``.

    ``on_snapshot`` is called after each database snapshot, before photos are copied (tests use
    it to write or delete meanwhile). Raises ``BackupError`` with a clear message.
    """
    dest = Path(dest)
    if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        raise BackupError(f"{dest} already exists; give a new folder for the backup")
    if not Path(db_path).is_file():
        raise BackupError(f"there is no catalog at {db_path}: nothing to back up")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.partial-"))
    try:
        manifest = _write_backup(Path(db_path), ImageFiles(images_dir), Path(index_dir), work, on_snapshot)
        flush_to_disk(work)
        work.rename(dest)
        flush_to_disk(dest.parent)
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, (OSError, sqlite3.Error, ValueError)):
            raise BackupError(f"the backup failed and nothing was written to {dest}: {exc}") from exc
        raise
    return manifest


def _write_backup(db_path: Path, images: ImageFiles, index_dir: Path, work: Path,
                  on_snapshot: Callable[[], None] | None) -> BackupManifest:
    copied: dict[str, str] = {}  # image path -> sha256 of the copy
    for attempt in range(SNAPSHOT_ATTEMPTS):
        (work / DATABASE).unlink(missing_ok=True)
        snapshot_database(db_path, work / DATABASE)
        facts = read_facts(work / DATABASE)
        if on_snapshot:
            on_snapshot()
        missing = _copy_images(images, facts.image_paths - copied.keys(), work / IMAGES, copied)
        if not missing:
            break
        log.info("%d photos went away after snapshot %d (deleted meanwhile); taking a fresh one",
                 len(missing), attempt + 1)
    else:
        log.warning("%d photos the catalog references are missing from %s", len(missing), images.root)
    for rel in set(copied) - facts.image_paths:  # named only by an earlier snapshot
        (work / IMAGES / rel).unlink()
        del copied[rel]

    index = copy_current_version(index_dir, work / INDEX)
    sums = {DATABASE: sha256_file(work / DATABASE)}
    sums.update({f"{IMAGES}/{rel}": digest for rel, digest in copied.items()})
    for file in sorted((work / INDEX).rglob("*")) if index else ():
        if file.is_file():
            sums[file.relative_to(work).as_posix()] = sha256_file(file)
    manifest = BackupManifest(
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        jewelsearch_version=__version__, schema_version=facts.schema_version,
        catalog_version=facts.catalog_version, items=facts.items, events=facts.events,
        images=len(copied), model_id=_model_id(facts, index.model_id if index else None),
        model_embeddings=facts.model_embeddings,
        index=None if index is None else {
            "version": (work / INDEX / "CURRENT").read_text().strip(), "kind": index.kind,
            "count": index.count, "catalog_version": index.catalog_version, "model_id": index.model_id,
            "matches_catalog": index.catalog_version == facts.catalog_version},
        checksums_sha256=write_checksums(work, sums), missing_images=sorted(missing))
    write_manifest(work, manifest)
    return manifest


def _copy_images(images: ImageFiles, wanted: frozenset[str] | set[str], target: Path,
                 copied: dict[str, str]) -> list[str]:
    """Copy the wanted photos into ``target``, recording each copy's checksum in ``copied``;
    return the ones that are not there."""
    missing = []
    for rel in sorted(wanted):
        try:
            copied[rel] = copy_hashed(images.path_for(rel), target / rel)
        except FileNotFoundError:
            missing.append(rel)
        except ValueError:  # a stored path that is not an image path: `check` reports it
            missing.append(rel)
    return missing


def _model_id(facts: SnapshotFacts, index_model: str | None) -> str | None:
    if index_model:
        return index_model
    if not facts.model_embeddings:
        return None
    return max(facts.model_embeddings.items(), key=lambda kv: kv[1])[0]
