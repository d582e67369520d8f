"""The bundled demo catalog: images plus ``items.jsonl`` shipped in the package."""

from __future__ import annotations

import json
from pathlib import Path

from jewelsearch.ingest.pipeline import NewItem

# The catalog lives at the package root (src/jewelsearch/demo/), beside models/.
DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"


def demo_dir() -> Path | None:
    return DEMO_DIR if (DEMO_DIR / "items.jsonl").is_file() else None


def demo_items(folder: Path) -> list[NewItem]:
    items = []
    for line in (folder / "items.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        image = folder / row["image"]
        items.append(NewItem(image.read_bytes(), row, source_path=f"demo:{row['image']}"))
    return items
