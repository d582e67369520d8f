"""Static int8 quantisation of the folded image tower (FX graph mode, x86 backend), calibrated
on real photos: speed against the float tower, and how far its embeddings move.

timm's ``Conv2dSame`` pads by the input's size at run time, which FX tracing cannot follow, so
each is first swapped for a fixed zero pad plus a plain convolution (exact at the model's one
input size, 224 px). Then ``prepare_fx`` / calibration on ``--calibrate`` products/train photos
/ ``convert_fx``, and the float and int8 towers alternate over ``--photos`` products/val
photos at batch 32. Prints photos/s of each, the ratio and the embedding cosine (int8 vs float).
Needs /work/shared/data (or ``--data``).
Usage: python benchmarks/bench_int8.py [--calibrate 128] [--photos 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from jewelsearch.embed import load_encoder  # noqa: E402
from jewelsearch.embed.fold_batch_norm import fold_batch_norm  # noqa: E402


class FixedPadConv(torch.nn.Module):
    """A 'SAME' convolution at one known input size: a constant zero pad, then the convolution."""

    def __init__(self, conv: torch.nn.Conv2d, pad: tuple[int, int, int, int]):
        super().__init__()
        self.pad = torch.nn.ZeroPad2d(pad)
        self.conv = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0,
                                    conv.dilation, conv.groups, conv.bias is not None)
        self.conv.load_state_dict(conv.state_dict())

    def forward(self, x):
        return self.conv(self.pad(x))


def same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    total = max((-(size // -stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def fix_padding(trunk: torch.nn.Module, side: int) -> None:
    from timm.layers.conv2d_same import Conv2dSame
    sizes = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=name: sizes.__setitem__(n, args[0].shape[-2:]))
             for name, m in trunk.named_modules() if isinstance(m, Conv2dSame)]
    with torch.inference_mode():
        trunk(torch.zeros(1, 3, side, side))
    for hook in hooks:
        hook.remove()
    for name, (h, w) in sizes.items():
        parent_name, _, child = name.rpartition(".")
        parent = trunk.get_submodule(parent_name) if parent_name else trunk
        conv = getattr(parent, child)
        top, bottom = same_pad(h, conv.kernel_size[0], conv.stride[0], conv.dilation[0])
        left, right = same_pad(w, conv.kernel_size[1], conv.stride[1], conv.dilation[1])
        setattr(parent, child, FixedPadConv(conv, (left, right, top, bottom)))


class Tower(torch.nn.Module):
    def __init__(self, visual):
        super().__init__()
        self.trunk, self.head = visual.trunk, visual.head

    def forward(self, x):
        return self.head(self.trunk.forward_head(self.trunk.forward_features(x), pre_logits=True))


def photos(data: Path, split: str, count: int) -> list[Image.Image]:
    rows = [r for r in csv.DictReader(open(data / "products" / "labels.csv")) if r["split"] == split][:count]
    return [Image.open(data / "products" / r["path"]).convert("RGB") for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--calibrate", type=int, default=128)
    parser.add_argument("--photos", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    encoder = load_encoder("jewelclip-lite0")
    fold_batch_norm(encoder.model.visual)
    side = encoder.preprocess.size
    float_tower = Tower(encoder.model.visual).eval()
    fixed = copy.deepcopy(float_tower)
    fix_padding(fixed.trunk, side)
    batch = lambda images: torch.stack([encoder.preprocess(im) for im in images])  # noqa: E731
    calibration = batch(photos(args.data, "train", args.calibrate))
    evaluation = batch(photos(args.data, "val", args.photos))
    with torch.inference_mode():
        reference = F.normalize(float_tower(evaluation), dim=-1)
        exact = F.normalize(fixed(evaluation), dim=-1)
    print(f"fixed padding vs timm's: max |diff| {float((reference - exact).abs().max()):.2e}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(fixed, get_default_qconfig_mapping("x86"), (calibration[:2],))
        with torch.inference_mode():
            for start in range(0, len(calibration), 32):
                prepared(calibration[start:start + 32])
        int8 = convert_fx(prepared)
    with torch.inference_mode():
        quantised = F.normalize(int8(evaluation), dim=-1)
    cosine = (reference * quantised).sum(1)
    times = {"float": [], "int8": []}
    for repeat in range(args.repeats):
        for name, tower in (("float", float_tower), ("int8", int8))[::1 if repeat % 2 else -1]:
            nhwc = evaluation.contiguous(memory_format=torch.channels_last) if name == "float" else evaluation
            start = time.perf_counter()
            with torch.inference_mode():
                for s in range(0, len(nhwc), 32):
                    tower(nhwc[s:s + 32])
            times[name].append(len(nhwc) / (time.perf_counter() - start))
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}")
    for name, done in times.items():
        print(f"{name:>6}: median {statistics.median(done):.1f} photos/s over {args.repeats} passes of {args.photos}")
    print(f"int8 / float: {statistics.median(times['int8']) / statistics.median(times['float']):.2f}x")
    print(f"embedding cosine int8 vs float: mean {float(cosine.mean()):.4f}, min {float(cosine.min()):.4f}")


if __name__ == "__main__":
    main()
