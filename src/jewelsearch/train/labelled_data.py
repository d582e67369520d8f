"""Labelled photo sets for training and evaluation.

Readers for the three real sets under ``../shared/data`` (products, gemstones,
worn) and two generic layouts anyone can point ``jewelsearch eval`` at: a
folder of class subfolders, or a CSV with a path column and label columns.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from jewelsearch.embed import artifacts
from jewelsearch.embed.images import IMAGE_SUFFIXES
from jewelsearch.embed.vocab import cut_from_product, gemstone_from_product, label_from_folder, metal_from_product

# The split rules live in one module; they are re-exported here for the readers' callers.
from jewelsearch.train.splits import (  # noqa: F401
    hash_split,
    held_out_render,
    in_calibration_split,
    product_of,
    worn_background_split,
)

ATTRIBUTES = ("category", "metal", "gemstone", "cut")


@dataclass
class Record:
    path: Path
    split: str  # train | val | test
    labels: dict[str, str] = field(default_factory=dict)  # attribute -> label
    description: str | None = None
    group: str | None = None  # photos of the same product share a group
    source: str = ""


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


def worn_products_seen(model_folder: Path | None) -> set[str]:
    """Worn products the localiser, the context head, a robust tuning of the tower
    (``robust_tuning.json``) or the instance head of ``model_folder`` trained on, less those the cross-fitted fold
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
                             (artifacts.ROBUST_TUNING_SUMMARY, ("worn_products_seen",), set()),
                             (artifacts.INSTANCE_HEAD_CONFIG, ("summary", "worn_products_seen"), set())):
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


def train_split_records(products: Path, gemstones: Path, renders: Path | None = None) -> list[Record]:
    """The training split of the shop photos, loose stones and (optionally) studio renders, as
    the head and tower refits read it: the held-out renders stay out."""
    records = [r for r in read_products(Path(products)) + read_gemstones(Path(gemstones)) if r.split == "train"]
    if renders is not None:
        records += [r for r in read_renders(renders, held_out=held_out_render) if r.split == "train"]
    return records


def read_protected_photos(csv_path: Path) -> set[str]:
    """File names in a CSV's path column (e.g. hand-boxed validation photos) that training
    leaves out. Raises ValueError when the CSV has no path column."""
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        if "path" not in (reader.fieldnames or []):
            raise ValueError(f"{csv_path}: needs a path column")
        return {row["path"] for row in reader}


def evaluation_sets(*, shared_root: Path | None = None, folder: Path | None = None, attribute: str = "category",
                    csv_path: Path | None = None, model_folder: Path | None = None) -> dict[str, list[Record]]:
    """The non-empty labelled sets ``eval model`` judges, by name: from ``shared_root`` the
    products' and gemstones' val splits and the worn photos of products ``model_folder`` never
    trained on (``unseen_worn``); a folder of class subfolders under its own name; a label CSV
    under its stem."""
    sets: dict[str, list[Record]] = {}
    if shared_root:
        records = read_shared_data(shared_root)
        sets["products_val"] = [r for r in records if r.source == "products" and r.split == "val"]
        sets["gemstones_val"] = [r for r in records if r.source == "gemstones" and r.split == "val"]
        # Worn products the localiser trained on, or the heads without a fold that left them out, are left out.
        sets["worn"] = unseen_worn([r for r in records if r.source == "worn"], worn_products_seen(model_folder))
    if folder:
        sets[Path(folder).name] = read_class_folders(folder, attribute)
    if csv_path:
        sets[Path(csv_path).stem] = read_label_csv(csv_path)
    return {k: v for k, v in sets.items() if v}
