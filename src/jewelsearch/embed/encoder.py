"""``Encoder``: any open_clip model as an image/text → unit-vector function."""

from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from jewelsearch.embed.preprocess import ImagePreprocessor


class Encoder:
    """Batched, L2-normalised float32 embeddings from one open_clip model.

    The model, its preprocessing and tokenizer are passed in so tests can use a
    tiny random model and production the fine-tuned default.
    """

    def __init__(self, model: torch.nn.Module, preprocess: ImagePreprocessor,
                 tokenizer: Callable, model_id: str, *, batch_size: int = 32,
                 max_text_chars: int = 500, folder=None):
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.folder = folder  # the model folder, when loaded from one (heads live there)
        self.batch_size = max(1, int(batch_size))
        self.max_text_chars = max_text_chars
        # channels_last speeds up the convolutional image towers on CPU.
        self.model.visual.to(memory_format=torch.channels_last)
        self._dim: int | None = None
        # Tokenizers are not all thread-safe; the model forward is.
        self._tokenizer_lock = threading.Lock()

    @property
    def dim(self) -> int:
        if self._dim is None:
            # Read off the text tower where it says (no forward pass while a service opens);
            # else embed a word and look.
            self._dim = _declared_dim(self.model) or int(self.encode_texts(["ring"]).shape[1])
        return self._dim

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(im) for im in images[start:start + self.batch_size]])
            batch = batch.contiguous(memory_format=torch.channels_last)
            chunks.append(self._normalise(self.model.encode_image(batch)))
        return _concat(chunks)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_texts_with(texts, self.model.encode_text)

    @torch.inference_mode()
    def encode_texts_with(self, texts: Sequence[str], forward: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """``encode_texts`` with ``forward`` in place of the model's text tower (token ids, trimmed
        of all-padding columns -> unnormalised features): another runtime of the same tower
        gets the same cutting, batching, trimming and normalising."""
        return self._by_batch(texts, lambda ids: self._normalise(forward(torch.from_numpy(ids))))

    def encode_texts_from_ids(self, texts: Sequence[str], forward: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``encode_texts_with`` for a runtime that takes and gives NumPy arrays (int64 token ids,
        trimmed -> unnormalised float features), with no torch op on the way: each torch op lets
        go of the GIL and must take it back, and a text query's helper thread, running Python
        meanwhile, made each take-back wait (the OpenVINO tower of one query took 0.5-1.4 ms
        longer with torch around it; see docs/experiments/2026-12-07-query-tower-numpy-glue.md)."""
        def unit_rows(ids: np.ndarray) -> np.ndarray:
            features = np.asarray(forward(ids), dtype=np.float32)
            return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), np.float32(1e-12))
        return self._by_batch(texts, unit_rows)

    def _by_batch(self, texts: Sequence[str], encode_ids: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``encode_ids`` on each batch's token ids (texts cut at ``max_text_chars``, padding
        trimmed), the batches' rows concatenated."""
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t[: self.max_text_chars] for t in texts[start:start + self.batch_size]]
            with self._tokenizer_lock:
                ids = self.tokenizer.ids(batch) if hasattr(self.tokenizer, "ids") else self.tokenizer(batch).numpy()
            chunks.append(encode_ids(self._trim_padding_ids(np.asarray(ids, dtype=np.int64))))
        return _concat(chunks)

    def _trim_padding(self, tokens: torch.Tensor) -> torch.Tensor:
        """``_trim_padding_ids`` for a torch tensor of ids."""
        return torch.from_numpy(self._trim_padding_ids(tokens.numpy()))

    def _trim_padding_ids(self, ids: np.ndarray) -> np.ndarray:
        """Drop all-padding columns for HF text towers (a contiguous array, as a runtime's input
        must be).

        The tokenizer pads every query to the context length (64); a short query has
        about 8 real tokens, so attention over the padding would be most of the cost.
        HF towers mask padding by its id and mean-pool over real tokens only, so the
        result is unchanged.
        """
        pad_id = getattr(getattr(self.model.text, "config", None), "pad_token_id", None) \
            if hasattr(self.model, "text") else None
        if pad_id is None or ids.ndim != 2:
            return ids
        real = np.flatnonzero((ids != pad_id).any(axis=0))
        if len(real) == 0:
            return ids
        return np.ascontiguousarray(ids[:, : int(real[-1]) + 1])

    @staticmethod
    def _normalise(features: torch.Tensor) -> np.ndarray:
        features = features.float()
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return features.cpu().numpy().astype(np.float32, copy=False)


def _declared_dim(model: torch.nn.Module) -> int | None:
    """The embedding width the model declares: an HF text tower's ``output_dim``, or the
    columns of CLIP's ``text_projection``; None where it declares neither."""
    declared = getattr(getattr(model, "text", None), "output_dim", None)
    if isinstance(declared, int) and declared > 0:
        return declared
    projection = getattr(model, "text_projection", None)
    if isinstance(projection, torch.Tensor) and projection.ndim == 2:
        return int(projection.shape[1])
    return None


def _concat(chunks: list[np.ndarray]) -> np.ndarray:
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks, axis=0), dtype=np.float32)
