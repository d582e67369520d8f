"""The style head: how a piece is built (solitaire, halo, stud, hoop, tennis ...), from the
features the other heads already read.

Search understands style words ("halo ring", "光环戒指"), but a shop that uploads only photos
gives no title for them to match. This head names the style from the same tower pass as
the other attribute heads: a standardised linear classifier over [unit embedding, the first
``width`` columns of ``gem_features``], with a calibration temperature. Where the pooled maps
are not at hand (an embedding read back from storage) it does not answer.

Styles belong to a category (a "hoop" is earrings, a "tennis" is a bracelet), so the file
also holds which styles each category has, as seen in the training labels, and the lowest
probability at which ingest fills a style in (chosen on a tuning part of the labelled renders:
``train/style_head.py``). ``fill`` applies both: real photos carry no style labels, and a
style outside the piece's category, or an unsure one, is kept as a guess but never filled in.

Saved beside the model as ``style_head.safetensors`` + ``style_head.json``; like the other
heads it is not part of the model id, and a model folder without it recognises as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from jewelsearch.embed.artifacts import STYLE_HEAD_META, STYLE_HEAD_WEIGHTS


@dataclass
class StyleHead:
    vocabulary: list[str]
    mean: np.ndarray       # [F] over [embedding, pooled[:width]]
    scale: np.ndarray      # [F]
    weight: np.ndarray     # [F, C]
    bias: np.ndarray       # [C]
    embedding_dim: int
    temperature: float = 1.0
    category_styles: dict[str, list[str]] = field(default_factory=dict)
    fill_threshold: float = 0.5
    summary: dict = field(default_factory=dict)

    @property
    def pooled_width(self) -> int:
        return int(len(self.mean)) - self.embedding_dim

    def reads(self, pooled: np.ndarray | None) -> bool:
        """Whether ``pooled`` holds the columns this head reads."""
        return pooled is not None and np.shape(pooled)[-1] >= self.pooled_width

    def inputs(self, embeddings: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        x = np.concatenate([np.asarray(embeddings, dtype=np.float32),
                            np.asarray(pooled, dtype=np.float32)[:, :self.pooled_width]], axis=1)
        return (x - self.mean) / self.scale

    def probabilities(self, embeddings: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        """[n, styles] calibrated probabilities."""
        z = (self.inputs(embeddings, pooled) @ self.weight + self.bias) / self.temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def fill(self, best: Mapping[str, object], category: str | None) -> str | None:
        """The style a piece of ``category`` gets from the head's top guess (``{"label", "p"}``),
        or None: unsure, no category, or a style that category does not have.

        >>> head = StyleHead(["halo", "hoop"], np.zeros(2), np.ones(2), np.zeros((2, 2)), np.zeros(2), 1,
        ...                  category_styles={"ring": ["halo"], "earrings": ["hoop"]}, fill_threshold=0.6)
        >>> head.fill({"label": "halo", "p": 0.9}, "ring"), head.fill({"label": "hoop", "p": 0.9}, "ring")
        ('halo', None)
        >>> head.fill({"label": "halo", "p": 0.5}, "ring"), head.fill({"label": "halo", "p": 0.9}, None)
        (None, None)
        """
        label = str(best["label"])
        if not category or label not in self.category_styles.get(category, ()):
            return None
        return label if float(best["p"]) >= self.fill_threshold else None

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file
        save_file({"mean": self.mean.astype(np.float32), "scale": self.scale.astype(np.float32),
                   "weight": self.weight.astype(np.float32), "bias": self.bias.astype(np.float32)},
                  str(Path(folder) / STYLE_HEAD_WEIGHTS))
        (Path(folder) / STYLE_HEAD_META).write_text(json.dumps(
            {"vocabulary": self.vocabulary, "embedding_dim": self.embedding_dim,
             "features": int(len(self.mean)), "temperature": self.temperature,
             "category_styles": self.category_styles, "fill_threshold": self.fill_threshold,
             "training": self.summary}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path | None) -> "StyleHead | None":
        if folder is None or not (Path(folder) / STYLE_HEAD_META).is_file():
            return None
        from safetensors.numpy import load_file
        meta = json.loads((Path(folder) / STYLE_HEAD_META).read_text())
        tensors = load_file(str(Path(folder) / STYLE_HEAD_WEIGHTS))
        return cls(list(meta["vocabulary"]), tensors["mean"], tensors["scale"], tensors["weight"], tensors["bias"],
                   int(meta["embedding_dim"]), float(meta["temperature"]),
                   {k: list(v) for k, v in meta.get("category_styles", {}).items()},
                   float(meta.get("fill_threshold", 0.5)), dict(meta.get("training", {})))


def styles_by_category(labels: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """{category: its styles, sorted} from (category, style) training labels.

    >>> styles_by_category([("ring", "halo"), ("earrings", "hoop"), ("ring", "solitaire")])
    {'earrings': ['hoop'], 'ring': ['halo', 'solitaire']}
    """
    out: dict[str, set[str]] = {}
    for category, style in labels:
        out.setdefault(category, set()).add(style)
    return {category: sorted(styles) for category, styles in sorted(out.items())}
