"""Ingest's tower pass on OpenVINO: the same outputs and ingest results as torch, the saved
graphs reused and rebuilt, and torch whenever OpenVINO cannot be used."""

from __future__ import annotations

import copy
import logging
import sys

import numpy as np
import pytest
import torch

from jewelsearch.config import Settings
from jewelsearch.ingest.tower_runtime import TowerRuntime

TOLERANCE = 1e-5


class FakeOpener:
    def __init__(self, saved=False, fails=False):
        self.saved, self.fails, self.calls = saved, fails, []

    def __call__(self, convert):
        self.calls.append(convert)
        if self.fails:
            raise ImportError("No module named 'openvino'")
        return "runner" if self.saved or convert else None


def test_auto_keeps_small_jobs_on_torch_and_converts_only_for_large_ones():
    opener = FakeOpener()
    runtime = TowerRuntime("auto", opener, min_photos=64, convert_photos=1000)  # as they were chosen
    assert runtime.runner(32) is None and opener.calls == []  # one batch: OpenVINO not even imported
    assert runtime.runner(64) is None and opener.calls == [False]  # nothing saved: no conversion yet
    assert runtime.runner(96) is None and opener.calls == [False]  # not asked again below the step
    assert runtime.runner(1000) == "runner" and opener.calls == [False, True]
    assert runtime.runner(1032) == "runner" and runtime.name == "openvino" and len(opener.calls) == 2


def test_auto_uses_saved_graphs_from_the_minimum_job_size():
    opener = FakeOpener(saved=True)
    runtime = TowerRuntime("auto", opener, min_photos=64)
    assert runtime.runner(63) is None
    assert runtime.runner(64) == "runner" and opener.calls == [False]


def test_openvino_opens_for_any_job_and_torch_never_opens():
    opener = FakeOpener()
    assert TowerRuntime("openvino", opener).runner(1) == "runner" and opener.calls == [True]
    never = FakeOpener()
    assert TowerRuntime("torch", never).runner(10_000) is None and never.calls == []
    assert TowerRuntime("openvino", None).runner(1) is None  # no opener (a tower without maps): torch


def test_a_failed_open_logs_once_and_stays_on_torch(caplog):
    opener = FakeOpener(fails=True)
    runtime = TowerRuntime("openvino", opener)
    with caplog.at_level(logging.WARNING):
        assert runtime.runner(100) is None and runtime.runner(200) is None
    assert opener.calls == [True] and runtime.name == "torch"
    warned = [r for r in caplog.records if "OpenVINO could not be used" in r.getMessage()]
    assert len(warned) == 1 and "No module named" in warned[0].getMessage()


def test_an_unknown_runtime_is_refused(tmp_path, tiny_model_dir):
    from jewelsearch.search.wiring import SettingsError, open_service
    with pytest.raises(ValueError, match="ingest_runtime"):
        TowerRuntime("onnx", FakeOpener())
    with pytest.raises(SettingsError, match="ingest_runtime must be one of auto, torch, openvino"):
        open_service(Settings(home=tmp_path / "h", model=str(tiny_model_dir), ingest_runtime="onnx"))


class Recording:
    """A tower runtime that notes each job size it is asked about and always answers torch."""

    def __init__(self):
        self.asked = []

    def runner(self, job_photos):
        self.asked.append(job_photos)
        return None


def test_a_pipelined_job_reports_its_size_to_the_runtime(service):
    """The CLI's file count picks the runtime from the first batch; unknown, the photos so far."""
    from conftest import make_image

    from jewelsearch.ingest.pipeline import NewItem

    recording = Recording()
    service.state.ingestor.tower_runtime = recording
    batches = [[NewItem(make_image(seed=10 * b + i), {"title": "ring"}) for i in range(2)] for b in range(2)]
    list(service.ingest_batches(batches, photos=300))
    assert recording.asked == [300, 300]
    more = [[NewItem(make_image(seed=100 + 10 * b + i), {"title": "ring"}) for i in range(2)] for b in range(2)]
    list(service.ingest_batches(more))
    assert recording.asked[2:] == [2, 4]


def test_a_ray_actor_picks_the_runtime_by_the_whole_jobs_size(tmp_path, tiny_model_dir):
    """A Ray actor sees batches of 32, but the runtime (and so the stored vectors: bf16 rounds)
    must be the one a local ingest of the whole job picks."""
    from conftest import make_image

    from jewelsearch.search.ray_ingest import PhotoWorker

    threads_before = torch.get_num_threads()  # the worker sets torch's (process-wide) threads to 1
    try:
        worker = PhotoWorker(Settings(home=tmp_path / "h", model=str(tiny_model_dir)), job_photos=300)
        recording = Recording()
        worker.service.state.ingestor.tower_runtime = recording
        from jewelsearch.ingest.pipeline import NewItem
        done = worker._add([NewItem(make_image(seed=i), {"title": "ring"}, source_path=f"p{i}.png")
                            for i in range(2)])
    finally:
        torch.set_num_threads(threads_before)
    assert all(isinstance(item_id, int) for _, item_id in done)
    assert recording.asked == [300]


def test_a_tower_without_maps_ingests_on_torch(tmp_path, tiny_model_dir):
    """The tiny test model (a ViT) makes no tower pass of its own: "openvino" changes nothing."""
    from conftest import make_image

    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.search.wiring import open_service
    service = open_service(Settings(home=tmp_path / "h", model=str(tiny_model_dir), ingest_runtime="openvino",
                                    openvino_cache_dir=str(tmp_path / "ov")))
    try:
        items = [NewItem(make_image(seed=i), {"title": f"ring {i}"}) for i in range(3)]
        results = [r for _, batch in service.ingest_batches([items]) for r in batch]
        assert [r.status for r in results] == ["added"] * 3
        assert service.state.ingestor.tower_runtime.name == "torch" and not (tmp_path / "ov").exists()
    finally:
        service.catalog.close()


# --- the bundled model and OpenVINO itself ---------------------------------------------------

@pytest.fixture(scope="module")
def served():
    pytest.importorskip("openvino")
    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.builder import load_recognizer
    encoder = load_encoder("jewelclip-lite0")
    recognizer = load_recognizer(encoder, fold_for_serving=True)  # as ingest runs it: folded, joined
    assert recognizer.recognition_top is not None
    return encoder, recognizer


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("openvino-cache")


def _demo_batch(encoder, n=6):
    from PIL import Image

    from jewelsearch.ingest.demo import demo_dir, demo_items
    import io
    items = demo_items(demo_dir())[:n]
    return torch.stack([encoder.preprocess(Image.open(io.BytesIO(i.image_bytes)).convert("RGB")) for i in items]) \
        .contiguous(memory_format=torch.channels_last)


def _worst(a, b) -> float:
    pairs = [(torch.nn.functional.normalize(a.embedding, dim=-1), torch.nn.functional.normalize(b.embedding, dim=-1)),
             (a.last_map, b.last_map), (a.search_last_map, b.search_last_map)] \
        + list(zip(a.taps, b.taps)) + list(zip(a.search_taps, b.search_taps))
    assert all(x.shape == y.shape for x, y in pairs)
    return max(float((x - y).abs().max()) for x, y in pairs)


@pytest.mark.slow
def test_the_converted_graphs_give_torchs_pass(served, cache_root):
    from jewelsearch.embed import openvino_cache
    from jewelsearch.embed.dense_features import tower_pass
    encoder, recognizer = served
    visual, top = encoder.model.visual, recognizer.recognition_top
    runner = openvino_cache.open_tower(visual, top, encoder.preprocess.size, encoder.model_id, cache_root)
    batch = _demo_batch(encoder)
    with torch.inference_mode():
        for batch_part, chosen, rows in ((batch, None, None), (batch, top, None),
                                         (batch, top, torch.tensor([1, 4])), (batch[:1], top, None)):
            want, got = tower_pass(visual, batch_part, chosen, rows), runner(visual, batch_part, chosen, rows)
            assert _worst(want, got) <= TOLERANCE  # any batch size, the top's rows alone
            if rows is not None:
                assert got.last_map.shape[0] == 2 and got.taps[0].shape[0] == 2 and got.search_taps[0].shape[0] == 6


@pytest.mark.slow
def test_saved_graphs_are_reused_rebuilt_for_new_weights_and_after_damage(served, cache_root, monkeypatch):
    from jewelsearch.embed import openvino_cache, openvino_tower
    from jewelsearch.embed.dense_features import tower_pass
    encoder, recognizer = served
    visual, top, side = encoder.model.visual, recognizer.recognition_top, encoder.preprocess.size
    openvino_cache.open_tower(visual, top, side, encoder.model_id, cache_root)
    assert openvino_cache.cached(visual, top, side, encoder.model_id, cache_root)
    real_convert = openvino_tower.convert
    conversions = []
    monkeypatch.setattr(openvino_tower, "convert", lambda *a: conversions.append(1) or real_convert(*a))
    openvino_cache.open_tower(visual, top, side, encoder.model_id, cache_root)
    assert conversions == []  # reused
    assert openvino_cache.open_tower(visual, top, side, "another-model", cache_root, convert_if_missing=False) is None

    changed = copy.deepcopy(visual)
    with torch.no_grad():
        changed.trunk.conv_head.conv.weight.mul_(1.01)  # a joined convolution
    assert not openvino_cache.cached(changed, top, side, encoder.model_id, cache_root)
    runner = openvino_cache.open_tower(changed, top, side, encoder.model_id, cache_root)
    assert conversions == [1]
    batch = _demo_batch(encoder, 2)
    with torch.inference_mode():
        assert _worst(tower_pass(changed, batch, top), runner(changed, batch, top)) <= TOLERANCE

    folder = openvino_cache.cache_folder(cache_root, encoder.model_id, openvino_cache.weights_key(
        visual, top, side, __import__("openvino").__version__))
    with open(folder / "search.bin", "r+b") as handle:  # a damaged file: converted again, never read
        handle.seek(1000)
        handle.write(b"\x00" * 64)
    runner = openvino_cache.open_tower(visual, top, side, encoder.model_id, cache_root)
    assert conversions == [1, 1] and openvino_cache.cached(visual, top, side, encoder.model_id, cache_root)
    with torch.inference_mode():
        assert _worst(tower_pass(visual, batch, top), runner(visual, batch, top)) <= TOLERANCE
    assert not [p for p in cache_root.iterdir() if p.name.startswith(".")]  # no scratch folder left


@pytest.mark.slow
def test_an_unwritable_cache_still_ingests_on_what_was_converted(served, tmp_path, caplog):
    from jewelsearch.embed import openvino_cache
    from jewelsearch.embed.dense_features import tower_pass
    encoder, recognizer = served
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    with caplog.at_level(logging.WARNING):
        runner = openvino_cache.open_tower(encoder.model.visual, None, encoder.preprocess.size, encoder.model_id,
                                           blocked / "openvino")
    assert any("cannot save the converted OpenVINO graphs" in r.getMessage() for r in caplog.records)
    batch = _demo_batch(encoder, 2)
    with torch.inference_mode():
        assert _worst(tower_pass(encoder.model.visual, batch), runner(encoder.model.visual, batch)) <= TOLERANCE


def _ingest(service, items):
    return [r for _, batch in service.ingest_batches([items[i:i + 8] for i in range(0, len(items), 8)])
            for r in batch]


@pytest.mark.slow
def test_ingest_on_openvino_equals_ingest_on_torch(served, cache_root, tmp_path):
    """The same items, filled attributes and localiser decisions; vectors within 1e-5."""
    from jewelsearch.ingest.demo import demo_dir, demo_items
    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.search.wiring import open_service
    encoder, _ = served
    recognised = ("category", "metal", "gemstone", "stone_shape")
    items = [NewItem(i.image_bytes, {k: v for k, v in i.fields.items() if k not in recognised})
             for i in demo_items(demo_dir())[:24]]
    homes = {}
    for runtime in ("torch", "openvino"):
        # f32: bf16 rounds (tests/test_openvino_precision.py), and this is the within-1e-5 rule.
        settings = Settings(home=tmp_path / runtime, ingest_runtime=runtime, ingest_precision="f32",
                            openvino_cache_dir=str(cache_root))
        service = open_service(settings)
        results = _ingest(service, items)
        assert [r.status for r in results] == ["added"] * len(items)
        assert service.state.ingestor.tower_runtime.name == runtime
        rows = [service.catalog.items.get(r.item_id) for r in results]
        keys = {**service.catalog.embeddings.model_ids(), **service.catalog.embeddings.spaces_of(encoder.model_id)}
        assert encoder.model_id in keys and service.state.ingestor.instance_key in keys
        vectors = {key: np.stack([service.catalog.embeddings.get(r.item_id, key) for r in results])
                   for key in keys if service.catalog.embeddings.count(key) == len(results)}
        assert service.state.ingestor.text_key in vectors  # every demo item has words
        homes[runtime] = (rows, vectors)
        service.catalog.close()
    (torch_rows, torch_vectors), (ov_rows, ov_vectors) = homes["torch"], homes["openvino"]
    for a, b in zip(torch_rows, ov_rows):
        assert {k: a[k] for k in recognised} == {k: b[k] for k in recognised}
        # The recognition record: the same labels and decisions; its probabilities are stored to 4
        # decimals, so a difference of 1e-7 may still flip the last digit.
        assert _close(a["attributes"], b["attributes"])
    assert any(row["category"] for row in ov_rows)  # recognition really filled attributes in
    assert set(torch_vectors) == set(ov_vectors)
    for key in torch_vectors:
        assert float(np.abs(torch_vectors[key] - ov_vectors[key]).max()) <= TOLERANCE, key


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1.01e-4
    return a == b


@pytest.mark.slow
def test_without_openvino_ingest_runs_on_torch_with_one_log_line(served, tmp_path, monkeypatch, caplog):
    from conftest import make_image

    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.search.wiring import open_service
    monkeypatch.setitem(sys.modules, "openvino", None)  # "import openvino" raises ImportError
    service = open_service(Settings(home=tmp_path / "h", ingest_runtime="openvino",
                                    openvino_cache_dir=str(tmp_path / "ov")))
    try:
        with caplog.at_level(logging.WARNING):
            results = _ingest(service, [NewItem(make_image(seed=i, size=(96, 96)), {"title": "ring"})
                                        for i in range(12)])
        assert [r.status for r in results] == ["added"] * 12
        assert service.state.ingestor.tower_runtime.name == "torch"
        assert len([r for r in caplog.records if "OpenVINO could not be used" in r.getMessage()]) == 1
    finally:
        service.catalog.close()
