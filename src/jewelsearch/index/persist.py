"""Atomic save/load of a ``VectorIndex`` with a manifest.

Each save writes a complete new version folder (index bytes, id map,
manifest), fsyncs it, then atomically replaces the ``CURRENT`` pointer.  A
crash at any moment leaves ``CURRENT`` naming a complete earlier version, so
the previous index stays loadable.  Older versions are pruned after the swap.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jewelsearch.index.kinds import IndexChoice
from jewelsearch.index.vector_index import VectorIndex, VectorSource

log = logging.getLogger(__name__)

FORMAT = 1
POINTER = "CURRENT"


@dataclass
class IndexManifest:
    model_id: str
    dim: int
    count: int
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    catalog_version: int = 0
    created_at: float = 0.0
    format: int = FORMAT


def describe_index(index: VectorIndex, *, model_id: str, catalog_version: int,
                   state: dict[str, Any] | None = None) -> IndexManifest:
    """The manifest ``save_index`` would write for ``index`` (also for one kept in memory only)."""
    state = state if state is not None else index.state()
    return IndexManifest(model_id=model_id, dim=index.dim, count=int(state["alive"].sum()),
                         kind=index.kind, params=index.params,
                         catalog_version=catalog_version, created_at=time.time())


def save_index(index: VectorIndex, directory: Path, *, model_id: str,
               catalog_version: int) -> IndexManifest:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = index.state()
    manifest = describe_index(index, model_id=model_id, catalog_version=catalog_version, state=state)
    version = tempfile.mkdtemp(dir=directory, prefix=f"v{time.time_ns()}-")
    try:
        _write_file(Path(version) / "index.faiss", state["faiss"].tobytes())
        ids_path = Path(version) / "ids.npz"
        with open(ids_path, "wb") as fh:
            np.savez(fh, labels=state["labels"], alive=state["alive"])
            fh.flush()
            os.fsync(fh.fileno())
        _write_file(Path(version) / "manifest.json",
                    json.dumps(asdict(manifest), indent=2, sort_keys=True).encode())
        _fsync_dir(Path(version))
        _write_file(directory / POINTER, Path(version).name.encode(), atomic=True)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    _prune(directory, keep=Path(version).name)
    return manifest


def read_manifest(directory: Path) -> IndexManifest | None:
    version = _current_version(Path(directory))
    if version is None:
        return None
    try:
        data = json.loads((version / "manifest.json").read_text())
        return IndexManifest(**data)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("unreadable index manifest in %s: %s", version, exc)
        return None


def load_index(directory: Path, vector_source: VectorSource | None = None
               ) -> tuple[VectorIndex, IndexManifest] | None:
    """The current saved index and its manifest, or None if absent or damaged."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None or manifest.format != FORMAT:
        return None
    version = _current_version(directory)
    try:
        raw = np.fromfile(version / "index.faiss", dtype=np.uint8)
        with np.load(version / "ids.npz") as ids:
            state = {"faiss": raw, "labels": ids["labels"], "alive": ids["alive"]}
        index = VectorIndex.from_state(manifest.dim, IndexChoice(manifest.kind, manifest.params),
                                       state, vector_source)
    except Exception as exc:  # any damage means "rebuild from the store", never a crash
        log.warning("cannot load index from %s (%s); it will be rebuilt", version, exc)
        return None
    if len(index) != manifest.count:
        log.warning("index in %s holds %d items, manifest says %d", version, len(index), manifest.count)
        return None
    return index, manifest


def copy_current_version(source: Path, target: Path, attempts: int = 5) -> IndexManifest | None:
    """Copy the current saved version of the index in ``source`` (its folder and the pointer)
    into the new folder ``target``; None when there is no saved index.

    A running server may save a newer version and prune this one while it is being copied;
    the copy then starts again from the new pointer, up to ``attempts`` times.
    """
    source, target = Path(source), Path(target)
    for _ in range(attempts):
        version = _current_version(source)
        if version is None:
            return None
        shutil.rmtree(target, ignore_errors=True)
        try:
            manifest = IndexManifest(**json.loads((version / "manifest.json").read_text()))
            shutil.copytree(version, target / version.name)
        except (FileNotFoundError, shutil.Error):
            continue  # pruned under us: a newer version is current now
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the saved index in {version} has an unreadable manifest ({exc})") from None
        _write_file(target / POINTER, version.name.encode())
        return manifest
    raise OSError(f"the index in {source} kept changing while it was copied ({attempts} tries)")


def _current_version(directory: Path) -> Path | None:
    try:
        name = (directory / POINTER).read_text().strip()
    except OSError:
        return None
    if not name or "/" in name or name.startswith("."):
        return None
    path = directory / name
    return path if path.is_dir() else None


def _write_file(path: Path, data: bytes, atomic: bool = False) -> None:
    target = path
    if atomic:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        os.close(fd)
        path = Path(tmp)
    try:
        with open(path, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if atomic:
            os.replace(path, target)
    except BaseException:
        if atomic and path.exists():
            path.unlink()
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(directory: Path, keep: str) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and entry.name != keep and entry.name.startswith("v"):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(".tmp-"):
            entry.unlink(missing_ok=True)
