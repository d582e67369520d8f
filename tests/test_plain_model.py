"""The bundled model built in plain torch answers as the open_clip-built one, and serving
processes never import open_clip, timm or transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import jewelsearch
from jewelsearch.embed import load_encoder, load_image
from jewelsearch.embed.dense_features import tower_pass
from jewelsearch.embed.model_folder import default_spec
from jewelsearch.embed.plain_model import PlainCLIP, plain_architecture
from jewelsearch.errors import ModelLoadError

pytestmark = pytest.mark.slow

TOLERANCE = 1e-5
DEMO_IMAGES = Path(jewelsearch.__file__).resolve().parent / "demo" / "images"
HOSTILE_TEXTS = [
    "oval sapphire pendant", "Oval SAPPHIRE pendant!!", "  rose   gold\tring \n", "", "a",
    "emerald-cut diamond solitaire, 1.5 ct, platinum (GIA)", "&amp; pearl &lt;choker&gt;",
    "蓝宝石吊坠", "玫瑰金戒指 with diamonds", "💍 ring ✨ sparkly 💎", "Ünïcödé bracelet — café crème",
    "18k/750 gold chain 45cm", "x" * 500, ("sapphire " * 70)[:500], ("钻石" * 250)[:500], "🙂" * 500,
    "ring\u200bwith\u00a0nbsp", "ＦＵＬＬＷＩＤＴＨ ｒｉｎｇ", "Ohrringe aus Weißgold", "кольцо с рубином",
]
# open_clip, timm and transformers (the model is built in plain torch), SciPy (the localiser's
# regions), pandas and pyarrow (sqlite-utils would import them): none is needed to answer.
HEAVY_LIBRARIES = ("open_clip", "timm", "transformers", "torchvision", "scipy", "pandas", "pyarrow")


def demo_photos(n: int = 4):
    paths = sorted(p for p in DEMO_IMAGES.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert len(paths) >= n
    # Spread over the catalog, so several kinds of piece are in.
    picked = paths[:: max(1, len(paths) // n)][:n]
    return [load_image(p.read_bytes()).image for p in picked]


@pytest.fixture(scope="module")
def plain():
    return load_encoder("jewelclip-lite0")


@pytest.fixture(scope="module")
def reference():
    return load_encoder("jewelclip-lite0", loader="open_clip")


@pytest.fixture(scope="module")
def photos():
    return demo_photos()


def worst(a, b) -> float:
    a, b = (torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x for x in (a, b))
    assert a.shape == b.shape
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def test_the_bundled_model_is_built_in_plain_torch(plain, reference):
    assert isinstance(plain.model, PlainCLIP)
    assert type(reference.model).__module__.startswith("open_clip")
    assert plain.model_id == reference.model_id  # the same weights, so stored vectors stay valid
    assert plain_architecture(default_spec())


def test_same_parameter_names_and_values(plain, reference):
    ours, theirs = plain.model.state_dict(), reference.model.state_dict()
    assert sorted(ours) == sorted(theirs)
    assert max(worst(ours[k], theirs[k]) for k in ours) == 0.0


def test_same_token_ids_on_hostile_texts(plain, reference):
    texts = [t[: plain.max_text_chars] for t in HOSTILE_TEXTS]
    assert torch.equal(plain.tokenizer(texts), reference.tokenizer(texts))


def test_same_text_embeddings(plain, reference):
    for start in range(0, len(HOSTILE_TEXTS), 5):  # batches of different padded lengths
        batch = HOSTILE_TEXTS[start:start + 5]
        assert worst(plain.encode_texts(batch), reference.encode_texts(batch)) <= TOLERANCE
    assert plain.dim == reference.dim == 256


def test_same_image_embeddings_and_taps(plain, reference, photos):
    assert worst(plain.encode_images(photos), reference.encode_images(photos)) <= TOLERANCE
    batch = torch.stack([plain.preprocess(p) for p in photos])
    for size in (224, 97):  # SAME padding depends on the input's size: an odd one too
        sized = torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear")
        with torch.inference_mode():
            ours, theirs = tower_pass(plain.model.visual, sized), tower_pass(reference.model.visual, sized)
        assert [t.shape for t in ours.taps] == [t.shape for t in theirs.taps]
        for a, b in zip(ours.taps + [ours.last_map, ours.embedding], theirs.taps + [theirs.last_map, theirs.embedding]):
            assert worst(a, b) <= TOLERANCE


def test_same_grad_cam(plain, reference, photos):
    from jewelsearch.recognize.explain import heatmap

    query = reference.encode_texts(["gold ring"])[0]
    ours, method = heatmap(plain, photos[0], query)
    theirs, their_method = heatmap(reference, photos[0], query)
    assert method == their_method == "grad-cam"
    assert worst(ours, theirs) <= TOLERANCE


def test_same_serving_outputs_after_folding(photos):
    """What ingest computes, on the folded towers serving uses: embeddings, pooled maps, instance
    vectors, localisations and recognised attributes."""
    from jewelsearch.embed.instance import InstanceHead
    from jewelsearch.recognize.builder import load_recognizer

    outputs = {}
    for loader in ("plain", "open_clip"):
        encoder = load_encoder("jewelclip-lite0", loader=loader)
        head = InstanceHead.load(encoder.folder, encoder.model.visual)
        recognizer = load_recognizer(encoder, fold_for_serving=True)
        assert recognizer.recognition_top is not None and recognizer.localizer is not None
        folded = [m for m in encoder.model.visual.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert folded == []  # every batch norm was folded into its convolution
        out = recognizer.embed_all(photos, wanted=[True] * len(photos), instance_head=head)
        outputs[loader] = (out, recognizer.probabilities(out.embeddings, out.pooled),
                           recognizer.recognize_embeddings(out.embeddings, out.pooled))
    (ours, our_probs, our_labels), (theirs, their_probs, their_labels) = outputs["plain"], outputs["open_clip"]
    assert worst(ours.embeddings, theirs.embeddings) <= TOLERANCE
    assert worst(ours.pooled, theirs.pooled) <= TOLERANCE
    assert worst(ours.instance, theirs.instance) <= TOLERANCE
    for a, b in zip(ours.located, theirs.located):
        assert worst(a.piece, b.piece) <= TOLERANCE
        assert [box.as_dict()["box"] for box in a.boxes] == [box.as_dict()["box"] for box in b.boxes]
    assert sorted(our_probs) == sorted(their_probs)
    for attribute in our_probs:
        assert worst(our_probs[attribute], their_probs[attribute]) <= TOLERANCE
    assert our_labels == their_labels


def test_an_unknown_loader_is_refused():
    with pytest.raises(ModelLoadError, match="unknown model loader"):
        load_encoder("jewelclip-lite0", loader="onnx")


def test_an_unknown_model_loader_setting_is_a_settings_error(tmp_path):
    from jewelsearch.config import load_settings
    from jewelsearch.search.wiring import SettingsError, open_service

    settings = load_settings(tmp_path / "home", env={"JEWELSEARCH_MODEL_LOADER": "onnx"})
    with pytest.raises(SettingsError, match="model_loader must be one of plain, open_clip"):
        open_service(settings)


def test_other_architectures_go_through_open_clip():
    spec = default_spec()
    spec["open_clip_config"]["vision_cfg"]["timm_model_name"] = "tf_efficientnet_lite1"
    assert not plain_architecture(spec)
    tiny = {"open_clip_config": {"embed_dim": 32, "vision_cfg": {"layers": 1, "width": 32, "patch_size": 8},
                                 "text_cfg": {"context_length": 16, "width": 32, "heads": 2, "layers": 1}}}
    assert not plain_architecture(tiny)
    biased = default_spec()
    biased["open_clip_config"]["vision_cfg"]["timm_proj_bias"] = True  # open_clip would add a bias
    assert not plain_architecture(biased)


SERVING_PROCESS = """
import atexit, json, sys
atexit.register(lambda: sys.stderr.write("IMPORTED " + json.dumps(
    [name for name in {heavy!r} if name in sys.modules]) + "\\n"))
from jewelsearch.cli import main
main()
"""


def run_command(home: Path, *args: str) -> list[str]:
    src = str(Path(jewelsearch.__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", SERVING_PROCESS.format(heavy=HEAVY_LIBRARIES),
                           "--home", str(home), *args], capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": src, "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    line = [x for x in done.stderr.splitlines() if x.startswith("IMPORTED ")][-1]
    return json.loads(line.removeprefix("IMPORTED "))


def test_serving_commands_import_none_of_the_heavy_libraries(tmp_path):
    photo = next(p for p in sorted(DEMO_IMAGES.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert run_command(tmp_path / "home", "ingest", str(photo)) == []
    assert run_command(tmp_path / "home", "search", "--text", "oval sapphire pendant") == []
    assert run_command(tmp_path / "home", "search", "--image", str(photo)) == []


def test_an_edited_default_spec_leaves_the_next_one_as_it_was():
    edited = default_spec()
    edited["open_clip_config"]["vision_cfg"]["timm_model_name"] = "tf_efficientnet_lite1"
    edited["preprocess"]["image_size"] = 999
    fresh = default_spec()
    assert fresh["open_clip_config"]["vision_cfg"]["timm_model_name"] == "tf_efficientnet_lite0"
    assert fresh["preprocess"]["image_size"] != 999 and plain_architecture(fresh)
