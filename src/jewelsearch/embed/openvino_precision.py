"""The arithmetic precision ingest's OpenVINO graphs are compiled in: f32, or bf16.

The converted graphs (the IR) are the same either way; precision is a compile option
(``INFERENCE_PRECISION_HINT``), so it is not part of the saved graphs' cache key. On a CPU with
AMX or AVX-512 BF16 the tower pass ran about twice as fast in bf16 as in f32 at batch 32, with
the stored vectors' cosine to f32's above 0.999 on real photos
(docs/experiments/2026-12-07-bf16-ingest.md). ``auto`` therefore means bf16 where the CPU
plugin reports ``BF16`` among its optimisation capabilities, and f32 elsewhere (where OpenVINO
would emulate bf16, slower than f32).

This module imports no OpenVINO: the setting is checked when the service opens, OpenVINO only
when an ingest job asks for it.

>>> resolve("auto", ["FP32", "BF16", "INT8"])
'bf16'
>>> resolve("auto", ["FP32", "FP16"])
'f32'
>>> resolve("bf16", ["FP32"])
'bf16'
"""

from __future__ import annotations

from typing import Iterable

PRECISIONS = ("auto", "f32", "bf16")

# How far a graph compiled in each precision may be from torch's fp32 tower pass on a probe
# batch (``openvino_cache.check``): (the largest relative difference ‖got − want‖ / ‖want‖ of
# any output, the lowest cosine of a photo's embedding to torch's). Relative, because the maps'
# values run to the tens: f32 was 3.4e-7 off with torch on two threads and 3.2e-6 with torch on
# one (a Ray actor's), whose own kernels then differ by 2.3e-5 in absolute terms on the largest
# map values, while the stored, normalised embedding moved by 3.3e-7. bf16 keeps 8 bits of
# mantissa and its rounding adds up through the tower: on 32 demo photos each map was 7-10 %
# off in norm and the embeddings' cosine to torch's was 0.9967 mean, 0.986 lowest (2026-12-07);
# its limits leave room for that and still catch a graph that computes something else.
TOLERANCES = {"f32": (1e-5, 0.99999), "bf16": (0.2, 0.97)}


def resolve(choice: str, capabilities: Iterable[str]) -> str:
    """The precision to compile in: ``choice`` unless it is ``auto``, which is bf16 where the
    CPU plugin's ``OPTIMIZATION_CAPABILITIES`` include BF16 (native bf16 arithmetic)."""
    if choice not in PRECISIONS:
        raise ValueError(f"ingest_precision must be one of {', '.join(PRECISIONS)}")
    if choice != "auto":
        return choice
    return "bf16" if "BF16" in set(capabilities) else "f32"


def compile_config(precision: str, threads: int, streams: int = 1) -> dict:
    """The CPU plugin's compile options for ``precision`` (f32 or bf16) on ``threads`` threads
    shared by ``streams`` streams (requests that run at once, each on its share of the threads).

    >>> compile_config("bf16", 2, 2)["NUM_STREAMS"]
    2
    """
    if precision not in PRECISIONS[1:]:
        raise ValueError(f"cannot compile in {precision!r}")
    threads = max(1, int(threads))
    config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads}
    if streams <= 1:
        return {"PERFORMANCE_HINT": "LATENCY", **config}
    return {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": min(int(streams), threads), **config}
