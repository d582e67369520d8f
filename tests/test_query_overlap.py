"""Work a query runs beside itself, or skips, gives exactly the answers it gave in sequence:
the recognition top on a helper thread (``embed.dense_features.tower_pass``), a search's locate
pass without the stone map and with its instance vector pooled on a helper, box labels from the
category head alone, and a text query's text vector encoded while the word index is read."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from jewelsearch.embed.dense_features import tower_pass
from jewelsearch.embed.text_cache import TextVectorCache


def _photos(n=3, size=(160, 120)):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        array = np.full((size[1], size[0], 3), 200, np.uint8)
        array[30 + 5 * i:80, 50:110] = rng.integers(0, 255, 3)
        out.append(Image.fromarray(np.clip(array + rng.integers(-20, 20, array.shape), 0, 255).astype(np.uint8)))
    return out


def _nudged_top(visual, seed=0):
    from jewelsearch.recognize.recognition_top import RecognitionTop
    top = RecognitionTop.from_trunk(visual.trunk)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in top.parameters():
            parameter.add_(0.05 * parameter.std().nan_to_num(0) * torch.randn(parameter.shape, generator=generator))
    return top


def _assert_same_pass(a, b):
    for x, y in zip(a.taps + [a.last_map, a.embedding] + a.search_taps + [a.search_last_map],
                    b.taps + [b.last_map, b.embedding] + b.search_taps + [b.search_last_map]):
        assert torch.equal(x, y)


@pytest.mark.parametrize("mode", ["inference", "no_grad"])
def test_the_recognition_top_beside_the_tower_gives_the_same_pass(mode):
    """The tiny dense tower (timm EfficientNet-Lite0 shape) with a changed recognition top: the
    top run on a helper thread gives every map bit for bit, in inference and no-grad mode."""
    from test_instance_vectors import DENSE_SPEC
    from jewelsearch.embed.model_folder import build_model
    torch.manual_seed(4321)
    net, _, _ = build_model(DENSE_SPEC)
    visual = net.visual.eval()
    top = _nudged_top(visual)
    batch = torch.randn(3, 3, 64, 64)
    context = torch.inference_mode if mode == "inference" else torch.no_grad
    with ThreadPoolExecutor(2) as helpers, context():
        alone = tower_pass(visual, batch, top)
        beside = tower_pass(visual, batch, top, beside=helpers)
    _assert_same_pass(alone, beside)
    assert not torch.equal(beside.last_map, beside.search_last_map)  # the top's own map came back
    if mode == "no_grad":
        assert not beside.last_map.requires_grad  # the helper ran in the caller's grad mode


def test_a_failing_top_fails_the_pass():
    from test_instance_vectors import DENSE_SPEC
    from jewelsearch.embed.model_folder import build_model
    net, _, _ = build_model(DENSE_SPEC)
    visual = net.visual.eval()

    class Broken(torch.nn.Module):
        first_block = 5

        def forward(self, front):
            raise RuntimeError("top failed")

    with ThreadPoolExecutor(1) as helpers, torch.inference_mode(), pytest.raises(RuntimeError, match="top failed"):
        tower_pass(visual, torch.randn(1, 3, 64, 64), Broken(), beside=helpers)


def test_the_cache_says_which_texts_it_holds_without_counting_a_hit():
    cache = TextVectorCache(lambda texts: np.stack([np.full(4, len(t), np.float32) for t in texts]),
                            size=8, max_chars=6)
    assert not cache.holds("gold ring")
    first = cache.vector("gold ring")
    assert cache.holds("gold ring") and cache.holds("gold r")  # keys are cut where the encoder cuts
    assert (cache.hits, cache.misses) == (0, 1)
    assert cache.vector("gold ring") is first and cache.hits == 1
    assert not TextVectorCache(lambda texts: np.zeros((len(texts), 4), np.float32), size=0).holds("x")


class _Counting(ThreadPoolExecutor):
    """A helper pool that counts what it is handed."""

    def __init__(self):
        super().__init__(max_workers=2)
        self.handed = 0

    def submit(self, fn, /, *args, **kwargs):
        self.handed += 1
        return super().submit(fn, *args, **kwargs)


def test_a_text_query_hands_its_word_side_over_only_when_the_tower_runs(service, tmp_path):
    """With the tower to run, the word side goes to a helper; a cached text is answered on the
    request thread alone. Both ways give the answer the service gives with no helper at all."""
    from conftest import make_image
    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.search.params import Filters
    from test_text_search import CATALOG
    service.add_items([NewItem(make_image(seed=100 + i), dict(row, sku=f"S{i}")) for i, row in enumerate(CATALOG)])
    cases = [("oval sapphire pendant", None), ("珍珠耳环", None), ("pearl earrings under $500", None),
             ("gold hoop earrings", Filters(metal="yellow gold"))]
    encode = service.state.text_vectors._encode_texts
    expected = []
    service.state.helpers = _NoThreads()
    for text, filters in cases:
        service.state.text_vectors = TextVectorCache(encode, size=0)
        expected.append(_without_time(service.query(text=text, k=5, filters=filters)))
    counting = _Counting()
    service.state.helpers = counting
    service.state.text_vectors = TextVectorCache(encode, size=16)
    try:
        for (text, filters), want in zip(cases, expected):
            handed = counting.handed
            assert _without_time(service.query(text=text, k=5, filters=filters)) == want
            assert counting.handed == handed + 1
            assert _without_time(service.query(text=text, k=5, filters=filters)) == want
            assert counting.handed == handed + 1  # cached: nothing handed over
    finally:
        counting.shutdown()


class _NoThreads:
    def submit(self, fn, /, *args, **kwargs):
        from concurrent.futures import Future
        done = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as error:
            done.set_exception(error)
        return done


def _without_time(payload):
    return {key: value for key, value in payload.items() if key != "took_ms"}


def test_encoding_errors_reach_the_text_query(service):
    """A text tower that fails on a helper thread fails the request as it did in sequence."""
    def broken(texts):
        raise ValueError("tower failed")

    service.state.text_vectors = TextVectorCache(broken, size=0)
    with pytest.raises(ValueError, match="tower failed"):
        service.query(text="oval sapphire pendant", k=5)


@pytest.mark.slow
def test_the_shipped_models_query_passes_are_unchanged():
    """With the bundled model, its recognition top, localiser and instance head: a search's locate
    without the stone map gives the same boxes, piece map and vectors, and the crops' pass with
    the top beside it the same embeddings, pooled features and instance vectors."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.instance import InstanceHead
    from jewelsearch.recognize.builder import load_recognizer
    encoder = load_encoder("jewelclip-lite0")
    head = InstanceHead.load(encoder.folder, encoder.model.visual)
    recognizer = load_recognizer(encoder, fold_for_serving=True)
    localizer = recognizer.localizer
    assert recognizer.recognition_top is not None and localizer is not None
    torch.set_num_threads(1)  # as serving runs it
    for image in _photos(2, size=(640, 480)):
        full = localizer.locate(image, instance_head=head)
        lean = localizer.locate(image, instance_head=head, stones=False)
        assert lean.stone is None and full.stone is not None
        assert [b.as_dict() for b in lean.boxes] == [b.as_dict() for b in full.boxes]
        np.testing.assert_array_equal(lean.piece, full.piece)
        np.testing.assert_array_equal(lean.embedding, full.embedding)
        np.testing.assert_array_equal(lean.instance, full.instance)
        with ThreadPoolExecutor(1) as helpers:
            pooled_beside = localizer.locate(image, instance_head=head, stones=False, beside=helpers)
        assert [b.as_dict() for b in pooled_beside.boxes] == [b.as_dict() for b in full.boxes]
        np.testing.assert_array_equal(pooled_beside.embedding, full.embedding)
        np.testing.assert_array_equal(pooled_beside.instance, full.instance)
    crops = _photos(3)
    with ThreadPoolExecutor(2) as helpers:
        beside = recognizer.embed_all(crops, instance_head=head, beside=helpers)
    alone = recognizer.embed_all(crops, instance_head=head)
    np.testing.assert_array_equal(beside.embeddings, alone.embeddings)
    np.testing.assert_array_equal(beside.pooled, alone.pooled)
    np.testing.assert_array_equal(beside.instance, alone.instance)
    # Box labels ask for the category alone: the same category as the full recognition.
    labels = recognizer.recognize_embeddings(alone.embeddings, alone.pooled, attributes=("category",))
    full_labels = recognizer.recognize_embeddings(alone.embeddings, alone.pooled)
    assert [p["category"] for p in labels] == [p["category"] for p in full_labels]
    assert all(list(p) == ["category"] for p in labels)


def test_a_locate_with_the_instance_vector_pooled_beside_gives_the_same_localization():
    """The instance vector pooled on a helper while the localiser's head runs: the same boxes,
    maps, embedding and instance vector, bit for bit, and the pooling did go to the helper."""
    from test_instance_vectors import DENSE_SPEC
    from jewelsearch.embed.dense_features import tap_channels
    from jewelsearch.embed.encoder import Encoder
    from jewelsearch.embed.instance import InstanceHead
    from jewelsearch.embed.model_folder import build_model
    from jewelsearch.embed.preprocess import ImagePreprocessor
    from jewelsearch.recognize.localizer import DenseHead, Localizer
    torch.manual_seed(99)
    net, _, _ = build_model(DENSE_SPEC)
    net.eval()
    visual = net.visual
    encoder = Encoder(net, ImagePreprocessor(64, (0.5,) * 3, (0.5,) * 3), None, "dense-test")
    localizer = Localizer(encoder, DenseHead(tap_channels(visual)), {"threshold": 0.0})
    head = InstanceHead.from_config({"blocks": [{"name": "last", "weight": 1.0}, {"name": "tap16", "weight": 0.5}],
                                     "p": 3.0}, channels=None)
    submitted = []

    class Watching(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            submitted.append(fn.__name__)
            return super().submit(fn, *args, **kwargs)

    for image in _photos(2, size=(160, 120)):
        alone = localizer.locate(image, instance_head=head, stones=False)
        with Watching(1) as helpers:
            beside = localizer.locate(image, instance_head=head, stones=False, beside=helpers)
        assert [b.as_dict() for b in beside.boxes] == [b.as_dict() for b in alone.boxes] and alone.boxes
        np.testing.assert_array_equal(beside.piece, alone.piece)
        np.testing.assert_array_equal(beside.embedding, alone.embedding)
        np.testing.assert_array_equal(beside.instance, alone.instance)
    assert submitted == ["_instance_vectors"] * 2


def test_box_labels_run_the_category_head_alone():
    """A search names its boxes by category only: that head's probabilities are the ones all the
    heads give, the other heads do not run, and an attribute a context head answers for takes
    the context head's answer."""
    from jewelsearch.recognize.heads import AttributeHeads
    torch.manual_seed(7)
    vocabularies = {"category": ["ring", "necklace", "pendant"], "metal": ["gold", "silver"],
                    "gemstone": ["ruby", "sapphire", "none"]}
    heads = AttributeHeads(8, vocabularies, pooled_dim=5, context_attributes=["category", "gemstone"])
    for parameter in heads.parameters():
        torch.nn.init.normal_(parameter)
    embeddings = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    pooled = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    for given in (None, pooled):
        everything = heads.probabilities(embeddings, given)
        assert list(everything) == ["category", "metal", "gemstone"]
        only = heads.probabilities(embeddings, given, attributes=("category",))
        assert list(only) == ["category"]
        np.testing.assert_array_equal(only["category"], everything["category"])
        two = heads.probabilities(embeddings, given, attributes=("gemstone", "metal"))
        assert list(two) == ["metal", "gemstone"]  # in the heads' order, as the full answer
        for attribute in two:
            np.testing.assert_array_equal(two[attribute], everything[attribute])
    with_context = heads.probabilities(embeddings, pooled, attributes=("category",))["category"]
    assert not np.allclose(with_context, heads.probabilities(embeddings, None, attributes=("category",))["category"])
