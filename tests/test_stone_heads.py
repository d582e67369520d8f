"""Gemstone and cut context heads: added beside the category/metal ones, kept only when better."""

import json

import numpy as np
import pytest
import torch

from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.train.context_heads import TrainingRows, retrain_context_heads
from jewelsearch.train.labelled_data import hash_split
from jewelsearch.train.stone_heads import fit_stone_heads, held_out

VOCAB = {"category": ["ring", "necklace"], "metal": ["yellow gold", "silver"],
         "gemstone": ["none", "ruby", "sapphire"], "cut": ["none", "round", "oval"]}
DIM, POOLED = 6, 5


def _category_heads(seed: int = 0) -> AttributeHeads:
    """Heads with category/metal context heads fitted, as ``jewelsearch train context-heads`` leaves them."""
    rng = np.random.default_rng(seed)
    labels = [{"category": VOCAB["category"][i % 2], "metal": VOCAB["metal"][i % 2]} for i in range(80)]
    vectors = rng.normal(0, 1, (80, DIM)).astype(np.float32)
    vectors[:, 0] += [3.0 * (i % 2) for i in range(80)]
    rows = TrainingRows(vectors, labels, np.ones(80, np.float32), [None] * 80, [f"shop/{i}.jpg" for i in range(80)],
                        rng.normal(0, 1, (80, POOLED)).astype(np.float32))
    heads = AttributeHeads(DIM, VOCAB)
    retrain_context_heads(heads, rows, folds=0, steps=30, progress=lambda *_: None)
    return heads


def _stone_rows(stone_in_pooled: bool, seed: int = 1) -> TrainingRows:
    """Rows whose gemstone and cut show in the pooled maps (or nowhere but noise), never in
    the embedding; keys are file names, so phase one's calibration split holds some out."""
    rng = np.random.default_rng(seed)
    n = 360
    classes = np.arange(n) % 3
    pooled = rng.normal(0, 1, (n, POOLED)).astype(np.float32)
    if stone_in_pooled:
        pooled[np.arange(n), classes] += 4.0
    labels = [{"gemstone": VOCAB["gemstone"][c], "cut": VOCAB["cut"][c]} for c in classes]
    return TrainingRows(rng.normal(0, 1, (n, DIM)).astype(np.float32), labels, np.ones(n, np.float32),
                        [None] * n, [f"products/photo_{i}.jpg" for i in range(n)], pooled)


def test_held_out_is_phase_ones_calibration_split():
    names = [f"photo_{i}.jpg" for i in range(300)]
    assert [held_out(f"gemstones/{n}") for n in names] == [hash_split(n + "calib", 0.1) == "val" for n in names]
    assert 10 < sum(held_out(n) for n in names) < 60


def test_stone_heads_that_read_the_maps_are_kept_and_leave_category_heads_alone(tmp_path):
    heads = _category_heads()
    before = {k: v.detach().clone() for k, v in heads.state_dict().items()}
    rows = _stone_rows(stone_in_pooled=True)
    summary = fit_stone_heads(heads, rows, steps=120, progress=lambda *_: None)
    assert summary["kept"] == ["gemstone", "cut"] and summary["held_out_rows"] > 20
    fit = summary["gemstone"]
    assert fit["held_out_accuracy"] > 0.9 > fit["embedding_head_held_out_accuracy"]
    assert heads.context_attributes == ("category", "metal", "gemstone", "cut")
    # The category/metal context heads and the shared standardisation are untouched.
    for name, value in before.items():
        assert torch.equal(heads.state_dict()[name], value), name
    truth = np.array([VOCAB["gemstone"].index(r["gemstone"]) for r in rows.labels])
    assert (heads.probabilities(rows.vectors, rows.pooled)["gemstone"].argmax(1) == truth).mean() > 0.9
    heads.save(tmp_path)
    again = AttributeHeads.load(tmp_path)
    assert again.context_attributes == heads.context_attributes
    assert np.allclose(again.probabilities(rows.vectors, rows.pooled)["cut"],
                       heads.probabilities(rows.vectors, rows.pooled)["cut"], atol=1e-6)


def test_a_stone_head_no_better_than_the_embedding_head_is_not_kept():
    heads = _category_heads()
    rows = _stone_rows(stone_in_pooled=False)
    # Make the embedding heads answer perfectly on these rows: nothing can beat them (a tie keeps them).
    for attribute in ("gemstone", "cut"):
        truth = [VOCAB[attribute].index(r[attribute]) for r in rows.labels]
        rows.vectors[np.arange(len(truth)), truth] += 6.0
        with torch.no_grad():
            heads.heads[attribute].weight.copy_(torch.eye(3, DIM) * 5)
            heads.heads[attribute].bias.zero_()
    heads.add_context_head("gemstone", torch.nn.Linear(DIM + POOLED, 3), 1.0)  # from an earlier fit
    summary = fit_stone_heads(heads, rows, steps=60, progress=lambda *_: None)
    assert summary["kept"] == [] and heads.context_attributes == ("category", "metal")
    assert "gemstone" not in heads.context and "gemstone" not in heads.context_temperatures


def test_stone_heads_need_the_category_context_heads_first():
    with pytest.raises(ValueError, match="train context-heads"):
        fit_stone_heads(AttributeHeads(DIM, VOCAB), _stone_rows(True), steps=10, progress=lambda *_: None)


@pytest.mark.slow
def test_train_stone_heads_command_writes_heads_and_reuses_its_rows(tmp_path):
    """The CLI end to end on a copy of the shipped model and a few synthetic photos."""
    import csv
    import shutil

    from click.testing import CliRunner
    from PIL import Image

    from jewelsearch.cli import main
    from jewelsearch.embed.model_folder import resolve_model_folder
    from jewelsearch.train.labelled_data import read_gemstones

    model = tmp_path / "model"
    shutil.copytree(resolve_model_folder("jewelclip-lite0"), model)
    rng = np.random.default_rng(0)
    products = tmp_path / "products"
    rows = []
    for i in range(24):
        stone = ("diamond", "pearl", "")[i % 3]
        path = f"train/ring/ring_{i}.png"
        (products / "train/ring").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(products / path)
        rows.append({"path": path, "split": "train", "category": "ring", "material": "gold",
                     "stone_type": stone, "stone_shape": "round" if stone else "", "color": "yellow"})
    with open(products / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for gem in ("ruby", "emerald"):
        (tmp_path / "gems" / gem).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(tmp_path / "gems" / gem / f"{i}.jpg")
    args = ["--home", str(tmp_path / "home"), "--model", str(model), "train", "stone-heads",
            "--products", str(products), "--gemstones", str(tmp_path / "gems"), "--views", "0", "--gem-views", "0",
            "--exposure-views", "1", "--rows-cache", str(tmp_path / "rows.npz")]
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    summary = json.loads((model / "stone_heads.json").read_text())
    # Products without a stone label stay out; gem photos in their val split stay out; shop
    # photos get an exposure-shifted copy each, loose stones none.
    gem_train = sum(r.split == "train" for r in read_gemstones(tmp_path / "gems"))
    assert summary["rows"] == 2 * 16 + gem_train and {"gemstone", "cut"} <= set(summary)
    heads = AttributeHeads.load(model)
    assert heads.context_attributes[:2] == ("category", "metal")
    assert set(heads.context_attributes[2:]) == set(summary["kept"])
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.exit_code == 0 and f"reusing the {2 * 16 + gem_train} embedded rows" in again.output


def _category_rows(pooled_width: int, seed: int = 5) -> TrainingRows:
    rng = np.random.default_rng(seed)
    return TrainingRows(rng.normal(0, 1, (40, DIM)).astype(np.float32),
                        [{"category": "ring", "metal": "silver"}, {"category": "necklace", "metal": "yellow gold"}] * 20,
                        np.ones(40, np.float32), [None] * 40, [f"shop/{i}.jpg" for i in range(40)],
                        rng.normal(3, 2, (40, pooled_width)).astype(np.float32))


def test_refitting_the_category_heads_keeps_the_standardisation_and_the_stone_heads():
    heads = _category_heads()
    stone = _stone_rows(stone_in_pooled=True)
    fit_stone_heads(heads, stone, steps=100, progress=lambda *_: None)
    gem_before = heads.probabilities(stone.vectors, stone.pooled)["gemstone"]
    mean, scale = heads.context_mean.clone(), heads.context_scale.clone()
    category_weight = heads.context["category"].weight.detach().clone()
    retrain_context_heads(heads, _category_rows(POOLED), folds=0, steps=20, progress=lambda *_: None)
    assert heads.context_attributes == ("gemstone", "cut", "category", "metal")
    assert torch.equal(heads.context_mean, mean) and torch.equal(heads.context_scale, scale)
    assert not torch.equal(heads.context["category"].weight, category_weight)  # refit, on rows unlike the first
    assert np.allclose(heads.probabilities(stone.vectors, stone.pooled)["gemstone"], gem_before, atol=1e-6)


def test_wider_rows_append_a_block_the_old_heads_do_not_read(tmp_path):
    heads = _category_heads()
    stone = _stone_rows(stone_in_pooled=True)
    fit_stone_heads(heads, stone, steps=100, progress=lambda *_: None)
    gem_before = heads.probabilities(stone.vectors, stone.pooled)["gemstone"]
    mean = heads.context_mean.clone()
    extra = 7
    rows = _category_rows(POOLED + extra)
    retrain_context_heads(heads, rows, folds=0, steps=20, progress=lambda *_: None)
    assert heads.pooled_dim == POOLED + extra and heads.context_width() == POOLED + extra
    assert heads.context["category"].in_features == DIM + POOLED + extra
    assert heads.context["gemstone"].in_features == DIM + POOLED
    assert torch.equal(heads.context_mean[:DIM + POOLED], mean)
    # The appended block is standardised on the rows that added it.
    assert np.allclose(heads.context_mean[DIM + POOLED:].numpy(), rows.pooled[:, POOLED:].mean(0), atol=1e-5)
    # A stone head answers the same from the old pooling or the wider one.
    wider = np.concatenate([stone.pooled, np.zeros((len(stone.pooled), extra), np.float32)], axis=1)
    assert np.allclose(heads.probabilities(stone.vectors, wider)["gemstone"], gem_before, atol=1e-6)
    assert np.allclose(heads.probabilities(stone.vectors, stone.pooled)["gemstone"], gem_before, atol=1e-6)
    # Without the appended block the category head cannot read the photo: the embedding head answers.
    narrow = heads.probabilities(rows.vectors, rows.pooled[:, :POOLED])["category"]
    assert np.allclose(narrow, heads.probabilities(rows.vectors)["category"], atol=1e-6)
    assert not np.allclose(heads.probabilities(rows.vectors, rows.pooled)["category"], narrow, atol=1e-3)
    heads.save(tmp_path)
    again = AttributeHeads.load(tmp_path)
    for attribute in ("category", "gemstone"):
        assert np.allclose(again.probabilities(rows.vectors, rows.pooled)[attribute],
                           heads.probabilities(rows.vectors, rows.pooled)[attribute], atol=1e-6)


def test_rows_narrower_than_the_context_start_every_context_head_again():
    heads = _category_heads()
    fit_stone_heads(heads, _stone_rows(stone_in_pooled=True), steps=100, progress=lambda *_: None)
    assert "gemstone" in heads.context_attributes
    retrain_context_heads(heads, _category_rows(POOLED - 2), folds=0, steps=20, progress=lambda *_: None)
    assert heads.context_attributes == ("category", "metal") and "gemstone" not in heads.context
    assert heads.pooled_dim == POOLED - 2