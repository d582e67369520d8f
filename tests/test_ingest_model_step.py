"""Ingest's model step without repeated work: the localiser's head runs once a batch where both
the piece-pooled block and the localiser read it (``gem_features.SharedHeadLogits``), each
reader getting what it got when it ran the head itself; the batch is stacked channels-last in
one copy (``preprocess.channels_last_batch``) with the same values and layout."""

from __future__ import annotations

import numpy as np
import pytest

from jewelsearch.config import Settings
from jewelsearch.embed.images import load_image
from jewelsearch.ingest.demo import demo_dir, demo_items
from jewelsearch.search.wiring import open_service


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    service = open_service(Settings(home=tmp_path_factory.mktemp("shared-head")))
    yield service.state.ingestor.recognizer
    service.catalog.close()


@pytest.fixture(scope="module")
def images():
    return [load_image(item.image_bytes).image for item in demo_items(demo_dir())[:6]]


def _head_calls(recognizer) -> list[int]:
    """The batch size of each call of the localiser's head, recorded from now on."""
    calls: list[int] = []
    recognizer.localizer.head.register_forward_hook(lambda module, args, out: calls.append(len(out)))
    return calls


@pytest.mark.slow
def test_a_bare_batch_runs_the_localiser_head_once_and_each_reader_gets_its_own_answer(recognizer, images):
    assert recognizer.piece_head is recognizer.localizer.head  # the bundled model pools under the piece map
    pooled_alone = recognizer.embed_all(images, None).pooled  # no localiser: the pooled block runs the head
    located_alone = recognizer.embed_all(images, [True] * 6, recognise=[False] * 6, max_boxes=0).located
    calls = _head_calls(recognizer)
    both = recognizer.embed_all(images, [True] * 6, max_boxes=0)
    assert calls == [6]  # before: [6, 6], the same head on the same taps twice
    np.testing.assert_array_equal(both.pooled, pooled_alone)
    for shared, alone in zip(both.located, located_alone):
        np.testing.assert_array_equal(shared.piece, alone.piece)
        np.testing.assert_array_equal(shared.stone, alone.stone)


@pytest.mark.slow
def test_where_the_readers_want_other_photos_the_head_runs_once_on_the_photos_either_wants(recognizer, images):
    recognise, wanted = [True, True, False, True, False, False], [True, False, False, True, True, False]
    pooled_alone = recognizer.embed_all(images, None, recognise=recognise).pooled
    located_alone = recognizer.embed_all(images, wanted, recognise=[False] * 6, max_boxes=0).located
    calls = _head_calls(recognizer)
    both = recognizer.embed_all(images, wanted, recognise=recognise, max_boxes=0)
    assert calls == [4]  # photos 0, 1, 3 and 4
    np.testing.assert_allclose(both.pooled[[0, 1, 3]], pooled_alone[[0, 1, 3]], atol=1e-5)
    assert np.isnan(both.pooled[[2, 4, 5]]).all()
    for n, want in enumerate(wanted):
        if not want:
            assert both.located[n] is None
            continue
        np.testing.assert_allclose(both.located[n].piece, located_alone[n].piece, atol=1e-5)
        np.testing.assert_allclose(both.located[n].stone, located_alone[n].stone, atol=1e-5)
        assert (both.located[n].masks() == located_alone[n].masks()).all()


def test_the_batch_is_stacked_channels_last_as_before():
    import torch
    from PIL import Image

    from jewelsearch.embed.preprocess import ImagePreprocessor, channels_last_batch
    preprocess = ImagePreprocessor(32, (0.48, 0.46, 0.41), (0.27, 0.26, 0.28))
    photos = [Image.new("RGB", (40 + 7 * n, 30), (30 * n, 90, 200)) for n in range(3)]
    tensors = [preprocess(photo) for photo in photos]
    want = torch.stack(tensors).contiguous(memory_format=torch.channels_last)
    for given in (tensors, [t.contiguous() for t in tensors]):  # as laid out by PIL, and NCHW-contiguous
        got = channels_last_batch(given)
        assert torch.equal(got, want) and got.stride() == want.stride()


@pytest.mark.slow
def test_a_batch_of_grids_gives_each_photo_the_maps_and_boxes_upsampling_it_alone_gave(recognizer):
    import torch
    import torch.nn.functional as F

    from jewelsearch.recognize.localizer import letterbox_geometry
    localizer = recognizer.localizer
    side = localizer.encoder.preprocess.size
    generator = np.random.default_rng(0)
    pieces = generator.random((3, side // 8, side // 8), dtype=np.float32)
    stones = generator.random((3, side // 8, side // 8), dtype=np.float32)
    sizes = [(384, 384), (500, 260), (120, 333)]
    batched = localizer.from_grids(sizes, pieces, stones)
    for size, piece, stone, found in zip(sizes, pieces, stones, batched):
        scale, ox, oy, cw, ch = letterbox_geometry(*size, side)
        for grid, got in ((piece, found.piece), (stone, found.stone)):  # the per-photo upsampling it replaced
            alone = F.interpolate(torch.from_numpy(grid)[None, None], size=(side, side), mode="bilinear",
                                  align_corners=False)[0, 0].numpy()[oy:oy + ch, ox:ox + cw]
            np.testing.assert_array_equal(got, alone)
        one = localizer.from_maps(size, piece, stone)
        assert [b.as_dict() for b in one.boxes] == [b.as_dict() for b in found.boxes]
        assert found.piece.base is None or found.piece.base.size == found.piece.size  # not a view of the batch
