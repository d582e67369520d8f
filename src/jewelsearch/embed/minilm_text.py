"""A BERT text tower in plain torch: the default model's MiniLM without transformers or open_clip.

Serving builds the bundled model's text tower from this module, so a command does not import
transformers (and, through it, SciPy and much more). The module tree and parameter names are
open_clip's ``HFTextEncoder`` around transformers' ``BertModel`` (``transformer.embeddings…``,
``transformer.encoder.layer[i].attention.self.query`` …, ``proj``), so the packaged MiniLM
weights and the model folder's trained projection load into it by name, strictly.
``tests/test_plain_model.py`` checks its embeddings against open_clip's.

Padding: the attention mask is "token id is not the pad id", and the sentence vector is the
mean of the last hidden states over real tokens only, as open_clip's ``MeanPooler`` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BertConfig:
    """The fields of a BERT ``config.json`` this tower reads."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_dropout_prob: float
    attention_probs_dropout_prob: float
    pad_token_id: int

    @classmethod
    def from_file(cls, path: Path) -> "BertConfig":
        raw = json.loads(Path(path).read_text())
        if raw.get("model_type") != "bert" or raw.get("hidden_act", "gelu") != "gelu" \
                or raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: not a BERT with GELU and absolute positions")
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__})


def _embedding(count: int, width: int, padding_idx: int | None = None) -> nn.Embedding:
    """``nn.Embedding``, whose random start is skipped on the meta device (``plain_model`` builds
    there): torch draws a normal distribution on meta tensors through a path that imports
    torch._dynamo, 1.5 s of start-up, for values a meta tensor does not even hold."""
    layer = nn.Embedding(count, width, padding_idx=padding_idx, _weight=torch.empty(count, width))
    if not layer.weight.is_meta:
        layer.reset_parameters()
    return layer


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = _embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.position_embeddings = _embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = _embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        # One segment: every token has type 0, as a single-sentence query does in transformers.
        x = self.word_embeddings(ids) + self.token_type_embeddings.weight[0] + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=keep,
            dropout_p=self.dropout.p if self.training else 0.0)
        return out.transpose(1, 2).reshape(batch, length, width)


class BertSelfOutput(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        # "self" is the submodule's name in the checkpoints' parameter names.
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, keep), x)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(x))


class BertOutput(BertSelfOutput):
    def __init__(self, config: BertConfig):
        nn.Module.__init__(self)
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        attended = self.attention(x, keep)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, keep)
        return x


class BertModel(nn.Module):
    """Embeddings and encoder, no pooler (open_clip builds its BERT without one)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)

    def forward(self, ids: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        # [N, 1, 1, L]: every query position may attend to the real tokens only.
        keep = real.bool()[:, None, None, :]
        return self.encoder(self.embeddings(ids), keep)


class MeanPooler(nn.Module):
    def forward(self, hidden: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return (hidden * real.unsqueeze(-1)).sum(dim=1) / real.sum(-1, keepdim=True)


class TextTower(nn.Module):
    """Token ids [N, L] → projected sentence vectors [N, output_dim], not normalised."""

    def __init__(self, config: BertConfig, output_dim: int, projection: str = "mlp"):
        super().__init__()
        self.config = config
        self.output_dim = output_dim
        self.transformer = BertModel(config)
        self.pooler = MeanPooler()
        width = config.hidden_size
        if projection == "mlp":
            hidden = (width + output_dim) // 2
            self.proj = nn.Sequential(nn.Linear(width, hidden, bias=False), nn.GELU(),
                                      nn.Linear(hidden, output_dim, bias=False))
        elif projection == "linear":
            self.proj = nn.Linear(width, output_dim, bias=False)
        else:
            raise ValueError(f"unknown text projection {projection!r}")

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        real = (ids != self.config.pad_token_id).long()
        return self.proj(self.pooler(self.transformer(ids, real), real))
