"""Rendering many specs: resumable output folders, optional worker processes, contact sheets."""

from __future__ import annotations

import json
import logging
import multiprocessing
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image, ImageDraw

from jewelsearch.studio.backend import choose_backend
from jewelsearch.studio.materials import GEMS, METALS
from jewelsearch.studio.spec import (
    CUTS,
    STYLES,
    JewelSpec,
    description,
    pinned_parameters,
    price,
    sample_spec,
    title,
)

log = logging.getLogger(__name__)
LABELS_FILE = "labels.jsonl"


def random_specs(n: int, seed: int, **fixed: str | None) -> list[JewelSpec]:
    """N specs drawn from seed; ``fixed`` (category, style, metal, gemstone, cut) pins those
    parameters and draws the rest. Nothing pinned gives the same specs as before it could be."""
    return [sample_spec(seed * 1_000_003 + i, **fixed) for i in range(n)]


def coverage_specs(n: int, seed: int = 0) -> list[JewelSpec]:
    """Specs that walk every style × metal × gem × cut combination in turn (the demo catalog)."""
    styles = [(c, s) for c, s, _ in STYLES]
    metals = list(METALS)
    gems = [g for g in GEMS if g != "pearl"]
    out = []
    for i in range(n):
        category, style = styles[i % len(styles)]
        spec = sample_spec(seed * 1_000_003 + i, category=category, style=style,
                           metal=metals[(i // len(styles)) % len(metals)],
                           gemstone=gems[(i * 7) % len(gems)] if style not in ("eternity", "tennis") else None,
                           cut=CUTS[(i * 3 + i // len(styles)) % len(CUTS)])
        out.append(spec)
    return out


# How the bundled demo catalog was drawn, in catalog order: the coverage walk (seed 0), then
# pearl studs and pearl drops (added 2026-12-07; the walk has pearls only as strands).
DEMO_BATCHES = ({"n": 600, "coverage": True, "seed": 0},
                {"n": 4, "seed": 14, "style": "stud", "gemstone": "pearl"},
                {"n": 4, "seed": 31, "style": "drop", "gemstone": "pearl"})


def demo_specs() -> list[JewelSpec]:
    """The demo catalog's specs, item by item (``studio render`` batches as DEMO_BATCHES says)."""
    specs: list[JewelSpec] = []
    for batch in DEMO_BATCHES:
        if batch.get("coverage"):
            specs += coverage_specs(batch["n"], batch["seed"])
        else:
            pinned = {k: v for k, v in batch.items() if k not in ("n", "seed")}
            specs += random_specs(batch["n"], batch["seed"], **pinned_parameters(**pinned))
    return specs


def _render_one(args) -> tuple[int, bytes, bytes, dict]:
    index, spec, size, spp, backend = args
    from jewelsearch.studio.render import render_spec
    backend.apply()
    jpeg, mask, label = render_spec(spec, size=size, spp=spp)
    return index, jpeg, mask, label


def render_specs(specs: list[JewelSpec], out: Path, *, size: int = 384, spp: int = 128, workers: int = 1,
                 masks: bool = True, progress: Callable[[int], None] | None = None) -> int:
    """Render into ``out/images``; skips indices already in labels.jsonl, so re-runs resume."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    if masks:
        (out / "masks").mkdir(parents=True, exist_ok=True)
    done = set()
    labels_path = out / LABELS_FILE
    if labels_path.exists():
        for line in labels_path.read_text().splitlines():
            if line.strip():
                done.add(json.loads(line)["index"])
    # Chosen once here (a probe render per candidate libLLVM), so workers need not probe again.
    pending = [(i, spec) for i, spec in enumerate(specs) if i not in done]
    backend = choose_backend() if pending else None
    todo = [(i, spec, size, spp, backend) for i, spec in pending]
    if progress:
        progress(len(done))
    rendered = 0
    results: Iterable
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(_render_one, todo) if pool else map(_render_one, todo)
        with open(labels_path, "a") as labels:
            for index, jpeg, mask, label in results:
                name = f"{index:05d}"
                (out / "images" / f"{name}.jpg").write_bytes(jpeg)
                if masks:
                    (out / "masks" / f"{name}.png").write_bytes(mask)
                label.update(index=index, image=f"images/{name}.jpg",
                             mask=f"masks/{name}.png" if masks else None)
                # The label line is written last: a crash mid-item leaves it to be redone.
                labels.write(json.dumps(label) + "\n")
                labels.flush()
                rendered += 1
                if progress:
                    progress(1)
    finally:
        if pool:
            pool.close()
            pool.join()
    return rendered


def contact_sheet(folder: Path, out_png: Path, *, columns: int = 8, thumb: int = 160,
                  limit: int = 64) -> None:
    """A grid of renders picked to show every category, cut and metal, with captions."""
    rows = [json.loads(line) for line in (Path(folder) / LABELS_FILE).read_text().splitlines() if line.strip()]
    picked, seen = [], set()
    for key in ("style", "cut", "metal", "gemstone", "background"):
        for row in rows:
            if row.get(key) and (key, row[key]) not in seen and len(picked) < limit:
                seen.add((key, row[key]))
                if row not in picked:
                    picked.append(row)
    count = len(picked)
    sheet = Image.new("RGB", (columns * thumb, ((count + columns - 1) // columns) * (thumb + 28)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(picked):
        image = Image.open(Path(folder) / row["image"]).convert("RGB").resize((thumb, thumb))
        x, y = (i % columns) * thumb, (i // columns) * (thumb + 28)
        sheet.paste(image, (x, y))
        caption = title(JewelSpec(**{k: row[k] for k in JewelSpec.__dataclass_fields__}))
        draw.text((x + 3, y + thumb + 2), caption[:30], fill="black")
        draw.text((x + 3, y + thumb + 14), caption[30:60], fill="black")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png, optimize=True)


def write_demo_catalog(render_dirs: list[Path], demo_dir: Path, *, append: bool = False) -> int:
    """Turn rendered labels into the bundled catalog's items.jsonl (+ images); returns the
    number of items written.

    Folders are packaged in the order given, numbered on from one to the next. ``append``
    numbers on from the items already there and keeps them, so a batch of one kind (pearl
    earrings) can follow the coverage walk without rendering the walk again."""
    demo_dir = Path(demo_dir)
    (demo_dir / "images").mkdir(parents=True, exist_ok=True)
    items_path = demo_dir / "items.jsonl"
    number = 0
    if append and items_path.exists():
        number = sum(1 for line in items_path.read_text().splitlines() if line.strip())
    first = number
    with open(items_path, "a" if append else "w") as fh:
        for folder in map(Path, render_dirs):
            rows = [json.loads(line) for line in (folder / LABELS_FILE).read_text().splitlines() if line.strip()]
            for row in sorted(rows, key=lambda r: r["index"]):
                name = f"{number:05d}.jpg"
                (demo_dir / "images" / name).write_bytes((folder / row["image"]).read_bytes())
                fh.write(json.dumps(demo_item(row, number)) + "\n")
                number += 1
    return number - first


def demo_item(row: dict, number: int) -> dict:
    """One demo catalog row from a render's label row."""
    # Words and price come from the spec again, so copy fixes reach rendered folders.
    spec = JewelSpec(**{k: row[k] for k in JewelSpec.__dataclass_fields__})
    item = {"image": f"images/{number:05d}.jpg", "sku": f"DEMO-{number:05d}", "title": title(spec),
            "description": description(spec), "category": row["category"], "metal": row["metal"],
            "gemstone": row["gemstone"], "stone_shape": row["cut"],
            "color": GEMS[row["gemstone"]].colour_word if row.get("gemstone") else None,
            "price": price(spec), "currency": row["currency"]}
    return {k: v for k, v in item.items() if v is not None}
