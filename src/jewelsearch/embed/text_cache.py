"""Query texts already asked, kept with their vectors.

A shopper who changes a filter, a price range or the page re-sends the same words, and a
shop's searches repeat ("gold hoops", "engagement ring"). Encoding a text is most of a text
query's cost (the MiniLM forward), so the last few thousand distinct texts keep their
vectors. The vectors are the encoder's own, so answers do not change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np


class TextVectorCache:
    def __init__(self, encode_texts: Callable[[Sequence[str]], np.ndarray], size: int = 4096,
                 max_chars: int | None = None):
        """``max_chars``: where the encoder cuts a text (``Encoder.max_text_chars``). Keys are cut
        there too, so a long text costs no more memory than its encoded part, and the cache
        stays bounded whatever callers send."""
        if size < 0:
            raise ValueError("size must be 0 or more")
        self._encode_texts = encode_texts
        self.size = size
        self.max_chars = max_chars
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # request threads share one cache
        self.hits = 0
        self.misses = 0

    def vector(self, text: str) -> np.ndarray:
        """``text``'s unit vector (read-only), from the cache or the encoder."""
        text = text if self.max_chars is None else text[: self.max_chars]
        with self._lock:
            cached = self._vectors.get(text)
            if cached is not None:
                self._vectors.move_to_end(text)
                self.hits += 1
                return cached
            self.misses += 1
        # Encoded outside the lock: two threads asking the same new text both encode it, which
        # costs a forward but never blocks other texts behind one.
        vector = np.array(self._encode_texts([text])[0], dtype=np.float32)
        vector.setflags(write=False)
        if self.size:
            with self._lock:
                self._vectors[text] = vector
                self._vectors.move_to_end(text)
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return vector

    def holds(self, text: str) -> bool:
        """Whether ``text``'s vector is kept (``vector`` would answer it without the encoder)."""
        key = text if self.max_chars is None else text[: self.max_chars]
        with self._lock:
            return key in self._vectors

    def __len__(self) -> int:
        return len(self._vectors)
