"""Lay the bundled demo catalog out as a studio render folder (images/, masks/, labels.jsonl).

The demo images are studio renders (``studio.batch.DEMO_BATCHES``: ``studio render --n 600
--coverage --size 384 --spp 96``, then 4 pearl studs and 4 pearl drops at the same settings),
saved as the catalog's JPEGs. The model trained on the first 600; the pearl earrings came
later. Rendering them again takes 50 minutes or more on 2 cores; almost all of it is the
beauty pass. The masks and labels come
from the scene alone, so this renders the same scenes at 1 sample per pixel (a few
minutes), keeps their masks and labels, and puts the demo JPEGs in place of the noisy images.
Every render's title must match its demo item's, or nothing is written. The training commands
that read renders (``train robust-top``, ``train stone-heads``, ``train localizer``,
``train context-heads``) can then use the folder.

    python tools/demo_as_renders.py runs/demo-as-renders
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from jewelsearch.ingest.demo import demo_dir
from jewelsearch.studio.batch import demo_specs, render_specs

# The demo catalog's render settings (docs/benchmarks.md, "Studio renders"), less the samples.
SIZE, SAMPLES, WORKERS = 384, 1, 2


def main(out: Path) -> None:
    if out.exists():
        sys.exit(f"{out} exists; give a new folder")
    demo = demo_dir()
    if demo is None:
        sys.exit("the bundled demo catalog is missing from this install")
    items = [json.loads(line) for line in (demo / "items.jsonl").read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        scenes = Path(tmp) / "scenes"
        with tqdm(total=len(items), unit="img") as bar:
            render_specs(demo_specs(), scenes, size=SIZE, spp=SAMPLES, workers=WORKERS, progress=bar.update)
        rows = [json.loads(line) for line in (scenes / "labels.jsonl").read_text().splitlines()]
        by_image = {item["image"]: item for item in items}
        for row in rows:
            item = by_image.get(row["image"])
            if item is None or item["title"] != row["title"]:
                sys.exit(f"render {row['image']} is not the demo item of that name; nothing written")
            shutil.copyfile(demo / item["image"], scenes / row["image"])
        if len(rows) != len(items):
            sys.exit(f"{len(rows)} renders for {len(items)} demo items; nothing written")
        scenes.rename(out)
    print(f"{len(rows)} renders with masks laid out in {out}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
