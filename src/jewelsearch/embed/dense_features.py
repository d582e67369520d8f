"""Spatial feature maps from a convolutional image tower, taken in the same pass as the embedding.

The localiser and Grad-CAM need the tower's intermediate maps. For timm EfficientNet-style
trunks (the default model's image tower) one forward pass yields the stride-8/16/32 maps,
the last conv map and the image embedding together, so finding the piece costs only the
small head on top. Other towers (ViTs, test models) are reported as unsupported and the
callers fall back to whole-image behaviour.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import torch

# Block outputs at strides 8, 16 and 32 of an EfficientNet (channels 40, 112, 320 for Lite0).
TAP_BLOCKS = (2, 4, 6)


@dataclass
class TowerPass:
    taps: list[torch.Tensor]        # stride-8, -16, -32 maps
    last_map: torch.Tensor          # the map pooled into the embedding (Grad-CAM's layer)
    embedding: torch.Tensor         # projected, not normalised
    # The search tower's own taps, which the localiser was trained on: the same list as
    # ``taps`` unless a recognition top replaced some of them.
    search_taps: list[torch.Tensor] | None = None
    # The search tower's own last map: the same as ``last_map`` unless a recognition top
    # replaced it. Instance vectors are pooled from it, so they do not depend on the top.
    search_last_map: torch.Tensor | None = None


def supports_dense_features(visual: torch.nn.Module) -> bool:
    trunk = getattr(visual, "trunk", None)
    return (trunk is not None and hasattr(visual, "head")
            and all(hasattr(trunk, n) for n in ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "global_pool"))
            and len(trunk.blocks) > max(TAP_BLOCKS))


def tap_channels(visual: torch.nn.Module) -> tuple[int, ...]:
    """Channels of the stride-8/16/32 maps: read off each tapped block's last convolution, so
    opening a model runs no forward pass (a first pass sets up kernels, which a text search
    never needs); a probe pass where a block has no convolution to read."""
    read = [_out_channels(visual.trunk.blocks[index]) for index in TAP_BLOCKS]
    if all(c is not None for c in read):
        return tuple(int(c) for c in read)
    with torch.inference_mode():
        probe = tower_pass(visual, torch.zeros(1, 3, 64, 64))
    return tuple(int(t.shape[1]) for t in probe.taps)


def _out_channels(block: torch.nn.Module) -> int | None:
    """The output channels of a stage: its last convolution's (batch norms, activations and
    residual adds keep the count)."""
    convolutions = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    return int(convolutions[-1].out_channels) if convolutions else None


def tower_pass(visual: torch.nn.Module, batch: torch.Tensor, top: torch.nn.Module | None = None,
               top_rows: torch.Tensor | None = None, beside: Executor | None = None) -> TowerPass:
    """The image tower's forward, step by step; equal to ``visual(batch)`` for the embedding.

    With ``top`` (a ``recognition_top.RecognitionTop``) the taps from its first block on and the
    last map come from that top, run on the shared front's output; the embedding still comes
    from the tower's own top, so search vectors do not change. With ``top_rows`` (row indices)
    the top runs on those rows only, and ``taps`` and ``last_map`` hold those rows alone: ingest
    runs it only for the photos it recognises. With ``beside`` the top runs on that executor
    while this thread finishes the tower's own blocks: the two branches share only the front's
    output, which neither changes (each block's first step is a convolution into a new tensor),
    so the result is the same, sooner where a second core is free."""
    trunk = visual.trunk
    x = trunk.bn1(trunk.conv_stem(batch))
    taps = []
    pending = None
    front = None
    for index, block in enumerate(trunk.blocks):
        if top is not None and index == top.first_block:
            front = x if top_rows is None else x[top_rows]
            if beside is not None:
                pending = beside.submit(_run_top, top, front, torch.is_inference_mode_enabled(),
                                        torch.is_grad_enabled())
        x = block(x)
        if index in TAP_BLOCKS:
            taps.append(x)
    last_map = trunk.bn2(trunk.conv_head(x))
    pooled = trunk.global_pool(last_map)
    if pooled.ndim > 2:
        pooled = pooled.flatten(1)
    embedding = visual.head(pooled)
    search_taps, search_last_map = list(taps), last_map
    if front is not None:
        if top_rows is not None:
            taps = [tap[top_rows] for tap in taps]
        outputs, last_map = pending.result() if pending is not None else top(front)
        taps = [outputs.get(index, tap) for index, tap in zip(TAP_BLOCKS, taps)]
    return TowerPass(taps=taps, last_map=last_map, embedding=embedding, search_taps=search_taps,
                     search_last_map=search_last_map)


def _run_top(top: torch.nn.Module, front: torch.Tensor, inference: bool, grad: bool):
    # Inference and grad mode are per thread: the helper takes the caller's.
    with torch.inference_mode(inference), torch.set_grad_enabled(grad):
        return top(front)
