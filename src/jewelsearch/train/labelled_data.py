"""Labelled photo sets for training and evaluation.

Readers for the three real sets under ``../shared/data`` (products, gemstones,
worn) and two generic layouts anyone can point ``jewelsearch eval`` at: a
folder of class subfolders, or a CSV with a path column and label columns.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from jewelsearch.embed import artifacts
from jewelsearch.embed.vocab import cut_from_product, gemstone_from_product, label_from_folder, metal_from_product

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
ATTRIBUTES = ("category", "metal", "gemstone", "cut")


@dataclass
class Record:
    path: Path
    split: str  # train | val | test
    labels: dict[str, str] = field(default_factory=dict)  # attribute -> label
    description: str | None = None
    group: str | None = None  # photos of the same product share a group
    source: str = ""


def hash_split(name: str, val_fraction: float = 0.2) -> str:
    """A stable split from the file name, independent of listing order."""
    bucket = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if bucket < val_fraction else "train"


def in_calibration_split(file_name: str) -> bool:
    """Phase one's calibration photos (a tenth of the training split, by file name): early
    stopping and temperatures are judged on them, and no head trains on them."""
    return hash_split(file_name + "calib", 0.1) == "val"


def read_products(root: Path) -> list[Record]:
    out = []
    with open(root / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            labels = {"category": row["category"]}
            metal = metal_from_product(row.get("material", ""), row.get("color", ""))
            gem = gemstone_from_product(row.get("stone_type", ""), row.get("color", ""))
            cut = cut_from_product(row.get("stone_shape", ""))
            labels.update({k: v for k, v in (("metal", metal), ("gemstone", gem), ("cut", cut)) if v})
            out.append(Record(root / row["path"], row["split"], labels,
                              row.get("description") or None, source="products"))
    return out


def read_gemstones(root: Path, val_fraction: float = 0.2) -> list[Record]:
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for image in sorted(folder.iterdir()):
            if image.suffix.lower() in IMAGE_SUFFIXES:
                out.append(Record(image, hash_split(f"{folder.name}/{image.name}", val_fraction),
                                  {"gemstone": label_from_folder(folder.name)}, source="gemstones"))
    return out


def read_renders(render_dir: Path, held_out=lambda index: False) -> list[Record]:
    """Studio renders (``labels.jsonl`` beside the images) with their exact labels: split
    "val" where ``held_out(index)``, else "train". A render without a stone or metal label has
    no label for it (not "none"): the studio leaves some of those fields to chance."""
    out = []
    with open(Path(render_dir) / "labels.jsonl") as fh:
        for line in fh:
            row = json.loads(line)
            labels = {a: row[a] for a in ATTRIBUTES if row.get(a)}
            out.append(Record(Path(render_dir) / row["image"], "val" if held_out(row["index"]) else "train",
                              labels, row.get("description") or None, source="renders"))
    return out


def product_of(record: Record) -> str:
    """The product a photo shows: its group, or its own file name when it has none."""
    return record.group or record.path.name


def worn_background_split(records: list[Record], protected: set[str] = frozenset()) -> tuple[list, list]:
    """(background, evaluation): the localiser borrows real scenery from half of the worn products,
    split by product so all photos of a product fall on one side; the other half is kept for
    evaluation. Products with a photo named in ``protected`` (e.g. the hand-boxed validation
    photos) always stay on the evaluation side."""
    kept = {product_of(r) for r in records if r.path.name in protected}
    background = [r for r in records if product_of(r) not in kept
                  and hash_split("worn-background/" + product_of(r), 0.5) == "train"]
    chosen = set(map(id, background))
    return background, [r for r in records if id(r) not in chosen]


def worn_products_seen(model_folder: Path | None) -> set[str]:
    """Worn products the localiser, the context head or a robust tuning of the tower
    (``robust_tuning.json``) of ``model_folder`` trained on, less those the cross-fitted fold
    heads cover (``worn_folds.json``): evaluation judges those with heads that never saw them.
    The fold heads do not cover the tower: a product its tuning saw stays out either way."""
    seen: set[str] = set()
    if model_folder is None:
        return seen
    covered: set[str] = set()
    folds_file = Path(model_folder) / artifacts.WORN_FOLDS_META
    if folds_file.is_file():
        covered = set(json.loads(folds_file.read_text()).get("fold_by_product", {}))
    for name, path, less in ((artifacts.LOCALIZER_CONFIG, ("trained", "worn_products_seen"), set()),
                             (artifacts.CONTEXT_HEADS_SUMMARY, ("worn_products_seen",), covered),
                             (artifacts.ROBUST_TUNING_SUMMARY, ("worn_products_seen",), set())):
        file = Path(model_folder) / name
        if file.is_file():
            value = json.loads(file.read_text())
            for key in path:
                value = value.get(key, {}) if isinstance(value, dict) else {}
            seen |= set(value or []) - less
    return seen


def unseen_worn(records: list[Record], seen: set[str]) -> list[Record]:
    """Worn photos whose product the model never trained on: the only fair evaluation set."""
    return [r for r in records if product_of(r) not in seen]


def read_worn(root: Path) -> list[Record]:
    """Worn photos with their labels (category, and metal where the file name gives one).

    The context heads train on every worn photo; evaluation judges each with the fold heads
    that never saw its product (``worn_folds``), and leaves out the products the localiser or
    a tuning of the tower trained on (``unseen_worn``)."""
    out = []
    with open(root / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            labels = {"category": row["category"]}
            metal = {"gold": "yellow gold", "silver": "silver", "steel": "steel"}.get(row.get("metal", ""))
            if metal:
                labels["metal"] = metal
            out.append(Record(root / row["path"], "test", labels, group=row.get("product") or None,
                              source="worn"))
    return out


def read_class_folders(root: Path, attribute: str = "category") -> list[Record]:
    out = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for image in sorted(folder.rglob("*")):
            if image.suffix.lower() in IMAGE_SUFFIXES:
                out.append(Record(image, "test", {attribute: label_from_folder(folder.name)},
                                  source=str(root)))
    return out


def read_label_csv(csv_path: Path) -> list[Record]:
    """CSV with ``path`` plus any of category/metal/gemstone/cut (and optional ``group``)."""
    csv_path = Path(csv_path)
    out = []
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            path = Path(row["path"])
            if not path.is_absolute():
                path = csv_path.parent / path
            labels = {a: label_from_folder(row[a]) for a in ATTRIBUTES if row.get(a)}
            out.append(Record(path, row.get("split") or "test", labels,
                              row.get("description") or None, row.get("group") or None, str(csv_path)))
    return out


def read_shared_data(root: Path) -> list[Record]:
    """Every real photo set found under ``root`` (``../shared/data``)."""
    root = Path(root)
    records: list[Record] = []
    if (root / "products" / "labels.csv").is_file():
        records += read_products(root / "products")
    if (root / "gemstones").is_dir():
        records += read_gemstones(root / "gemstones")
    if (root / "worn" / "labels.csv").is_file():
        records += read_worn(root / "worn")
    return records
