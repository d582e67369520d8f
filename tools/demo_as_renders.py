"""Lay the bundled demo catalog out as a studio render folder (images/, masks/, labels.jsonl).

The 600 demo images are the studio renders the model trained on (``studio render --n 600
--coverage --size 384 --spp 96``), saved as the catalog's JPEGs. Rendering them again takes
50 minutes or more on 2 cores; almost all of it is the beauty pass. The masks and labels come
from the scene alone, so this renders the same 600 scenes at 1 sample per pixel (a few
minutes), keeps their masks and labels, and puts the demo JPEGs in place of the noisy images.
Every render's title must match its demo item's, or nothing is written. The training commands
that read renders (``train robust-top``, ``train stone-heads``, ``train localizer``,
``train context-heads``) can then use the folder.

    python tools/demo_as_renders.py runs/demo-as-renders
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from jewelsearch.ingest.demo import demo_dir

# The demo catalog's render settings (docs/benchmarks.md, "Studio renders"), less the samples.
RENDER = ["studio", "render", "--n", "600", "--coverage", "--size", "384", "--spp", "1", "--workers", "2"]


def main(out: Path) -> None:
    if out.exists():
        sys.exit(f"{out} exists; give a new folder")
    demo = demo_dir()
    if demo is None:
        sys.exit("the bundled demo catalog is missing from this install")
    items = [json.loads(line) for line in (demo / "items.jsonl").read_text().splitlines() if line.strip()]
    jewelsearch = Path(sys.executable).with_name("jewelsearch")
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        scenes = Path(tmp) / "scenes"
        subprocess.run([str(jewelsearch), *RENDER, "--out", str(scenes)], check=True)
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
