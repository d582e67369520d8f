"""Attribute heads: linear classifiers on the unit image embedding.

Saved beside the model as ``heads.safetensors`` + ``heads.json`` (label
vocabularies and the calibration temperature of each head).  They are not
part of the model id: retraining a head does not change any embedding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

HEADS_WEIGHTS = "heads.safetensors"
HEADS_META = "heads.json"


class AttributeHeads(nn.Module):
    def __init__(self, dim: int, vocabularies: Mapping[str, Sequence[str]]):
        super().__init__()
        self.vocabularies = {k: list(v) for k, v in vocabularies.items()}
        self.heads = nn.ModuleDict({k: nn.Linear(dim, len(v)) for k, v in self.vocabularies.items()})
        self.temperatures = {k: 1.0 for k in self.vocabularies}

    def forward(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: head(embeddings) for k, head in self.heads.items()}

    @torch.inference_mode()
    def probabilities(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        logits = self(torch.from_numpy(np.asarray(embeddings, dtype=np.float32)))
        return {k: torch.softmax(v / self.temperatures[k], dim=-1).numpy() for k, v in logits.items()}

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()},
                  str(folder / HEADS_WEIGHTS))
        (folder / HEADS_META).write_text(json.dumps(
            {"dim": next(iter(self.heads.values())).in_features, "vocabularies": self.vocabularies,
             "temperatures": self.temperatures}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "AttributeHeads | None":
        from safetensors.torch import load_file
        meta_path = Path(folder) / HEADS_META
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        heads = cls(meta["dim"], meta["vocabularies"])
        heads.load_state_dict(load_file(str(Path(folder) / HEADS_WEIGHTS)), strict=True)
        heads.temperatures = {k: float(v) for k, v in meta["temperatures"].items()}
        return heads.eval()


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature minimising NLL on held-out data (Guo et al., 2017)."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss
    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == targets
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)
