"""The metal head's answer combined with the text prompts' (recognize/prompt_blend.py)."""

import copy

import numpy as np
import pytest
import torch

from jewelsearch.embed.vocab import CATEGORIES, CUTS, GEMSTONES, METALS
from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.recognize.prompt_blend import blend_with_prompts
from jewelsearch.recognize.recognizer import ZERO_SHOT_VOCABULARIES, Recognizer

VOCAB = ["yellow gold", "white gold", "platinum"]


def test_blend_without_weight_is_the_head_and_with_weight_moves_towards_the_prompts():
    head = np.array([[0.7, 0.2, 0.1]])
    prompts = np.array([[0.1, 0.1, 0.8]])
    np.testing.assert_allclose(blend_with_prompts(head, VOCAB, prompts, VOCAB, 0.0), head, atol=1e-9)
    blended = blend_with_prompts(head, VOCAB, prompts, VOCAB, 0.5)
    np.testing.assert_allclose(blended.sum(1), 1, atol=1e-9)
    assert blended[0, 2] > head[0, 2] and blended[0, 0] < head[0, 0]
    stronger = blend_with_prompts(head, VOCAB, prompts, VOCAB, 2.0)
    assert stronger.argmax() == 2 and blended.argmax() == 0  # the weight decides who wins


def test_blend_matches_prompt_columns_by_label_not_position():
    head = np.array([[0.5, 0.3, 0.2]])
    prompts = np.array([[0.6, 0.3, 0.1]])
    reordered = [VOCAB[2], VOCAB[0], VOCAB[1]]
    np.testing.assert_allclose(blend_with_prompts(head, VOCAB, prompts[:, [2, 0, 1]], reordered, 0.5),
                               blend_with_prompts(head, VOCAB, prompts, VOCAB, 0.5), atol=1e-12)


def test_a_head_label_the_prompts_do_not_name_is_floored_not_dropped():
    head = np.array([[0.4, 0.6]])
    out = blend_with_prompts(head, ["yellow gold", "none"], np.array([[1.0]]), ["yellow gold"], 0.5)
    np.testing.assert_allclose(out.sum(1), 1, atol=1e-9)
    assert out[0, 0] > out[0, 1] > 0


@pytest.fixture
def heads(tiny_encoder, tmp_path):
    torch.manual_seed(0)
    h = AttributeHeads(tiny_encoder.dim, {"category": list(CATEGORIES), "metal": list(METALS),
                                          "gemstone": list(GEMSTONES), "cut": list(CUTS)})
    h.save(tmp_path)
    return AttributeHeads.load(tmp_path)


def test_recognizer_blends_only_the_weighted_attribute_on_pieces(tiny_encoder, heads):
    embeddings = tiny_encoder.encode_texts(["a ring", "a pendant"])
    alone = Recognizer(tiny_encoder, heads).probabilities(embeddings)
    blended = Recognizer(tiny_encoder, heads, prompt_weights={"metal": 1.0})
    out = blended.probabilities(embeddings)
    prompts = blended.zero_shot_probabilities(embeddings, ["metal"])["metal"]
    expected = blend_with_prompts(alone["metal"], heads.vocabularies["metal"], prompts,
                                  ZERO_SHOT_VOCABULARIES["metal"], 1.0)
    np.testing.assert_allclose(out["metal"], expected, atol=1e-5)
    assert not np.allclose(out["metal"], alone["metal"], atol=1e-4)
    for attribute in ("category", "gemstone", "cut"):
        np.testing.assert_allclose(out[attribute], alone[attribute], atol=1e-6)
    # Other heads (evaluation swaps in fold heads) keep the blend.
    twin = blended.with_heads(copy.deepcopy(heads))
    assert twin is not blended
    np.testing.assert_allclose(twin.probabilities(embeddings)["metal"], out["metal"], atol=1e-6)
