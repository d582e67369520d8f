"""The query text tower (``model.encode_text``) on OpenVINO's CPU runtime, for the server.

One thread per request, OpenVINO ran the bundled MiniLM tower in about 0.6x torch's time with
the same vectors (docs/experiments/2026-12-07-openvino-query-text-tower.md). The graph takes
token ids of any batch size and length (the encoder trims all-padding columns, so lengths vary
query by query) and returns the tower's unnormalised features; ``Encoder.encode_texts_with``
does the rest as it does for torch.

Converting takes about 2 s (5 s with the check and the save), so the graph is kept on disk
(``openvino_graph_store``) under a key of the text side's weights, the OpenVINO version and the
precision. Every opened tower, converted or read back, is checked against torch on probe texts
before it answers anything; a saved graph that fails is converted again, a fresh conversion
that fails raises (the caller stays on torch).

Concurrency: an infer request is not thread-safe, so each request thread gets its own. How
many run at once is the compiled model's stream count; ``serve`` compiles one stream of one
thread, not pinned to a core: side by side at 100k items, one stream answered hybrid text
queries in 0.78-0.82x the time of one stream per core (which pinned each stream's thread to a
core the request's helper thread and other processes also need), and two processes with pinned
threads ran the tower at about 0.75x the texts/s of unpinned ones (bound to one core).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jewelsearch.embed import openvino_graph_store as graph_store
from jewelsearch.embed import query_text_runtime
from jewelsearch.embed.encoder import Encoder

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the graph's input or output changes
GRAPH = "text"
PRECISIONS = query_text_runtime.PRECISIONS
# What a tower may differ from torch by on any probe text's unit vector, per precision: fp32 on
# both sides differs by ~3e-7; bf16 rounds activations to 8 bits of mantissa: 2.5e-3 on the
# bundled model (cosine 0.99989). A broken graph is off by far more.
TOLERANCE = {"f32": 1e-5, "bf16": 1e-2}
# Texts a tower must answer as torch does before it is used: scripts, emoji, the longest text
# the service takes, the empty text, and mixed lengths in one batch (trimmed to the longest).
PROBE_TEXTS = (
    "oval sapphire pendant",
    "椭圆蓝宝石吊坠",
    "pearl earrings 💎✨ under $500",
    "",
    "rose gold ring with diamonds, 18k, size 7 " * 12,
    "Ohrringe mit Perlen \u200b und Smaragd",
    "a",
)


def weights_key(model: nn.Module, version: str, precision: str) -> str:
    """A hash of what the text graph computes from: every parameter and buffer but the image
    tower's, the OpenVINO version and the precision."""
    digest = hashlib.sha256(repr((FORMAT, version, precision)).encode())
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith("visual."):
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


class TextGraph(nn.Module):
    """``encode_text`` alone, as a module to convert."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(ids)


def convert(encoder: Encoder):
    """The text tower as an OpenVINO model taking int64 ids of any batch size and length."""
    import openvino as ov

    example = encoder._trim_padding(encoder.tokenizer(["oval sapphire pendant", "ring"]))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing's notes on Python values made constants
        graph = ov.convert_model(TextGraph(encoder.model).eval(), example_input=example)
    graph.reshape({graph.inputs[0]: ov.PartialShape([-1, -1])})
    return graph


class OpenVinoTextTower:
    """A compiled text graph: token ids (a torch tensor) -> features, like ``encode_text``."""

    def __init__(self, graph, *, threads: int = 1, streams: int = 1, precision: str = "f32", pinned: bool = False):
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        streams, threads = max(1, int(streams)), max(1, int(threads))
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
                  "NUM_STREAMS": streams, "INFERENCE_NUM_THREADS": streams * threads,
                  "ENABLE_CPU_PINNING": bool(pinned)}
        self.precision = precision
        self._compiled = ov.Core().compile_model(graph, "CPU", config)
        self._requests = threading.local()  # one infer request per calling thread

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self._compiled.create_infer_request()
        array = np.ascontiguousarray(ids.numpy(), dtype=np.int64)
        # share_outputs=False: a fresh array, never overwritten by this thread's next call.
        return torch.from_numpy(request.infer({0: array}, share_outputs=False)[0])


def check(encoder: Encoder, tower: OpenVinoTextTower) -> float:
    """The largest difference between torch's and ``tower``'s unit vectors on the probe texts,
    one at a time and together; raises where it is above the precision's tolerance."""
    texts = list(PROBE_TEXTS)
    want = np.concatenate([encoder.encode_texts(texts)] + [encoder.encode_texts([t]) for t in texts])
    got = np.concatenate([encoder.encode_texts_with(texts, tower)]
                         + [encoder.encode_texts_with([t], tower) for t in texts])
    worst = float(np.abs(want - got).max())
    if not worst <= TOLERANCE[tower.precision]:
        raise RuntimeError(f"the OpenVINO text tower differs from torch by {worst:.2e}")
    return worst


def open_text_tower(encoder: Encoder, root: Path, *, threads: int = 1, streams: int = 1,
                    precision: str = "f32", pinned: bool = False) -> OpenVinoTextTower:
    """A checked OpenVINO text tower for ``encoder``'s model, read from ``root`` or converted and
    saved there. Raises where OpenVINO is missing or its tower does not give torch's vectors."""
    import openvino as ov

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    key = weights_key(encoder.model, ov.__version__, precision)
    folder = graph_store.cache_folder(Path(root), encoder.model_id, f"text-{key}")
    saved = graph_store.read_graphs(folder, (GRAPH,), FORMAT)
    if saved is not None:
        tower = OpenVinoTextTower(saved[GRAPH], threads=threads, streams=streams, precision=precision,
                                  pinned=pinned)
        try:
            check(encoder, tower)
            return tower
        except RuntimeError as exc:  # a graph from code that built it differently: converted again
            log.warning("the cached OpenVINO text tower in %s is not usable (%s): converting again", folder, exc)
    log.info("converting the query text tower for OpenVINO (once per model): %s", folder)
    graph = convert(encoder)
    tower = OpenVinoTextTower(graph, threads=threads, streams=streams, precision=precision, pinned=pinned)
    check(encoder, tower)
    try:
        graph_store.save_graphs(folder, {GRAPH: graph}, FORMAT)
    except OSError as exc:  # a read-only or full cache folder: this run still uses what it converted
        log.warning("cannot save the converted OpenVINO text tower in %s (%s); converting again next time",
                    folder, exc)
    return tower
