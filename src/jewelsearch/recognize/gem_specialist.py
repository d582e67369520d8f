"""The gem specialist: which of the loose-stone classes a stone is, from ``gem_features``.

A standardised linear classifier with a calibration temperature. It only says *which*
stone; whether there is a stone at all, and jewelry gems outside its classes (pearl, none),
stay with the general gemstone head, which decides how much probability the specialist's
classes share (see ``Recognizer``). Saved beside the model as ``gem_head.safetensors`` +
``gem_head.json``; like the other heads it is not part of the model id.

Its trainer is ``jewelsearch.train.gem_specialist``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jewelsearch.embed.artifacts import GEM_SPECIALIST_META as GEM_HEAD_META
from jewelsearch.embed.artifacts import GEM_SPECIALIST_WEIGHTS as GEM_HEAD_WEIGHTS


@dataclass
class GemSpecialist:
    vocabulary: list[str]
    mean: np.ndarray       # [F]
    scale: np.ndarray      # [F]
    weight: np.ndarray     # [F, C]
    bias: np.ndarray       # [C]
    temperature: float = 1.0

    def logits(self, features: np.ndarray) -> np.ndarray:
        x = (np.asarray(features, dtype=np.float32) - self.mean) / self.scale
        return x @ self.weight + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        z = self.logits(features) / self.temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, folder: Path, summary: dict | None = None) -> None:
        from safetensors.numpy import save_file
        # fp16 halves the file; the largest logit change it causes is far below the margins.
        save_file({"mean": self.mean.astype(np.float32), "scale": self.scale.astype(np.float32),
                   "weight": self.weight.astype(np.float16), "bias": self.bias.astype(np.float32)},
                  str(Path(folder) / GEM_HEAD_WEIGHTS))
        (Path(folder) / GEM_HEAD_META).write_text(json.dumps(
            {"vocabulary": self.vocabulary, "temperature": self.temperature, "features": int(len(self.mean)),
             "training": summary or {}}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path | None) -> "GemSpecialist | None":
        if folder is None or not (Path(folder) / GEM_HEAD_META).is_file():
            return None
        from safetensors.numpy import load_file
        meta = json.loads((Path(folder) / GEM_HEAD_META).read_text())
        tensors = load_file(str(Path(folder) / GEM_HEAD_WEIGHTS))
        return cls(list(meta["vocabulary"]), tensors["mean"], tensors["scale"],
                   tensors["weight"].astype(np.float32), tensors["bias"], float(meta["temperature"]))
