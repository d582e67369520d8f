"""What encodes query texts: the torch text tower, until a faster runtime of it is ready.

A long-running server opens the OpenVINO text tower (``embed/openvino_text.py``) after it has
started answering: reading a saved graph takes a fraction of a second, converting one about
2 s, and a server must not wait for either before its first answer. Until the tower is open,
and for good if opening it or running it fails (one warning), texts go through torch; both
give the same unit vectors within 1e-5, so no answer changes when the runtime does. One-shot
commands never open it, and this module imports no OpenVINO.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

import numpy as np

from jewelsearch.embed.encoder import Encoder

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "openvino")
PRECISIONS = ("f32", "bf16")  # of the OpenVINO tower (``openvino_text.PRECISIONS``, without importing it)

# () -> the other runtime's text forward (int64 token ids -> float features, NumPy arrays both:
# ``Encoder.encode_texts_from_ids``); raises where it cannot be used.
Opener = Callable[[], Callable[[np.ndarray], np.ndarray]]


class QueryTextTower:
    """``encode_texts`` for query texts (what ``TextVectorCache`` calls), switching from the
    encoder's torch tower to another forward of the same tower once that is open."""

    def __init__(self, encoder: Encoder):
        self.encoder = encoder
        self.max_text_chars = encoder.max_text_chars
        self._forward: Callable[[np.ndarray], np.ndarray] | None = None
        self._lock = threading.Lock()  # one opening at a time; a failure warns once
        self._given_up = False
        self._warned = threading.Lock()  # request threads may fail at once: one warning
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()  # one background thread, however many callers
        self.settled = threading.Event()  # an opening ended, either way

    @property
    def runtime(self) -> str:
        """"openvino" once its tower answers, else "torch"."""
        return "openvino" if self._forward is not None else "torch"

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        forward = self._forward  # read once: a switch mid-call does not mix runtimes in one answer
        if forward is None:
            return self.encoder.encode_texts(texts)
        try:
            return self.encoder.encode_texts_from_ids(texts, forward)
        except Exception as exc:  # never a failed query: torch answers, from now on
            self._give_up(exc)
            return self.encoder.encode_texts(texts)

    def open_now(self, opener: Opener) -> str:
        """Open the other runtime in this thread; the runtime in use afterwards."""
        with self._lock:
            if self._forward is None and not self._given_up:
                try:
                    self._forward = opener()
                    log.info("query texts now go through OpenVINO's text tower")
                except Exception as exc:  # ImportError, OpenVINO's RuntimeError, a failed check
                    self._give_up(exc)
            self.settled.set()
        return self.runtime

    def open_in_background(self, opener: Opener) -> threading.Thread:
        """Open the other runtime on a daemon thread; torch answers until it is open."""
        # Not ``_lock``: the opening holds that for as long as it runs, and a second call must
        # return the running thread at once, not wait for the opening to end.
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(target=self.open_now, args=(opener,),
                                                name="query-text-runtime", daemon=True)
                self._thread.start()
            return self._thread

    def _give_up(self, exc: BaseException) -> None:
        self._forward = None
        with self._warned:
            if self._given_up:
                return
            self._given_up = True
            log.warning("query texts go through torch: OpenVINO's text tower could not be used (%s: %s)",
                        type(exc).__name__, exc)
