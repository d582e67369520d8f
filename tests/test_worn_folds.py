"""Cross-fitted heads: training on every worn photo while evaluation stays on unseen products."""

import json
from pathlib import Path

import numpy as np
import torch

from jewelsearch.evaluate.recognition import judged_probabilities
from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.train.context_heads import TrainingRows, _fit_head, retrain_context_heads
from jewelsearch.train.labelled_data import Record, worn_products_seen
from jewelsearch.train.worn_folds import WornFolds, fold_of, judge_by_fold

VOCAB = {"category": ["ring", "necklace", "earrings", "bracelet"], "metal": ["yellow gold", "silver"],
         "gemstone": ["none"], "cut": ["none"]}
DIM = 8


def _rows(products_per_class: int = 6, photos: int = 3, seed: int = 0) -> TrainingRows:
    """Separable synthetic rows: shop photos and worn photos of several products per category."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (4, DIM)) * 3
    vectors, labels, weights, products, keys = [], [], [], [], []
    for c, category in enumerate(VOCAB["category"]):
        for i in range(20):  # shop photos
            vectors.append(centres[c] + rng.normal(0, 0.3, DIM))
            labels.append({"category": category, "metal": "silver" if i % 2 else "yellow gold"})
            weights.append(1.0)
            products.append(None)
            keys.append(f"shop/{category}/{i}")
        for p in range(products_per_class):
            for k in range(photos):
                vectors.append(centres[c] + rng.normal(0, 0.3, DIM))
                labels.append({"category": category, "metal": None})
                weights.append(5.0)
                products.append(f"{category}-{p}")
                keys.append(f"worn/{category}-{p}/{k}")
    return TrainingRows(np.asarray(vectors, np.float32), labels, np.asarray(weights, np.float32), products, keys)


def test_each_fold_leaves_out_exactly_its_products_and_the_shipped_heads_see_all():
    rows = _rows()
    heads = AttributeHeads(DIM, VOCAB)
    summary, folds = retrain_context_heads(heads, rows, folds=3, steps=150, progress=lambda *_: None)
    worn = sorted({p for p in rows.products if p})
    assert summary["worn_products_seen"] == worn and summary["folds"] == 3
    assert folds is not None and len(folds.heads) == 3
    assert folds.fold_by_product == {p: fold_of(p, 3) for p in worn}
    # The shipped head was refit (fresh) on all rows and separates the synthetic classes.
    x = torch.from_numpy(rows.vectors)
    truth = np.array([VOCAB["category"].index(r["category"]) for r in rows.labels])
    assert (heads.heads["category"](x).argmax(1).numpy() == truth).mean() > 0.95
    # A fold fit on an allowed mask uses only those rows.
    left_out = np.array([p is not None and fold_of(p, 3) == 0 for p in rows.products])
    probe = AttributeHeads(DIM, VOCAB)
    fit = _fit_head(probe, "category", rows, ~left_out, seed=0, steps=50)
    assert fit["rows"] == int((~left_out).sum())
    # Fold heads differ from the shipped heads (they were fit on less).
    assert not torch.equal(folds.heads[0].heads["category"].weight, heads.heads["category"].weight)


def test_fold_heads_round_trip_and_judge_only_worn_photos_of_their_fold(tmp_path):
    rows = _rows()
    heads = AttributeHeads(DIM, VOCAB)
    _, folds = retrain_context_heads(heads, rows, folds=2, steps=150, progress=lambda *_: None)
    folds.save(tmp_path)
    loaded = WornFolds.load(tmp_path, heads)
    assert loaded.fold_by_product == folds.fold_by_product
    for a, b in zip(loaded.heads, folds.heads):
        assert torch.allclose(a.heads["category"].weight, b.heads["category"].weight)
        assert a.temperatures["metal"] == b.temperatures["metal"]
        # Attributes the folds do not refit come from the shipped heads.
        assert torch.equal(a.heads["gemstone"].weight, heads.heads["gemstone"].weight)
    product = next(iter(folds.fold_by_product))
    worn = Record(Path(f"{product}.jpg"), "test", {"category": "ring"}, group=product, source="worn")
    shop = Record(Path("x.jpg"), "val", {"category": "ring"}, group=product, source="products")
    unknown = Record(Path("y.jpg"), "test", {"category": "ring"}, group="never-seen", source="worn")
    chosen = judge_by_fold(loaded, heads)([worn, shop, unknown])
    assert chosen[0] is loaded.heads[loaded.fold_by_product[product]]
    assert chosen[1] is heads and chosen[2] is heads
    assert judge_by_fold(None, heads)([worn]) == [heads]
    assert WornFolds.load(tmp_path / "missing", heads) is None


def test_judged_probabilities_use_each_records_heads():
    rows = _rows()
    heads = AttributeHeads(DIM, VOCAB)
    _, folds = retrain_context_heads(heads, rows, folds=2, steps=150, progress=lambda *_: None)
    recognizer = Recognizer(None, heads)
    products = sorted(folds.fold_by_product)
    records = [Record(Path(f"{p}.jpg"), "test", {}, group=p, source="worn") for p in products]
    embeddings = rows.vectors[:len(records)]
    judged = judged_probabilities(recognizer, judge_by_fold(folds, heads), embeddings, records)
    for row, product in enumerate(products):
        own = folds.heads[folds.fold_by_product[product]].probabilities(embeddings[row:row + 1])
        assert np.allclose(judged["category"][row], own["category"][0])
    plain = judged_probabilities(recognizer, None, embeddings, records)
    assert np.allclose(plain["category"], heads.probabilities(embeddings)["category"])


def test_products_covered_by_folds_count_as_unseen(tmp_path):
    (tmp_path / "context_head.json").write_text(json.dumps({"worn_products_seen": ["a", "b", "c"]}))
    (tmp_path / "localizer.json").write_text(json.dumps({"trained": {"worn_products_seen": ["d"]}}))
    assert worn_products_seen(tmp_path) == {"a", "b", "c", "d"}
    (tmp_path / "worn_folds.json").write_text(json.dumps({"fold_by_product": {"a": 0, "b": 1}}))
    assert worn_products_seen(tmp_path) == {"c", "d"}
    # A tower tuned on a product's photos has seen it, whatever the fold heads cover.
    (tmp_path / "robust_tuning.json").write_text(json.dumps({"worn_products_seen": ["a", "e"]}))
    assert worn_products_seen(tmp_path) == {"a", "c", "d", "e"}


def test_training_rows_keep_copies_with_their_photo_and_label_worn_products(tmp_path, tiny_encoder):
    from conftest import make_image

    from jewelsearch.train.composites import Cutout
    from jewelsearch.train.context_heads import WORN_WEIGHT, training_rows
    products = tmp_path / "products"
    products.mkdir()
    rows_csv = ["path,split,category,material,color,stone_type,stone_shape,description"]
    for i, (category, split) in enumerate([("ring", "train"), ("necklace", "train"), ("ring", "val")]):
        (products / f"p{i}.png").write_bytes(make_image(seed=i))
        rows_csv.append(f"p{i}.png,{split},{category},,,,,")
    (products / "labels.csv").write_text("\n".join(rows_csv) + "\n")
    worn = []
    for i, (product, category) in enumerate([("anillo-a", "ring"), ("anillo-a", "ring"), ("collar-b", "pendant")]):
        path = tmp_path / f"w{i}.png"
        path.write_bytes(make_image(seed=10 + i))
        worn.append(Record(path, "test", {"category": category, "metal": "silver"}, group=product, source="worn"))
    alpha = np.ones((20, 20), np.float32)
    cutouts = [Cutout(np.full((20, 20, 3), (250, 0, 0), np.uint8), alpha, None, "ring", "silver")]
    rows = training_rows(tiny_encoder, products, cutouts, [], worn=worn, crops=4, worn_views=2, shop_views=1,
                         progress=lambda *_: None)
    n = len(rows.labels)
    assert rows.vectors.shape[0] == n == len(rows.weights) == len(rows.products) == len(rows.keys)
    assert n == 2 * 2 + 3 * 3 + 4  # shop (train split only) and worn photos with their copies, then crops
    shop = [i for i in range(n) if rows.products[i] is None and not rows.keys[i].startswith("crop/")]
    assert len(shop) == 4 and len({rows.keys[i] for i in shop}) == 2 and all(rows.weights[i] == 1.0 for i in shop)
    worn_rows = [i for i in range(n) if rows.products[i] is not None]
    assert sorted({rows.products[i] for i in worn_rows}) == ["anillo-a", "collar-b"]
    assert all(rows.weights[i] == WORN_WEIGHT for i in worn_rows)
    # Every copy shares its original's key (calibration keeps them together) and label;
    # worn "pendant" is filed under necklace, as shop photos file it.
    for key in {rows.keys[i] for i in worn_rows}:
        same = [i for i in worn_rows if rows.keys[i] == key]
        assert len(same) == 3 and len({rows.labels[i]["category"] for i in same}) == 1
    assert {rows.labels[i]["category"] for i in worn_rows} == {"ring", "necklace"}
    # The copies are different images, not repeats of the original.
    first = [i for i in worn_rows if rows.keys[i] == str(worn[0].path)]
    assert not np.allclose(rows.vectors[first[0]], rows.vectors[first[1]])


def _rows_with_pooled(seed: int = 0) -> TrainingRows:
    """``_rows`` plus pooled maps in which the category shows far more clearly than in the
    embedding (whose class centres are blurred with noise), as on real worn photos."""
    rows = _rows(seed=seed)
    rng = np.random.default_rng(seed + 1)
    centres = rng.normal(0, 1, (4, 5)) * 4
    truth = [VOCAB["category"].index(r["category"]) for r in rows.labels]
    rows.vectors = (rows.vectors + rng.normal(0, 4, rows.vectors.shape)).astype(np.float32)
    rows.pooled = np.stack([centres[c] + rng.normal(0, 0.3, 5) for c in truth]).astype(np.float32)
    return rows


def test_context_heads_read_the_pooled_maps_and_round_trip(tmp_path):
    rows = _rows_with_pooled()
    heads = AttributeHeads(DIM, VOCAB)
    summary, folds = retrain_context_heads(heads, rows, folds=2, steps=200, progress=lambda *_: None)
    assert summary["context_heads"] and "context category" in summary
    assert heads.context_attributes == ("category", "metal") and heads.pooled_dim == 5
    truth = np.array([VOCAB["category"].index(r["category"]) for r in rows.labels])
    with_maps = heads.probabilities(rows.vectors, rows.pooled)["category"].argmax(1)
    embedding_only = heads.probabilities(rows.vectors)["category"].argmax(1)
    # Without the maps the embedding heads answer; with them the context heads do, and better.
    assert (with_maps == truth).mean() > 0.95 > (embedding_only == truth).mean()
    # Maps of the wrong width (another tower) fall back to the embedding heads.
    assert np.allclose(heads.probabilities(rows.vectors, rows.pooled[:, :3])["category"],
                       heads.probabilities(rows.vectors)["category"])
    heads.save(tmp_path)
    again = AttributeHeads.load(tmp_path)
    assert np.allclose(again.probabilities(rows.vectors, rows.pooled)["category"],
                       heads.probabilities(rows.vectors, rows.pooled)["category"], atol=1e-6)
    # Fold context heads (own standardisation included) survive the round trip, and judging
    # with pooled maps uses each worn photo's own fold's context heads.
    folds.save(tmp_path)
    loaded = WornFolds.load(tmp_path, again)
    for a, b in zip(loaded.heads, folds.heads):
        assert a.context_attributes == ("category", "metal")
        assert torch.allclose(a.context_mean, b.context_mean)
        assert not torch.equal(a.context["category"].weight, again.context["category"].weight)
    products = sorted(loaded.fold_by_product)
    records = [Record(Path(f"{p}.jpg"), "test", {}, group=p, source="worn") for p in products]
    rows_of = [rows.products.index(p) for p in products]
    embeddings, pooled = rows.vectors[rows_of], rows.pooled[rows_of]
    judged = judged_probabilities(Recognizer(None, again), judge_by_fold(loaded, again), embeddings, records,
                                  pooled)
    for row, product in enumerate(products):
        own = loaded.heads[loaded.fold_by_product[product]].probabilities(embeddings[row:row + 1],
                                                                          pooled[row:row + 1])
        assert np.allclose(judged["category"][row], own["category"][0], atol=1e-6)


def test_heads_without_context_still_load_and_ignore_pooled_maps(tmp_path):
    heads = AttributeHeads(DIM, VOCAB)
    heads.save(tmp_path)
    assert "context_mean" not in __import__("safetensors.torch", fromlist=["load_file"]).load_file(
        str(tmp_path / "heads.safetensors"))
    again = AttributeHeads.load(tmp_path)
    x = np.random.default_rng(0).normal(size=(3, DIM)).astype(np.float32)
    assert again.context_attributes == () and again.context_width() == 0
    assert np.allclose(again.probabilities(x, np.zeros((3, 5), np.float32))["category"],
                       heads.probabilities(x)["category"])


def test_training_rows_cache_round_trips_and_refuses_another_recipe(tmp_path):
    from jewelsearch.train.context_heads import load_rows, save_rows
    rows = _rows_with_pooled()
    path = tmp_path / "rows.npz"
    save_rows(rows, path, {"crops": 10, "model_id": "m"})
    assert [p.name for p in tmp_path.iterdir()] == ["rows.npz"]  # no temporary file left behind
    again = load_rows(path, {"crops": 10, "model_id": "m"})
    assert np.array_equal(again.vectors, rows.vectors) and np.array_equal(again.pooled, rows.pooled)
    assert again.labels == rows.labels and again.products == rows.products and again.keys == rows.keys
    assert np.array_equal(again.weights, rows.weights)
    assert load_rows(path, {"crops": 11, "model_id": "m"}) is None
    assert load_rows(tmp_path / "absent.npz", {}) is None


def test_context_penalty_is_chosen_by_held_out_loss_and_grows_with_noise():
    from jewelsearch.train.context_heads import CONTEXT_PENALTIES, fit_regularised
    rows = _rows()
    rng = np.random.default_rng(3)
    # Wide pure-noise maps beside a weak embedding signal: an unpenalised head memorises noise.
    rows.vectors = (rows.vectors + rng.normal(0, 3, rows.vectors.shape)).astype(np.float32)
    noise = rng.normal(0, 1, (len(rows.labels), 400)).astype(np.float32)
    inputs = torch.from_numpy(np.concatenate([rows.vectors, noise], axis=1))
    allowed = np.ones(len(rows.labels), dtype=bool)
    _, _, fit = fit_regularised(inputs, VOCAB["category"], "category", rows, allowed, seed=0, steps=150)
    losses = {float(k): v for k, v in fit["calibration_nll_by_l2"].items()}
    assert set(losses) == set(CONTEXT_PENALTIES) and fit["l2"] == min(losses, key=losses.get)
    assert fit["l2"] == max(CONTEXT_PENALTIES)


def test_folds_of_a_widened_context_keep_the_shipped_stone_heads_and_round_trip(tmp_path):
    rows = _rows_with_pooled()
    heads = AttributeHeads(DIM, VOCAB)
    retrain_context_heads(heads, rows, folds=0, steps=50, progress=lambda *_: None)
    torch.manual_seed(0)
    heads.add_context_head("gemstone", torch.nn.Linear(DIM + 5, len(VOCAB["gemstone"])), 1.0)
    # A second block appended to the pooled maps (the piece pooling), read by the refit heads only.
    extra = np.random.default_rng(9).normal(2, 1, (len(rows.labels), 3)).astype(np.float32)
    rows.pooled = np.concatenate([rows.pooled, extra], axis=1)
    summary, folds = retrain_context_heads(heads, rows, folds=2, steps=50, progress=lambda *_: None)
    assert heads.pooled_dim == 8 and heads.context["category"].in_features == DIM + 8
    folds.save(tmp_path)
    heads.save(tmp_path)
    shipped = AttributeHeads.load(tmp_path)
    assert shipped.context["gemstone"].in_features == DIM + 5
    saved = json.loads((tmp_path / "worn_folds.json").read_text())
    assert all(set(t) == {"category", "metal"} for t in saved["context_temperatures"])
    loaded = WornFolds.load(tmp_path, shipped)
    for a, b in zip(loaded.heads, folds.heads):
        assert a.pooled_dim == 8 and torch.allclose(a.context_mean, b.context_mean)
        assert torch.equal(a.context["category"].weight, b.context["category"].weight)
        # Stone heads never saw a worn photo: the folds use the shipped one.
        assert torch.equal(a.context["gemstone"].weight, shipped.context["gemstone"].weight)
        for attribute in ("category", "gemstone"):
            assert np.allclose(a.probabilities(rows.vectors, rows.pooled)[attribute],
                               b.probabilities(rows.vectors, rows.pooled)[attribute], atol=1e-6)


def test_folds_that_standardised_on_their_own_do_not_borrow_the_shipped_stone_heads(tmp_path):
    rows = _rows_with_pooled()
    heads = AttributeHeads(DIM, VOCAB)
    # A first fit: every fold measures its own standardisation (as older fold files did).
    _, folds = retrain_context_heads(heads, rows, folds=2, steps=30, progress=lambda *_: None)
    assert not torch.equal(folds.heads[0].context_mean, heads.context_mean)
    torch.manual_seed(0)
    heads.add_context_head("gemstone", torch.nn.Linear(DIM + 5, len(VOCAB["gemstone"])), 1.0)
    folds.save(tmp_path)
    loaded = WornFolds.load(tmp_path, heads)
    for fold in loaded.heads:
        assert set(fold.context_attributes) == {"category", "metal"}
