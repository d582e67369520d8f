"""An attribute head's answer combined with the zero-shot text prompts' answer.

On studio renders the metal head reads white metals as yellow or rose gold (white gold 0.27,
platinum 0.08 right on the held-out renders); the text prompts ("jewelry in platinum") know
the colours from the encoder's pre-training. Their product, the prompts' log-probabilities
weighted 0.5, reads the held-out renders' metal better (top-1 0.49 -> 0.59) at no cost on real
shop photos, yet photos-only attribute search fell (EN 0.541 -> 0.526, ZH 0.511 -> 0.491), so
no attribute is blended by default (docs/experiments/2026-12-07-fill-thresholds.md, part 2).
``Recognizer(prompt_weights={"metal": 0.5})`` reproduces the measured setting.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Attribute -> weight of the prompts' log-probabilities against the head's; none by default
# (the measured {"metal": 0.5} did not lift search, see above).
PROMPT_WEIGHTS: dict[str, float] = {}
FLOOR = 1e-6  # a head label the prompts do not name keeps the head's answer, scaled down


def blend_with_prompts(head: np.ndarray, head_vocabulary: Sequence[str], prompts: np.ndarray,
                       prompt_vocabulary: Sequence[str], weight: float) -> np.ndarray:
    """softmax(log p_head + weight * log p_prompts), in the head's vocabulary.

    >>> head = np.array([[0.6, 0.4]]); prompts = np.array([[0.1, 0.9]])
    >>> blend_with_prompts(head, ["yellow gold", "platinum"], prompts, ["yellow gold", "platinum"], 1.0).round(3)
    array([[0.143, 0.857]])
    >>> blend_with_prompts(head, ["yellow gold", "platinum"], prompts, ["platinum", "yellow gold"], 0.0).round(3)
    array([[0.6, 0.4]])
    """
    columns = {label: j for j, label in enumerate(prompt_vocabulary)}
    aligned = np.full(np.shape(head), FLOOR, dtype=np.float64)
    for i, label in enumerate(head_vocabulary):
        if label in columns:
            aligned[:, i] = np.asarray(prompts)[:, columns[label]]
    logits = np.log(np.maximum(np.asarray(head, dtype=np.float64), 1e-12)) + weight * np.log(np.maximum(aligned, 1e-12))
    logits -= logits.max(1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(1, keepdims=True)
