"""The opt-in int8 text tower for query texts (embed/query_tower.py, ``text_query_int8``)."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from conftest import make_image
from PIL import Image

from jewelsearch.embed.encoder import Encoder
from jewelsearch.embed.minilm_text import BertConfig, TextTower
from jewelsearch.embed.plain_model import PlainCLIP
from jewelsearch.embed.query_tower import int8_query_encoder
from jewelsearch.search.wiring import SettingsError, open_service

TEXTS = ["oval sapphire pendant", "pearl earrings under $500", "珍珠耳环", "rose gold ring"]
TINY_BERT = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, max_position_embeddings=16, type_vocab_size=2, layer_norm_eps=1e-12,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0)


def _tokens(texts):
    """Byte-valued ids, padded with 0 to 16 (the tower only needs ids and the pad id)."""
    rows = [[1 + b % 299 for b in text.encode("utf-8")][:16] for text in texts]
    return torch.tensor([row + [0] * (16 - len(row)) for row in rows])


@pytest.fixture
def worded(tiny_encoder):
    """The tiny image tower with a small BERT text tower of its own module (as the bundled model)."""
    torch.manual_seed(7)
    model = PlainCLIP(tiny_encoder.model.visual, TextTower(TINY_BERT, output_dim=32)).eval()
    return Encoder(model, tiny_encoder.preprocess, _tokens, "tiny-worded")


def test_the_int8_encoder_quantises_the_text_tower_and_shares_the_image_tower(worded):
    before = {name: p.detach().clone() for name, p in worded.model.state_dict().items()}
    quick = int8_query_encoder(worded)
    assert quick.model.visual is worded.model.visual
    quantised = [name for name, m in quick.model.named_modules() if type(m).__name__ == "Linear"
                 and type(m).__module__.startswith("torch.ao.nn.quantized")]
    assert quantised and all(name.startswith("text.") for name in quantised)
    assert len(quantised) == sum(type(m) is torch.nn.Linear for m in worded.model.text.modules())
    fp32, int8 = worded.encode_texts(TEXTS), quick.encode_texts(TEXTS)
    assert int8.shape == fp32.shape and int8.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(fp32, int8) and (np.sum(fp32 * int8, axis=1) > 0.9).all()  # close, not equal
    after = worded.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # the served model is untouched
    photo = Image.open(io.BytesIO(make_image(seed=3))).convert("RGB")
    np.testing.assert_array_equal(quick.encode_images([photo]), worded.encode_images([photo]))


def test_a_model_without_a_text_tower_module_is_a_clear_settings_error(settings):
    # The tiny test model is an open_clip CLIP: its text transformer is built in, not model.text.
    with pytest.raises(SettingsError, match="text_query_int8: needs a model whose text tower"):
        open_service(dataclasses.replace(settings, text_query_int8=True))
