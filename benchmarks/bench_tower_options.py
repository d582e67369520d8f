"""Ways of running the folded image tower, side by side on the same photos: the tower pass with
its taps (``embed.dense_features.tower_pass``), batch of ``--batch``, 224 px, as ingest runs it.

Variants (``--variants``, comma-separated), each on its own copy of the folded tower:
  cl        channels_last weights and input, the folded tower as it is (served before the joins)
  joined    what serving does: channels_last, convolutions joined with their activations and
            residual adds (``embed/fuse_activation.py``)
  nchw      the default contiguous layout for weights and input
  jit       the trunk traced up to each tap, frozen and optimised for inference (TorchScript)
  jit-freeze  the same, frozen only (conv + add/mul folding, no MKL-DNN layout conversion)
  compile   ``torch.compile`` (inductor, CPU) of the same tap-returning trunk
Each variant's outputs (embedding, taps, last map) are compared with ``cl``'s: max |diff|.
Batches alternate variant by variant in a rotating order; medians of ``--repeats`` passes.

    python benchmarks/bench_tower_options.py --variants cl,nchw,jit --repeats 12 --batch 32
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from jewelsearch.embed import load_encoder  # noqa: E402
from jewelsearch.embed.dense_features import TAP_BLOCKS, tower_pass  # noqa: E402
from jewelsearch.embed.fold_batch_norm import fold_batch_norm  # noqa: E402
from jewelsearch.embed.fuse_activation import join_activations  # noqa: E402
from jewelsearch.ingest.demo import demo_dir, demo_items  # noqa: E402


class TapTrunk(torch.nn.Module):
    """The tower as one module returning (taps..., last map, embedding): what tracing needs."""

    def __init__(self, visual: torch.nn.Module):
        super().__init__()
        self.visual = visual

    def forward(self, batch: torch.Tensor):
        out = tower_pass(self.visual, batch)
        return (*out.taps, out.last_map, out.embedding)


def outputs_of(result) -> list[torch.Tensor]:
    if isinstance(result, tuple):
        return [t.contiguous() for t in result]
    return [t.contiguous() for t in (*result.taps, result.last_map, result.embedding)]


def build(variant: str, folded: torch.nn.Module, sample: torch.Tensor):
    visual = copy.deepcopy(folded)
    if variant == "nchw":
        visual.to(memory_format=torch.contiguous_format)
        return lambda x: tower_pass(visual, x.contiguous()), 0.0
    visual.to(memory_format=torch.channels_last)
    sample = sample.contiguous(memory_format=torch.channels_last)
    if variant == "cl":
        return lambda x: tower_pass(visual, x), 0.0
    if variant == "joined":
        join_activations(visual.trunk)
        return lambda x: tower_pass(visual, x), 0.0
    started = time.perf_counter()
    if variant in ("jit", "jit-freeze"):
        with torch.inference_mode(False), torch.no_grad():
            traced = torch.jit.trace(TapTrunk(visual).eval(), sample, check_trace=False)
            frozen = torch.jit.freeze(traced)
            if variant == "jit":
                frozen = torch.jit.optimize_for_inference(frozen)
            for _ in range(2):
                frozen(sample)
        return (lambda x: frozen(x)), time.perf_counter() - started
    if variant == "compile":
        compiled = torch.compile(TapTrunk(visual).eval(), dynamic=False)
        with torch.no_grad():
            for _ in range(2):
                compiled(sample)
        return (lambda x: compiled(x)), time.perf_counter() - started
    raise SystemExit(f"unknown variant {variant}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="cl,nchw,jit")
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--model", default="jewelclip-lite0")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = load_encoder(args.model)
    visual = encoder.model.visual.eval()
    if not fold_batch_norm(visual):
        sys.exit("no foldable batch norms")
    items = demo_items(demo_dir())[: args.batch]
    batch = torch.stack([encoder.preprocess(Image.open(io.BytesIO(i.image_bytes)).convert("RGB")) for i in items])
    variants = args.variants.split(",")
    runners, setup = {}, {}
    with torch.no_grad():
        for name in variants:
            runners[name], setup[name] = build(name, visual, batch)
        reference = outputs_of(runners["cl"](batch.contiguous(memory_format=torch.channels_last))) \
            if "cl" in runners else None
        diffs = {}
        for name, run in runners.items():
            got = outputs_of(run(batch.contiguous(memory_format=torch.channels_last)))
            diffs[name] = max(float((a - b).abs().max()) for a, b in zip(got, reference)) if reference else float("nan")
        times: dict[str, list[float]] = {name: [] for name in variants}
        for repeat in range(args.repeats + 1):
            order = variants[repeat % len(variants):] + variants[:repeat % len(variants)]
            for name in order:
                x = batch.contiguous(memory_format=torch.channels_last)
                started = time.perf_counter()
                runners[name](x)
                if repeat:  # the first round warms each variant up
                    times[name].append(time.perf_counter() - started)
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d %H:%M')}, batch {args.batch}, "
          f"224 px, taps {TAP_BLOCKS}, {args.repeats} passes each, load average {os.getloadavg()[0]:.1f}")
    base = statistics.median(times[variants[0]])
    for name in variants:
        median = statistics.median(times[name])
        print(f"  {name:<8} {args.batch / median:7.1f} photos/s  ({1000 * median:7.1f} ms/batch)  "
              f"{base / median:5.2f}x {variants[0]}   max |diff| vs cl {diffs[name]:.2e}   set-up {setup[name]:.1f} s")


if __name__ == "__main__":
    main()
