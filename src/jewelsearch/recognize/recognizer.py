"""Recognising what a piece is: category, metal, gemstone, cut, and (with a style head, from
the pooled maps) its style.

Trained heads give calibrated probabilities when the model folder has them;
otherwise (any other open_clip model) zero-shot text prompts stand in, with the
model's own temperature.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from jewelsearch.embed.captions import prompts_for
from jewelsearch.embed.encoder import Encoder
from jewelsearch.embed.vocab import CATEGORIES, CUTS, GEMSTONES, METALS
from jewelsearch.recognize.gem_features import (PassOutputs, base_width, embed_and_pool, embed_pool_and_locate,
                                                supports_gem_features, tower_outputs)
from jewelsearch.recognize.gem_specialist import GemSpecialist
from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.recognize.localizer import Localizer
from jewelsearch.recognize.prompt_blend import blend_with_prompts
from jewelsearch.recognize.style_head import StyleHead

ZERO_SHOT_VOCABULARIES = {"category": CATEGORIES, "metal": METALS, "gemstone": GEMSTONES, "cut": CUTS}
# What a photo shows: a piece of jewelry (the default) or a loose stone, as an appraiser or a
# gem dealer photographs it. For a loose stone the gem specialist names the stone.
SUBJECTS = ("piece", "stone")
Prediction = dict[str, list[dict[str, float | str]]]


class Recognizer:
    def __init__(self, encoder: Encoder, heads: AttributeHeads | None = None, top: int = 5,
                 gem_specialist: GemSpecialist | None = None, localizer: Localizer | None = None,
                 recognition_top: torch.nn.Module | None = None, style_head: StyleHead | None = None,
                 prompt_weights: Mapping[str, float] | None = None):
        self.encoder = encoder
        self.heads = heads
        self.top = top
        # Only usable where the tower exposes the maps its features are pooled from.
        self.gem_specialist = gem_specialist if gem_specialist is not None and supports_gem_features(encoder) \
            else None
        self.localizer = localizer
        # The robustness-tuned copy of the tower's top (``recognition_top``): the pooled maps the
        # heads read come from it, the embeddings from the search tower.
        self.recognition_top = recognition_top
        # Reads the same pooled maps as the context heads, so only where the tower exposes them.
        self.style_head = style_head if style_head is not None and supports_gem_features(encoder) else None
        self._base_width: int | None = None
        self._prompt_vectors: dict[str, np.ndarray] | None = None
        # Attribute -> weight of the text prompts' answer combined with the head's on pieces
        # (``prompt_blend``; measured, not on by default); empty: the heads alone.
        self.prompt_weights = dict(prompt_weights or {})

    @property
    def piece_head(self) -> torch.nn.Module | None:
        """The localiser's head, where a context head reads the maps pooled under its piece map."""
        if self.localizer is None or self.heads is None or not supports_gem_features(self.encoder):
            return None
        if self._base_width is None:
            self._base_width = base_width(self.encoder)
        return self.localizer.head if self.heads.context_width() > self._base_width else None

    def with_heads(self, heads: AttributeHeads | None) -> "Recognizer":
        """The same recogniser with other heads (evaluation judges some photos with fold heads)."""
        if heads is self.heads:
            return self
        twin = Recognizer(self.encoder, heads, self.top, self.gem_specialist, self.localizer, self.recognition_top,
                          self.style_head, self.prompt_weights)
        twin._prompt_vectors = self._prompt_vectors
        return twin

    @property
    def method(self) -> str:
        base = "heads" if self.heads is not None else "zero-shot"
        if self.gem_specialist is not None:
            base += " + gem specialist"
        return base + " + recognition top" if self.recognition_top is not None and self.reads_pooled else base

    def recognize_images(self, images: Sequence[Image.Image], subject: str = "piece") -> list[Prediction]:
        embeddings, pooled = self.embed(images)
        return self.recognize_embeddings(embeddings, pooled, subject=subject)

    @property
    def reads_pooled(self) -> bool:
        """Whether the pooled maps change any answer (context heads, a gem specialist or a style head)."""
        return supports_gem_features(self.encoder) and (
            self.gem_specialist is not None or self.style_head is not None
            or bool(self.heads is not None and self.heads.context_attributes))

    def embed(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray | None]:
        """Unit embeddings and, where something reads them, ``gem_features`` (the pooled maps),
        from one tower pass; (embeddings, None) otherwise."""
        if not self.reads_pooled:
            return self.encoder.encode_images(images), None
        return embed_and_pool(self.encoder, images, piece_head=self.piece_head, top=self.recognition_top)

    def embed_and_locate(self, images: Sequence[Image.Image], wanted: Sequence[bool] | None = None
                         ) -> tuple[np.ndarray, np.ndarray | None, list | None]:
        """``embed`` plus each photo's ``Localization`` (None without a localiser, and for the
        photos ``wanted`` leaves out): from the same tower pass where the pooled maps are read,
        else from one more pass per wanted photo."""
        wanted = [True] * len(images) if wanted is None else list(wanted)
        if self.localizer is None:
            return (*self.embed(images), None)
        if not self.reads_pooled:
            located = [self.localizer.locate(im) if w else None for im, w in zip(images, wanted)]
            return self.encoder.encode_images(images), None, located
        vectors, pooled, located = embed_pool_and_locate(self.encoder, images, piece_head=self.piece_head,
                                                         top=self.recognition_top, localizer=self.localizer)
        return vectors, pooled, [found if w else None for found, w in zip(located, wanted)]

    def embed_all(self, images: Sequence[Image.Image], wanted: Sequence[bool] | None = None,
                  instance_head=None, *, recognise: Sequence[bool] | None = None,
                  inputs: Sequence[torch.Tensor] | None = None,
                  histograms: Sequence[np.ndarray] | None = None,
                  beside: Executor | None = None, max_boxes: int = 5, tower=None) -> PassOutputs:
        """``embed`` (or, with ``wanted``, ``embed_and_locate``) plus, with ``instance_head``
        (``embed.instance.InstanceHead``), each photo's instance vector: all from one tower pass.
        Localisations are None without a localiser, and for the photos ``wanted`` leaves out.

        Where the tower exposes its maps, ``recognise`` names the photos whose pooled maps are
        wanted (the others' rows are NaN; None when no photo is recognised), and ``inputs`` /
        ``histograms`` may be passed ready-made (``gem_features.tower_outputs``). ``beside`` runs the
        recognition top on that executor, beside the tower's own blocks (same outputs, sooner
        where a core is free). ``max_boxes`` 0 leaves the localisations without boxes (their
        maps only), for a caller that reads the masks alone. ``tower`` runs the tower pass in place
        of torch's (``gem_features.tower_outputs``)."""
        if supports_gem_features(self.encoder):
            wanted = list(wanted) if wanted is not None and self.localizer is not None else None
            pool = self.reads_pooled
            out = tower_outputs(self.encoder, images, pool=pool, piece_head=self.piece_head if pool else None,
                                top=self.recognition_top if pool else None,
                                localizer=self.localizer if wanted is not None and any(wanted) else None,
                                instance_head=instance_head, wanted=wanted, recognise=recognise,
                                inputs=inputs, histograms=histograms, beside=beside, max_boxes=max_boxes,
                                tower=tower)
            if not pool:
                out.pooled = None
            return out
        if instance_head is None:
            if wanted is None:
                return PassOutputs(*self.embed(images))
            return PassOutputs(*self.embed_and_locate(images, wanted))
        raise ValueError("an instance head needs a tower that exposes its maps")

    def recognize_embeddings(self, embeddings: np.ndarray, pooled: np.ndarray | None = None,
                             subject: str = "piece", attributes: Sequence[str] | None = None) -> list[Prediction]:
        """``pooled`` (from ``embed``) lets the context heads answer for category and metal and,
        with ``subject="stone"``, the gem specialist name the stone; without it the embedding
        heads answer. ``attributes`` (default: all) names the attributes wanted: the others'
        heads do not run."""
        probabilities = self.probabilities(embeddings, pooled, subject=subject, attributes=attributes)
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
        if attribute == "style" and self.style_head is not None:
            return self.style_head.vocabulary
        if self.heads is not None:
            return self.heads.vocabularies[attribute]
        return list(ZERO_SHOT_VOCABULARIES[attribute])

    def probabilities(self, embeddings: np.ndarray, pooled: np.ndarray | None = None,
                      subject: str = "piece", attributes: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        if subject not in SUBJECTS:
            raise ValueError(f"subject must be one of {', '.join(SUBJECTS)}")
        out = self.heads.probabilities(embeddings, pooled, attributes) if self.heads is not None \
            else self.zero_shot_probabilities(embeddings, attributes)
        if subject == "piece" and self.heads is not None:
            out = self._blend_prompts(out, embeddings)
        if subject == "stone" and self.gem_specialist is not None and pooled is not None and "gemstone" in out:
            out["gemstone"] = self.with_specialist(out["gemstone"], self.vocabulary("gemstone"), pooled)
        if subject == "piece" and self.style_head is not None and self.style_head.reads(pooled) \
                and (attributes is None or "style" in attributes):
            out["style"] = self.style_head.probabilities(embeddings, pooled).astype(np.float32)
        return out

    def _blend_prompts(self, out: dict[str, np.ndarray], embeddings: np.ndarray) -> dict[str, np.ndarray]:
        wanted = [a for a, w in self.prompt_weights.items() if w and a in out]
        if not wanted:
            return out
        prompts = self.zero_shot_probabilities(embeddings, wanted)
        for attribute in wanted:
            out[attribute] = blend_with_prompts(out[attribute], self.vocabulary(attribute), prompts[attribute],
                                                ZERO_SHOT_VOCABULARIES[attribute],
                                                self.prompt_weights[attribute]).astype(np.float32)
        return out

    def with_specialist(self, general: np.ndarray, vocabulary: Sequence[str],
                        pooled: np.ndarray) -> np.ndarray:
        """Gemstone probabilities for photos of loose stones: the specialist's, laid out in the
        general head's vocabulary (classes it does not know, such as pearl or none, get 0).

        Only for subject="stone". On photos of jewelry, where a stone is a few percent of the
        frame, combining it with the general head (their product, renormalised) measured worse
        than the general head alone (products/val gemstone 73 % vs 80 %, and less robust), so
        pieces keep the general head."""
        specialist = self.gem_specialist
        columns = {label: i for i, label in enumerate(vocabulary)}
        shared = [(columns[label], j) for j, label in enumerate(specialist.vocabulary) if label in columns]
        if not shared:
            return general
        general_cols = np.array([c for c, _ in shared])
        specialist_cols = np.array([j for _, j in shared])
        # The specialist reads the first block of the pooled features (no piece pooling).
        specialist_p = specialist.probabilities(np.asarray(pooled)[:, :len(specialist.mean)])[:, specialist_cols]
        out = np.zeros(np.shape(general), dtype=np.float64)
        out[:, general_cols] = specialist_p / np.maximum(specialist_p.sum(1, keepdims=True), 1e-300)
        return out.astype(np.float32)

    def zero_shot_probabilities(self, embeddings: np.ndarray,
                                attributes: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        scale = float(self.encoder.model.logit_scale.detach().exp().clamp(max=100))
        out = {}
        for attribute, vectors in self.prompt_vectors().items():
            if attributes is not None and attribute not in attributes:
                continue
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
