"""Start-up: what a command's modules import, checked in a fresh interpreter.

Every ``jewelsearch`` command pays for its imports before it answers; these tests keep
libraries that a search or an ingest does not use out of the modules they load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")

# The modules a one-photo ingest or a text search loads before the model (the CLI, the store,
# the service wiring, the ingest pipeline and the recognition pieces it calls).
SERVING_MODULES = (
    "jewelsearch.cli",
    "jewelsearch.storage.db",
    "jewelsearch.search.wiring",
    "jewelsearch.ingest.pipeline",
    "jewelsearch.recognize.localizer",
    "jewelsearch.recognize.evidence",
    "jewelsearch.recommend.interests",
)


def loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter on this tree; its last line prints JSON."""
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_serving_modules_import_no_scipy_and_no_optional_engines():
    found = loaded_after(
        "import importlib, json, sys\n"
        f"for name in {SERVING_MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in ('scipy', 'flask', 'ray', 'implicit',"
        " 'cornac', 'sklearn') if m in sys.modules)))")
    assert found == []


def test_the_cli_alone_imports_no_torch_and_no_faiss():
    found = loaded_after(
        "import json, sys\nimport jewelsearch.cli\n"
        "print(json.dumps(sorted(m for m in ('torch', 'faiss', 'open_clip', 'sqlite_utils', 'numpy')"
        " if m in sys.modules)))")
    assert found == []
