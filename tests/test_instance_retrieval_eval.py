"""The instance-retrieval measures and the instance head's fit, on vectors whose answers are
known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jewelsearch.evaluate.retrieval import (
    QueryCrops,
    category_precision,
    query_similarities,
    ranks_of_answers,
    recall_at,
)
from jewelsearch.train.instance_head import InstanceRecipe, InstanceViews, fit_projection


def _unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class _ByColour:
    """Embeds a photo as its (unit) mean colour: tests choose vectors by painting photos."""

    def __call__(self, images):
        return _unit([np.asarray(im, dtype=np.float32).reshape(-1, 3).mean(0) + 1e-3 for im in images])


def _photo(rgb):
    return Image.new("RGB", (8, 8), rgb)


GALLERY = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_multi_crop_takes_the_best_view_per_item_and_piece_the_top_box():
    # Whole photo looks green; its top piece red; its second piece blue.
    query = QueryCrops([_photo((0, 255, 0)), _photo((255, 0, 0)), _photo((0, 0, 255))], top_piece=1)
    embed = _ByColour()
    whole = query_similarities(embed, [query], GALLERY, "whole")
    piece = query_similarities(embed, [query], GALLERY, "piece")
    multi = query_similarities(embed, [query], GALLERY, "multi")
    assert whole.argmax() == 1 and piece.argmax() == 0
    # Every item is matched by one of the views: all three score about 1.
    assert np.allclose(multi, 1.0, atol=1e-3)
    # Without a detected piece, "piece" falls back to the whole photo, as the server does.
    lone = QueryCrops([_photo((0, 0, 255))], top_piece=None)
    assert query_similarities(embed, [lone], GALLERY, "piece").argmax() == 2
    with pytest.raises(ValueError):
        query_similarities(embed, [lone], GALLERY, "everything")


def test_a_query_never_finds_its_own_gallery_row():
    query = QueryCrops([_photo((255, 0, 0))], None)
    sims = query_similarities(_ByColour(), [query], GALLERY, "whole", exclude=[0])
    assert sims[0, 0] == -np.inf and sims[0].argmax() in (1, 2)


def test_rerank_rescores_only_the_candidates():
    query = QueryCrops([_photo((255, 0, 0))], None)

    def reverse(q, candidates, scores):
        return -scores  # the worst candidate first: a re-ranker the measure must obey
    sims = query_similarities(_ByColour(), [query], GALLERY, "whole", rerank=reverse)
    assert sims[0].argmax() != 0


def test_ranks_and_recall():
    sims = np.array([[0.9, 0.5, 0.1], [0.2, 0.3, 0.8], [0.4, 0.6, 0.5]])
    ranks = ranks_of_answers(sims, [np.array([0]), np.array([0, 1]), np.array([0])])
    assert ranks.tolist() == [0, 1, 2]
    result = recall_at(ranks)
    assert result["recall@1"] == pytest.approx(1 / 3, abs=1e-4) and result["recall@10"] == 1.0
    low, high = result["recall@1_interval"]
    assert 0.0 <= low <= result["recall@1"] <= high <= 1.0


def test_category_precision_counts_neighbours_of_the_same_category():
    vectors = _unit([[1, 0.1], [1, 0.2], [0.1, 1], [0.2, 1]])
    assert category_precision(vectors, ["ring", "ring", "pendant", "pendant"], k=1)["precision@1"] == 1.0
    assert category_precision(vectors, ["ring", "pendant", "ring", "pendant"], k=1)["precision@1"] == 0.0


def test_fitting_finds_identity_that_the_principal_components_miss():
    """Each piece's identity lives in 4 low-variance dimensions; 12 loud dimensions carry nuisance
    (background, light) that changes between a piece's views. Principal components alone keep
    the loud ones; the fitted projection must recover the piece."""
    rng = np.random.default_rng(0)
    pieces, dims = 60, 16
    identity = rng.normal(size=(pieces, 4)) * 0.3

    def views(which):
        nuisance = rng.normal(size=(len(which), 12)) * 3.0
        return np.hstack([identity[which] + rng.normal(size=(len(which), 4)) * 0.03, nuisance]).astype(np.float32)
    clean = views(np.arange(pieces))
    pasted_photo = np.repeat(np.arange(pieces), 4)
    data = InstanceViews(clean=clean, augmented=views(np.arange(pieces)), pasted=views(pasted_photo),
                         pasted_photo=pasted_photo, worn_crop=np.zeros((0, dims), np.float32),
                         worn_whole=np.zeros((0, dims), np.float32), worn_product=np.array([], dtype=str))
    recipe = InstanceRecipe(dim=4, epochs=200, learning_rate=3e-2, batch=64, worn_weight=0.0)
    mean, projection = fit_projection(data, recipe)

    def recall_at_1(project):
        queries, gallery = _unit(project(views(np.arange(pieces)))), _unit(project(clean))
        return float(((queries @ gallery.T).argmax(1) == np.arange(pieces)).mean())
    centred = data.pasted - data.pasted.mean(0)
    principal = np.linalg.svd(centred, full_matrices=False)[2][:4].T
    before = recall_at_1(lambda x: (x - mean) @ principal)
    after = recall_at_1(lambda x: (x - mean) @ projection)
    assert after >= 0.8 and after > before + 0.4, (before, after)


def _jewel_on_white(seed: int) -> Image.Image:
    """A coloured disc on a white sweep, as a shop's catalog shot (so it can be cut out)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (96, 96), (255, 255, 255))
    from PIL import ImageDraw
    colour = tuple(int(c) for c in rng.integers(0, 200, 3))
    ImageDraw.Draw(image).ellipse([28, 28, 68, 68], fill=colour)
    return image


def test_eval_retrieval_writes_its_report(tmp_path, tiny_model_dir):
    """The command end to end on tiny folders laid out as products/ and worn/ are."""
    from click.testing import CliRunner

    from jewelsearch.cli import main
    products, worn = tmp_path / "products", tmp_path / "worn"
    rows = ["path,split,category,material,stone_type,stone_shape,color,description,source_name"]
    for n in range(6):
        category = "ring" if n % 2 else "necklace"
        (products / "val" / category).mkdir(parents=True, exist_ok=True)
        _jewel_on_white(n).save(products / "val" / category / f"p{n}.jpg")
        rows.append(f"val/{category}/p{n}.jpg,val,{category},,,,,,test")
    (products / "labels.csv").write_text("\n".join(rows) + "\n")
    worn.mkdir()
    worn_rows = ["path,category,metal,product"]
    for n in range(6):
        rng = np.random.default_rng(100 + n)
        Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(worn / f"w{n}.jpg")
        worn_rows.append(f"w{n}.jpg,ring,,prod{n // 2}")
    (worn / "labels.csv").write_text("\n".join(worn_rows) + "\n")
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "--model", str(tiny_model_dir), "eval",
                                       "retrieval", "--worn", str(worn), "--catalog", str(products),
                                       "--pasted", "8", "--renders", "0", "--out", str(out)],
                             catch_exceptions=False)
    assert result.exit_code == 0, result.output
    import json
    report = json.loads((out / "retrieval.json").read_text())
    assert report["sets"] == {"worn_queries": 6, "worn_gallery": 12, "pasted_queries": 8, "catalog_photos": 6,
                              "render_skipped": "no renders asked for"}
    aligned = report["results"]["text-aligned"]
    assert aligned["multi"]["pasted_to_catalog"]["queries"] == 8
    assert 0.0 <= aligned["whole"]["worn_same_product"]["recall@10"] <= 1.0
    assert (out / "retrieval.png").stat().st_size > 0 and "| text-aligned / multi |" in (out / "retrieval.md").read_text()
