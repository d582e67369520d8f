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
        " 'cornac', 'sklearn', 'pandas', 'pyarrow') if m in sys.modules)))")
    assert found == []


def test_the_cli_alone_imports_no_torch_and_no_faiss():
    found = loaded_after(
        "import json, sys\nimport jewelsearch.cli\n"
        "print(json.dumps(sorted(m for m in ('torch', 'faiss', 'open_clip', 'sqlite_utils', 'numpy')"
        " if m in sys.modules)))")
    assert found == []


def test_pandas_is_refused_to_sqlite_utils_only_and_on_its_own_thread():
    """The store imports sqlite-utils without pandas, yet pandas stays importable: from other
    code, and from another thread while the refusal is in place."""
    found = loaded_after(
        "import json, sys, threading\n"
        "from jewelsearch.storage.db import _NoPandasForSqliteUtils, sqlite_utils\n"
        "guard = _NoPandasForSqliteUtils()\n"
        "refused = []\n"
        "try:\n"
        "    exec('guard.find_spec(\"pandas\")', {'__name__': 'sqlite_utils.db', 'guard': guard})\n"
        "except ModuleNotFoundError:\n"
        "    refused.append('sqlite_utils.db')\n"
        "sys.meta_path.insert(0, guard)\n"
        "elsewhere = {}\n"
        "def other_thread():\n"
        "    import pandas\n"
        "    elsewhere['pandas'] = pandas.__name__\n"
        "t = threading.Thread(target=other_thread); t.start(); t.join()\n"
        "sys.meta_path.remove(guard)\n"
        "print(json.dumps({'refused': refused, 'sqlite_utils_pd': sqlite_utils.db.pd is None,"
        " 'other_thread': elsewhere.get('pandas'), 'find_spec_here': guard.find_spec('pandas')}))")
    assert found == {"refused": ["sqlite_utils.db"], "sqlite_utils_pd": True, "other_thread": "pandas",
                     "find_spec_here": None}
