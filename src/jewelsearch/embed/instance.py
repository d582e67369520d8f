"""The instance vector: a second vector per photo, for "find this exact piece".

The text-aligned embedding (the tower's projection) was fine-tuned to agree with words, and
that training pulled apart what tells one piece from another of its kind. The image tower's
own maps, before the projection, keep much more of a piece's identity. ``InstanceHead`` turns
the maps of the tower pass that makes the embedding into a unit vector, so the second vector
costs a pooling, not a second network run.

The descriptor: for each block named in the head's config ("last" is the search tower's last
map; "tap8", "tap16", "tap32" its stride-8/16/32 block outputs), GeM pooling (Radenović et
al.: the p-th root of the mean of the p-th powers, after clamping at 1e-6) with the config's
power ``p``, L2-normalised and times the block's weight; the blocks side by side, L2-normalised
(``descriptors``: what the trainer fits a projection on); then, where the head has them,
``(u - mean) @ projection`` (a whitening or learnt projection); then L2-normalised. The maps
always come from the search tower (``TowerPass.search_last_map``, ``search_taps``), never from
a recognition top, so recognition tuning never moves them.

Files in the model folder (``embed/artifacts.py``): ``instance_head.json`` (blocks, ``p``,
an optional ``summary`` the trainer writes) and, with a projection, ``instance_head.safetensors``
(``mean`` [D_in] and ``projection`` [D_in, dim]). Without them a dense tower gets the default
head: the last map alone, p = 3, no projection.

>>> head = InstanceHead.default()
>>> head.blocks, head.p
((('last', 1.0),), 3.0)
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from jewelsearch.embed.artifacts import INSTANCE_HEAD_CONFIG, INSTANCE_HEAD_WEIGHTS
from jewelsearch.embed.dense_features import TowerPass, supports_dense_features, tap_channels, tower_pass
from jewelsearch.errors import ModelLoadError

FORMAT = 1
BLOCK_NAMES = ("last", "tap8", "tap16", "tap32")
DEFAULT_P = 3.0
GEM_EPS = 1e-6
# What a projection reads, named in the space id. Heads are fitted on the unit descriptor
# (``descriptors``); until 2026-12-07 serving applied them to the weighted blocks before
# normalising (norm sqrt(sum of squared weights), 1.35 for the bundled head), a skew that added
# one offset to every vector (docs/experiments/2026-12-07-instance-head-input-scale.md). Naming
# the input gives catalogs embedded the old way a new space, which ``index rebuild`` fills.
PROJECTION_INPUT = "unit descriptor"


class InstanceHead:
    """Pools a ``TowerPass`` into unit instance vectors [N, dim]."""

    def __init__(self, blocks: Sequence[tuple[str, float]], p: float = DEFAULT_P,
                 mean: torch.Tensor | None = None, projection: torch.Tensor | None = None,
                 summary: Mapping[str, Any] | None = None, channels: Mapping[str, int] | None = None,
                 aligned_weight: float = 0.0):
        self.blocks = tuple((str(name), float(weight)) for name, weight in blocks)
        self.p = float(p)
        # The text-aligned embedding appended (times its square root) after the projection: the
        # cosine of two such vectors is (instance similarity + w * aligned similarity) / (1 + w),
        # so one index search ranks by both. The instance part alone keeps identity but loses the
        # kind of piece (similar-items category precision 0.94 -> 0.76 on product photos).
        self.aligned_weight = float(aligned_weight)
        self.mean = None if mean is None else mean.detach().float().contiguous()
        self.projection = None if projection is None else projection.detach().float().contiguous()
        self.summary = dict(summary or {})
        # Channels per block name, where the tower is known: what ``dim`` needs without a projection.
        self.channels = dict(channels) if channels is not None else None
        self._validate()
        self._space_id: str | None = None

    # ----- construction -----------------------------------------------------------
    @classmethod
    def default(cls, channels: Mapping[str, int] | None = None) -> "InstanceHead":
        return cls([("last", 1.0)], DEFAULT_P, channels=channels)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], mean: torch.Tensor | None = None,
                    projection: torch.Tensor | None = None,
                    channels: Mapping[str, int] | None = None) -> "InstanceHead":
        """A head from ``to_json``'s fields (``blocks`` as ``{"name", "weight"}`` dicts, ``p``,
        optional ``summary``)."""
        try:
            blocks = [(entry["name"], entry.get("weight", 1.0)) for entry in config["blocks"]]
            p = config.get("p", DEFAULT_P)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelLoadError(f"instance head config needs blocks as [{{'name', 'weight'}}]: {exc}") from exc
        return cls(blocks, p, mean, projection, config.get("summary"), channels,
                   config.get("aligned_weight", 0.0))

    @classmethod
    def load(cls, folder: Path | None, visual: torch.nn.Module | None = None) -> "InstanceHead | None":
        """The model folder's head (``instance_head.json`` and, with a projection,
        ``instance_head.safetensors``), else the default head. With ``visual`` (the encoder's
        image tower): None for a tower without dense maps (ViTs, test models), which keeps one
        vector per item, and a head checked against the tower's channels."""
        channels = None
        if visual is not None:
            if not supports_dense_features(visual):
                return None
            channels = block_channels(visual)
        config_path = Path(folder) / INSTANCE_HEAD_CONFIG if folder is not None else None
        if config_path is None or not config_path.is_file():
            return cls.default(channels)
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {config_path}: {exc}") from exc
        if not isinstance(config, dict) or config.get("format", FORMAT) != FORMAT:
            raise ModelLoadError(f"{config_path} is not a format-{FORMAT} instance head")
        mean = projection = None
        weights_path = Path(folder) / INSTANCE_HEAD_WEIGHTS
        if weights_path.is_file():
            from safetensors.torch import load_file
            try:
                tensors = load_file(str(weights_path))
            except Exception as exc:  # safetensors raises its own error types for a damaged file
                raise ModelLoadError(f"cannot read {weights_path}: {exc}") from exc
            mean, projection = tensors.get("mean"), tensors.get("projection")
        return cls.from_config(config, mean, projection, channels)

    @classmethod
    def save(cls, folder: Path, mean: torch.Tensor | np.ndarray | None, projection: torch.Tensor | np.ndarray | None,
             config: Mapping[str, Any]) -> "InstanceHead":
        """Write a head into a model folder (the config, and the projection where there is one)
        and return it. Each file is written under a temporary name first, so the folder never
        holds a half-written head; saving a head without a projection removes an old one."""
        from safetensors.torch import save_file

        as_tensor = (lambda a: None if a is None else torch.as_tensor(np.asarray(a, dtype=np.float32)))
        head = cls.from_config(config, as_tensor(mean), as_tensor(projection))
        folder = Path(folder)
        weights_path = folder / INSTANCE_HEAD_WEIGHTS
        if head.projection is not None:
            tmp = weights_path.with_name(weights_path.name + ".tmp")
            save_file({"mean": head.mean, "projection": head.projection}, str(tmp))
            tmp.replace(weights_path)
        else:
            weights_path.unlink(missing_ok=True)
        config_path = folder / INSTANCE_HEAD_CONFIG
        tmp = config_path.with_name(config_path.name + ".tmp")
        tmp.write_text(head.to_json() + "\n")
        tmp.replace(config_path)
        return head

    def _validate(self) -> None:
        if not self.blocks:
            raise ModelLoadError("an instance head needs at least one block")
        names = [name for name, _ in self.blocks]
        unknown = sorted(set(names) - set(BLOCK_NAMES))
        if unknown or len(set(names)) != len(names):
            raise ModelLoadError(f"instance head blocks must be distinct names from {', '.join(BLOCK_NAMES)}; "
                                 f"got {', '.join(names)}")
        if not all(math.isfinite(w) and w > 0 for _, w in self.blocks):
            raise ModelLoadError("instance head block weights must be positive numbers")
        if not (math.isfinite(self.p) and self.p > 0):
            raise ModelLoadError("instance head power p must be a positive number")
        if not (math.isfinite(self.aligned_weight) and self.aligned_weight >= 0):
            raise ModelLoadError("instance head aligned_weight must be a number, 0 or more")
        if (self.mean is None) != (self.projection is None):
            raise ModelLoadError("an instance head projection needs both mean and projection")
        if self.projection is not None:
            if self.projection.ndim != 2 or self.mean.shape != (self.projection.shape[0],):
                raise ModelLoadError(f"instance head mean {tuple(self.mean.shape)} and projection "
                                     f"{tuple(self.projection.shape)} do not fit together")
            if not (torch.isfinite(self.mean).all() and torch.isfinite(self.projection).all()):
                raise ModelLoadError("instance head weights must be finite")
        if self.channels is not None and self.projection is not None and self.input_dim != self.mean.shape[0]:
            raise ModelLoadError(f"instance head projection reads {self.mean.shape[0]} numbers, the tower's "
                                 f"blocks give {self.input_dim}")

    # ----- what it is -----------------------------------------------------------------
    @property
    def input_dim(self) -> int:
        """The width of the pooled blocks side by side (needs the tower's channels)."""
        if self.channels is None:
            raise ValueError("the descriptor's width needs the tower: InstanceHead.load(folder, visual)")
        return sum(self.channels[name] for name, _ in self.blocks)

    @property
    def dim(self) -> int:
        pooled = int(self.projection.shape[1]) if self.projection is not None else self.input_dim
        if not self.aligned_weight:
            return pooled
        if self.channels is None:
            raise ValueError("the aligned part's width needs the tower: InstanceHead.load(folder, visual)")
        return pooled + self.channels["aligned"]

    def to_json(self) -> str:
        """The config as the folder stores it."""
        config: dict[str, Any] = {"format": FORMAT, "blocks": [{"name": n, "weight": w} for n, w in self.blocks],
                                  "p": self.p}
        if self.aligned_weight:
            config["aligned_weight"] = self.aligned_weight
        if self.summary:
            config["summary"] = self.summary
        return json.dumps(config, indent=2, sort_keys=True)

    @property
    def space_id(self) -> str:
        """A short, stable name of the vector space this head makes: a hash of what the vectors
        depend on (blocks, power, projection and what it reads). Stored vectors are keyed by it,
        so a changed head means new vectors (``jewelsearch index rebuild`` re-embeds from the
        stored photos). The trainer's ``summary`` is left out: rewriting a report must not orphan
        a catalog's vectors. The tower's weights are in the model id, which the storage key holds
        beside this."""
        if self._space_id is None:
            described = {"format": FORMAT, "blocks": self.blocks, "p": self.p}
            if self.aligned_weight:
                described["aligned_weight"] = self.aligned_weight
            if self.projection is not None:
                described["projection_input"] = PROJECTION_INPUT
            digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode())
            if self.projection is not None:
                digest.update(self.mean.numpy().tobytes())
                digest.update(self.projection.numpy().tobytes())
            self._space_id = "instance-" + digest.hexdigest()[:12]
        return self._space_id

    # ----- vectors ----------------------------------------------------------------------
    def descriptors(self, result: TowerPass) -> torch.Tensor:
        """Unit descriptors [N, input_dim] from one tower pass (the search tower's maps): the
        weighted blocks side by side, L2-normalised. A projection is fitted on these (the trainer
        takes them from a head without one, whose vectors they are) and applied to these."""
        taps = result.search_taps if result.search_taps is not None else result.taps
        last = result.search_last_map if result.search_last_map is not None else result.last_map
        maps = {"last": last, "tap8": taps[0], "tap16": taps[1], "tap32": taps[2]}
        parts = [weight * F.normalize(gem(maps[name], self.p), dim=1) for name, weight in self.blocks]
        return F.normalize(torch.cat(parts, dim=1), dim=1)

    def vectors(self, result: TowerPass) -> torch.Tensor:
        """Unit instance vectors [N, dim] from one tower pass (the search tower's maps)."""
        x = self.descriptors(result)
        if self.projection is not None:
            x = F.normalize((x - self.mean) @ self.projection, dim=1)
        if self.aligned_weight:
            aligned = F.normalize(result.embedding.float(), dim=1)
            x = F.normalize(torch.cat([x, math.sqrt(self.aligned_weight) * aligned], dim=1), dim=1)
        return x


def gem(feature_map: torch.Tensor, p: float) -> torch.Tensor:
    """Generalised-mean pooling of an N×C×h×w map to N×C: p = 1 is the average, large p nears
    the maximum. Negative values (block outputs before an activation) are clamped first, as
    the power of a negative number is not defined for every p.

    >>> gem(torch.tensor([[[[1.0, 3.0]]]]), 1.0)
    tensor([[2.]])
    """
    x = feature_map.float().clamp_min(GEM_EPS)
    return x.pow(p).mean((2, 3)).pow(1.0 / p)


def block_channels(visual: torch.nn.Module) -> dict[str, int]:
    """Channels of each block an instance head can read, for a tower with dense maps; read off
    the modules where the projection is one linear layer (no forward pass on opening)."""
    taps = tap_channels(visual)
    head = getattr(visual, "head", None)
    proj = getattr(head, "proj", head)
    others = [m for m in head.children() if m is not proj] if head is not None and proj is not head else []
    if isinstance(proj, torch.nn.Linear) and all(isinstance(m, (torch.nn.Dropout, torch.nn.Identity)) for m in others):
        aligned = int(proj.out_features)
    else:
        with torch.inference_mode():
            aligned = int(tower_pass(visual, torch.zeros(1, 3, 64, 64)).embedding.shape[1])
    return {"last": int(visual.trunk.num_features), "tap8": taps[0], "tap16": taps[1], "tap32": taps[2],
            "aligned": aligned}


def _batches(encoder, images: Sequence[Image.Image], batch_size: int | None):
    size = max(1, int(batch_size or encoder.batch_size))
    for start in range(0, len(images), size):
        batch = torch.stack([encoder.preprocess(im) for im in images[start:start + size]])
        yield batch.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def encode_with_instance(encoder, head: InstanceHead, images: Sequence[Image.Image],
                         batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(unit text-aligned embeddings as ``encoder.encode_images`` gives them, unit instance
    vectors), float32, from one tower pass per batch."""
    aligned, instance = [], []
    for batch in _batches(encoder, images, batch_size):
        result = tower_pass(encoder.model.visual, batch)
        aligned.append(F.normalize(result.embedding.float(), dim=-1).numpy())
        instance.append(head.vectors(result).numpy())
    if not aligned:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return (np.ascontiguousarray(np.concatenate(aligned), dtype=np.float32),
            np.ascontiguousarray(np.concatenate(instance), dtype=np.float32))


def instance_vectors(encoder, head: InstanceHead, images: Sequence[Image.Image],
                     batch_size: int | None = None) -> np.ndarray:
    """Unit instance vectors [N, dim] float32, one tower pass per batch."""
    return encode_with_instance(encoder, head, images, batch_size)[1]
