"""Latency the spatial features add: whole-photo vs. region image queries, locate, explain.

Builds a small catalog from the bundled demo renders (default model and its localiser),
then times, interleaved in one process so machine noise hits all variants alike:
  * `locate` alone (tower pass + head + boxes) on a 512×432 worn-style photo;
  * a full image query with region=whole and with region=auto (locate + crop + embed + search);
  * Grad-CAM explanation of one result;
  * embedding one photo alone vs. embedding it with the pooled maps the context heads read
    (same tower pass plus pooling and a colour histogram), vs. the same plus the maps pooled
    under the localiser's piece map (its head on the tower's maps), vs. the same with the maps
    from a recognition top (blocks 5-6 and the head convolution run a second time; the model
    folder's own top, or a copy of the tower's when it has none: the same work), and a full
    recognize call.
Prints medians over repeats and the auto/whole ratio. Asserts nothing.
Usage: python benchmarks/bench_regions.py [--repeats 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from jewelsearch.config import Settings  # noqa: E402
from jewelsearch.ingest.demo import demo_dir, demo_items  # noqa: E402
from jewelsearch.recognize.gem_features import embed_and_pool  # noqa: E402
from jewelsearch.recognize.recognition_top import RecognitionTop  # noqa: E402
from jewelsearch.search.wiring import open_service  # noqa: E402


def worn_style_photos(service, n: int) -> list[bytes]:
    """Catalog pieces shrunk onto striped fabric, like a piece on a sleeve."""
    rng = np.random.default_rng(0)
    rows = service.catalog.items.list(n, 0)
    out = []
    for row in rows:
        yy, xx = np.mgrid[0:432, 0:512]
        fabric = np.where(((xx + yy) // 15) % 2, 60, 190).astype(np.uint8)[..., None].repeat(3, axis=2)
        scene = Image.fromarray(fabric)
        piece = Image.open(service.image_file(row["id"])).convert("RGB").resize((110, 110))
        scene.paste(piece, (int(rng.integers(0, 400)), int(rng.integers(0, 320))))
        buffer = io.BytesIO()
        scene.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    home = Path(tempfile.mkdtemp()) / "home"
    service = open_service(Settings(home=home))
    service.add_items([it for n, it in enumerate(demo_items(demo_dir())) if n % 6 == 0])
    photos = worn_style_photos(service, args.repeats)
    decoded = [Image.open(io.BytesIO(p)).convert("RGB") for p in photos]
    result_id = service.catalog.items.list(1, 0)[0]["id"]
    timings: dict[str, list[float]] = {"locate": [], "query whole": [], "query auto": [], "explain (grad-cam)": [],
                                       "embed": [], "embed + pooled maps": [], "embed + piece pooling": [],
                                       "+ recognition top": [], "recognize": []}
    # The served trunk is already folded, so a copy of it costs what a folded recognition top does.
    top = service.recognizer.recognition_top or RecognitionTop.from_trunk(service.encoder.model.visual.trunk)
    for photo in photos[:3]:  # warm-up
        service.query(image_bytes=photo, k=10, region="auto")
    for photo, image in zip(photos, decoded):
        for name, run in (("locate", lambda: service.localizer.locate(image)),
                          ("query whole", lambda: service.query(image_bytes=photo, k=10, region="whole")),
                          ("query auto", lambda: service.query(image_bytes=photo, k=10, region="auto")),
                          ("explain (grad-cam)", lambda: service.explain(result_id, image_bytes=photo)),
                          ("embed", lambda: service.encoder.encode_images([image])),
                          ("embed + pooled maps", lambda: embed_and_pool(service.encoder, [image])),
                          ("embed + piece pooling", lambda: embed_and_pool(service.encoder, [image],
                                                                           piece_head=service.localizer.head)),
                          ("+ recognition top", lambda: embed_and_pool(service.encoder, [image], top=top,
                                                                       piece_head=service.localizer.head)),
                          ("recognize", lambda: service.recognize(photo))):
            started = time.perf_counter()
            run()
            timings[name].append((time.perf_counter() - started) * 1000)
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}, "
          f"{time.strftime('%Y-%m-%d')}; catalog {service.catalog.items.count()} demo items; "
          f"{args.repeats} worn-style 512×432 photos")
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, value in medians.items():
        print(f"  {name:<20} median {value:7.1f} ms   p90 {np.percentile(timings[name], 90):7.1f} ms")
    print(f"  region search adds {medians['query auto'] - medians['query whole']:.1f} ms "
          f"({medians['query auto'] / medians['query whole']:.2f}× whole-image query)")
    print(f"  pooled maps add {medians['embed + pooled maps'] - medians['embed']:.1f} ms to embedding a photo "
          f"({medians['embed + pooled maps'] / medians['embed']:.2f}×)")
    print(f"  piece pooling adds {medians['embed + piece pooling'] - medians['embed + pooled maps']:.1f} ms to that "
          f"({medians['embed + piece pooling'] / medians['embed + pooled maps']:.2f}×)")
    print(f"  a recognition top adds {medians['+ recognition top'] - medians['embed + piece pooling']:.1f} ms to that "
          f"({medians['+ recognition top'] / medians['embed + piece pooling']:.2f}×)")


if __name__ == "__main__":
    main()
