"""The query text tower on OpenVINO for the server: torch's vectors, the saved graph reused and
rebuilt, the switch from torch without a failed or different answer, torch whenever OpenVINO
cannot be used, and one-shot commands that never import OpenVINO."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from jewelsearch.config import Settings
from jewelsearch.embed.query_text_runtime import QueryTextTower

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOLERANCE = 1e-5
SRC = str(Path(__file__).resolve().parents[1] / "src")
# Scripts, emoji, zero-width and odd spaces, the empty text, the longest text the service takes
# (and longer: cut at max_text_chars), and short and long texts batched together.
TEXTS = ["oval sapphire pendant", "椭圆蓝宝石吊坠", "珍珠耳环", "pearl earrings 💎💍✨", "",
         "x" * 500, "rose gold ring " * 60, "Ohrringe\u200bmit Perlen\u00a0und Smaragd", "ring",
         "diamond ring under $900", "   ", "émeraude 🇫🇷 платина"]


def _converted(caplog) -> int:
    return sum("converting the query text tower" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def ov_tower(tiny_encoder, tmp_path_factory):
    pytest.importorskip("openvino")
    from jewelsearch.embed import openvino_text
    return openvino_text.open_text_tower(tiny_encoder, tmp_path_factory.mktemp("ov-text"))


def _worst(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a - b).max())


def _torch_forward(encoder):
    """Torch's own text tower behind the NumPy interface a runtime offers."""
    def forward(ids: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return encoder.model.encode_text(torch.from_numpy(ids)).numpy()
    return forward


def test_a_query_alone_gets_the_ids_it_gets_in_a_batch():
    """The bundled tokenizer: one text goes through ``encode``, several through ``encode_batch``."""
    from jewelsearch.embed import default_model
    from jewelsearch.embed.wordpiece_tokenizer import WordPieceTokenizer
    tokenizer = WordPieceTokenizer(Path(default_model.minilm_path()) / "tokenizer.json", 64, 0)
    texts = [t[:500] for t in TEXTS]
    batch = tokenizer.ids(texts)
    alone = np.concatenate([tokenizer.ids(t) for t in texts])
    assert batch.dtype == np.int64 and batch.shape == (len(texts), 64) and np.array_equal(alone, batch)
    assert np.array_equal(tokenizer(texts).numpy(), batch)


@pytest.fixture(scope="module")
def bundled_encoder():
    from jewelsearch.embed import load_encoder
    return load_encoder("jewelclip-lite0")


@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_the_numpy_path_trims_and_normalises_as_torch_does(which, request):
    """The runtime's path (NumPy in and out, no torch op) with torch's own tower behind it gives
    torch's vectors, alone and in batches cut at other places (other trimmed lengths): the tiny
    model's open_clip tokenizer (no padding id, nothing trimmed) and the bundled MiniLM one."""
    encoder = request.getfixturevalue("tiny_encoder" if which == "tiny" else "bundled_encoder")
    forward = _torch_forward(encoder)
    for size in (1, 3, 32):
        encoder.batch_size = size
        try:
            assert _worst(encoder.encode_texts_from_ids(TEXTS, forward), encoder.encode_texts(TEXTS)) <= 1e-6
        finally:
            encoder.batch_size = 32
    if which == "bundled":
        shapes = []
        encoder.encode_texts_from_ids(["ring"], lambda ids: (shapes.append(ids.shape), forward(ids))[1])
        assert shapes == [(1, 3)]  # [CLS] ring [SEP]: the padding columns were cut


def test_openvino_tower_gives_torch_vectors_alone_and_in_batches(tiny_encoder, ov_tower):
    assert ov_tower.precision == "f32"
    alone = np.concatenate([tiny_encoder.encode_texts_from_ids([t], ov_tower) for t in TEXTS])
    assert _worst(alone, np.concatenate([tiny_encoder.encode_texts([t]) for t in TEXTS])) <= TOLERANCE
    for size in (1, 3, 32):  # batches cut at other places: other shapes
        tiny_encoder.batch_size = size
        try:
            assert _worst(tiny_encoder.encode_texts_from_ids(TEXTS, ov_tower), tiny_encoder.encode_texts(TEXTS)) <= TOLERANCE
        finally:
            tiny_encoder.batch_size = 32


def test_request_threads_each_get_their_own_infer_request(tiny_encoder, ov_tower):
    want = {t: tiny_encoder.encode_texts([t])[0] for t in TEXTS}
    failures, worst = [], []

    def ask(offset):
        try:
            for i in range(30):
                text = TEXTS[(offset + i) % len(TEXTS)]
                worst.append(_worst(tiny_encoder.encode_texts_from_ids([text], ov_tower)[0], want[text]))
        except Exception as exc:  # reported below, not lost on the thread
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(worst) == 180 and max(worst) <= TOLERANCE


def test_the_saved_graph_is_reused_rebuilt_when_damaged_and_keyed_by_weights(tiny_encoder, tmp_path, caplog):
    pytest.importorskip("openvino")
    import copy

    import openvino as ov

    from jewelsearch.embed import openvino_graph_store, openvino_text
    from jewelsearch.embed.encoder import Encoder
    root = tmp_path / "ov"
    with caplog.at_level(logging.INFO, logger="jewelsearch.embed"):
        openvino_text.open_text_tower(tiny_encoder, root)
        assert _converted(caplog) == 1
        openvino_text.open_text_tower(tiny_encoder, root)
        assert _converted(caplog) == 1  # read back, not converted
        folder = openvino_graph_store.cache_folder(root, tiny_encoder.model_id, "text-" + openvino_text.weights_key(
            tiny_encoder.model, ov.__version__, "f32"))
        assert openvino_graph_store.graphs_saved(folder, ("text",), openvino_text.FORMAT)
        with open(folder / "text.bin", "r+b") as handle:  # damaged: converted again, never read
            handle.seek(100)
            handle.write(b"\x7f" * 64)
        tower = openvino_text.open_text_tower(tiny_encoder, root)
        assert _converted(caplog) == 2 and any("damaged" in r.getMessage() for r in caplog.records)
        assert openvino_graph_store.graphs_saved(folder, ("text",), openvino_text.FORMAT)
        assert _worst(tiny_encoder.encode_texts_from_ids(TEXTS, tower), tiny_encoder.encode_texts(TEXTS)) <= TOLERANCE

        changed = Encoder(copy.deepcopy(tiny_encoder.model), tiny_encoder.preprocess, tiny_encoder.tokenizer,
                          tiny_encoder.model_id)
        with torch.no_grad():
            changed.model.token_embedding.weight.mul_(1.01)
        other = openvino_text.open_text_tower(changed, root)
        assert _converted(caplog) == 3  # other weights: another folder
        assert _worst(changed.encode_texts_from_ids(TEXTS, other), changed.encode_texts(TEXTS)) <= TOLERANCE
    assert len([p for p in root.iterdir()]) == 2 and not [p for p in root.iterdir() if p.name.startswith(".")]


def test_an_unwritable_cache_still_gives_a_tower(tiny_encoder, tmp_path, caplog):
    pytest.importorskip("openvino")
    from jewelsearch.embed import openvino_text
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    with caplog.at_level(logging.WARNING):
        tower = openvino_text.open_text_tower(tiny_encoder, blocked / "openvino")
    assert any("cannot save the converted OpenVINO text tower" in r.getMessage() for r in caplog.records)
    assert _worst(tiny_encoder.encode_texts_from_ids(TEXTS, tower), tiny_encoder.encode_texts(TEXTS)) <= TOLERANCE


# --- the switch from torch (QueryTextTower) ----------------------------------------------------

class GatedOpener:
    """Opens a forward (torch's own, doubled: visibly another runtime) once ``gate`` is set."""

    def __init__(self, forward, fails: bool = False):
        self.gate, self.forward, self.fails, self.calls = threading.Event(), forward, fails, 0
        self.entered = threading.Event()  # the opening is under way

    def __call__(self):
        self.calls += 1
        self.entered.set()
        assert self.gate.wait(30)
        if self.fails:
            raise ImportError("No module named 'openvino'")
        return self.forward


def test_torch_answers_until_the_other_runtime_is_open_then_it_does(tiny_encoder):
    tower = QueryTextTower(tiny_encoder)
    other = []
    opener = GatedOpener(lambda ids: (other.append(1), _torch_forward(tiny_encoder)(ids))[1])
    thread = tower.open_in_background(opener)
    assert opener.entered.wait(30)
    # A second call while the opening runs returns its thread at once (it once waited for the
    # opening, which here waits for this test: the opening then timed out and gave up).
    assert tower.open_in_background(opener) is thread  # opened once
    before = tower.encode_texts(TEXTS)
    assert tower.runtime == "torch" and other == []
    opener.gate.set()
    assert tower.settled.wait(30) and tower.runtime == "openvino" and opener.calls == 1
    after = tower.encode_texts(TEXTS)
    assert other and _worst(before, after) <= TOLERANCE


def test_a_failed_open_warns_once_and_torch_answers(tiny_encoder, caplog):
    tower = QueryTextTower(tiny_encoder)
    opener = GatedOpener(None, fails=True)
    opener.gate.set()
    with caplog.at_level(logging.WARNING):
        assert tower.open_now(opener) == "torch"
        assert tower.open_now(opener) == "torch" and opener.calls == 1  # not tried again
    warned = [r for r in caplog.records if "could not be used" in r.getMessage()]
    assert len(warned) == 1 and "No module named" in warned[0].getMessage()
    assert _worst(tower.encode_texts(TEXTS), tiny_encoder.encode_texts(TEXTS)) == 0.0


def test_a_forward_that_fails_at_run_time_still_answers_and_goes_back_to_torch(tiny_encoder, caplog):
    tower = QueryTextTower(tiny_encoder)

    def broken(ids):
        raise RuntimeError("Exception from src/inference/src/cpp/infer_request.cpp")

    opener = GatedOpener(broken)
    opener.gate.set()
    assert tower.open_now(opener) == "openvino"
    with caplog.at_level(logging.WARNING):
        first = tower.encode_texts(TEXTS)
        second = tower.encode_texts(TEXTS)
    assert tower.runtime == "torch"
    assert len([r for r in caplog.records if "could not be used" in r.getMessage()]) == 1
    want = tiny_encoder.encode_texts(TEXTS)
    assert _worst(first, want) == 0.0 and _worst(second, want) == 0.0


# --- serve's wiring ---------------------------------------------------------------------------

def _settings(tmp_path, tiny_model_dir, **extra) -> Settings:
    return Settings(home=tmp_path / "home", model=str(tiny_model_dir), openvino_cache_dir=str(tmp_path / "ov"),
                    rate_limits=False, **extra)


def _answers(service) -> list[dict]:
    out = []
    for text in TEXTS:
        payload = service.query(text=text[:500], k=5) if text.strip() else None
        if payload is not None:
            out.append({key: value for key, value in payload.items() if key != "took_ms"})
    return out


def _same(a, b) -> bool:
    """Equal answers: the same items in the same order and everything else equal, but scores,
    which are rounded to 6 decimals: a vector 1e-7 away can move the last one."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= TOLERANCE
    return a == b


def test_serve_switches_in_the_background_with_the_same_answers(tmp_path, tiny_model_dir):
    pytest.importorskip("openvino")
    from conftest import make_image

    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.search.wiring import open_service, serve_query_texts
    settings = _settings(tmp_path, tiny_model_dir, text_cache_size=0)
    service = open_service(settings)
    try:
        items = [NewItem(make_image(seed=i), {"title": f"{word} ring {i}"})
                 for i, word in enumerate(["sapphire", "pearl", "gold", "emerald", "珍珠"])]
        list(service.ingest_batches([items]))
        assert service.query_encoder.runtime == "torch" and not service.query_encoder.settled.is_set()
        before = _answers(service)
        assert serve_query_texts(settings, service) in ("torch", "openvino")  # auto: does not wait
        during = _answers(service)  # answered whichever runtime is in use
        assert service.query_encoder.settled.wait(120) and service.query_encoder.runtime == "openvino"
        after = _answers(service)
        assert _same(before, during) and _same(before, after)
        assert [[r["id"] for r in a["results"]] for a in before] == [[r["id"] for r in a["results"]] for a in after]
        # A reopened copy (a replica's next catalog version) keeps the runtime.
        reopened = open_service(settings, models_from=service, read_only=True)
        assert reopened.query_encoder is service.query_encoder and _same(_answers(reopened), after)
        reopened.catalog.close()
    finally:
        service.catalog.close()


def test_serve_settings_torch_openvino_and_int8(tmp_path, tiny_model_dir):
    pytest.importorskip("openvino")
    from jewelsearch.search.wiring import SettingsError, open_service, serve_query_texts
    settings = _settings(tmp_path, tiny_model_dir, text_query_runtime="torch")
    service = open_service(settings)
    assert serve_query_texts(settings, service) == "torch" and not service.query_encoder.settled.is_set()
    service.catalog.close()
    settings = _settings(tmp_path, tiny_model_dir, text_query_runtime="openvino")
    service = open_service(settings)
    assert serve_query_texts(settings, service) == "openvino"  # opened before serving
    service.catalog.close()
    with pytest.raises(SettingsError, match="text_query_runtime must be one of auto, torch, openvino"):
        open_service(_settings(tmp_path, tiny_model_dir, text_query_runtime="onnx"))
    with pytest.raises(SettingsError, match="text_query_precision must be one of f32, bf16"):
        open_service(_settings(tmp_path, tiny_model_dir, text_query_precision="fp16"))
    with pytest.raises(SettingsError, match="exclude each other"):
        open_service(_settings(tmp_path, tiny_model_dir, text_query_runtime="openvino", text_query_int8=True))


def test_a_one_shot_search_never_imports_openvino(tmp_path, tiny_model_dir):
    """`jewelsearch search` opens the service and asks once: torch only, nothing converted."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from jewelsearch.config import Settings\n"
        "from jewelsearch.search.wiring import open_service\n"
        f"settings = Settings(home=Path({str(tmp_path / 'home')!r}), model={str(tiny_model_dir)!r},"
        f" openvino_cache_dir={str(tmp_path / 'ov')!r})\n"
        "service = open_service(settings)\n"
        "service.query(text='oval sapphire pendant', k=3)\n"
        "print(json.dumps({'openvino': 'openvino' in sys.modules, 'runtime': service.query_encoder.runtime}))")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"openvino": False, "runtime": "torch"}
    assert not (tmp_path / "ov").exists()


# --- the bundled model ------------------------------------------------------------------------

@pytest.mark.slow
def test_the_bundled_text_tower_on_openvino_gives_torch_vectors(tmp_path, bundled_encoder):
    pytest.importorskip("openvino")
    from jewelsearch.embed import openvino_text
    encoder = bundled_encoder
    tower = openvino_text.open_text_tower(encoder, tmp_path / "ov", threads=1, streams=2)
    alone = np.concatenate([encoder.encode_texts_from_ids([t], tower) for t in TEXTS])
    assert _worst(alone, np.concatenate([encoder.encode_texts([t]) for t in TEXTS])) <= TOLERANCE
    for size in (1, 5, 32):  # the encoder trims each batch to its longest text: other lengths
        encoder.batch_size = size
        assert _worst(encoder.encode_texts_from_ids(TEXTS, tower), encoder.encode_texts(TEXTS)) <= TOLERANCE


def test_bf16_opt_in_opens_a_bf16_tower_close_to_torch(tmp_path, tiny_model_dir):
    """bf16 query vectors are close to torch's, not equal (on a CPU without bf16, OpenVINO runs f32)."""
    pytest.importorskip("openvino")
    from jewelsearch.search.wiring import open_service, serve_query_texts
    settings = _settings(tmp_path, tiny_model_dir, text_query_runtime="openvino", text_query_precision="bf16")
    service = open_service(settings)
    try:
        assert serve_query_texts(settings, service) == "openvino"
        tower = service.query_encoder
        assert tower._forward.precision == "bf16"
        got, want = tower.encode_texts(TEXTS), tower.encoder.encode_texts(TEXTS)
        assert float((got * want).sum(1).min()) > 0.999
    finally:
        service.catalog.close()


@pytest.mark.slow
def test_a_served_server_switches_without_a_failed_or_different_answer(tmp_path, tiny_model_dir):
    """`jewelsearch serve` (auto) answers text queries over HTTP before, while and after it
    converts and opens the OpenVINO tower: every answer 200 and the same."""
    pytest.importorskip("openvino")
    import urllib.parse
    import urllib.request

    from conftest import make_image
    from served import post_item, start_server
    home, cache, key = tmp_path / "home", tmp_path / "ov", "k"
    env = dict(os.environ, PYTHONPATH=SRC, JEWELSEARCH_HOME=str(home), JEWELSEARCH_API_KEY=key,
               JEWELSEARCH_MODEL=str(tiny_model_dir), JEWELSEARCH_OPENVINO_CACHE_DIR=str(cache),
               JEWELSEARCH_TEXT_CACHE_SIZE="0")
    server, url = start_server(env)
    try:
        for i, word in enumerate(["sapphire", "pearl", "gold", "emerald", "ruby", "珍珠"]):
            assert post_item(url, make_image(seed=i), f"{word} ring {i}", key)[0] == 201

        def ask(text):
            with urllib.request.urlopen(url + "/api/search?k=5&q=" + urllib.parse.quote(text), timeout=30) as answer:
                assert answer.status == 200
                return {k: v for k, v in json.loads(answer.read()).items() if k != "took_ms"}

        texts = [t[:500] for t in TEXTS if t.strip()]
        first = [ask(t) for t in texts]
        rounds = 0
        while not any(p.is_dir() and not p.name.startswith(".") for p in cache.glob("*")) and rounds < 400:
            assert all(_same(a, ask(t)) for a, t in zip(first, texts))
            rounds += 1
        assert rounds < 400, "the OpenVINO tower was not saved while serving"
        for _ in range(3):  # after the switch
            assert all(_same(a, ask(t)) for a, t in zip(first, texts))
    finally:
        server.terminate()
        server.wait(timeout=60)
