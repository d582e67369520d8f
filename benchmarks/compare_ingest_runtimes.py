"""Ingest on torch against ingest on OpenVINO: the same items, attributes and vectors?

Ingests the demo photos twice, into two fresh homes (``ingest_runtime`` torch, then openvino;
the model loaded once), through the CLI's pipelined path, and compares what was stored: every
item's row (filled attributes, the recognition record in ``attributes``), the largest
difference between the two runs' vectors in each space (photo, instance, item text), and
the top-10 answers of text and image searches on both catalogs.
OpenVINO's graphs compile in ``--precision`` (f32 by default: the within-1e-5 comparison;
``compare_ingest_precision.py`` compares bf16 with f32 on real photos).
Usage: python benchmarks/compare_ingest_runtimes.py [--items 600] [--photos bare|given] [--precision f32]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RECOGNISED = ("category", "metal", "gemstone", "stone_shape")
QUERIES = ("gold ring", "silver pendant with a blue stone", "pearl earrings", "diamond engagement ring",
           "rose gold bracelet", "emerald necklace", "vintage brooch", "sapphire ring")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--photos", default="bare", choices=("bare", "given"))
    parser.add_argument("--precision", default="f32", choices=("f32", "bf16", "auto"))
    args = parser.parse_args()

    from jewelsearch.config import Settings
    from jewelsearch.ingest.demo import demo_dir, demo_items
    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.search.wiring import open_service

    items = demo_items(demo_dir())[:args.items]
    if args.photos == "bare":
        items = [NewItem(i.image_bytes, {k: v for k, v in i.fields.items() if k not in RECOGNISED}) for i in items]
    stored, answers = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        first = None
        for runtime in ("torch", "openvino"):
            service = open_service(Settings(home=Path(scratch) / runtime, ingest_runtime=runtime,
                                            ingest_precision=args.precision), models_from=first)
            first = first or service
            batches = [items[i:i + 32] for i in range(0, len(items), 32)]
            results = [r for _, done in service.ingest_batches(batches, photos=len(items)) for r in done]
            ids = [r.item_id for r in results]
            embeddings = service.catalog.embeddings
            spaces = {service.encoder.model_id, *embeddings.spaces_of(service.encoder.model_id)}
            stored[runtime] = {
                "tower": service.state.ingestor.tower_runtime.name,
                "rows": [service.catalog.items.get(i) for i in ids],
                "vectors": {key: embeddings.get_many(ids, key) for key in spaces},
            }
            answers[runtime] = [[hit["id"] for hit in service.query(text=q, k=10)["results"]] for q in QUERIES] + [
                [hit["id"] for hit in service.query(image_bytes=items[n].image_bytes, k=10)["results"]]
                for n in range(0, len(items), max(1, len(items) // 20))]
    torch_run, ov_run = stored["torch"], stored["openvino"]
    print(f"{len(items)} {args.photos} demo photos; towers: {torch_run['tower']} / {ov_run['tower']}")
    same_rows = sum(a[k] == b[k] for a, b in zip(torch_run["rows"], ov_run["rows"])
                    for k in (*RECOGNISED, "attributes"))
    print(f"item fields equal (category, metal, gemstone, stone_shape, attributes): "
          f"{same_rows} of {5 * len(items)}")
    for n, (a, b) in enumerate(zip(torch_run["rows"], ov_run["rows"])):
        for k in (*RECOGNISED, "attributes"):
            if a[k] != b[k]:
                print(f"  item {n} {k}: torch {_differing(a[k], b[k])} / openvino {_differing(b[k], a[k])}")
    for key in sorted(torch_run["vectors"]):
        a, b = torch_run["vectors"][key], ov_run["vectors"].get(key, {})
        shared = sorted(set(a) & set(b))
        worst = max((float(np.abs(a[i] - b[i]).max()) for i in shared), default=float("nan"))
        print(f"vectors {key}: {len(shared)} items in both ({len(a)} / {len(b)}), max |diff| {worst:.2e}")
    same = sum(x == y for x, y in zip(answers["torch"], answers["openvino"]))
    print(f"search answers (top 10 ids, {len(QUERIES)} text + {len(answers['torch']) - len(QUERIES)} image "
          f"queries) identical: {same} of {len(answers['torch'])}")


def _differing(value, other):
    """The parts of ``value`` (nested dicts) that differ from ``other``."""
    if isinstance(value, dict) and isinstance(other, dict):
        return {k: _differing(v, other.get(k)) for k, v in value.items() if v != other.get(k)}
    return value


if __name__ == "__main__":
    main()
