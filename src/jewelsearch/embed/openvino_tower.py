"""Ingest's tower pass (``dense_features.tower_pass``) on OpenVINO's CPU runtime.

On the 2-core VM OpenVINO ran the folded Lite0 image tower 1.60x as fast as the served torch
tower at batch 32, with the same outputs (docs/experiments/2026-12-07-openvino-towers.md).
Ingest reads more than the embedding from that pass, so two graphs are converted:

- the search graph: the whole tower, returning the ``TAP_BLOCKS`` maps, the last map, the
  embedding and, where a recognition top is given and reads a block no tap covers, the
  shared front's output;
- the top graph (only with a recognition top): the front's output -> the top's taps and last
  map. It is its own graph so that ``top_rows`` still runs it on the recognised photos alone.

Both take any batch size. A runner answers exactly like ``tower_pass`` (a ``TowerPass``);
``beside`` is accepted and unused (OpenVINO's own threads use the cores). Converting takes
seconds, so ``openvino_cache`` keeps the converted graphs; this module only converts and runs.
"""

from __future__ import annotations

import logging
import threading
import warnings
from concurrent.futures import Executor

import numpy as np
import torch
from torch import nn

from jewelsearch.embed import openvino_precision
from jewelsearch.embed.dense_features import TAP_BLOCKS, TowerPass, tower_pass

log = logging.getLogger(__name__)


def top_tap_blocks(top: nn.Module) -> tuple[int, ...]:
    """The tapped blocks whose maps a recognition top replaces (its first block on)."""
    return tuple(i for i in TAP_BLOCKS if i >= top.first_block)


class SearchGraph(nn.Module):
    """The tower's forward as ``tower_pass`` runs it, flattened to a tuple for conversion:
    (taps..., last map, embedding[, front])."""

    def __init__(self, visual: nn.Module, front_block: int | None):
        super().__init__()
        self.visual = visual
        # The block whose output feeds a recognition top, when no tap already returns it.
        self.front_block = front_block

    def forward(self, batch: torch.Tensor):
        # Joined convolutions (``fuse_activation``) run oneDNN ops OpenVINO cannot read while grad
        # is off; with grad on they run their original convolution and activation, the same numbers.
        with torch.enable_grad():
            trunk = self.visual.trunk
            x = trunk.bn1(trunk.conv_stem(batch))
            taps, front = [], None
            for index, block in enumerate(trunk.blocks):
                x = block(x)
                if index in TAP_BLOCKS:
                    taps.append(x)
                if index == self.front_block:
                    front = x
            last_map = trunk.bn2(trunk.conv_head(x))
            pooled = trunk.global_pool(last_map)
            if pooled.ndim > 2:
                pooled = pooled.flatten(1)
            embedding = self.visual.head(pooled)
        return (*taps, last_map, embedding) + ((front,) if front is not None else ())


class TopGraph(nn.Module):
    """A recognition top flattened for conversion: (its taps..., its last map)."""

    def __init__(self, top: nn.Module):
        super().__init__()
        self.top = top
        self.tapped = top_tap_blocks(top)

    def forward(self, front: torch.Tensor):
        with torch.enable_grad():
            outputs, last_map = self.top(front)
        return (*(outputs[i] for i in self.tapped), last_map)


def front_source(top: nn.Module | None) -> tuple[int | None, int | None]:
    """(the tap's position that already is the front, the block the search graph must return
    as an extra output): the front is block ``first_block - 1``'s output."""
    if top is None:
        return None, None
    block = top.first_block - 1
    return (TAP_BLOCKS.index(block), None) if block in TAP_BLOCKS else (None, block)


def convert(visual: nn.Module, top: nn.Module | None, side: int):
    """(search graph, top graph or None) as OpenVINO models taking any batch size."""
    import openvino as ov

    with warnings.catch_warnings():
        # Tracing warns that timm's "same" padding becomes a constant: it is, for the fixed side.
        warnings.simplefilter("ignore")
        return _convert(ov, visual, top, side)


def _convert(ov, visual: nn.Module, top: nn.Module | None, side: int):
    example = torch.zeros(2, 3, side, side)
    _, extra = front_source(top)
    search_module = SearchGraph(visual, extra).eval()
    search = ov.convert_model(search_module, example_input=example)
    search.reshape({search.inputs[0]: ov.PartialShape([-1, 3, side, side])})
    if top is None:
        return search, None
    with torch.inference_mode():
        front = search_module(example)[-1 if extra is not None else front_source(top)[0]]
    top_graph = ov.convert_model(TopGraph(top).eval(), example_input=front.clone())
    top_graph.reshape({top_graph.inputs[0]: ov.PartialShape([-1, *front.shape[1:]])})
    return search, top_graph


def channels_last(model):
    """A copy of ``model`` that reads and writes its 4-d maps channels-last (NHWC), as torch
    holds them in ingest: the input needs no copy, and the maps reach the localiser and the
    piece head in the layout their convolutions run fastest on (NCHW outputs made those steps
    about 1.5x slower, profile_ingest.py). OpenVINO's CPU plugin works channels-last inside."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    model = model.clone()
    steps = PrePostProcessor(model)
    steps.input(0).tensor().set_layout(ov.Layout("NHWC"))
    steps.input(0).model().set_layout(ov.Layout("NCHW"))
    for index, output in enumerate(model.outputs):
        if output.get_partial_shape().rank.get_length() == 4:
            steps.output(index).tensor().set_layout(ov.Layout("NHWC"))
            steps.output(index).model().set_layout(ov.Layout("NCHW"))
    return steps.build()


def resolved(precision: str) -> str:
    """``precision`` with ``auto`` made f32 or bf16 for this machine's CPU plugin."""
    import openvino as ov

    return openvino_precision.resolve(precision, ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _compiled(core, search, top_graph, precision: str, threads: int, streams: int):
    """(search infer requests, top infer requests or None), one request per stream, both graphs
    compiled in ``precision``: the top's maps feed heads that were fitted on the search graph's,
    so they never mix precisions."""
    config = openvino_precision.compile_config(precision, threads, streams)

    def requests(graph):
        compiled = core.compile_model(channels_last(graph), "CPU", config)
        return [compiled.create_infer_request() for _ in range(streams)]

    return requests(search), requests(top_graph) if top_graph is not None else None


def _infer(requests, array: np.ndarray) -> list[np.ndarray]:
    """The graph's outputs for ``array`` (fresh arrays, never overwritten by a later call), its
    rows shared out over the requests (one per stream) and run at once. A photo's outputs do
    not depend on the rows it runs with (tests/test_openvino_precision.py), so the split
    changes no number."""
    parts = min(len(requests), len(array))
    if parts <= 1:
        # share_inputs: the graph reads ``array`` where it lies (it outlives this synchronous
        # call) instead of copying the batch first (0.2 ms a photo).
        return list(requests[0].infer({0: array}, share_inputs=True, share_outputs=False).values())
    chunks = np.array_split(array, parts)
    for request, chunk in zip(requests, chunks):
        request.start_async({0: np.ascontiguousarray(chunk)})
    for request in requests[:parts]:
        request.wait()
    outputs = len(requests[0].model_outputs)
    return [np.concatenate([request.get_output_tensor(i).data for request in requests[:parts]])
            for i in range(outputs)]


def _to_torch(array: np.ndarray) -> torch.Tensor:
    """An OpenVINO output as torch's N×C×h×w (channels-last strides) or N×D, without a copy."""
    tensor = torch.from_numpy(array)
    return tensor.permute(0, 3, 1, 2) if tensor.ndim == 4 else tensor


class OpenVinoTower:
    """``tower_pass`` for one tower and (optionally) its recognition top, on compiled graphs.

    ``precision`` (``openvino_precision.PRECISIONS``) picks the arithmetic; where the CPU has
    no native bf16 or bf16 fails to compile, both graphs compile in f32 with one warning
    (``self.precision`` says which runs). ``streams`` (default 1) splits each batch over that
    many streams run at once, each on its share of the threads: alone, two streams ran the bf16
    search graph's batch of 32 in 0.75x the time of one two-thread request, but end to end the
    gain did not hold (``_streams``). ``core``: an ``openvino.Core`` (tests pass their own).

    Infer requests are not thread-safe: one call at a time runs (ingest's model step is one
    thread; a concurrent upload waits)."""

    def __init__(self, search, top_graph, top: nn.Module | None, threads: int, precision: str = "f32",
                 core=None, streams: int | None = None):
        import openvino as ov

        core = core or ov.Core()
        self.top = top
        threads = max(1, int(threads))
        self._streams_asked = streams
        capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        self.precision = openvino_precision.resolve(precision, capabilities)
        if self.precision == "bf16" and "BF16" not in capabilities:
            # OpenVINO would emulate it, slower than f32 and still rounded.
            log.warning("ingest_precision bf16: this CPU has no native bf16 arithmetic; the OpenVINO graphs run in f32")
            self.precision = "f32"
        try:
            self._search, self._top = _compiled(core, search, top_graph, self.precision, threads,
                                                self._streams(threads))
        except RuntimeError as exc:
            if self.precision == "f32":
                raise
            log.warning("ingest's OpenVINO graphs did not compile in %s (%s); they run in f32", self.precision, exc)
            self.precision = "f32"
            self._search, self._top = _compiled(core, search, top_graph, "f32", threads, self._streams(threads))
        self._front_tap, self._front_extra = front_source(top)
        self._top_taps = top_tap_blocks(top) if top is not None else ()
        self._lock = threading.Lock()

    @property
    def streams(self) -> int:
        return len(self._search)

    def _streams(self, threads: int) -> int:
        """One unless asked: splitting the batch over one stream per thread saved 4-6 % of the CPU
        a photo in bf16 but gave 0.97-1.21x the photos/s end to end on the loaded 2-core VM, short
        of the rule's 1.05x in one of two runs (docs/experiments/2026-12-07-bf16-ingest.md). The
        split changes no number (bit-equal in bf16; in f32 still 8.3e-7 from torch)."""
        return max(1, min(threads, int(self._streams_asked or 1)))

    def __call__(self, visual: nn.Module, batch: torch.Tensor, top: nn.Module | None = None,
                 top_rows: torch.Tensor | None = None, beside: Executor | None = None) -> TowerPass:
        if top is not None and top is not self.top:
            # Not the top that was converted (a caller with another one): torch answers.
            return tower_pass(visual, batch, top, top_rows, beside)
        # N×H×W×C: a view of a channels-last batch (ingest's), a copy of any other.
        array = np.ascontiguousarray(batch.float().permute(0, 2, 3, 1).numpy())
        with self._lock:
            found = _infer(self._search, array)
            n = len(TAP_BLOCKS)
            taps = [_to_torch(t) for t in found[:n]]
            last_map, embedding = _to_torch(found[n]), _to_torch(found[n + 1])
            search_taps, search_last_map = list(taps), last_map
            if top is None:
                return TowerPass(taps=taps, last_map=last_map, embedding=embedding, search_taps=search_taps,
                                 search_last_map=search_last_map)
            front = found[n + 2] if self._front_extra is not None else found[self._front_tap]
            if top_rows is not None:
                front = np.ascontiguousarray(front[top_rows.numpy()])
                taps = [tap[top_rows] for tap in taps]
            replaced = [_to_torch(o) for o in _infer(self._top, front)]
        by_block = dict(zip(self._top_taps, replaced[:-1]))
        taps = [by_block.get(index, tap) for index, tap in zip(TAP_BLOCKS, taps)]
        return TowerPass(taps=taps, last_map=replaced[-1], embedding=embedding, search_taps=search_taps,
                         search_last_map=search_last_map)
