"""Item text vectors during ingest, each distinct text embedded once across batches.

A shop's variants (the same ring in three sizes, or in two metals with the metal in the
attributes but not the title) share their words, and a feed lists them side by side, often
across a batch boundary. ``encode_item_texts`` already embeds a text once per batch; this keeps
the last few thousand texts' vectors so a later batch reuses them, and takes an item's stored
text vector where a re-ingest leaves its words as they were (a new price or photo). On the first 600 demo items
the batches of 32 held 569 texts with distinct texts counted per batch, 373 across the run.
The vectors are the text tower's own (a text's vector does not depend on the batch beside it,
beyond float rounding: tested within 1e-5), so search does not change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from jewelsearch.embed.item_text import encode_item_texts, item_text

CACHED_TEXTS = 4096  # 4 MB of 256-d vectors


class ItemTextVectors:
    def __init__(self, encode_texts: Callable[[Sequence[str]], np.ndarray], size: int = CACHED_TEXTS):
        if size < 0:
            raise ValueError("size must be 0 or more")
        self._encode_texts = encode_texts
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        # A server thread's add or update may run beside a pipelined ingest's prepare.
        self._lock = threading.Lock()
        self.encoded = 0  # texts sent to the text tower, for tests and benchmarks

    def vectors(self, texts: Iterable[str], stored: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Text vectors by text for each non-empty text, as ``encode_item_texts`` returns them;
        the texts not kept from an earlier call, nor in ``stored`` (vectors this text tower
        already made for these very texts, read back from the store), embedded together in one
        batch (outside the lock: two threads may both embed a new text, which costs a pass,
        never a wrong vector)."""
        wanted = [text for text in dict.fromkeys(texts) if text]
        stored = stored or {}
        with self._lock:
            out = {text: self._vectors[text] for text in wanted if text in self._vectors}
            for text in out:
                self._vectors.move_to_end(text)
        out.update((text, np.asarray(stored[text], dtype=np.float32)) for text in wanted
                   if text not in out and text in stored)
        fresh = encode_item_texts(self._encode_texts, [text for text in wanted if text not in out])
        out.update(fresh)
        with self._lock:
            self.encoded += len(fresh)
            if self.size:
                for text, vector in fresh.items():
                    self._vectors[text] = vector.copy()  # not a view keeping its whole batch alive
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return {text: out[text] for text in wanted}


def unchanged_words(existing: Sequence[Mapping[str, Any] | None], texts: Sequence[str],
                    stored_vector: Callable[[int], np.ndarray | None]) -> dict[str, np.ndarray]:
    """Text vectors by text for the items already in the store (``existing``: each text's
    stored row, or None) whose new words are the words they have (a re-ingest with a new price
    or photo): the same text, so the vector stored for it (``stored_vector(item_id)``)."""
    out: dict[str, np.ndarray] = {}
    for row, text in zip(existing, texts):
        if row is None or not text or text in out or item_text(row) != text:
            continue
        vector = stored_vector(row["id"])
        if vector is not None:
            out[text] = vector
    return out
