"""The ingest steps this tree trims, each against the work it replaces, side by side in one
process (one torch thread, so each step's thread CPU time is all of its CPU).

  decode     ``Ingestor.decode_for_model`` without the item's fields (the colour histogram for
             every photo, as before) against with them (only for photos recognition reads)
  locate     the localiser's maps to ``Localization``s with boxes (as before) against the masks
             alone (``max_boxes=0``: ingest's stone check reads no boxes)
  texts      the item texts of each batch of 32 embedded batch by batch (as before) against
             ``ItemTextVectors`` keeping them across batches

Demo photos (``--items``, the demo's fields given); rounds alternate the order of old and new;
thread CPU ms per photo, medians of ``--rounds``, and the outputs compared (max |diff|).

Usage: python benchmarks/bench_ingest_steps.py [--items 160] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _cpu(fn) -> tuple[float, object]:
    started = time.thread_time()
    out = fn()
    return time.thread_time() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from jewelsearch.config import Settings
    from jewelsearch.embed.dense_features import tower_pass
    from jewelsearch.embed.item_text import encode_item_texts, item_text
    from jewelsearch.ingest.demo import demo_dir, demo_items
    from jewelsearch.ingest.item_texts import ItemTextVectors
    from jewelsearch.recognize.evidence import stone_seen
    from jewelsearch.search.wiring import open_service
    from jewelsearch.storage.items import normalise_item_fields

    items = demo_items(demo_dir())[:args.items]
    n = len(items)
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d %H:%M')}, {n} demo photos, "
          f"1 torch thread, load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as home:
        service = open_service(Settings(home=Path(home)))
        ingestor = service.state.ingestor
        recognizer = ingestor.recognizer
        localizer = recognizer.localizer
        decoded = [ingestor.decode_for_model(item.image_bytes) for item in items]
        images = [photo.loaded.image for photo in decoded]
        with torch.inference_mode():
            grids = []
            for start in range(0, n, 32):
                batch = torch.stack([photo.tensor for photo in decoded[start:start + 32]]) \
                    .contiguous(memory_format=torch.channels_last)
                grids += list(zip(*localizer.grids(tower_pass(ingestor.encoder.model.visual, batch).search_taps)))
        texts = [item_text(normalise_item_fields(item.fields)) for item in items]
        batches = [texts[i:i + 32] for i in range(0, n, 32)]

        def decode_old():
            return [ingestor.decode_for_model(item.image_bytes) for item in items]

        def decode_new():
            return [ingestor.decode_for_model(item.image_bytes, item.fields) for item in items]

        def locate(boxes: int):
            def run():
                return [localizer.from_maps(image.size, piece, stone, boxes)
                        for image, (piece, stone) in zip(images, grids)]
            return run

        def texts_old():
            out = {}
            for batch in batches:
                out.update(encode_item_texts(ingestor.encoder.encode_texts, batch))
            return out

        def texts_new():
            cache = ItemTextVectors(ingestor.encoder.encode_texts)
            out = {}
            for batch in batches:
                out.update(cache.vectors(batch))
            return out

        steps = {"decode": (decode_old, decode_new), "locate": (locate(5), locate(0)),
                 "texts": (texts_old, texts_new)}
        times = {name: ([], []) for name in steps}
        outputs = {}
        with torch.inference_mode():
            for round_ in range(args.rounds):
                for name, pair in steps.items():
                    order = (0, 1) if round_ % 2 == 0 else (1, 0)
                    for which in order:
                        seconds, out = _cpu(pair[which])
                        times[name][which].append(1000 * seconds / n)
                        outputs[(name, which)] = out
        service.catalog.close()
    diff = {
        "decode": max(float((a.tensor - b.tensor).abs().max()) for a, b in
                      zip(outputs[("decode", 0)], outputs[("decode", 1)])),
        "locate": float(sum(stone_seen(a) != stone_seen(b) for a, b in
                            zip(outputs[("locate", 0)], outputs[("locate", 1)]))),
        "texts": max(float(np.abs(outputs[("texts", 0)][t] - outputs[("texts", 1)][t]).max())
                     for t in outputs[("texts", 0)]),
    }
    skipped = sum(photo.histogram is None for photo in outputs[("decode", 1)])
    print(f"histograms skipped: {skipped} of {n}; texts embedded: "
          f"{sum(len(set(filter(None, b))) for b in batches)} batch by batch, {len(set(filter(None, texts)))} kept across")
    print(f"{'step':<8}{'old CPU ms/photo':>18}{'new':>8}{'ratio':>8}{'saved':>8}  outputs")
    for name, (old, new) in times.items():
        o, w = statistics.median(old), statistics.median(new)
        what = f"{int(diff[name])} stone checks differ" if name == "locate" else f"max |diff| {diff[name]:.1e}"
        print(f"{name:<8}{o:>18.2f}{w:>8.2f}{w / o:>8.2f}{o - w:>8.2f}  {what}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
