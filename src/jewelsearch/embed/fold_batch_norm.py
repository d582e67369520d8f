"""Fold an EfficientNet tower's batch norms into the convolutions before them, for serving.

In eval mode a batch norm is a per-channel affine map, so it can be merged into the weights
and bias of the convolution it follows; what is left of it is its activation. A profile of
an image query put batch norm at about 16 % of a tower pass on this CPU. Embeddings move by
float rounding only. Training code keeps the unfolded tower (its weights are fingerprinted
for cached rows), so only the serving path folds (``wiring.open_service``).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

# Which convolution each batch norm follows, per timm EfficientNet module type.
PAIRS = {
    "EfficientNet": (("conv_stem", "bn1"), ("conv_head", "bn2")),
    "RecognitionTop": (("conv_head", "bn2"),),  # recognition_top: the tuned copy of the tower's top
    "DepthwiseSeparableConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    "InvertedResidual": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
}


class AfterFold(nn.Module):
    """What remains of a folded ``BatchNormAct2d``: its dropout and activation."""

    def __init__(self, drop: nn.Module, act: nn.Module):
        super().__init__()
        self.drop, self.act = drop, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


def _foldable(trunk: nn.Module) -> bool:
    """Every batch norm is one of the known pairs, right after its convolution (no squeeze-excite
    or anti-aliasing between them, as in the Lite variants)."""
    norms = [m for m in trunk.modules() if isinstance(m, nn.BatchNorm2d)]
    paired = 0
    for module in trunk.modules():
        for conv_name, bn_name in PAIRS.get(type(module).__name__, ()):
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d) \
                    or not all(hasattr(bn, n) for n in ("drop", "act")):
                return False
            for between in ("aa", "se"):
                if not isinstance(getattr(module, between, nn.Identity()), nn.Identity):
                    return False
            paired += 1
    return paired == len(norms) > 0


@torch.no_grad()
def fold_batch_norm(visual: nn.Module) -> bool:
    """Fold in place; False (and nothing changed) for a tower this does not recognise."""
    trunk = getattr(visual, "trunk", None)
    if trunk is None:
        return False
    folded = fold_module(trunk)
    if folded:
        log.info("folded the image tower's batch norms into its convolutions")
    return folded


@torch.no_grad()
def fold_module(module: nn.Module) -> bool:
    """Fold every known pair inside ``module`` (a trunk, or a recognition top); False (and nothing
    changed) when one of its batch norms is not such a pair or it is training."""
    if module.training or not _foldable(module):
        return False
    for inner in list(module.modules()):
        for conv_name, bn_name in PAIRS.get(type(inner).__name__, ()):
            conv, bn = getattr(inner, conv_name), getattr(inner, bn_name)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
            setattr(inner, bn_name, AfterFold(bn.drop, bn.act))
    return True
