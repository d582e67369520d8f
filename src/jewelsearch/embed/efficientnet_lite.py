"""EfficientNet-Lite0 in plain torch: the default model's image tower without timm or open_clip.

Serving builds the bundled model's image tower from this module, so a command does not import
timm (which pulls in torchvision and torch._dynamo, seconds of start-up on a 2-core machine).
The module tree and parameter names are timm's ``tf_efficientnet_lite0`` inside open_clip's
``TimmModel`` (``trunk.conv_stem``, ``trunk.blocks[s][j].conv_dw``, ``head.proj`` …), and the
class names are timm's too, because serving code walks this tree: the dense-feature taps, the
recognition top's copies of the last blocks, batch-norm folding (``fold_batch_norm.PAIRS`` is
keyed by class name) and Grad-CAM. ``tests/test_plain_model.py`` checks it against timm's.

What "tf_" means here: TensorFlow's "SAME" padding. A stride-2 convolution pads asymmetrically,
by an amount that depends on the input size (more on the right and bottom), so it is computed
per call; a stride-1 convolution pads symmetrically, a fixed amount.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (block kind, repeats, kernel, stride, expansion, output channels) per stage of Lite0.
LITE0_STAGES = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the tf_ weights were trained with


class Conv2dSame(nn.Conv2d):
    """A strided convolution with TensorFlow's SAME padding, worked out from each input's size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h = _same_padding(int(height), self.kernel_size[0], self.stride[0], self.dilation[0])
        pad_w = _same_padding(int(width), self.kernel_size[1], self.stride[1], self.dilation[1])
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> int:
    return max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride == 1:
        return nn.Conv2d(in_channels, out_channels, kernel, stride, padding=(kernel - 1) // 2,
                         groups=groups, bias=False)
    return Conv2dSame(in_channels, out_channels, kernel, stride, groups=groups, bias=False)


class BatchNormAct2d(nn.BatchNorm2d):
    """A batch norm followed by its dropout and activation, as one module (timm's layout, which
    ``fold_batch_norm`` relies on: it keeps ``drop`` and ``act`` when it folds the norm away)."""

    def __init__(self, channels: int, act: bool = True):
        super().__init__(channels, eps=BN_EPS)
        self.drop = nn.Identity()
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


class DepthwiseSeparableConv(nn.Module):
    """Depthwise convolution, then pointwise projection (the first stage)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int):
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_dw = conv(in_channels, in_channels, kernel, stride, groups=in_channels)
        self.bn1 = BatchNormAct2d(in_channels)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.conv_pw = conv(in_channels, out_channels, 1)
        self.bn2 = BatchNormAct2d(out_channels, act=False)
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.bn1(self.conv_dw(x))
        x = self.se(self.aa(x))
        x = self.bn2(self.conv_pw(x))
        return self.drop_path(x) + shortcut if self.has_skip else x


class InvertedResidual(nn.Module):
    """Pointwise expansion, depthwise convolution, pointwise projection (MobileNetV2's block)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        middle = in_channels * expansion
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_pw = conv(in_channels, middle, 1)
        self.bn1 = BatchNormAct2d(middle)
        self.conv_dw = conv(middle, middle, kernel, stride, groups=middle)
        self.bn2 = BatchNormAct2d(middle)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.conv_pwl = conv(middle, out_channels, 1)
        self.bn3 = BatchNormAct2d(out_channels, act=False)
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.bn1(self.conv_pw(x))
        x = self.bn2(self.conv_dw(x))
        x = self.se(self.aa(x))
        x = self.bn3(self.conv_pwl(x))
        return self.drop_path(x) + shortcut if self.has_skip else x


class GlobalAvgPool(nn.Module):
    """Average over the map, flattened to [N, C]."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(x))


class EfficientNet(nn.Module):
    """The Lite0 trunk without a classifier: stem, seven stages, head convolution, average pool."""

    def __init__(self, stages=LITE0_STAGES):
        super().__init__()
        self.conv_stem = conv(3, STEM_CHANNELS, 3, 2)
        self.bn1 = BatchNormAct2d(STEM_CHANNELS)
        channels = STEM_CHANNELS
        built = []
        for kind, repeats, kernel, stride, expansion, out_channels in stages:
            stage = []
            for j in range(repeats):
                first_stride = stride if j == 0 else 1
                if kind == "ds":
                    stage.append(DepthwiseSeparableConv(channels, out_channels, kernel, first_stride))
                else:
                    stage.append(InvertedResidual(channels, out_channels, kernel, first_stride, expansion))
                channels = out_channels
            built.append(nn.Sequential(*stage))
        self.blocks = nn.Sequential(*built)
        self.num_features = HEAD_CHANNELS
        self.conv_head = conv(channels, HEAD_CHANNELS, 1)
        self.bn2 = BatchNormAct2d(HEAD_CHANNELS)
        self.global_pool = GlobalAvgPool()
        self.classifier = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.bn1(self.conv_stem(x)))
        return self.classifier(self.global_pool(self.bn2(self.conv_head(x))))


class ImageTower(nn.Module):
    """The trunk and a linear projection into the shared embedding space (open_clip's
    ``TimmModel`` with ``timm_pool="avg"`` and ``timm_proj="linear"``)."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.trunk = EfficientNet()
        self.head = nn.Sequential()
        self.head.add_module("drop", nn.Dropout(0.0))
        self.head.add_module("proj", nn.Linear(HEAD_CHANNELS, embed_dim, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))
