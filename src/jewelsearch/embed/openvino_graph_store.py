"""Converted OpenVINO graphs kept on disk between runs, by name, in one folder per model.

Converting a tower from torch takes seconds; reading a saved graph and compiling it a fraction
of that. A folder is named after the model id and a key (a hash of everything the graphs
compute from and of the OpenVINO version, made by the caller), so a changed model gets a new
folder and never an old graph. It is written under a temporary name and renamed into place,
with a manifest of its files' hashes, so a half-written or damaged folder is never read: the
caller converts again. Ingest's image graphs (``openvino_cache``) and the query text tower
(``openvino_text``) both keep their graphs here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jewelsearch" / "openvino"


def cache_folder(root: Path, model_id: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id)[-60:] or "model"
    return Path(root) / f"{safe}-{key}"


def save_graphs(folder: Path, graphs: Mapping[str, object], fmt: int) -> None:
    """Write ``graphs`` (name -> ``ov.Model``) into ``folder`` atomically, fp32 weights kept as
    they are. A folder already there (damaged: it was not read) is replaced; where another
    process renamed its copy into place first, theirs is kept."""
    import openvino as ov

    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        files = {}
        for name, graph in graphs.items():
            ov.save_model(graph, str(scratch / f"{name}.xml"), compress_to_fp16=False)
            for part in (f"{name}.xml", f"{name}.bin"):
                files[part] = file_sha256(scratch / part)
        (scratch / MANIFEST).write_text(json.dumps({"format": fmt, "files": files}))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            scratch.rename(folder)
        except OSError:  # another process renamed its copy into place first: theirs is as good
            shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def graphs_saved(folder: Path, names: Sequence[str], fmt: int) -> bool:
    """Whether ``folder`` holds exactly the graphs ``names``, undamaged, in format ``fmt``."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        wanted = {f"{name}.{ext}" for name in names for ext in ("xml", "bin")}
        return manifest.get("format") == fmt and set(files) == wanted \
            and all(file_sha256(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def read_graphs(folder: Path, names: Sequence[str], fmt: int) -> dict | None:
    """name -> ``ov.Model`` from ``folder``, or None where it is missing or damaged."""
    import openvino as ov

    if not folder.exists():
        return None
    if not graphs_saved(folder, names, fmt):
        log.warning("the cached OpenVINO graphs in %s are damaged or incomplete: converting again", folder)
        return None
    core = ov.Core()
    try:
        return {name: core.read_model(str(folder / f"{name}.xml")) for name in names}
    except RuntimeError as exc:
        log.warning("cannot read the cached OpenVINO graphs in %s (%s): converting again", folder, exc)
        return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
