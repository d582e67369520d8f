"""What a read replica on another node needs, shipped as one blob by the writer.

A replica answers reads from a home of its own: SQLite stays the store on every node, and a
replica never writes to the writer's files. The writer ships it a snapshot of its home: the
database as of one commit, the photos that commit names, and the saved index version
(``search/backup.py``, the same consistent copy a backup is), packed into one tar blob that
Ray's object store carries to any node. The replica checks the blob as a restore does (every
file's checksum, SQLite's quick check, the catalog version) and unpacks it into a fresh home.

The further vector spaces' indexes (instance, item text, blended) are not in a backup; a replica
rebuilds them from the snapshot's stored vectors when it opens the home (no re-encoding).
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jewelsearch.search.backup import create_backup
from jewelsearch.search.backup_manifest import BackupError
from jewelsearch.search.restore import restore_backup


@dataclass(frozen=True)
class Snapshot:
    catalog_version: int
    items: int
    blob: bytes  # an uncompressed tar of a backup folder (the photos are compressed already)


def pack_snapshot(db_path: Path, images_dir: Path, index_dir: Path) -> Snapshot:
    """A consistent snapshot of the home whose parts are given, as one blob."""
    with tempfile.TemporaryDirectory(prefix="jewelsearch-ship-") as scratch:
        folder = Path(scratch) / "snapshot"
        manifest = create_backup(db_path, images_dir, index_dir, folder)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(folder, arcname="snapshot")
    return Snapshot(manifest.catalog_version, manifest.items, buffer.getvalue())


def unpack_snapshot(snapshot: Snapshot, home: Path) -> Path:
    """Check ``snapshot`` and make it the new home ``home`` (which must not exist yet)."""
    home = Path(home)
    if home.exists():
        raise BackupError(f"{home} already exists; a replica unpacks each snapshot into a new home")
    home.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=home.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(snapshot.blob), mode="r") as tar:
            tar.extractall(scratch, filter="data")  # no links out, no absolute paths
        report = restore_backup(scratch / "snapshot", home)
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"the shipped snapshot cannot be unpacked: {exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if report.manifest.catalog_version != snapshot.catalog_version:
        shutil.rmtree(home, ignore_errors=True)
        raise BackupError("the shipped snapshot's catalog version does not match its label")
    return home
