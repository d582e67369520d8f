"""Labelled catalogs for the search evaluation: rows of TRUE labels plus the items to ingest.

Three sources, one row shape (title, description, category, metal, gemstone, stone_shape,
color = the stone's colour, price):
- the bundled demo catalog or any folder with an ``items.jsonl`` in its format;
- a studio render folder (``labels.jsonl``, as ``jewelsearch studio render`` writes it);
- the real products' weak rows (``products/labels.csv``, validation split, attributes only).

``items(..., photos_only=True)`` gives the same images with no metadata, so recognition fills
the predicted attributes; the rows (truth) stay the same either way.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jewelsearch.ingest.demo import DEMO_DIR
from jewelsearch.ingest.pipeline import NewItem

FIELDS = ("sku", "title", "description", "category", "metal", "gemstone", "stone_shape", "color", "price",
          "currency")
# The real product photos live beside the checkout and are never copied into it.
PRODUCTS_DIR = Path("..") / "shared" / "data" / "products"
# The products CSV says "gold" for yellow gold.
_PRODUCT_METALS = {"gold": "yellow gold", "rose gold": "rose gold", "silver": "silver", "platinum": "platinum"}


@dataclass
class LabelledCatalog:
    name: str
    rows: list[dict[str, Any]]
    images: list[Path]
    note: str = ""

    def items(self, photos_only: bool = False) -> list[NewItem]:
        out = []
        for row, image in zip(self.rows, self.images):
            fields = {} if photos_only else {k: row[k] for k in FIELDS if row.get(k) is not None}
            out.append(NewItem(image.read_bytes(), fields, source_path=f"eval:{image.name}"))
        return out


def _items_jsonl(folder: Path, name: str, note: str) -> LabelledCatalog:
    rows, images = [], []
    for line in (folder / "items.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append(row)
            images.append(folder / row["image"])
    return LabelledCatalog(name, rows, images, note)


def _studio_labels(folder: Path, limit: int | None) -> LabelledCatalog:
    from jewelsearch.studio.materials import GEMS  # plain data: needs no renderer
    rows, images = [], []
    for line in (folder / "labels.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        label = json.loads(line)
        gem = label.get("gemstone")
        rows.append({"sku": f"R-{label['index']:05d}", "title": label["title"],
                     "description": label.get("description"), "category": label["category"],
                     "metal": label.get("metal"), "gemstone": gem, "stone_shape": label.get("cut"),
                     "color": GEMS[gem].colour_word if gem in GEMS else None, "price": label.get("price"),
                     "currency": label.get("currency")})
        images.append(folder / label["image"])
        if limit and len(rows) >= limit:
            break
    return LabelledCatalog(folder.name, rows, images,
                           f"studio renders (labels.jsonl, {len(rows)} pieces): exact labels")


def _products(folder: Path) -> LabelledCatalog:
    rows, images = [], []
    with open(folder / "labels.csv", newline="") as fh:
        for record in csv.DictReader(fh):
            if record.get("split") != "val":
                continue
            gem = record.get("stone_type") or None
            rows.append({"title": record.get("description") or None, "category": record["category"] or None,
                         "metal": _PRODUCT_METALS.get(record.get("material") or ""),
                         "gemstone": None if gem in (None, "none", "unknown") else gem,
                         "stone_shape": None if record.get("stone_shape") in ("", "none") else record["stone_shape"],
                         # The CSV's colour is the piece's (mostly its metal's), not a stone's.
                         "color": None, "price": None})
            images.append(folder / record["path"])
    return LabelledCatalog("products-val", rows, images,
                           "real product photos, validation split: weak labels, many attributes missing")


def load_catalog(source: str | Path, limit: int | None = None) -> LabelledCatalog:
    """``"demo"``, ``"products"`` (``../shared/data/products``), or a folder holding items.jsonl, labels.jsonl (studio) or labels.csv (products)."""
    if str(source) == "demo":
        return _items_jsonl(DEMO_DIR, "demo", "bundled demo catalog: its renders are in the default "
                                              "model's training data, so it flatters the model")
    if str(source) == "products":
        folder = PRODUCTS_DIR
        if not (folder / "labels.csv").is_file():
            raise FileNotFoundError(f"{folder} is not on this machine: no real products to evaluate on")
        return _products(folder)
    folder = Path(source)
    if (folder / "items.jsonl").is_file():
        return _items_jsonl(folder, folder.name, "items.jsonl catalog")
    if (folder / "labels.jsonl").is_file():
        return _studio_labels(folder, limit)
    if (folder / "labels.csv").is_file():
        return _products(folder)
    raise FileNotFoundError(f"{folder} has no items.jsonl, labels.jsonl or labels.csv")
