"""A second, robustness-tuned top of the image tower that only recognition reads.

``jewelsearch train robust-top`` teaches the tower's top stages (blocks 5 and 6, the head convolution and its
batch norm) to give a degraded photo the clean photo's maps. Stored in the tower itself, that
change also moves every search embedding: stored catalog vectors must be redone, and the
recommender, whose blend was tuned on the old embedding space, lost a third of its measured
gain (measured 2026-11-27). Recognition does not need that: the attribute heads
and the gem specialist read only the pooled maps. So the tuned stages live here, beside the
untouched tower. A recognition pass runs the shared front (stem, blocks 0-4) once and both
tops on its output: the search top gives the embedding, this one the stride-32 tap and the
last map that are pooled for the heads. Search, stored embeddings and the model id stay as
they were.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from jewelsearch.embed.artifacts import RECOGNITION_TOP_WEIGHTS
from jewelsearch.embed.dense_features import supports_dense_features

TOP_FILE = RECOGNITION_TOP_WEIGHTS
# Blocks 0-4 are the frozen front that robust tuning leaves alone and shares with the search
# tower; recognition owns a copy of every block from here on.
FROZEN_BLOCKS = 5
FIRST_BLOCK = FROZEN_BLOCKS


class RecognitionTop(nn.Module):
    """Copies of the trunk's blocks from ``FIRST_BLOCK`` on, its head convolution and batch
    norm; the state-dict names are the trunk's own (``blocks.5.…``, ``conv_head.…``)."""

    def __init__(self, blocks: nn.ModuleDict, conv_head: nn.Module, bn2: nn.Module):
        super().__init__()
        self.blocks = blocks
        self.conv_head = conv_head
        self.bn2 = bn2

    @property
    def first_block(self) -> int:
        return min(int(k) for k in self.blocks.keys())

    @classmethod
    def from_trunk(cls, trunk: nn.Module) -> "RecognitionTop":
        """A copy of the trunk's top as it is now (after tuning, or to be loaded into)."""
        blocks = nn.ModuleDict({str(i): copy.deepcopy(trunk.blocks[i]) for i in range(FIRST_BLOCK, len(trunk.blocks))})
        return cls(blocks, copy.deepcopy(trunk.conv_head), copy.deepcopy(trunk.bn2)).eval()

    def forward(self, front: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """(each block's output by block index, the last map) from blocks 0-4's output."""
        outputs = {}
        x = front
        for key, block in self.blocks.items():
            x = block(x)
            outputs[int(key)] = x
        return outputs, self.bn2(self.conv_head(x))

    def save(self, folder: Path) -> None:
        """float32 (what was evaluated is what loads), written under a temporary name first so
        the folder never holds a half-written file."""
        from safetensors.torch import save_file

        path = Path(folder) / TOP_FILE
        tmp = path.with_name(path.name + ".tmp")
        save_file({k: v.detach().float().contiguous() if v.is_floating_point() else v.contiguous()
                   for k, v in self.state_dict().items()}, str(tmp))
        tmp.replace(path)

    @classmethod
    def load(cls, folder: Path | None, trunk: nn.Module | None) -> "RecognitionTop | None":
        """The folder's recognition top shaped after ``trunk`` (an unfolded tower); None when the
        folder has none or the tower cannot take one."""
        from safetensors.torch import load_file

        from jewelsearch.errors import ModelLoadError

        if folder is None or trunk is None or not (Path(folder) / TOP_FILE).is_file():
            return None
        top = cls.from_trunk(trunk)
        try:
            stored = load_file(str(Path(folder) / TOP_FILE))
        except Exception as exc:  # safetensors raises its own error types for a damaged file
            raise ModelLoadError(f"cannot read {Path(folder) / TOP_FILE}: {exc}") from exc
        own = top.state_dict()
        if set(stored) != set(own) or any(own[k].shape != v.shape for k, v in stored.items()):
            raise ModelLoadError(f"{Path(folder) / TOP_FILE} does not fit this model's image tower")
        top.load_state_dict({k: v.to(own[k].dtype) for k, v in stored.items()})
        return top.eval()


def load_recognition_top(encoder) -> RecognitionTop | None:
    """The encoder's folder's recognition top, or None (no folder, no file, another tower)."""
    visual = encoder.model.visual
    if encoder.folder is None or not supports_dense_features(visual) or len(visual.trunk.blocks) <= FIRST_BLOCK:
        return None
    return RecognitionTop.load(encoder.folder, visual.trunk)
