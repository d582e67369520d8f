"""Local features: one unit descriptor per position of the image tower's last map, for a check
of local matches over a query's top candidates (``index/local_match.py``).

They come from the same tower pass as the embedding and the instance vector (``tower_pass``),
from the search tower's own last map, so a recognition top never moves them. At the default
224 px input the last map is 7 × 7 positions of 1,280 channels (EfficientNet-Lite0); the
``SALIENT_POSITIONS`` with the strongest activations are kept, stored as float16.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from jewelsearch.embed.dense_features import supports_dense_features, tower_pass

SALIENT_POSITIONS = 24  # of 49 at 224 px: the piece, more often than the backdrop


@torch.inference_mode()
def local_descriptors(encoder, images: Sequence[Image.Image], keep: int = SALIENT_POSITIONS,
                      batch_size: int | None = None) -> list[np.ndarray]:
    """Per photo, [≤ keep, C] float16 unit rows: the last map's positions with the largest
    activation norms, in raster order. Raises ValueError for a tower without dense maps."""
    visual = encoder.model.visual
    if not supports_dense_features(visual):
        raise ValueError("this image tower has no spatial maps to take local features from")
    size = max(1, int(batch_size or encoder.batch_size))
    out: list[np.ndarray] = []
    for start in range(0, len(images), size):
        batch = torch.stack([encoder.preprocess(im) for im in images[start:start + size]])
        result = tower_pass(visual, batch.contiguous(memory_format=torch.channels_last))
        last = result.search_last_map if result.search_last_map is not None else result.last_map
        rows = last.float().flatten(2).transpose(1, 2)            # N × positions × C
        norms = rows.norm(dim=2)
        count = min(keep, rows.shape[1])
        top = norms.topk(count, dim=1).indices.sort(dim=1).values
        picked = torch.gather(rows, 1, top[..., None].expand(-1, -1, rows.shape[2]))
        out += list(F.normalize(picked, dim=2).numpy().astype(np.float16))
    return out
