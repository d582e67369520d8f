"""Join each convolution of a folded EfficientNet tower with the activation after it, for serving.

After ``fold_batch_norm`` a block is convolution -> ReLU6 -> convolution -> ReLU6 -> ...; on
this CPU the separate clamp passes were about 14 % of a tower pass, and timm's dynamic "same"
padding (a zero-filled copy of the whole map before each stride-2 convolution) about 13 %
(torch profiler, batch 32, 224 px, 2026-12-07). oneDNN runs a convolution with its activation
as one kernel (the clip is applied as each output is written), through the same op torch's
own inductor compiler emits for this pattern (``mkldnn._convolution_pointwise``); the "same"
padding is built once into a buffer whose border alone is zeroed. Both compute exactly what
the modules did: the same convolution kernel, the same clip, the same padded input.

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
        # timm's Conv2dSame pads at run time to TensorFlow's "same" (more on the right/bottom).
        self.same_padding = type(conv).__name__ == "Conv2dSame"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.dtype != torch.float32 or x.device.type != "cpu" \
                or self.conv.weight.dtype != torch.float32:
            return self.act(self.conv(x))
        conv = self.conv
        padding = list(conv.padding)
        if self.same_padding:
            x = _pad_same(x, conv.weight.shape[-2:], conv.stride, conv.dilation)
            padding = [0, 0]
        return torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, padding, list(conv.stride), list(conv.dilation), conv.groups,
            self.post_op, self.scalars, "")


def _pad_same(x: torch.Tensor, kernel: torch.Size, stride, dilation) -> torch.Tensor:
    """timm's ``pad_same`` with zeros, written as one copy into a buffer whose border alone is
    zeroed (``F.pad`` fills the whole buffer first): the same values, the input's layout."""
    height, width = x.shape[-2:]
    pad_h = max((math.ceil(height / stride[0]) - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1 - height, 0)
    pad_w = max((math.ceil(width / stride[1]) - 1) * stride[1] + (kernel[1] - 1) * dilation[1] + 1 - width, 0)
    if pad_h == 0 and pad_w == 0:
        return x
    if x.ndim != 4:
        return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    top, left = pad_h // 2, pad_w // 2
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format
    out = torch.empty((x.shape[0], x.shape[1], height + pad_h, width + pad_w), dtype=x.dtype,
                      memory_format=layout)
    out[:, :, top:top + height, left:left + width].copy_(x)
    out[:, :, :top].zero_()
    out[:, :, top + height:].zero_()
    out[:, :, top:top + height, :left].zero_()
    out[:, :, top:top + height, left + width:].zero_()
    return out


@torch.no_grad()
def join_activations(module: nn.Module) -> int:
    """Join, in place, every convolution that a folded batch norm's ReLU/ReLU6 follows inside
    ``module`` (a folded trunk or recognition top); returns how many were joined (0, and nothing
    changed, where the build lacks the op, the module is training or nothing is folded)."""
    if module.training or not joining_available():
        return 0
    joined = 0
    for inner in list(module.modules()):
        for conv_name, after_name in PAIRS.get(type(inner).__name__, ()):
            conv, after = getattr(inner, conv_name, None), getattr(inner, after_name, None)
            if not isinstance(conv, nn.Conv2d) or not isinstance(after, AfterFold) \
                    or not isinstance(after.drop, nn.Identity) or type(after.act) not in JOINABLE:
                continue
            setattr(inner, conv_name, ConvActivation(conv, after.act))
            setattr(inner, after_name, AfterFold(after.drop, nn.Identity()))
            joined += 1
    if joined:
        log.info("joined %d convolutions with their activations", joined)
    return joined
