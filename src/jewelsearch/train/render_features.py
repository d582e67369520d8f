"""Studio renders as the attribute heads see them at ingest: each render's exact labels in
recognition's vocabulary, and its embedding, pooled maps and stone gate from the single tower
pass ingest makes (``Recognizer.embed_and_locate``). Cached to a file, so fitting and judging
heads on them costs no further tower time. Read by the render refit
(``train/render_refit.py``) and by ``evaluate/render_recognition.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from jewelsearch.embed.images import load_image_file
from jewelsearch.embed.vocab import NO_STONE
from jewelsearch.recognize.evidence import stone_seen


@dataclass
class RenderFeatures:
    """What ingest computes for each render, with the render's exact labels."""
    keys: list[str]              # "folder/image", the render's identity
    labels: list[dict]           # {attribute: true label}, "none" for a piece without a stone
    embeddings: np.ndarray
    pooled: np.ndarray
    stone_seen: np.ndarray       # bool: the localiser sees a stone (ingest's gate)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, keys=np.array(self.keys), labels=np.array([json.dumps(x) for x in self.labels]),
                 embeddings=self.embeddings, pooled=self.pooled, stone_seen=self.stone_seen)

    @classmethod
    def load(cls, path: Path) -> "RenderFeatures":
        saved = np.load(path)
        return cls([str(k) for k in saved["keys"]], [json.loads(str(x)) for x in saved["labels"]],
                   saved["embeddings"], saved["pooled"], saved["stone_seen"].astype(bool))

    @classmethod
    def concatenate(cls, parts: Sequence["RenderFeatures"]) -> "RenderFeatures":
        return cls([k for p in parts for k in p.keys], [x for p in parts for x in p.labels],
                   np.concatenate([p.embeddings for p in parts]), np.concatenate([p.pooled for p in parts]),
                   np.concatenate([p.stone_seen for p in parts]))

    def subset(self, mask: Sequence[bool]) -> "RenderFeatures":
        mask = np.asarray(mask, dtype=bool)
        return RenderFeatures([k for k, m in zip(self.keys, mask) if m], [x for x, m in zip(self.labels, mask) if m],
                              self.embeddings[mask], self.pooled[mask], self.stone_seen[mask])


def render_truth(label: Mapping) -> dict[str, str]:
    """A studio label's attributes in recognition's vocabulary.

    >>> render_truth({"category": "ring", "metal": "platinum", "gemstone": None, "cut": "oval"})
    {'category': 'ring', 'metal': 'platinum', 'gemstone': 'none', 'cut': 'none'}
    """
    gem = label.get("gemstone")
    return {"category": label["category"], "metal": label.get("metal") or NO_STONE,
            "gemstone": gem or NO_STONE, "cut": (label.get("cut") or NO_STONE) if gem else NO_STONE}


def read_render_labels(folder: Path, limit: int | None = None) -> list[dict]:
    """A studio folder's ``labels.jsonl``, or a catalog of renders in the demo's ``items.jsonl``
    layout (its ``stone_shape`` read as the cut)."""
    folder = Path(folder)
    if (folder / "labels.jsonl").is_file():
        rows = [json.loads(line) for line in (folder / "labels.jsonl").read_text().splitlines() if line.strip()]
    else:
        rows = [{**row, "cut": row.get("stone_shape")}
                for row in map(json.loads, (folder / "items.jsonl").read_text().splitlines()) if row]
    return rows[:limit] if limit else rows


def render_features(recognizer, folder: Path, *, limit: int | None = None, batch: int = 32,
                    progress: Callable[[int], None] = lambda _: None) -> RenderFeatures:
    """Embedding, pooled maps and the stone gate of each render, from one pass per photo."""
    folder = Path(folder)
    rows = read_render_labels(folder, limit)
    embeddings, pooled, seen = [], [], []
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        images = [load_image_file(folder / r["image"]).image for r in chunk]
        vectors, maps, located = recognizer.embed_and_locate(images)
        embeddings.append(vectors)
        pooled.append(maps)
        seen.extend(bool(stone_seen(found)) if found is not None else True for found in located or [None] * len(chunk))
        progress(len(chunk))
    return RenderFeatures([f"{folder.name}/{r['image']}" for r in rows], [render_truth(r) for r in rows],
                          np.concatenate(embeddings), np.concatenate(pooled), np.array(seen, dtype=bool))
