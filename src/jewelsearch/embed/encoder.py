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
        (``embed/openvino_text.py``) gets the same cutting, batching, trimming and normalising."""
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t[: self.max_text_chars] for t in texts[start:start + self.batch_size]]
            with self._tokenizer_lock:
                tokens = self.tokenizer(batch)
            chunks.append(self._normalise(forward(self._trim_padding(tokens))))
        return _concat(chunks)

    def _trim_padding(self, tokens: torch.Tensor) -> torch.Tensor:
        """Drop all-padding columns for HF text towers.

        The tokenizer pads every query to the context length (64); a short query has
        about 8 real tokens, so attention over the padding would be most of the cost.
        HF towers mask padding by its id and mean-pool over real tokens only, so the
        result is unchanged.
        """
        pad_id = getattr(getattr(self.model.text, "config", None), "pad_token_id", None) \
            if hasattr(self.model, "text") else None
        if pad_id is None or tokens.ndim != 2:
            return tokens
        real = (tokens != pad_id).any(dim=0).nonzero()
        if len(real) == 0:
            return tokens
        return tokens[:, : int(real.max()) + 1]

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
