"""Join each convolution of a folded EfficientNet tower with the activation after it, for serving.

After ``fold_batch_norm`` a block is convolution -> ReLU6 -> convolution -> ReLU6 -> ...; on
this CPU the separate clamp passes were about 14 % of a tower pass, and timm's dynamic "same"
padding (a zero-filled copy of the whole map before each stride-2 convolution) about 13 %
(torch profiler, batch 32, 224 px, 2026-12-07). oneDNN runs a convolution with its activation
as one kernel (the clip is applied as each output is written), through the same op torch's
own inductor compiler emits for this pattern (``mkldnn._convolution_pointwise``). The "same"
padding puts one more zero row (column) after the map than before it; the convolution's own
symmetric padding of the larger side, with a kernel that has one leading row (column) of zero
weights, reads exactly the same pixels with the same weights, so no padded copy is made. Both
compute what the modules did, bit for bit on this machine (tests: max |diff| 0). Likewise a
residual block's last (projecting) convolution adds the block's input as it writes its output
(``ResidualJoin``), instead of a separate add over the whole map (about 5 % of a pass).

The joined op has no backward: with grad enabled (Grad-CAM, training) a joined convolution
runs its original convolution and activation instead, so the module tree keeps working there.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from jewelsearch.embed.fold_batch_norm import PAIRS, AfterFold

log = logging.getLogger(__name__)

# Activation module type -> (oneDNN post-op name, its scalars).
JOINABLE = {nn.ReLU6: ("hardtanh", [0.0, 6.0]), nn.ReLU: ("relu", [])}


def joining_available() -> bool:
    """Whether this torch build has oneDNN's joined convolution (a CPU build with MKL-DNN)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class ConvActivation(nn.Module):
    """A convolution (plain, or timm's ``Conv2dSame``) and the activation after it, run as one
    oneDNN kernel on float32 CPU input without grad; otherwise as the two original modules."""

    def __init__(self, conv: nn.Conv2d, act: nn.Module):
        super().__init__()
        self.conv, self.act = conv, act
        self.post_op, self.scalars = JOINABLE[type(act)]
        # timm's Conv2dSame pads at run time to TensorFlow's "same": as much before the map as
        # after it, or one row (column) more after. Each case's kernel, by (extra row, extra
        # column): the weights behind that many leading zeros (the zeros then face the padding).
        self.same_padding = type(conv).__name__ == "Conv2dSame"
        if self.same_padding:
            for row in (0, 1):
                for col in (0, 1):
                    self.register_buffer(f"kernel_{row}{col}", F.pad(conv.weight, (col, 0, row, 0)),
                                         persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if torch.is_grad_enabled() or x.dtype != torch.float32 or x.device.type != "cpu" \
                or conv.weight.dtype != torch.float32 or x.ndim != 4:
            return self.act(conv(x))
        weight, padding = conv.weight, list(conv.padding)
        if self.same_padding:
            (before_h, after_h), (before_w, after_w) = (
                _same_padding(size, k, s) for size, k, s in zip(x.shape[-2:], conv.weight.shape[-2:], conv.stride))
            weight = getattr(self, f"kernel_{after_h - before_h}{after_w - before_w}")
            padding = [after_h, after_w]
        return torch.ops.mkldnn._convolution_pointwise(
            x, weight, conv.bias, padding, list(conv.stride), list(conv.dilation), conv.groups,
            self.post_op, self.scalars, "")


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding (timm's ``pad_same``, dilation 1): (before, after).

    >>> _same_padding(224, 3, 2), _same_padding(57, 3, 2), _same_padding(56, 5, 2)
    ((0, 1), (1, 1), (1, 2))
    """
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ResidualJoin(nn.Module):
    """A folded timm ``InvertedResidual`` with a skip, whose projecting convolution adds the
    block's input in the same oneDNN kernel; the plain block where grad is on."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    @staticmethod
    def joinable(block: nn.Module) -> bool:
        """A block whose forward is exactly: pw -> dw -> projection -> + input (nothing between)."""
        if type(block).__name__ != "InvertedResidual" or not getattr(block, "has_skip", False):
            return False
        plain = all(isinstance(getattr(block, name, None), nn.Identity) for name in ("aa", "se", "drop_path"))
        after = getattr(block, "bn3", None)
        return plain and getattr(block, "conv_s2d", None) is None and type(block.conv_pwl) is nn.Conv2d \
            and isinstance(after, AfterFold) and isinstance(after.drop, nn.Identity) \
            and isinstance(after.act, nn.Identity) and all(
                isinstance(getattr(block, name), AfterFold) for name in ("bn1", "bn2"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = self.block
        projection = block.conv_pwl
        if torch.is_grad_enabled() or x.dtype != torch.float32 or x.device.type != "cpu" \
                or projection.weight.dtype != torch.float32 or x.ndim != 4:
            return block(x)
        inner = block.bn2(block.conv_dw(block.bn1(block.conv_pw(x))))
        return torch.ops.mkldnn._convolution_pointwise.binary(
            inner, x, projection.weight, projection.bias, list(projection.padding), list(projection.stride),
            list(projection.dilation), projection.groups, "add", None, None, [], None)


def _plain_conv(conv) -> bool:
    """A convolution whose forward is exactly what ``ConvActivation`` computes: torch's own or
    timm's ``Conv2dSame``, zero padding given as numbers, dilation 1 (the zero-led kernels
    assume it)."""
    return (type(conv) is nn.Conv2d or type(conv).__name__ == "Conv2dSame") and conv.padding_mode == "zeros" \
        and isinstance(conv.padding, tuple) and tuple(conv.dilation) == (1, 1)


@torch.no_grad()
def join_activations(module: nn.Module) -> int:
    """Join, in place, every convolution that a folded batch norm's ReLU/ReLU6 follows inside
    ``module`` (a folded trunk or recognition top), then every residual block's add into its
    projecting convolution; returns how many were joined (0, and nothing
    changed, where the build lacks the op, the module is training or nothing is folded)."""
    if module.training or not joining_available():
        return 0
    joined = 0
    for inner in list(module.modules()):
        for conv_name, after_name in PAIRS.get(type(inner).__name__, ()):
            conv, after = getattr(inner, conv_name, None), getattr(inner, after_name, None)
            if not _plain_conv(conv) or not isinstance(after, AfterFold) \
                    or not isinstance(after.drop, nn.Identity) or type(after.act) not in JOINABLE:
                continue
            setattr(inner, conv_name, ConvActivation(conv, after.act))
            setattr(inner, after_name, AfterFold(after.drop, nn.Identity()))
            joined += 1
    for parent in list(module.modules()):
        if isinstance(parent, ResidualJoin):
            continue
        for name, child in list(parent.named_children()):
            if ResidualJoin.joinable(child):
                setattr(parent, name, ResidualJoin(child))
                joined += 1
    if joined:
        log.info("joined %d convolutions with their activations or residual adds", joined)
    return joined
