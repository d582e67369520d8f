"""Quiet model construction: hide the known, harmless noise open_clip and transformers emit.

Building the default model makes transformers draw a "Loading weights" progress bar
and log a load report (MiniLM's checkpoint carries ``pooler.*`` weights the mean-pooled
tower does not use), and makes open_clip log "initialized partially" (the image tower
is loaded by us afterwards). Every command would print them before its answer.

``quiet_model_loading()`` silences exactly these sources for the duration of a load
and restores every setting afterwards. With the ``jewelsearch`` logger at DEBUG
(the CLI's verbose flag) nothing is hidden.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

# Messages known to be harmless while a model is built; anything else still shows.
KNOWN_MESSAGES = (r"Model \S+ initialized partially\.",)


class _DropLibraryRecords(logging.Filter):
    """On the root logger: drops what open_clip logs below ERROR (it logs on the root
    logger, not its own) and the known messages."""

    def __init__(self, package_dir: str | None) -> None:
        super().__init__()
        self.package_dir = package_dir
        self.known = re.compile("|".join(KNOWN_MESSAGES))

    def filter(self, record: logging.LogRecord) -> bool:
        if self.package_dir and record.levelno < logging.ERROR and record.pathname.startswith(self.package_dir):
            return False
        return not self.known.search(record.getMessage())


def _open_clip_dir() -> str | None:
    try:
        import open_clip
    except ImportError:
        return None
    return str(Path(open_clip.__file__).resolve().parent)


@contextmanager
def _root_filter() -> Iterator[None]:
    root = logging.getLogger()
    record_filter = _DropLibraryRecords(_open_clip_dir())
    # logging.warning() on a root logger without handlers would call basicConfig() and
    # leave a stderr handler behind; a temporary NullHandler keeps the root as it was.
    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder:
        root.addHandler(placeholder)
    root.addFilter(record_filter)
    try:
        yield
    finally:
        root.removeFilter(record_filter)
        if placeholder:
            root.removeHandler(placeholder)


@contextmanager
def _lowered_logger(name: str, level: int = logging.ERROR) -> Iterator[None]:
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(saved)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Verbosity to ERROR (its load report is a warning) and no progress bars."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    library_logger = logging.getLogger("transformers")
    saved_level = library_logger.level  # the logger's own level, so restoring is exact
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity(max(logging.ERROR, hf_logging.get_verbosity()))
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        library_logger.setLevel(saved_level)
        if bars:
            hf_logging.enable_progress_bar()


@contextmanager
def quiet_model_loading(verbose: bool | None = None) -> Iterator[None]:
    """Silence open_clip's and transformers' load-time logs, bars and known warnings.

    ``verbose=None`` follows the ``jewelsearch`` logger: at DEBUG, libraries speak.
    """
    if verbose is None:
        verbose = logging.getLogger("jewelsearch").isEnabledFor(logging.DEBUG)
    if verbose:
        yield
        return
    with ExitStack() as stack:
        stack.enter_context(_quiet_transformers())
        stack.enter_context(_lowered_logger("open_clip"))
        stack.enter_context(_root_filter())
        stack.enter_context(warnings.catch_warnings())
        for message in KNOWN_MESSAGES:
            warnings.filterwarnings("ignore", message=message)
        yield
