"""Recognising what a piece is: category, metal, gemstone, cut.

Trained heads give calibrated probabilities when the model folder has them;
otherwise (any other open_clip model) zero-shot text prompts stand in, with the
model's own temperature.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from .captions import prompts_for
from .encoder import Encoder
from .heads import AttributeHeads
from .vocab import CATEGORIES, CUTS, GEMSTONES, METALS

ZERO_SHOT_VOCABULARIES = {"category": CATEGORIES, "metal": METALS, "gemstone": GEMSTONES, "cut": CUTS}
Prediction = dict[str, list[dict[str, float | str]]]


class Recognizer:
    def __init__(self, encoder: Encoder, heads: AttributeHeads | None = None, top: int = 5):
        self.encoder = encoder
        self.heads = heads
        self.top = top
        self._prompt_vectors: dict[str, np.ndarray] | None = None

    @property
    def method(self) -> str:
        return "heads" if self.heads is not None else "zero-shot"

    def recognize_images(self, images: Sequence[Image.Image]) -> list[Prediction]:
        return self.recognize_embeddings(self.encoder.encode_images(images))

    def recognize_embeddings(self, embeddings: np.ndarray) -> list[Prediction]:
        probabilities = self.probabilities(embeddings)
        out = []
        for row in range(len(embeddings)):
            prediction: Prediction = {}
            for attribute, probs in probabilities.items():
                vocab = self.vocabulary(attribute)
                best = np.argsort(-probs[row])[: self.top]
                prediction[attribute] = [{"label": vocab[i], "p": round(float(probs[row, i]), 4)} for i in best]
            out.append(prediction)
        return out

    def vocabulary(self, attribute: str) -> list[str]:
        if self.heads is not None:
            return self.heads.vocabularies[attribute]
        return list(ZERO_SHOT_VOCABULARIES[attribute])

    def probabilities(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        if self.heads is not None:
            return self.heads.probabilities(embeddings)
        return self.zero_shot_probabilities(embeddings)

    def zero_shot_probabilities(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        scale = float(self.encoder.model.logit_scale.detach().exp().clamp(max=100))
        out = {}
        for attribute, vectors in self.prompt_vectors().items():
            logits = scale * np.asarray(embeddings, dtype=np.float32) @ vectors.T
            logits -= logits.max(1, keepdims=True)
            exp = np.exp(logits)
            out[attribute] = exp / exp.sum(1, keepdims=True)
        return out

    def prompt_vectors(self) -> dict[str, np.ndarray]:
        """One unit vector per label: the mean of its prompts' text embeddings."""
        if self._prompt_vectors is None:
            vectors = {}
            for attribute, vocab in ZERO_SHOT_VOCABULARIES.items():
                rows = []
                for label in vocab:
                    mean = self.encoder.encode_texts(prompts_for(attribute, label)).mean(0)
                    rows.append(mean / max(np.linalg.norm(mean), 1e-12))
                vectors[attribute] = np.stack(rows).astype(np.float32)
            self._prompt_vectors = vectors
        return self._prompt_vectors
