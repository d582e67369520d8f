"""The robustness-tuned top that only recognition reads: search embeddings never move."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lite0():
    from jewelsearch.embed import load_encoder
    return load_encoder("jewelclip-lite0")


def _photos(n=3):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        array = np.full((120, 160, 3), 200, np.uint8)
        array[30 + 5 * i:80, 50:110] = rng.integers(0, 255, 3)
        out.append(Image.fromarray(np.clip(array + rng.integers(-20, 20, array.shape), 0, 255).astype(np.uint8)))
    return out


def _changed_top(encoder, seed=0):
    """A copy of the tower's top with every weight nudged: what a tuning leaves."""
    from jewelsearch.recognize.recognition_top import RecognitionTop
    top = RecognitionTop.from_trunk(encoder.model.visual.trunk)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in top.parameters():
            parameter.add_(0.05 * parameter.std().nan_to_num(0) * torch.randn(parameter.shape, generator=generator))
    return top


def test_a_copy_of_the_tower_top_changes_nothing(lite0):
    from jewelsearch.embed.dense_features import tower_pass
    from jewelsearch.recognize.recognition_top import RecognitionTop
    batch = torch.stack([lite0.preprocess(p) for p in _photos()])
    top = RecognitionTop.from_trunk(lite0.model.visual.trunk)
    assert top.first_block == 5
    with torch.inference_mode():
        plain = tower_pass(lite0.model.visual, batch)
        split = tower_pass(lite0.model.visual, batch, top)
    assert torch.equal(plain.embedding, split.embedding) and torch.equal(plain.last_map, split.last_map)
    assert all(torch.equal(a, b) for a, b in zip(plain.taps, split.taps))


def test_the_top_moves_the_pooled_maps_and_never_the_embedding(lite0):
    from jewelsearch.embed.dense_features import tower_pass
    from jewelsearch.recognize.gem_features import embed_and_pool
    photos = _photos()
    top = _changed_top(lite0)
    batch = torch.stack([lite0.preprocess(p) for p in photos])
    with torch.inference_mode():
        plain = tower_pass(lite0.model.visual, batch)
        split = tower_pass(lite0.model.visual, batch, top)
        # What the top computes on its own from blocks 0-4's output.
        trunk = lite0.model.visual.trunk
        x = trunk.bn1(trunk.conv_stem(batch))
        for block in trunk.blocks[:5]:
            x = block(x)
        outputs, last_map = top(x)
    assert torch.equal(plain.embedding, split.embedding)
    assert torch.equal(plain.taps[0], split.taps[0]) and torch.equal(plain.taps[1], split.taps[1])
    assert torch.equal(split.taps[2], outputs[6]) and torch.equal(split.last_map, last_map)
    assert not torch.allclose(plain.last_map, split.last_map, atol=1e-3)
    vectors, pooled = embed_and_pool(lite0, photos)
    top_vectors, top_pooled = embed_and_pool(lite0, photos, top=top)
    assert np.array_equal(vectors, top_vectors)
    np.testing.assert_allclose(vectors, lite0.encode_images(photos), atol=1e-5)
    assert pooled.shape == top_pooled.shape and not np.allclose(pooled, top_pooled, atol=1e-3)


def test_recognizer_reads_the_top_and_search_vectors_stay(lite0):
    from jewelsearch.recognize.gem_specialist import GemSpecialist
    from jewelsearch.recognize.heads import AttributeHeads
    from jewelsearch.recognize.localizer import Localizer
    from jewelsearch.recognize.recognizer import Recognizer
    heads = AttributeHeads.load(lite0.folder)
    localizer = Localizer.load(lite0, lite0.folder)
    photos = _photos()
    plain = Recognizer(lite0, heads, gem_specialist=GemSpecialist.load(lite0.folder), localizer=localizer)
    tuned = Recognizer(lite0, heads, gem_specialist=GemSpecialist.load(lite0.folder), localizer=localizer,
                       recognition_top=_changed_top(lite0))
    vectors, pooled = plain.embed(photos)
    top_vectors, top_pooled = tuned.embed(photos)
    assert np.array_equal(vectors, top_vectors) and not np.allclose(pooled, top_pooled, atol=1e-3)
    assert tuned.with_heads(None).recognition_top is tuned.recognition_top
    assert tuned.method.endswith("+ recognition top") and "recognition top" not in plain.method
    # Every head reads the pooled maps (category and metal with the piece-pooled block).
    first = plain.probabilities(vectors, pooled)
    second = tuned.probabilities(top_vectors, top_pooled)
    for attribute in ("category", "metal", "gemstone", "cut"):
        assert first[attribute].shape == second[attribute].shape
        assert not np.allclose(first[attribute], second[attribute]), attribute


def test_saved_top_round_trips_folds_and_refuses_a_misfit(lite0, tmp_path):
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.fold_batch_norm import fold_module
    from jewelsearch.embed.model_folder import resolve_model_folder
    from jewelsearch.errors import ModelLoadError
    from jewelsearch.recognize.recognition_top import TOP_FILE, RecognitionTop, load_recognition_top
    folder = tmp_path / "model"
    shutil.copytree(resolve_model_folder("jewelclip-lite0"), folder)
    assert load_recognition_top(load_encoder(str(folder))) is not None  # the shipped model has one
    (folder / TOP_FILE).unlink()
    encoder = load_encoder(str(folder))
    assert load_recognition_top(encoder) is None  # no file: recognition reads the tower's own top
    top = _changed_top(encoder)
    top.save(folder)
    assert not (folder / (TOP_FILE + ".tmp")).exists()
    loaded = load_recognition_top(load_encoder(str(folder)))
    assert all(torch.equal(a, b) for a, b in zip(top.state_dict().values(), loaded.state_dict().values()))
    # The model id names the search tower's weights only: stored embeddings stay valid.
    assert load_encoder(str(folder)).model_id == lite0.model_id
    # Folded for serving, the top gives the same maps up to float rounding.
    front = torch.randn(2, 112, 7, 7)
    with torch.inference_mode():
        before = loaded(front)
        assert fold_module(loaded)
        after = loaded(front)
    torch.testing.assert_close(before[1], after[1], rtol=1e-3, atol=1e-3)
    # A top from another tower (or one loaded into a folded trunk) is refused with a clear error.
    from safetensors.torch import save_file
    save_file({"blocks.5.0.conv_pw.weight": torch.zeros(3, 3, 1, 1)}, str(folder / TOP_FILE))
    with pytest.raises(ModelLoadError, match="does not fit"):
        RecognitionTop.load(folder, encoder.model.visual.trunk)
    (folder / TOP_FILE).write_bytes(b"not a safetensors file")  # a damaged file: a clear error too
    with pytest.raises(ModelLoadError, match="cannot read"):
        RecognitionTop.load(folder, encoder.model.visual.trunk)


def test_tiny_towers_have_no_recognition_top(tiny_encoder):
    from jewelsearch.recognize.recognition_top import load_recognition_top
    assert load_recognition_top(tiny_encoder) is None


def test_ingest_locates_from_its_own_pass_as_locate_does(lite0):
    """The stone check at ingest reads the search tower's taps of the embedding pass: the same
    maps, boxes and answer as a separate ``locate``, although the recognition top replaced the
    stride-32 tap the heads read."""
    from jewelsearch.embed.dense_features import tower_pass
    from jewelsearch.embed.images import load_image
    from jewelsearch.ingest.demo import demo_dir, demo_items
    from jewelsearch.recognize.evidence import stone_seen
    from jewelsearch.recognize.heads import AttributeHeads
    from jewelsearch.recognize.localizer import Localizer
    from jewelsearch.recognize.recognition_top import load_recognition_top
    from jewelsearch.recognize.recognizer import Recognizer
    localizer = Localizer.load(lite0, lite0.folder)
    top = load_recognition_top(lite0)
    recognizer = Recognizer(lite0, AttributeHeads.load(lite0.folder), localizer=localizer, recognition_top=top)
    images = [load_image(item.image_bytes).image for item in demo_items(demo_dir())[:12:2]] + _photos(2)
    vectors, pooled, located = recognizer.embed_and_locate(images, wanted=[True] * 7 + [False])
    plain_vectors, plain_pooled = recognizer.embed(images)
    np.testing.assert_allclose(vectors, plain_vectors, atol=1e-6)
    np.testing.assert_allclose(pooled, plain_pooled, atol=1e-5)
    assert located[-1] is None  # not wanted
    for image, found in zip(images, located[:-1]):
        alone = localizer.locate(image)
        np.testing.assert_allclose(found.piece, alone.piece, atol=1e-4)
        np.testing.assert_allclose(found.stone, alone.stone, atol=1e-4)
        assert [b.as_dict()["box"] for b in found.boxes] == [b.as_dict()["box"] for b in alone.boxes]
        assert stone_seen(found) == stone_seen(alone)
    # The top's taps would give other maps: the check must not read them.
    batch = torch.stack([lite0.preprocess(im.convert("RGB")) for im in images[:2]])
    with torch.inference_mode():
        result = tower_pass(lite0.model.visual, batch, top)
    assert not np.allclose(localizer.grids(result.taps)[1], localizer.grids(result.search_taps)[1], atol=1e-3)


def test_the_piece_map_comes_from_the_localiser_s_own_taps_whatever_the_top(lite0):
    """Piece pooling weights the top's maps by the localiser's piece map, computed on the search
    tower's taps it was trained on: the peak piece probability (the last column) is the same
    with and without a top, while the maps pooled under it move."""
    from jewelsearch.recognize.gem_features import embed_and_pool
    from jewelsearch.recognize.localizer import Localizer
    head = Localizer.load(lite0, lite0.folder).head
    photos = _photos()
    _, plain = embed_and_pool(lite0, photos, piece_head=head)
    _, with_top = embed_and_pool(lite0, photos, piece_head=head, top=_changed_top(lite0))
    np.testing.assert_allclose(with_top[:, -1], plain[:, -1], atol=1e-6)
    assert not np.allclose(with_top[:, :-1], plain[:, :-1], atol=1e-3)
