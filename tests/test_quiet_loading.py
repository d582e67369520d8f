"""Model loading is quiet: no transformers load report, progress bar or open_clip
"initialized partially" before a command's answer, unless jewelsearch logs at DEBUG."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings

import pytest

from jewelsearch.embed.quiet_loading import quiet_model_loading

NOISE = ("LOAD REPORT", "UNEXPECTED", "Loading weights", "initialized partially")
LOAD_DEFAULT = """
import logging, sys
logging.basicConfig(level=logging.WARNING)
if sys.argv[1] == "debug":
    logging.getLogger("jewelsearch").setLevel(logging.DEBUG)
from jewelsearch.embed import load_encoder
# Through open_clip: the plain-torch loader (serving's) builds the model without the libraries
# that make this noise.
load_encoder("jewelclip-lite0", loader="open_clip")
"""


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def _jewelsearch() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "jewelsearch")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "jewelsearch.cli"]


@pytest.mark.slow
def test_search_command_prints_only_its_answer(tmp_path):
    done = subprocess.run([*_jewelsearch(), "--home", str(tmp_path / "home"), "search", "--text",
                           "rose gold hoops", "--json"], check=False, capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)  # stdout is only the answer
    for noise in NOISE:
        assert noise not in done.stderr and noise not in done.stdout, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["quiet", "debug"])
def test_default_model_load_shows_library_logs_only_at_debug(mode):
    done = subprocess.run([sys.executable, "-c", LOAD_DEFAULT, mode], check=False, capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    shown = [noise for noise in NOISE if noise in done.stderr]
    # At DEBUG the libraries speak as they always did (the report, the bar, the warning).
    assert shown == (list(NOISE) if mode == "debug" else []), done.stderr


def test_settings_are_restored_afterwards():
    import open_clip  # noqa: F401  (its first import adds a sympy warnings filter of its own)
    from transformers.utils import logging as hf_logging

    root = logging.getLogger()
    before = (logging.getLogger("transformers").level, hf_logging.is_progress_bar_enabled(),
              list(root.filters), list(root.handlers), logging.getLogger("open_clip").level,
              list(warnings.filters))
    with quiet_model_loading(verbose=False):
        assert hf_logging.get_verbosity() >= logging.ERROR
        assert not hf_logging.is_progress_bar_enabled()
    after = (logging.getLogger("transformers").level, hf_logging.is_progress_bar_enabled(),
             list(root.filters), list(root.handlers), logging.getLogger("open_clip").level,
             list(warnings.filters))
    assert after == before


def test_only_the_known_messages_are_hidden(caplog):
    with caplog.at_level(logging.INFO), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_model_loading(verbose=False):
            # On the root logger, as open_clip logs.
            logging.warning("Model jewelsearch-0123 initialized partially.")  # noqa: LOG015
            logging.warning("something else went wrong")  # noqa: LOG015
            logging.getLogger("jewelsearch.test").warning("ours still shows")
            warnings.warn("Model jewelsearch-0123 initialized partially.")
            warnings.warn("an unknown warning")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["something else went wrong", "ours still shows"]
    assert [str(w.message) for w in caught] == ["an unknown warning"]


def test_debug_logging_turns_quiet_off(caplog):
    logger = logging.getLogger("jewelsearch")
    saved = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.INFO), quiet_model_loading():
            logging.warning("Model jewelsearch-0123 initialized partially.")  # noqa: LOG015
    finally:
        logger.setLevel(saved)
    assert [record.getMessage() for record in caplog.records] == ["Model jewelsearch-0123 initialized partially."]
