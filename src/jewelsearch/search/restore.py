"""``jewelsearch restore SRC --home H``: check a backup, then make it the home.

Nothing is trusted before it is checked: the manifest and SHA256SUMS first, then every file as
it is copied (its checksum), then the copied database (SQLite's quick check, its schema version,
and that it is the catalog version the manifest names, with every photo it references).

The files are copied into a hidden folder beside the home, which becomes the home only once
all of it is in place and on disk; a failure at any point leaves the home as it was. A home
that holds anything but ``jewelsearch.toml`` is replaced only with ``force``; its
``jewelsearch.toml`` (settings, not data) is kept. Stop the server before restoring its home.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jewelsearch.search.backup_manifest import (DATABASE, IMAGES, BackupError, BackupManifest, copy_hashed,
                                                flush_to_disk, read_manifest)
from jewelsearch.storage.db import SCHEMA_VERSION
from jewelsearch.storage.snapshot import integrity_problem, read_facts

SETTINGS_FILE = "jewelsearch.toml"


@dataclass
class RestoreReport:
    manifest: BackupManifest
    home: Path
    files: int
    replaced: bool  # an earlier catalog in the home was replaced (--force)


def restore_backup(source: Path, home: Path, *, force: bool = False) -> RestoreReport:
    source, home = Path(source), Path(home)
    manifest, sums = read_manifest(source)
    if home.resolve() == source.resolve() or source.resolve() in home.resolve().parents:
        raise BackupError("restore into a home outside the backup folder")
    if home.exists() and not home.is_dir():
        raise BackupError(f"{home} is a file, not a home folder")
    existing = sorted(p.name for p in home.iterdir() if p.name != SETTINGS_FILE) if home.is_dir() else []
    if existing and not force:
        raise BackupError(f"{home} is not empty ({', '.join(existing[:5])}); restore into an empty "
                          "folder, or pass --force to replace its catalog")
    home.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=home.parent, prefix=f".{home.name}.restoring-"))
    try:
        _copy_checked(source, work, sums)
        _check_database(work, manifest, sums)
        if (home / SETTINGS_FILE).is_file():
            shutil.copy2(home / SETTINGS_FILE, work / SETTINGS_FILE)
        flush_to_disk(work)
        _swap_in(work, home)
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BackupError(f"the restore failed and {home} was left as it was: {exc}") from exc
        raise
    return RestoreReport(manifest=manifest, home=home, files=len(sums), replaced=bool(existing))


def _copy_checked(source: Path, target: Path, sums: dict[str, str]) -> None:
    for rel, expected in sums.items():
        try:
            digest = copy_hashed(source / rel, target / rel)
        except FileNotFoundError:
            raise BackupError(f"the backup in {source} is incomplete: {rel} is missing") from None
        if digest != expected:
            raise BackupError(f"the backup in {source} is damaged: {rel} does not match its checksum")


def _check_database(folder: Path, manifest: BackupManifest, sums: dict[str, str]) -> None:
    problem = integrity_problem(folder / DATABASE)
    if problem:
        raise BackupError(f"the backed-up database is damaged: {problem}")
    try:
        facts = read_facts(folder / DATABASE)
    except sqlite3.Error as exc:
        raise BackupError(f"the backed-up database is not a jewelsearch catalog ({exc})") from None
    if facts.schema_version > SCHEMA_VERSION:
        raise BackupError(f"the backup has schema version {facts.schema_version}, newer than this "
                          f"jewelsearch ({SCHEMA_VERSION}); upgrade jewelsearch to restore it")
    if (facts.catalog_version, facts.items) != (manifest.catalog_version, manifest.items):
        raise BackupError("the backed-up database is not the one its manifest describes")
    absent = facts.image_paths - {rel[len(IMAGES) + 1:] for rel in sums if rel.startswith(IMAGES + "/")} \
        - set(manifest.missing_images)
    if absent:
        raise BackupError(f"the backup lacks {len(absent)} photos its database references, "
                          f"e.g. {sorted(absent)[0]}")


def _swap_in(work: Path, home: Path) -> None:
    """Make ``work`` the home. Between the two renames the home is briefly absent, never mixed."""
    if not home.exists():
        work.rename(home)
    else:
        old = Path(tempfile.mkdtemp(dir=home.parent, prefix=f".{home.name}.replaced-"))
        old.rmdir()
        home.rename(old)
        try:
            work.rename(home)
        except BaseException:
            old.rename(home)
            raise
        shutil.rmtree(old, ignore_errors=True)
    flush_to_disk(home.parent)
