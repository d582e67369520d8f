"""Find the piece in a photo: a small dense head on the image tower's own feature maps.

The head reads the stride-8/16/32 maps that the embedding pass computes anyway and
predicts, per stride-8 cell, how much of it is jewelry and how much of that is stone.
Boxes are the connected regions of the piece map, ordered by confidence; the stone
share gives the gem / metal / background masks used for evidence.

Files in the model folder: ``localizer.json`` (config, training summary) and
``localizer.safetensors`` (the head's weights, about 0.3 MB).
"""

from __future__ import annotations

import json
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

from jewelsearch.embed.dense_features import supports_dense_features, tower_pass
from jewelsearch.embed.artifacts import LOCALIZER_CONFIG as CONFIG_FILE
from jewelsearch.embed.artifacts import LOCALIZER_WEIGHTS as WEIGHTS_FILE
from jewelsearch.embed.encoder import Encoder
from jewelsearch.recognize.mask_regions import dilate, label_regions

# A detection smaller than this (pixels on its long side) is too small to embed usefully.
MIN_BOX_SIDE = 12

# Weights of a stone branch (``jewelsearch.train.stone_branch``), stored beside the head's under this prefix.
STONE_BRANCH_PREFIX = "stone_branch."


class DenseHead(torch.nn.Module):
    """Logits per stride-8 cell: the localiser's head has two, piece vs. background and stone vs.
    metal within the piece; a stone branch (``jewelsearch.train.stone_branch``) has the stone one alone."""

    def __init__(self, in_channels: tuple[int, ...], width: int = 32, hidden: int = 64, outputs: int = 2):
        super().__init__()
        self.reduce = torch.nn.ModuleList(torch.nn.Conv2d(c, width, 1) for c in in_channels)
        self.mix = torch.nn.Sequential(
            torch.nn.Conv2d(width * len(in_channels), hidden, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(hidden, hidden, 3, padding=1), torch.nn.ReLU())
        self.out = torch.nn.Conv2d(hidden, outputs, 1)

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        size = taps[0].shape[-2:]
        merged = torch.cat([F.interpolate(reduce(t.float()), size=size, mode="bilinear", align_corners=False)
                            for reduce, t in zip(self.reduce, taps)], dim=1)
        return self.out(self.mix(merged))


@dataclass
class Box:
    x0: int
    y0: int
    x1: int
    y1: int
    confidence: float

    def as_dict(self) -> dict:
        return {"box": [self.x0, self.y0, self.x1, self.y1], "confidence": round(self.confidence, 4)}

    def centre_inside(self, rect: tuple[int, int, int, int]) -> bool:
        """Whether this box's centre lies in ``rect`` (x0, y0, x1, y1): it points at that piece."""
        x0, y0, x1, y1 = rect
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        return x0 <= cx <= x1 and y0 <= cy <= y1


@dataclass
class Localization:
    """Maps are in the original image's pixel grid (at most ``map_side`` on the long side)."""
    boxes: list[Box]
    piece: np.ndarray           # probability a pixel is jewelry
    stone: np.ndarray | None    # probability a jewelry pixel is stone (not metal); None: not asked for
    notes: list[str] = field(default_factory=list)
    # The whole photo's unit embedding, from the same tower pass (``locate``): a query that falls
    # back to the whole photo needs no second pass.
    embedding: np.ndarray | None = None
    # The whole photo's unit instance vector from that pass, where ``locate`` was given an
    # instance head (``embed.instance.InstanceHead``).
    instance: np.ndarray | None = None

    def masks(self, threshold: float = 0.5) -> np.ndarray:
        """0 background, 1 metal, 2 stone — at map resolution."""
        labels = np.zeros(self.piece.shape, np.uint8)
        jewelry = self.piece >= threshold
        labels[jewelry] = 1
        labels[jewelry & (self.stone >= 0.5)] = 2
        return labels


def letterbox_geometry(width: int, height: int, size: int) -> tuple[float, int, int, int, int]:
    """Scale and the content rectangle (x, y, w, h) of ``preprocess.letterbox`` in the square."""
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    return scale, (size - new_w) // 2, (size - new_h) // 2, new_w, new_h


class Localizer:
    def __init__(self, encoder: Encoder, head: DenseHead, config: dict, stone_branch: DenseHead | None = None):
        self.encoder = encoder
        self.head = head.eval()
        # Where present, a branch of its own gives the stone map; the head then gives the piece
        # map alone (its stone row is kept but unused).
        self.stone_branch = stone_branch.eval() if stone_branch is not None else None
        self.config = config
        self.threshold = float(config.get("threshold", 0.5))
        self.min_area_fraction = float(config.get("min_area_fraction", 0.0005))
        self.merge_px = int(config.get("merge_px", 0))

    @classmethod
    def load(cls, encoder: Encoder, folder: Path | None) -> "Localizer | None":
        """None when the model folder has no localiser or its tower has no dense maps."""
        if folder is None or not (Path(folder) / WEIGHTS_FILE).is_file():
            return None
        if not supports_dense_features(encoder.model.visual):
            return None
        config = json.loads((Path(folder) / CONFIG_FILE).read_text())
        shape = (tuple(config["in_channels"]), config.get("width", 32), config.get("hidden", 64))
        weights = {k: v.float() for k, v in load_file(str(Path(folder) / WEIGHTS_FILE)).items()}
        head = DenseHead(*shape)
        head.load_state_dict({k: v for k, v in weights.items() if not k.startswith(STONE_BRANCH_PREFIX)})
        branch_weights = {k[len(STONE_BRANCH_PREFIX):]: v for k, v in weights.items()
                          if k.startswith(STONE_BRANCH_PREFIX)}
        branch = None
        if branch_weights:
            branch = DenseHead(*shape, outputs=1)
            branch.load_state_dict(branch_weights)
        return cls(encoder, head, config, branch)

    def save(self, folder: Path, summary: dict | None = None) -> None:
        folder = Path(folder)
        weights = dict(self.head.state_dict())
        if self.stone_branch is not None:
            weights.update({STONE_BRANCH_PREFIX + k: v for k, v in self.stone_branch.state_dict().items()})
        save_file({k: v.detach().half().contiguous() for k, v in weights.items()}, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(dict(self.config, **(summary or {})), indent=2) + "\n")

    @torch.inference_mode()
    def _pass(self, images: list[Image.Image], instance_head=None, stones: bool = True,
              beside: Executor | None = None
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """Piece and stone probabilities on the letterboxed square grid (N×S×S, stride 8), the
        images' unit embeddings (as ``encode_images``) and, with ``instance_head``, their
        instance vectors, from one tower pass (stone probabilities None unless ``stones``).
        With ``beside`` the instance vectors are pooled on that executor while this thread runs
        the localiser's head: both only read the pass's maps, so the results are the same."""
        batch = torch.stack([self.encoder.preprocess(im) for im in images])
        batch = batch.contiguous(memory_format=torch.channels_last)
        result = tower_pass(self.encoder.model.visual, batch)
        pending = beside.submit(_instance_vectors, instance_head, result) \
            if beside is not None and instance_head is not None else None
        piece, stone = self.grids(result.search_taps, stones=stones)
        embeddings = F.normalize(result.embedding.float(), dim=-1).numpy()
        if pending is not None:
            instance = pending.result()
        else:
            instance = instance_head.vectors(result).numpy() if instance_head is not None else None
        return piece, stone, embeddings, instance

    @torch.inference_mode()
    def grids(self, taps: list[torch.Tensor], stones: bool = True,
              head_logits: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Piece and stone probabilities (N×S×S) from the search tower's taps of a pass made
        elsewhere (``TowerPass.search_taps``): ingest locates the photos it embeds this way.
        Without ``stones`` the stone branch is not run and the stone grid is None.
        ``head_logits``: ``self.head(taps)`` where the caller already ran it (ingest's pooled
        maps read the same head's piece channel), so it is not run twice."""
        probs = torch.sigmoid(self.head(taps) if head_logits is None else head_logits).numpy()
        if not stones:
            return probs[:, 0], None
        if self.stone_branch is not None:
            return probs[:, 0], torch.sigmoid(self.stone_branch(taps)[:, 0]).numpy()
        return probs[:, 0], probs[:, 1]

    def usable_boxes(self, found: Localization) -> list[Box]:
        return [b for b in found.boxes if max(b.x1 - b.x0, b.y1 - b.y0) >= MIN_BOX_SIDE]

    def locate(self, image: Image.Image, max_boxes: int = 5, instance_head=None, stones: bool = True,
               beside: Executor | None = None) -> Localization:
        """Where the pieces are; the pass's whole-photo embedding (and, with ``instance_head``,
        instance vector) ride along for a query that falls back to the whole photo. Without
        ``stones`` the stone map is skipped (None): boxes come from the piece map alone, so a
        search, which reads only boxes, needs no stone branch. ``beside``: an executor that
        pools the instance vector while the localiser's head runs (the same vector, sooner
        where a core is free)."""
        piece_grid, stone_grid, embeddings, instance = self._pass([image], instance_head, stones, beside)
        found = self.from_maps(image.size, piece_grid[0], None if stone_grid is None else stone_grid[0], max_boxes)
        found.embedding = embeddings[0]
        found.instance = instance[0] if instance is not None else None
        return found

    def from_maps(self, image_size: tuple[int, int], piece_grid: np.ndarray, stone_grid: np.ndarray | None,
                  max_boxes: int = 5) -> Localization:
        return self.from_grids([image_size], piece_grid[None], None if stone_grid is None else stone_grid[None],
                               max_boxes)[0]

    def from_grids(self, image_sizes: Sequence[tuple[int, int]], piece_grids: np.ndarray,
                   stone_grids: np.ndarray | None, max_boxes: int = 5) -> list[Localization]:
        """``from_maps`` for each photo of a batch (grids N×S×S), every grid upsampled in one call:
        bilinear upsampling reads each grid alone, so the maps are the ones a call per photo
        gives, for a fraction of the calls (ingest locates 32 photos a batch)."""
        side = self.encoder.preprocess.size
        grids = [piece_grids] + ([stone_grids] if stone_grids is not None else [])
        full = _upsampled(np.stack(grids, axis=1), side)
        out = []
        for n, (width, height) in enumerate(image_sizes):
            scale, ox, oy, cw, ch = letterbox_geometry(width, height, side)
            # Copies: a photo's maps must not keep the whole batch's alive.
            piece = full[n, 0, oy:oy + ch, ox:ox + cw].copy()
            stone = full[n, 1, oy:oy + ch, ox:ox + cw].copy() if stone_grids is not None else None
            # ``max_boxes=0``: the masks alone (ingest's stone check), without the region scan.
            boxes = self._boxes(piece, 1.0 / scale, width, height)[:max_boxes] if max_boxes > 0 else []
            out.append(Localization(boxes, piece, stone))
        return out

    def _boxes(self, piece: np.ndarray, to_image: float, width: int, height: int) -> list[Box]:
        mask = piece >= self.threshold
        if self.merge_px > 0:
            # One piece often comes out as several blobs (a ring's band and its stone, a chain's
            # links); closing gaps up to ``merge_px`` at the model's input scale joins them.
            mask = dilate(mask, self.merge_px)
        regions, slices = label_regions(mask)
        boxes = []
        min_area = self.min_area_fraction * piece.size
        for index, region in enumerate(slices, start=1):
            inside = regions[region] == index
            inside_piece = inside & (piece[region] >= self.threshold)
            if inside_piece.sum() < max(min_area, 4):
                continue
            ys, xs = region
            confidence = float(piece[region][inside].max())
            ys_in, xs_in = np.nonzero(inside_piece)
            # The box hugs the predicted piece, not the dilation around it.
            ys = slice(ys.start + ys_in.min(), ys.start + ys_in.max() + 1)
            xs = slice(xs.start + xs_in.min(), xs.start + xs_in.max() + 1)
            x0, y0 = max(0, int(xs.start * to_image)), max(0, int(ys.start * to_image))
            x1 = min(width, int(np.ceil(xs.stop * to_image)))
            y1 = min(height, int(np.ceil(ys.stop * to_image)))
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                boxes.append(Box(x0, y0, x1, y1, confidence))
        boxes.sort(key=lambda b: -b.confidence)
        return boxes


def _instance_vectors(instance_head, result) -> np.ndarray:
    # Inference mode is per thread: a helper thread sets it as the caller's pass had it.
    with torch.inference_mode():
        return instance_head.vectors(result).numpy()


def _upsampled(grids: np.ndarray, side: int) -> np.ndarray:
    """Stride-8 grids (N×C×S×S) upsampled to the model's square (N×C×side×side)."""
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(grids)).float(), size=(side, side),
                         mode="bilinear", align_corners=False).numpy()


def crop(image: Image.Image, box: Box | tuple[int, int, int, int], padding: float = 0.15,
         min_side: int = 32) -> Image.Image:
    """The box plus some context, grown to a square around its centre when that fits.

    Context helps the encoder (a ring reads as a ring with a bit of finger around it),
    and a square crop is what it would letterbox to anyway.
    """
    x0, y0, x1, y1 = (box.x0, box.y0, box.x1, box.y1) if isinstance(box, Box) else box
    side = int(max(x1 - x0, y1 - y0) * (1 + 2 * padding))
    side = min(max(side, min_side), max(image.width, image.height))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(max(0, min(image.width - side, cx - side / 2)))
    top = int(max(0, min(image.height - side, cy - side / 2)))
    return image.crop((left, top, min(image.width, left + side), min(image.height, top + side)))


# A detected piece whose crop would cover at least this share of the photo already fills it (a
# catalog-style shot): cropping gains nothing and loses the framing the catalog's photos share.
FILLS_PHOTO = 0.5


def piece_crop(image: Image.Image, boxes: list[Box]) -> Image.Image | None:
    """What a region query searches: the most confident usable box with context (``boxes`` as
    ``usable_boxes`` orders them); None when there is none or the piece already fills the photo."""
    if not boxes:
        return None
    piece = crop(image, boxes[0])
    if piece.width * piece.height >= FILLS_PHOTO * image.width * image.height:
        return None
    return piece
