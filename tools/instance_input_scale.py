"""Judge the instance head as served before 2026-12-07 (projection applied to the weighted blocks
before normalising) and as served now (applied to the unit descriptor it was fitted on), side by
side on one build of the ``eval retrieval`` sets, from the same tower passes.

Why one script and not two ``eval retrieval`` runs: both heads read the same tower pass, so one
pass gives both vectors and the paired R@1 changes compare the same queries. The weighted blocks
have the same norm ``c = sqrt(sum of squared block weights)`` for every photo, so the old serving,
``normalize((x - mean) @ P)``, is exactly the current code with ``mean / c``:
``(x - mean) = c * (x / c - mean / c)``. Rule and result:
docs/experiments/2026-12-07-instance-head-input-scale.md.

    PYTHONPATH=src python tools/instance_input_scale.py --worn ../shared/data/worn \\
        --catalog ../shared/data/products --out reports/instance-input-scale.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from jewelsearch.cli.instance import retrieval_sets
from jewelsearch.config import Settings
from jewelsearch.embed import load_encoder
from jewelsearch.embed.dense_features import tower_pass
from jewelsearch.embed.instance import InstanceHead
from jewelsearch.evaluate.retrieval_local import r1_change
from jewelsearch.evaluate.retrieval_renders import RenderSetPlan
from jewelsearch.evaluate.retrieval_run import judge

MEASURES = ("worn_same_product", "pasted_to_catalog", "render_to_render")


def as_served_before(head: InstanceHead) -> InstanceHead:
    """The head whose vectors are the old serving's: the mean scaled down by the blocks' norm."""
    scale = math.sqrt(sum(weight * weight for _, weight in head.blocks))
    return InstanceHead(head.blocks, head.p, head.mean / scale, head.projection, channels=head.channels,
                        aligned_weight=head.aligned_weight)


def paired_embeds(encoder, heads: list[InstanceHead]):
    """One ``embed`` per head; each photo list goes through the tower once for all of them."""
    memo: dict[tuple[int, ...], list[np.ndarray]] = {}
    visual = encoder.model.visual

    def vectors(images) -> list[np.ndarray]:
        key = tuple(id(image) for image in images)
        if key not in memo:
            rows: list[list[np.ndarray]] = [[] for _ in heads]
            with torch.inference_mode():
                for start in range(0, len(images), encoder.batch_size):
                    batch = torch.stack([encoder.preprocess(im) for im in images[start:start + encoder.batch_size]])
                    result = tower_pass(visual, batch.contiguous(memory_format=torch.channels_last))
                    for n, head in enumerate(heads):
                        rows[n].append(head.vectors(result).numpy())
            memo[key] = [np.concatenate(r).astype(np.float32) if r else np.zeros((0, head.dim), np.float32)
                         for r, head in zip(rows, heads)]
        return memo[key]
    return [lambda images, n=n: vectors(images)[n] for n in range(len(heads))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worn", type=Path, required=True)
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--pasted", type=int, default=200)
    parser.add_argument("--renders", type=int, default=0,
                        help="held-out studio specs to render and judge too (0: none; needs the [studio] extra)")
    parser.add_argument("--render-cache", type=Path, default=Path("runs/retrieval-renders"))
    parser.add_argument("--out", type=Path, default=Path("reports/instance-input-scale.json"))
    args = parser.parse_args()
    started = time.time()
    settings = Settings()
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size,
                           loader=settings.model_loader)
    head = InstanceHead.load(encoder.folder, encoder.model.visual)
    if head is None or head.projection is None:
        raise SystemExit("the model folder has no instance head with a projection: nothing to compare")
    plan = RenderSetPlan(args.renders, 3, 224, 32) if args.renders else None  # eval retrieval's defaults
    sets, _ = retrieval_sets(encoder, args.worn, args.catalog, args.pasted, plan, args.render_cache)
    before, now = paired_embeds(encoder, [as_served_before(head), head])
    ranks: dict[str, dict] = {"before": {}, "now": {}}
    results = {"before": judge(sets, before, ranks_out=ranks["before"]),
               "now": judge(sets, now, ranks_out=ranks["now"])}
    changes = {m: r1_change(ranks["before"]["multi"][m], ranks["now"]["multi"][m])
               for m in MEASURES if m in ranks["now"]["multi"]}
    report = {"sets": sets.describe(), "space_before": as_served_before(head).space_id, "space_now": head.space_id,
              "results": results, "multi_r1_change_now_minus_before": changes,
              "seconds": round(time.time() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, result in results.items():
        multi = result["multi"]
        cat = result["similar_items_category"]
        print(f"{name:7s} worn R@1 {multi['worn_same_product']['recall@1']:.3f} "
              f"{multi['worn_same_product']['recall@1_interval']} R@10 {multi['worn_same_product']['recall@10']:.3f} | "
              f"pasted R@1 {multi['pasted_to_catalog']['recall@1']:.3f} {multi['pasted_to_catalog']['recall@1_interval']} "
              f"R@10 {multi['pasted_to_catalog']['recall@10']:.3f} | category P@10 {cat['precision@10']:.3f} "
              f"{cat['precision@10_interval']}")
        if "render_to_render" in multi:
            render = multi["render_to_render"]
            print(f"        render R@1 {render['recall@1']:.3f} {render['recall@1_interval']} "
                  f"R@10 {render['recall@10']:.3f} mAP {render['map']:.3f} {render['map_interval']}")
    print("paired R@1 change (now - before):", json.dumps(changes))
    print(f"{report['seconds']} s; written to {args.out}")


if __name__ == "__main__":
    main()
