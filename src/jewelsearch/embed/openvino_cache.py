"""The converted OpenVINO graphs of ingest's tower pass, kept on disk between runs.

Converting the Lite0 tower and its recognition top takes seconds (8.7 s measured on the 2-core
VM under load); reading the saved IR and compiling it about 0.1 s. So the graphs are saved once
per tower, in a folder named after the model id and a hash of everything the graphs compute
from (the tower's and the top's weights, the input side, the OpenVINO version): a changed
model gets a new folder and never an old graph. A folder is written under a temporary name
and renamed into place, with a manifest of its files' hashes, so a half-written or damaged
folder is never read: it is converted again (``openvino_graph_store``).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from torch import nn

from jewelsearch.embed import openvino_graph_store as graph_store
from jewelsearch.embed import openvino_precision, openvino_tower
from jewelsearch.embed.openvino_graph_store import MANIFEST, cache_folder, default_cache_dir  # noqa: F401 (API)

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the graphs' outputs change shape or order
GRAPHS = ("search", "top")


def weights_key(visual: nn.Module, top: nn.Module | None, side: int, version: str) -> str:
    """A hash of what the converted graphs compute from."""
    digest = hashlib.sha256(repr((FORMAT, side, version)).encode())
    for prefix, module in (("visual.", visual), ("top.", top)):
        if module is None:
            continue
        for name, tensor in sorted(module.state_dict().items()):
            digest.update((prefix + name).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def open_tower(visual: nn.Module, top: nn.Module | None, side: int, model_id: str, root: Path,
               threads: int | None = None, *, convert_if_missing: bool = True, precision: str = "f32",
               streams: int | None = None):
    """An ``OpenVinoTower`` compiled in ``precision`` (auto, f32 or bf16) from the cached graphs,
    converting (and caching) them where missing or damaged; None where there is no cache and
    ``convert_if_missing`` is false. Raises where OpenVINO is missing or conversion fails (the
    caller falls back to torch). The saved graphs are the same for every precision. ``streams``:
    ``OpenVinoTower``'s (default one per thread)."""
    import openvino as ov

    threads = threads or torch.get_num_threads()
    folder = cache_folder(root, model_id, weights_key(visual, top, side, ov.__version__))
    graphs = _read(folder, top is not None)
    if graphs is None:
        if not convert_if_missing:
            return None
        log.info("converting the image tower for OpenVINO (once per model): %s", folder)
        graphs = openvino_tower.convert(visual, top, side)
        # The conversion itself is judged in f32, to torch's outputs within 1e-5: bf16's rounding
        # would hide a small mistake in the graphs, which are saved for every later run.
        tower = openvino_tower.OpenVinoTower(*graphs, top, threads, "f32", streams=streams)
        check(tower, visual, top, side)
        try:
            _write(folder, graphs)
        except OSError as exc:  # a read-only or full cache folder: this run still uses what it converted
            log.warning("cannot save the converted OpenVINO graphs in %s (%s); converting again next time",
                        folder, exc)
        if tower.precision == openvino_tower.resolved(precision):
            return tower
    # Not checked again here: a check runs torch's tower once (its first pass sets up kernels,
    # a few tenths of a second), which a job on saved graphs would otherwise never pay.
    return openvino_tower.OpenVinoTower(*graphs, top, threads, precision, streams=streams)


def cached(visual: nn.Module, top: nn.Module | None, side: int, model_id: str, root: Path) -> bool:
    """Whether usable graphs for this tower are saved (no conversion, no compile)."""
    import openvino as ov

    folder = cache_folder(root, model_id, weights_key(visual, top, side, ov.__version__))
    return _manifest_ok(folder, top is not None)


def check(tower, visual: nn.Module, top: nn.Module | None, side: int) -> None:
    """Raise where the converted graphs do not give torch's outputs on a probe batch, within
    the tolerance of the precision they were compiled in (``openvino_precision.TOLERANCES``)."""
    generator = torch.Generator().manual_seed(0)
    # Smooth, image-like input: small values keep the ReLU6 activations off their clip.
    probe = 0.5 * torch.rand(3, 3, side, side, generator=generator) - 0.25
    rows = torch.tensor([0, 2])
    with torch.inference_mode():
        want = openvino_tower.tower_pass(visual, probe, top, rows if top is not None else None)
        got = tower(visual, probe, top, rows if top is not None else None)
    worst, relative, cosine = differences(want, got)
    most_relative, least_cosine = openvino_precision.TOLERANCES[tower.precision]
    if not (relative <= most_relative and cosine >= least_cosine):
        raise RuntimeError(f"the OpenVINO graphs ({tower.precision}) differ from torch by {worst:.2e} "
                           f"({relative:.2%} relative), embedding cosine {cosine:.6f}")


def differences(want, got) -> tuple[float, float, float]:
    """(the largest absolute difference of any output, the largest relative difference of any
    output in norm, the lowest cosine of a photo's embedding) between two tower passes."""
    pairs = [(want.embedding, got.embedding), (want.last_map, got.last_map),
             (want.search_last_map, got.search_last_map)] + list(zip(want.taps, got.taps)) \
        + list(zip(want.search_taps, got.search_taps))
    worst = max(float((a.float() - b.float()).abs().max()) for a, b in pairs)
    relative = max(float((b.float() - a.float()).norm() / a.float().norm().clamp_min(1e-12)) for a, b in pairs)
    cosine = float(torch.nn.functional.cosine_similarity(want.embedding.float(), got.embedding.float(), dim=-1).min())
    return worst, relative, cosine


def _write(folder: Path, graphs) -> None:
    graph_store.save_graphs(folder, {name: graph for name, graph in zip(GRAPHS, graphs) if graph is not None},
                            FORMAT)


def _manifest_ok(folder: Path, with_top: bool) -> bool:
    return graph_store.graphs_saved(folder, GRAPHS[:2 if with_top else 1], FORMAT)


def _read(folder: Path, with_top: bool):
    """(search graph, top graph or None) from ``folder``, or None where it is missing or damaged."""
    graphs = graph_store.read_graphs(folder, GRAPHS[:2 if with_top else 1], FORMAT)
    if graphs is None:
        return None
    return graphs["search"], graphs.get("top")
