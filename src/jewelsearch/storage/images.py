"""Content-addressed image files under ``<home>/images``.

Files are named by sha256, so the same photo ingested twice is stored once and
a path can never be chosen by a client.  Writes go to a temp file that is
fsynced and renamed, so a crash never leaves a truncated image behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_SHA_RE = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp)$")
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ImageFiles:
    def __init__(self, root: Path):
        # Absolute, because Flask's send_file reads a relative path against the app's package
        # folder, not the working directory: a relative home (the default) would 500.
        self.root = Path(root).absolute()

    def relative_path(self, sha256: str, ext: str) -> str:
        return f"{sha256[:2]}/{sha256}.{ext}"

    def save(self, data: bytes, sha256: str, ext: str) -> str:
        rel = self.relative_path(sha256, ext)
        target = self.root / rel
        if target.exists() and target.stat().st_size == len(data):
            return rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return rel

    def save_many(self, files: dict[str, tuple[bytes, str]], threads: int = 4) -> dict[str, str]:
        """``save`` for each sha256 -> (data, ext); the stored paths by sha256. The writes run on
        a few threads: each fsync waits on the disk, not the CPU, so they overlap."""
        if len(files) <= 1 or threads <= 1:
            return {sha: self.save(data, sha, ext) for sha, (data, ext) in files.items()}
        with ThreadPoolExecutor(max_workers=min(threads, len(files))) as pool:
            paths = pool.map(lambda item: self.save(item[1][0], item[0], item[1][1]), files.items())
            return dict(zip(files, paths))

    def path_for(self, rel: str) -> Path:
        """Resolve a stored relative path, refusing anything outside the root."""
        name = rel.split("/")[-1]
        if not _SHA_RE.match(name) or rel != self.relative_path(name[:64], name.split(".")[1]):
            raise ValueError(f"not a stored image path: {rel!r}")
        return self.root / rel

    def delete(self, rel: str) -> None:
        try:
            self.path_for(rel).unlink()
        except (FileNotFoundError, ValueError):
            pass
