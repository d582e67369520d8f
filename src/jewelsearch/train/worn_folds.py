"""Cross-fitted heads: every worn photo judged by heads that never trained on its product.

There are only 197 worn photos, and only 30 of them show rings. Keeping half of the products
out of training for evaluation starved the heads of exactly the photos they need (the held-out
half had 24 of the ring photos, the training half 7). The shipped category and metal heads now
train on every worn photo, and the same recipe is refit once per fold with that fold's
products left out. Evaluation judges each worn photo with the heads of its own fold, so the
worn figures remain a measurement on unseen products, now over all of them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from jewelsearch.embed.artifacts import WORN_FOLDS_META as FOLDS_META
from jewelsearch.embed.artifacts import WORN_FOLDS_WEIGHTS as FOLDS_WEIGHTS
from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.train.labelled_data import Record, product_of
from jewelsearch.train.splits import fold_of  # noqa: F401  (the fold rule, re-exported)


@dataclass
class WornFolds:
    """``heads[k]`` trained on everything except the worn products of fold k."""

    fold_by_product: dict[str, int]
    heads: list[AttributeHeads]
    attributes: tuple[str, ...]

    def heads_for(self, record: Record) -> AttributeHeads | None:
        fold = self.fold_by_product.get(product_of(record))
        return None if fold is None else self.heads[fold]

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file
        tensors = {}
        for k, heads in enumerate(self.heads):
            for attribute in self.attributes:
                for name, value in heads.heads[attribute].state_dict().items():
                    tensors[f"{k}.{attribute}.{name}"] = value.detach().contiguous()
            for attribute in self.context_attributes(heads):
                for name, value in heads.context[attribute].state_dict().items():
                    tensors[f"{k}.context.{attribute}.{name}"] = value.detach().contiguous()
            if heads.context_attributes:
                tensors[f"{k}.context_mean"] = heads.context_mean.contiguous()
                tensors[f"{k}.context_scale"] = heads.context_scale.contiguous()
        save_file(tensors, str(Path(folder) / FOLDS_WEIGHTS))
        (Path(folder) / FOLDS_META).write_text(json.dumps({
            "attributes": list(self.attributes), "fold_by_product": self.fold_by_product,
            "temperatures": [{a: h.temperatures[a] for a in self.attributes} for h in self.heads],
            "context_temperatures": [{a: h.context_temperatures[a] for a in self.context_attributes(h)}
                                     for h in self.heads]},
            indent=2) + "\n")

    def context_attributes(self, heads: AttributeHeads) -> list[str]:
        """The fold's own context heads: those of the attributes the folds were fitted for.
        Other context heads (gemstone, cut) are the shipped ones, which saw no worn photo."""
        return [a for a in heads.context_attributes if a in self.attributes]

    @classmethod
    def load(cls, folder: Path | None, shipped: AttributeHeads | None) -> "WornFolds | None":
        """The fold heads beside ``shipped`` (whose other attributes they share), or None."""
        if folder is None or shipped is None or not (Path(folder) / FOLDS_META).is_file():
            return None
        from safetensors.torch import load_file
        meta = json.loads((Path(folder) / FOLDS_META).read_text())
        tensors = load_file(str(Path(folder) / FOLDS_WEIGHTS))
        attributes = tuple(meta["attributes"])
        context_temperatures = meta.get("context_temperatures") or [{} for _ in meta["temperatures"]]
        heads = []
        for k, temperatures in enumerate(meta["temperatures"]):
            fold = copy.deepcopy(shipped)
            for attribute in attributes:
                fold.heads[attribute].load_state_dict(
                    {name: tensors[f"{k}.{attribute}.{name}"] for name in ("weight", "bias")})
                fold.temperatures[attribute] = float(temperatures[attribute])
            # Context heads of the fold's attributes: the fold's own, or none (a fold without
            # them must not borrow the shipped ones, which saw every worn product). Those of
            # other attributes stay the shipped ones, which never trained on a worn photo.
            for attribute in attributes:
                fold.remove_context_head(attribute)
            if f"{k}.context_mean" in tensors:
                mean, scale = tensors[f"{k}.context_mean"], tensors[f"{k}.context_scale"]
                # A kept shipped head must find the columns it reads standardised as it was
                # fitted; folds that measured their own (files written before 2026-11-27's piece-reading heads) lose it.
                for attribute in fold.context_attributes:
                    width = fold.context[attribute].in_features
                    if width > mean.numel() or not (torch.equal(mean[:width], shipped.context_mean[:width])
                                                    and torch.equal(scale[:width], shipped.context_scale[:width])):
                        fold.remove_context_head(attribute)
                fold.pooled_dim = mean.numel() - fold.dim
                fold.context_mean, fold.context_scale = mean.clone(), scale.clone()
            for attribute, temperature in context_temperatures[k].items():
                weight = tensors[f"{k}.context.{attribute}.weight"]
                head = torch.nn.Linear(weight.shape[1], weight.shape[0])
                head.load_state_dict({"weight": weight, "bias": tensors[f"{k}.context.{attribute}.bias"]})
                fold.add_context_head(attribute, head, float(temperature))
            heads.append(fold.eval())
        return cls({str(p): int(f) for p, f in meta["fold_by_product"].items()}, heads, attributes)


def judge_by_fold(folds: WornFolds | None, shipped: AttributeHeads | None
                  ) -> Callable[[Sequence[Record]], list[AttributeHeads | None]]:
    """Per record, the heads that should judge it: for a worn photo whose product a fold left
    out, that fold's heads; for anything else, the shipped heads."""
    def choose(records: Sequence[Record]) -> list[AttributeHeads | None]:
        if folds is None:
            return [shipped] * len(records)
        return [(folds.heads_for(r) if r.source == "worn" else None) or shipped for r in records]
    return choose
