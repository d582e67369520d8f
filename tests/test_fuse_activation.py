"""Joining a folded tower's convolutions with their activations (``embed/fuse_activation.py``):
the taps, last map and embedding stay what they were, bit for bit, and grad still flows."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from PIL import Image

from jewelsearch.embed.dense_features import tower_pass
from jewelsearch.embed.fold_batch_norm import fold_batch_norm
from jewelsearch.embed.fuse_activation import ConvActivation, ResidualJoin, join_activations, joining_available

pytestmark = pytest.mark.skipif(not joining_available(), reason="this torch build has no oneDNN joined convolution")


class Visual(torch.nn.Module):
    """An open_clip-style image tower: a timm trunk and a projection head."""

    def __init__(self):
        super().__init__()
        import timm
        torch.manual_seed(0)
        self.trunk = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
        self.head = torch.nn.Linear(self.trunk.num_features, 16)
        # Random running statistics, so folding moves real numbers.
        for m in self.trunk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)


@pytest.fixture(scope="module")
def folded() -> Visual:
    visual = Visual().eval()
    assert fold_batch_norm(visual)
    return visual


def _outputs(visual, batch):
    with torch.inference_mode():
        result = tower_pass(visual, batch)
    return [t.contiguous() for t in (*result.taps, result.last_map, result.embedding)]


@pytest.mark.parametrize("side", [64, 57])  # odd sides pad differently on each edge
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_joined_tower_gives_the_same_taps_last_map_and_embedding(folded, side, layout):
    joined = copy.deepcopy(folded)
    assert join_activations(joined.trunk) > 0
    batch = torch.randn(3, 3, side, side).contiguous(memory_format=layout)
    folded.to(memory_format=layout)
    joined.to(memory_format=layout)
    before, after = _outputs(folded, batch), _outputs(joined, batch)
    assert len(before) == len(after) == 5
    for a, b in zip(before, after):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= 1e-6


def test_joined_tower_keeps_gradients(folded):
    """Grad-CAM differentiates the served tower: with grad on, the original modules run."""
    joined = copy.deepcopy(folded)
    join_activations(joined.trunk)
    batch = torch.randn(1, 3, 64, 64)

    def gradient(visual):
        with torch.enable_grad():
            result = tower_pass(visual, batch)
            result.last_map.retain_grad()
            result.embedding.sum().backward()
        return result.last_map.grad

    assert torch.equal(gradient(folded), gradient(joined))


def test_every_activation_runs_once(folded):
    joined = copy.deepcopy(folded)
    count = join_activations(joined.trunk)
    joins = [m for m in joined.trunk.modules() if isinstance(m, ConvActivation)]
    relus = [m for m in joined.trunk.modules() if isinstance(m, torch.nn.ReLU6)]
    residuals = [m for m in joined.trunk.modules() if isinstance(m, ResidualJoin)]
    skips = [m for m in folded.trunk.modules() if getattr(m, "has_skip", False)]
    assert len(joins) == len(relus)  # each ReLU6 now lives in one join only
    assert len(residuals) == len(skips) > 0  # every residual add joined, none twice
    assert count == len(joins) + len(residuals)
    assert join_activations(joined.trunk) == 0  # nothing left to join


def test_unfolded_or_training_towers_are_left_alone():
    visual = Visual().eval()
    assert join_activations(visual.trunk) == 0  # batch norms not folded: nothing joinable
    folded_one = Visual().eval()
    fold_batch_norm(folded_one)
    folded_one.train()
    assert join_activations(folded_one.trunk) == 0
    assert not any(isinstance(m, ConvActivation) for m in folded_one.modules())


def test_convolutions_it_cannot_reproduce_stay_as_they_are(folded):
    """Reflect padding, padding given as a word, or dilation: the joined op would compute
    something else, so those convolutions are not joined."""
    joined = copy.deepcopy(folded)
    stage = joined.trunk.blocks[1][0]  # an InvertedResidual: conv_pw then ReLU6
    stage.conv_pw.padding_mode = "reflect"
    other = joined.trunk.blocks[2][0]
    other.conv_pw = torch.nn.Conv2d(other.conv_pw.in_channels, other.conv_pw.out_channels, 1, padding="same")
    join_activations(joined.trunk)
    assert not isinstance(stage.conv_pw, ConvActivation) and isinstance(stage.conv_dw, ConvActivation)
    assert not isinstance(other.conv_pw, ConvActivation)


@pytest.mark.parametrize("side", [(224, 224), (57, 64), (7, 8), (14, 15)])
@pytest.mark.parametrize("kernel,stride,groups", [(3, 2, 8), (5, 2, 8), (3, 1, 8), (3, 2, 1), (5, 1, 1)])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_same_padding_convolution_equals_timms(side, kernel, stride, groups, layout):
    """timm's Conv2dSame then ReLU6 against the join, for every padding case (even and odd
    sides: "same" pads one more after the map, or as much on both sides)."""
    from timm.layers import create_conv2d
    torch.manual_seed(1)
    conv = create_conv2d(8, 8, kernel, stride=stride, padding="same", groups=groups).eval()
    assert type(conv).__name__ == ("Conv2dSame" if stride > 1 else "Conv2d")
    conv.to(memory_format=layout)
    joined = ConvActivation(conv, torch.nn.ReLU6())
    x = torch.randn(2, 8, *side).contiguous(memory_format=layout) * 4
    with torch.inference_mode():
        expected = torch.nn.functional.relu6(conv(x))
        got = joined(x)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) <= 1e-6


@pytest.mark.slow
def test_served_default_model_embeds_as_before():
    """The bundled model, as the service loads it: the same vectors from a joined tower."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.ingest.demo import demo_dir, demo_items
    from jewelsearch.recognize.builder import load_recognizer
    photos = [Image.open(io.BytesIO(item.image_bytes)).convert("RGB") for item in demo_items(demo_dir())[:8]]
    encoder = load_encoder("jewelclip-lite0")
    plain = load_recognizer(encoder, fold_for_serving=True, join_activations=False)
    before = plain.embed_all(photos, recognise=[True] * len(photos))
    assert not any(isinstance(m, ConvActivation) for m in encoder.model.visual.modules())
    assert join_activations(encoder.model.visual.trunk) > 0
    if plain.recognition_top is not None:  # its pooled maps come from the top: joined too
        assert join_activations(plain.recognition_top) > 0
    after = plain.embed_all(photos, recognise=[True] * len(photos))
    assert float(abs(before.embeddings - after.embeddings).max()) <= 1e-6
    assert float(abs(before.pooled - after.pooled).max()) <= 1e-5
    served = load_recognizer(load_encoder("jewelclip-lite0"), fold_for_serving=True)
    assert any(isinstance(m, ConvActivation) for m in served.encoder.model.visual.modules())
    top = served.recognition_top
    assert top is None or any(isinstance(m, ConvActivation) for m in top.modules())
