"""The pipelined ingest path (``ingest/stream.py``) against the sequential one, bad photos in a
batch, the recognition work ingest skips for photos whose attributes are given, and JPEG
draft decoding. The equality tests run the bundled model, where recognition, the localiser
and the instance head all take part."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import make_image
from jewelsearch.config import Settings
from jewelsearch.embed.images import load_image
from jewelsearch.ingest.demo import demo_dir, demo_items
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.ingest.stream import pipelined
from jewelsearch.search.wiring import open_service

DROPS = (("gemstone", "stone_shape"), ("category", "metal", "gemstone", "stone_shape"), ())


def _items(count: int) -> list[NewItem]:
    """Demo photos with, in turn, the stone fields, every recognised field, or nothing left out."""
    return [NewItem(item.image_bytes, {k: v for k, v in item.fields.items() if k not in DROPS[n % 3]},
                    source_path=f"/shop/{n}.jpg") for n, item in enumerate(demo_items(demo_dir())[:count])]


def _snapshot(service) -> tuple[list[dict], dict[tuple[int, str], np.ndarray]]:
    rows = [{k: v for k, v in row.items() if k not in ("created_at", "updated_at")}
            for row in service.catalog.items.list(10_000, 0)]
    vectors = {(item_id, model): np.frombuffer(blob, np.float32) for item_id, model, blob in
               service.catalog.database.conn.execute("SELECT item_id, model_id, vector FROM embeddings")}
    return rows, vectors


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """Two fresh homes on the bundled model: the sequential path fills one, the pipelined the other."""
    root = tmp_path_factory.mktemp("pipelined")
    services = [open_service(Settings(home=root / name)) for name in ("sequential", "pipelined")]
    yield services
    for service in services:
        service.catalog.close()


@pytest.mark.slow
def test_pipelined_ingest_equals_sequential_ingest(bundled):
    sequential, piped = bundled
    items = _items(21)
    batches = [items[i:i + 8] for i in range(0, len(items), 8)]
    for batch in batches:
        sequential.add_items(batch)
    seen = [(batch, results) for batch, results in piped.ingest_batches(batches, decode_workers=2)]
    assert [b for b, _ in seen] == batches and all(len(b) == len(r) for b, r in seen)
    rows, vectors = _snapshot(sequential)
    rows_piped, vectors_piped = _snapshot(piped)
    assert len(rows) == 21 and rows_piped == rows  # items and attributes, the predicted ones included
    assert any(row["attributes"].get("predicted") for row in rows)  # recognition did fill some in
    assert vectors_piped.keys() == vectors.keys() and len({model for _, model in vectors}) >= 3
    assert max(float(np.abs(vectors[k] - vectors_piped[k]).max()) for k in vectors) <= 1e-5
    # Running the same folder again changes nothing on either path.
    again = [r.status for _, results in piped.ingest_batches(batches) for r in results]
    assert again == ["unchanged"] * 21


@pytest.mark.slow
def test_recognition_work_runs_only_for_photos_missing_attributes(bundled):
    service = bundled[0]
    recognizer = service.state.ingestor.recognizer
    images = [load_image(item.image_bytes).image for item in _items(4)]
    full = recognizer.embed_all(images, [True] * 4, instance_head=service.state.ingestor.instance_head)
    part = recognizer.embed_all(images, [False, True, False, True], instance_head=service.state.ingestor.instance_head,
                                recognise=[True, False, False, True])
    np.testing.assert_allclose(part.embeddings, full.embeddings, atol=1e-5)
    np.testing.assert_allclose(part.instance, full.instance, atol=1e-5)
    np.testing.assert_allclose(part.pooled[[0, 3]], full.pooled[[0, 3]], atol=1e-4)
    assert np.isnan(part.pooled[[1, 2]]).all()
    assert part.located[0] is None and part.located[2] is None
    for i in (1, 3):
        np.testing.assert_allclose(part.located[i].piece, full.located[i].piece, atol=1e-5)
    none = recognizer.embed_all(images, None, recognise=[False] * 4)
    assert none.pooled is None and none.located is None


def test_a_corrupt_photo_is_reported_and_skipped_without_stopping_the_batch(service):
    items = [NewItem(make_image(seed=n), {"title": f"Piece {n}"}) for n in range(4)]
    items.insert(2, NewItem(b"\xff\xd8\xff not a jpeg", {"title": "Broken"}, source_path="/shop/broken.jpg"))
    results = service.add_items(items, skip_bad=True)
    assert [r.status for r in results] == ["added", "added", "failed", "added", "added"]
    assert results[2].item_id is None and ("corrupt" in results[2].error or "readable" in results[2].error)
    assert service.catalog.items.count() == 4 and service.state.index.ntotal == 4
    more = [NewItem(make_image(seed=10 + n), {"title": f"More {n}"}) for n in range(3)]
    more.insert(0, NewItem(b"", {"title": "Empty"}))
    seen = list(service.ingest_batches([more[:2], more[2:]]))
    assert [[r.status for r in results] for _, results in seen] == [["failed", "added"], ["added", "added"]]
    assert "empty" in seen[0][1][0].error
    assert service.catalog.items.count() == 7 and service.state.index.ntotal == 7


def test_without_skip_bad_a_corrupt_photo_still_fails_the_whole_batch(service):
    from jewelsearch.errors import BadImage
    with pytest.raises(BadImage):
        service.add_items([NewItem(make_image(seed=1), {}), NewItem(b"garbage", {})])
    assert service.catalog.items.count() == 0


def test_pipelined_ingest_on_the_tiny_model_equals_batch_by_batch(service, tmp_path, tiny_encoder):
    from jewelsearch.search.service import SearchService
    from jewelsearch.storage import Catalog
    items = [NewItem(make_image(seed=n), {"title": f"Piece {n}", "category": "ring"}, source_path=f"/s/{n}.png")
             for n in range(7)]
    batches = [items[:3], items[3:6], items[6:]]
    list(service.ingest_batches(batches, decode_workers=3))
    catalog = Catalog.open(tmp_path / "other.db", tmp_path / "other-images")
    other = SearchService(catalog, tiny_encoder, tmp_path / "other-index")
    for batch in batches:
        other.add_items(batch)
    rows, vectors = _snapshot(service)
    rows_other, vectors_other = _snapshot(other)
    assert [{k: v for k, v in r.items() if k != "image_path"} for r in rows] == \
        [{k: v for k, v in r.items() if k != "image_path"} for r in rows_other]
    assert max(float(np.abs(vectors[k] - vectors_other[k]).max()) for k in vectors) <= 1e-5
    catalog.close()


def test_batches_naming_the_same_file_wait_for_the_earlier_write(service):
    first = [NewItem(make_image(seed=1), {"title": "One"}, source_path="/s/a.png")]
    second = [NewItem(make_image(seed=2), {"title": "One, new photo"}, source_path="/s/a.png")]
    statuses = [r.status for _, results in service.ingest_batches([first, second]) for r in results]
    assert statuses == ["added", "updated"] and service.catalog.items.count() == 1


def test_decode_workers_must_be_positive(service):
    with pytest.raises(ValueError, match="decode_workers"):
        list(pipelined([[NewItem(b"x")]], decode=None, prepare=None, write=None, decode_workers=0))


def _jpeg(side: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", side, (180, 140, 60)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("size, side, expected", [((2000, 1000), 448, (500, 250)),
                                                  ((1600, 1600), 448, (800, 800)),
                                                  ((800, 600), 448, (800, 600)),
                                                  ((2000, 1000), 0, (2000, 1000))])
def test_draft_decoding_keeps_at_least_the_asked_side(size, side, expected):
    loaded = load_image(_jpeg(size), draft_side=side)
    assert loaded.image.size == expected and max(loaded.image.size) >= min(side, max(size))
    assert Image.open(io.BytesIO(loaded.data)).size == size  # the stored photo is the original


def test_draft_decoding_leaves_png_alone():
    assert load_image(make_image(size=(2000, 1000)), draft_side=448).image.size == (2000, 1000)


def test_cli_ingest_reports_a_corrupt_file_and_keeps_the_rest(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(5):
        (folder / f"p{n}.png").write_bytes(make_image(seed=n))
    (folder / "p2b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "--model", str(tiny_model_dir), "ingest",
                                       str(folder), "--batch-size", "2"], catch_exceptions=False)
    assert result.exit_code == 0 and "added=5" in result.output and "failed=1" in result.output
    assert "p2b.jpg" in result.output
    bad = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "--model", str(tiny_model_dir), "ingest",
                                    str(folder), "--decode-workers", "0"])
    assert bad.exit_code != 0 and "decode-workers" in bad.output


def test_draft_decoding_is_a_setting_and_both_ingest_paths_decode_alike(tmp_path, tiny_encoder):
    from jewelsearch.config import load_settings
    from jewelsearch.search.service import SearchService
    from jewelsearch.storage import Catalog
    assert load_settings(tmp_path, env={"JEWELSEARCH_INGEST_DRAFT_DECODE": "false"}).ingest_draft_decode is False
    assert Settings().ingest_draft_decode is True
    rng = np.random.default_rng(3)
    photos = []
    for n in range(3):
        buffer = io.BytesIO()
        Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8)).resize((600, 400), Image.BICUBIC) \
            .save(buffer, format="JPEG", quality=90)
        photos.append(NewItem(buffer.getvalue(), {"title": f"Large {n}"}))
    vectors = {}
    for name, draft, piped in (("off", False, False), ("seq", True, False), ("piped", True, True)):
        catalog = Catalog.open(tmp_path / f"{name}.db", tmp_path / f"{name}-images")
        service = SearchService(catalog, tiny_encoder, tmp_path / f"{name}-index", draft_decode=draft)
        assert service.state.ingestor.draft_side == (2 * tiny_encoder.preprocess.size if draft else 0)
        if piped:
            list(service.ingest_batches([photos]))
        else:
            service.add_items(photos)
        vectors[name] = np.stack([np.frombuffer(b, np.float32) for (b,) in catalog.database.conn.execute(
            "SELECT vector FROM embeddings ORDER BY item_id")])
        stored = catalog.images.path_for(catalog.items.get(1)["image_path"]).read_bytes()
        assert stored == photos[0].image_bytes  # the original is kept
        catalog.close()
    np.testing.assert_allclose(vectors["seq"], vectors["piped"], atol=1e-5)
    assert np.abs(vectors["seq"] - vectors["off"]).max() > 1e-4  # the draft did change what was embedded


def test_the_embedding_width_is_read_without_a_forward_pass(tiny_encoder):
    from jewelsearch.embed.encoder import _declared_dim
    assert _declared_dim(tiny_encoder.model) == tiny_encoder.encode_texts(["ring"]).shape[1] == 32


@pytest.mark.slow
def test_channel_counts_and_width_read_off_the_bundled_model_match_a_forward_pass(bundled):
    import torch

    from jewelsearch.embed.dense_features import tap_channels, tower_pass
    from jewelsearch.embed.encoder import _declared_dim
    from jewelsearch.embed.instance import block_channels
    encoder = bundled[0].state.encoder
    with torch.inference_mode():
        probe = tower_pass(encoder.model.visual, torch.zeros(1, 3, 64, 64))
    assert tap_channels(encoder.model.visual) == tuple(int(t.shape[1]) for t in probe.taps)
    channels = block_channels(encoder.model.visual)
    assert channels["aligned"] == probe.embedding.shape[1] and channels["last"] == probe.last_map.shape[1]
    assert _declared_dim(encoder.model) == encoder.encode_texts(["ring"]).shape[1] == 256


def test_a_batch_of_image_files_is_saved_on_threads_and_each_lands_whole(tmp_path):
    from jewelsearch.storage.images import ImageFiles, sha256_bytes
    files = ImageFiles(tmp_path / "images")
    photos = [make_image(seed=n) for n in range(5)]
    paths = files.save_many({sha256_bytes(p): (p, "png") for p in photos})
    assert len(paths) == 5
    for photo in photos:
        assert files.path_for(paths[sha256_bytes(photo)]).read_bytes() == photo
    assert not list((tmp_path / "images").rglob(".tmp-*"))


@pytest.mark.slow
def test_the_colour_histogram_is_made_only_for_photos_recognition_reads(bundled):
    ingestor = bundled[0].state.ingestor
    item = demo_items(demo_dir())[0]  # every recognised field given (and a title: no style guess)
    given = ingestor.decode_for_model(item.image_bytes, item.fields)
    missing = ingestor.decode_for_model(item.image_bytes, {k: v for k, v in item.fields.items() if k != "metal"})
    unknown = ingestor.decode_for_model(item.image_bytes)
    assert given.histogram is None and missing.histogram is not None and unknown.histogram is not None
    np.testing.assert_array_equal(given.tensor, missing.tensor)


@pytest.mark.slow
def test_ingest_locates_without_boxes_and_sees_the_same_stones(bundled):
    from jewelsearch.recognize.evidence import stone_seen
    recognizer = bundled[0].state.ingestor.recognizer
    demo = demo_items(demo_dir())
    # Three pieces with a stone and three plain ones (no gemstone listed).
    chosen = [i for i in demo if i.fields.get("gemstone")][:3] + [i for i in demo if not i.fields.get("gemstone")][:3]
    images = [load_image(item.image_bytes).image for item in chosen]
    with_boxes = recognizer.embed_all(images, [True] * 6).located
    maps_only = recognizer.embed_all(images, [True] * 6, max_boxes=0).located
    assert any(found.boxes for found in with_boxes) and not any(found.boxes for found in maps_only)
    for full, bare in zip(with_boxes, maps_only):
        np.testing.assert_array_equal(full.masks(), bare.masks())
        assert stone_seen(full) == stone_seen(bare)
    assert {stone_seen(found) for found in with_boxes} == {True, False}
