"""Phase-one training end to end on a few synthetic photos and renders, and the re-embedding
of cached rows for a retrained projection."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jewelsearch.embed import load_encoder
from jewelsearch.recognize.gem_features import embed_and_pool, embed_from_pooled, tower_fingerprint
from jewelsearch.train.context_heads import TrainingRows, load_rows, save_rows
from jewelsearch.train.contrastive import TrainConfig, train
from jewelsearch.train.labelled_data import Record, hash_split, read_renders

pytestmark = pytest.mark.slow

COLOURS = {"ring": (200, 160, 40), "necklace": (120, 120, 130)}


def _photo(path: Path, category: str, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    array = np.full((96, 96, 3), 245, np.uint8)
    array[24:72, 24:72] = np.array(COLOURS[category]) + rng.integers(-20, 20, 3)
    Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(path)
    return path


def _write_renders(folder: Path, count: int) -> None:
    (folder / "images").mkdir(parents=True)
    with open(folder / "labels.jsonl", "w") as fh:
        for index in range(count):
            category = ("ring", "necklace")[index % 2]
            _photo(folder / "images" / f"{index:05d}.jpg", category, 1000 + index)
            fh.write(json.dumps({"index": index, "category": category, "metal": "rose gold",
                                 "gemstone": None, "image": f"images/{index:05d}.jpg",
                                 "description": f"a rose gold {category}"}) + "\n")


def test_read_renders_keeps_exact_labels_and_holds_out_what_it_is_told(tmp_path):
    _write_renders(tmp_path, 7)
    records = read_renders(tmp_path, held_out=lambda index: index % 3 == 0)
    assert [r.split for r in records] == ["val", "train", "train", "val", "train", "train", "val"]
    assert records[1].labels == {"category": "necklace", "metal": "rose gold"}  # no stone: no gemstone label
    assert records[0].source == "renders" and records[0].path.is_file()


def test_training_with_renders_writes_a_loadable_model_and_calibrates_on_photos_only(tmp_path):
    photos = []
    for index in range(40):
        category = ("ring", "necklace")[index % 2]
        path = _photo(tmp_path / f"photo{index}.png", category, index)
        photos.append(Record(path, "train", {"category": category}, source="products"))
    _write_renders(tmp_path / "renders", 10)
    renders = read_renders(tmp_path / "renders")
    calibration = [r for r in photos if hash_split(r.path.name + "calib", 0.1) == "val"]
    config = TrainConfig(epochs=2, batch_size=8, views=("clean", "aug1", "qaug1"), patience=5)
    result = train(photos, tmp_path / "model", tmp_path / "work", config, renders=renders)
    assert result.calibrated_on == len(calibration) > 0
    assert result.trained_on == len(photos) - len(calibration) + len(renders)
    # The photos' feature cache is not invalidated by the renders: one cache folder each.
    assert len(list((tmp_path / "work" / "features").iterdir())) == 2
    encoder = load_encoder(str(tmp_path / "model"))
    assert encoder.model_id != load_encoder("jewelclip-lite0").model_id
    vectors = encoder.encode_images([Image.open(photos[0].path)])
    assert vectors.shape == (1, 256) and np.isfinite(vectors).all()


def test_cached_rows_are_re_embedded_exactly_from_their_pooled_maps(tmp_path):
    encoder = load_encoder("jewelclip-lite0")
    rng = random.Random(0)
    images = [Image.new("RGB", (80, 60), tuple(rng.randrange(256) for _ in range(3))) for _ in range(3)]
    embeddings, pooled = embed_and_pool(encoder, images)
    assert np.allclose(embed_from_pooled(encoder, pooled), embeddings, atol=1e-5)

    rows = TrainingRows(np.zeros_like(embeddings), [{"category": "ring"}] * 3, np.ones(3, np.float32),
                        [None] * 3, ["a", "b", "c"], pooled)
    recipe = {"tower": tower_fingerprint(encoder)}
    save_rows(rows, tmp_path / "rows.npz", recipe)
    again = load_rows(tmp_path / "rows.npz", recipe, reembed=lambda maps: embed_from_pooled(encoder, maps))
    assert np.allclose(again.vectors, embeddings, atol=1e-5)  # recomputed, not the zeros saved
    without_maps = TrainingRows(embeddings, rows.labels, rows.weights, rows.products, rows.keys, None)
    save_rows(without_maps, tmp_path / "flat.npz", recipe)
    assert load_rows(tmp_path / "flat.npz", recipe, reembed=lambda maps: maps) is None


def test_tower_fingerprint_ignores_the_projection_but_not_the_tower():
    import torch
    encoder = load_encoder("jewelclip-lite0")
    before = tower_fingerprint(encoder)
    with torch.no_grad():
        encoder.model.visual.head.proj.weight.mul_(2)
        assert tower_fingerprint(encoder) == before
        encoder.model.visual.trunk.conv_stem.weight.add_(1e-3)
        assert tower_fingerprint(encoder) != before
