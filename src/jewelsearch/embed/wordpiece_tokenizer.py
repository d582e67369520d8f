"""The text tower's tokenizer read with the ``tokenizers`` library alone (no transformers).

It does what open_clip's ``HFTokenizer`` does for the default model, so the ids are the same:
clean the text (ftfy's fixes, HTML entities unescaped twice, whitespace runs to one space),
then the packaged ``tokenizer.json`` (lower-casing, WordPiece, ``[CLS] … [SEP]``), truncated
and padded to the context length. ``tests/test_plain_model.py`` compares the ids with
open_clip's on hostile texts (Chinese, emoji, HTML entities, zero-width and no-break spaces,
500-character strings).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import numpy as np
import torch


def clean(text: str) -> str:
    """open_clip's "whitespace" cleaning: ftfy's fixes, HTML unescaped twice, whitespace collapsed."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip()


class WordPieceTokenizer:
    """Texts → token ids [N, context_length] (long), padded with ``pad_id``."""

    def __init__(self, tokenizer_json: Path, context_length: int, pad_id: int):
        from tokenizers import Tokenizer

        self.context_length = int(context_length)
        self.pad_id = int(pad_id)
        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self._tokenizer.enable_truncation(max_length=self.context_length)
        self._tokenizer.enable_padding(length=self.context_length, pad_id=self.pad_id)

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        return torch.from_numpy(self.ids(texts))

    def ids(self, texts: str | Sequence[str]) -> np.ndarray:
        """The same ids as a NumPy array (int64), for a runtime that takes no torch tensors."""
        if isinstance(texts, str):
            texts = [texts]
        cleaned = [clean(t) for t in texts]
        # One text (a query) is encoded on this thread: ``encode_batch`` would hand it to the
        # library's thread pool and back. Both give the same ids.
        encodings = [self._tokenizer.encode(cleaned[0])] if len(cleaned) == 1 else self._tokenizer.encode_batch(cleaned)
        return np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), self.context_length)
