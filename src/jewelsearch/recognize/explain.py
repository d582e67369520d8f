"""Why did this image match? A heatmap of the regions that drive its similarity to a query.

Grad-CAM (Selvaraju et al., 2017) on the tower's last convolutional map: the gradient of the
cosine similarity between the image's embedding and the query vector (another item's
embedding or a text embedding), averaged per channel, weights that channel's activations.
Towers without a convolutional map (ViTs, test models) get gradient × input saliency instead.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from jewelsearch.embed.dense_features import supports_dense_features, tower_pass
from jewelsearch.embed.encoder import Encoder
from jewelsearch.recognize.localizer import letterbox_geometry


def heatmap(encoder: Encoder, image: Image.Image, query: np.ndarray) -> tuple[np.ndarray, str]:
    """A map in [0, 1] with the image's aspect (long side = the model's input size), and the method."""
    batch = encoder.preprocess(image)[None].requires_grad_(True)
    # A copy: query vectors may be read-only (the text cache shares them between requests).
    target = torch.tensor(np.asarray(query, dtype=np.float32))
    visual = encoder.model.visual
    # autograd.grad (not backward) so no gradient lands in the shared model's parameters,
    # which other threads are using for inference at the same time.
    with torch.enable_grad():
        if supports_dense_features(visual):
            result = tower_pass(visual, batch)
            score = F.cosine_similarity(result.embedding[0], target, dim=0)
            grad, = torch.autograd.grad(score, [result.last_map])
            weights = grad.mean(dim=(2, 3), keepdim=True)
            cam = torch.relu((weights * result.last_map).sum(dim=1))[0].detach()
            method = "grad-cam"
        else:
            score = F.cosine_similarity(encoder.model.encode_image(batch)[0], target, dim=0)
            grad, = torch.autograd.grad(score, [batch])
            cam = (grad * batch).abs().sum(dim=1)[0].detach()
            method = "gradient-x-input"
    side = encoder.preprocess.size
    full = F.interpolate(cam[None, None], size=(side, side), mode="bilinear", align_corners=False)[0, 0].numpy()
    _, ox, oy, cw, ch = letterbox_geometry(image.width, image.height, side)
    full = full[oy:oy + ch, ox:ox + cw]
    peak = float(full.max())
    if not np.isfinite(peak) or peak <= 0:
        # Nothing raises the similarity locally (possible for a far-off query): show a flat map
        # rather than dividing by zero, so the overlay is honest about having no hot spot.
        return np.full(full.shape, 0.5, np.float32), method + " (flat: no region raises the similarity)"
    return (np.clip(full, 0, None) / peak).astype(np.float32), method


def overlay_png(image: Image.Image, heat: np.ndarray, max_side: int = 512) -> bytes:
    """The photo with the heatmap laid over it in a warm colour ramp, as PNG bytes."""
    base = image.convert("RGB")
    base.thumbnail((max_side, max_side))
    h = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(base.size, Image.BILINEAR),
                   dtype=np.float32) / 255
    ramp = np.stack([np.clip(1.5 * h, 0, 1), np.clip(1.5 * h - 0.5, 0, 1), np.clip(0.3 - h, 0, 1)], axis=-1) * 255
    alpha = (0.15 + 0.5 * h)[..., None]
    mixed = np.asarray(base, np.float32) * (1 - alpha) + ramp * alpha
    buffer = io.BytesIO()
    Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()
