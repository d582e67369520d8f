"""Attribute heads: linear classifiers on the unit image embedding, and optionally
context heads for some attributes on the embedding plus the tower's pooled maps.

The 512-d embedding is shaped for image-text search. Telling an earring on an ear from a
ring on a hand, or gold from skin, needs more than it keeps, and the image tower computes
richer descriptions on the way to it (``gem_features``: the pooled last and stride-8/16/32
maps plus a colour histogram), in the same pass. Context heads read both, standardised.
Where the pooled maps are not at hand (an embedding stored at ingest, a tower without maps)
the embedding heads answer.

The context input can grow: blocks appended to the pooled features later (the maps pooled
under the localiser's piece map) get their own standardisation while the first columns keep
theirs, and each context head reads the first ``in_features`` columns. So heads fitted before
a block was added keep working unchanged, and a photo pooled without the later block is
still read by the heads that do not need it.

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

from jewelsearch.embed.artifacts import HEADS_META, HEADS_WEIGHTS


class AttributeHeads(nn.Module):
    def __init__(self, dim: int, vocabularies: Mapping[str, Sequence[str]], *, pooled_dim: int = 0,
                 context_attributes: Sequence[str] = ()):
        super().__init__()
        self.dim = dim
        self.vocabularies = {k: list(v) for k, v in vocabularies.items()}
        self.heads = nn.ModuleDict({k: nn.Linear(dim, len(v)) for k, v in self.vocabularies.items()})
        self.temperatures = {k: 1.0 for k in self.vocabularies}
        self.set_context(pooled_dim, context_attributes)

    def set_context(self, pooled_dim: int, attributes: Sequence[str]) -> None:
        """(Re)create untrained context heads for ``attributes`` over [embedding, pooled maps]."""
        self.pooled_dim = int(pooled_dim) if attributes else 0
        self.context_attributes = tuple(attributes) if self.pooled_dim else ()
        width = self.dim + self.pooled_dim if self.pooled_dim else 0
        self.context = nn.ModuleDict({k: nn.Linear(width, len(self.vocabularies[k]))
                                      for k in self.context_attributes})
        # Standardisation of the context input, measured on the training rows. Only saved when
        # there are context heads, so heads files from before them still load.
        for name, fill in (("context_mean", torch.zeros), ("context_scale", torch.ones)):
            self._buffers.pop(name, None)
            self.register_buffer(name, fill(width), persistent=bool(width))
        self.context_temperatures = {k: 1.0 for k in self.context_attributes}

    def widen_context(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        """Append columns to the context input with their own standardisation; the existing
        columns keep theirs and the existing context heads keep reading them."""
        if not self.pooled_dim:
            raise ValueError("set up the context input before widening it")
        self.pooled_dim += int(mean.numel())
        self.context_mean = torch.cat([self.context_mean, mean.float()])
        self.context_scale = torch.cat([self.context_scale, scale.float()])

    def add_context_head(self, attribute: str, head: nn.Linear, temperature: float) -> None:
        """Add (or replace) the context head of ``attribute``, fitted on inputs standardised by
        this object's ``context_inputs`` (all of its columns, or the first ``in_features``);
        the other context heads stay as they are."""
        if not self.pooled_dim or not self.dim < head.in_features <= self.dim + self.pooled_dim:
            raise ValueError("a context head must read the embedding and a prefix of the context input "
                             "these heads were set up with")
        self.context[attribute] = head
        self.context_temperatures[attribute] = float(temperature)
        if attribute not in self.context_attributes:
            self.context_attributes = self.context_attributes + (attribute,)

    def shape_context_heads(self, widths: Mapping[str, int]) -> None:
        """Give the (untrained) context heads the input widths a saved file says they read;
        heads saved before widths were recorded read the whole input."""
        for attribute, width in widths.items():
            if attribute in self.context_attributes and int(width) != self.context[attribute].in_features:
                self.context[attribute] = nn.Linear(int(width), len(self.vocabularies[attribute]))

    def remove_context_head(self, attribute: str) -> None:
        """Let the embedding head answer for ``attribute`` again."""
        if attribute in self.context_attributes:
            del self.context[attribute]
            self.context_temperatures.pop(attribute, None)
            self.context_attributes = tuple(a for a in self.context_attributes if a != attribute)

    def forward(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: head(embeddings) for k, head in self.heads.items()}

    def context_inputs(self, embeddings: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """[embedding, pooled] standardised; ``pooled`` may hold only the first columns of the
        context input (an older pooling) or more (blocks no head reads: cut off)."""
        inputs = torch.cat([embeddings, pooled[:, :self.pooled_dim]], dim=1)
        width = inputs.shape[1]
        return (inputs - self.context_mean[:width]) / self.context_scale[:width]

    def reads(self, attribute: str, pooled_width: int) -> bool:
        """Whether the context head of ``attribute`` can answer from pooled features this wide."""
        return attribute in self.context_attributes and \
            self.context[attribute].in_features <= self.dim + min(pooled_width, self.pooled_dim)

    def context_width(self) -> int:
        """How many pooled columns the widest context head reads (0: no context heads)."""
        return max((self.context[k].in_features - self.dim for k in self.context_attributes), default=0)

    @torch.inference_mode()
    def probabilities(self, embeddings: np.ndarray, pooled: np.ndarray | None = None,
                      attributes: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Calibrated probabilities per attribute; with ``pooled`` (``gem_features`` of the same
        photos) the context heads answer for their attributes, each where ``pooled`` holds the
        columns it reads. ``attributes`` (default: all) names the ones wanted: only their heads
        run (a search labelling its boxes asks for the category alone)."""
        wanted = list(self.heads) if attributes is None else [k for k in self.heads if k in attributes]
        x = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
        readers = [k for k in self.context_attributes
                   if k in wanted and pooled is not None and self.reads(k, np.shape(pooled)[-1])]
        # An attribute a context head answers for never needs its embedding head.
        out = {k: torch.softmax(self.heads[k](x) / self.temperatures[k], dim=-1).numpy()
               for k in wanted if k not in readers}
        if readers:
            inputs = self.context_inputs(x, torch.from_numpy(np.asarray(pooled, dtype=np.float32)))
            for k in readers:
                head = self.context[k]
                out[k] = torch.softmax(head(inputs[:, :head.in_features]) / self.context_temperatures[k],
                                       dim=-1).numpy()
        return {k: out[k] for k in wanted}

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()},
                  str(folder / HEADS_WEIGHTS))
        (folder / HEADS_META).write_text(json.dumps(
            {"dim": self.dim, "vocabularies": self.vocabularies, "temperatures": self.temperatures,
             "context": {"pooled_dim": self.pooled_dim, "attributes": list(self.context_attributes),
                         "temperatures": self.context_temperatures,
                         "widths": {k: self.context[k].in_features for k in self.context_attributes}}},
            indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "AttributeHeads | None":
        from safetensors.torch import load_file
        meta_path = Path(folder) / HEADS_META
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        context = meta.get("context") or {}
        heads = cls(meta["dim"], meta["vocabularies"], pooled_dim=int(context.get("pooled_dim", 0)),
                    context_attributes=context.get("attributes", ()))
        heads.shape_context_heads(context.get("widths", {}))
        heads.load_state_dict(load_file(str(Path(folder) / HEADS_WEIGHTS)), strict=True)
        heads.temperatures = {k: float(v) for k, v in meta["temperatures"].items()}
        heads.context_temperatures = {k: float(v) for k, v in context.get("temperatures", {}).items()}
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
