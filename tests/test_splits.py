"""The split rules put the same photos on the same side as before they were gathered.

Every expected value below was computed with the rules where they lived before
``jewelsearch.train.splits`` (labelled_data, worn_folds, localizer, robust_tuning,
context_heads, stone_branch), so a changed salt, fraction or hash fails here.
"""

from __future__ import annotations

import doctest
import hashlib
import json
from pathlib import Path

import pytest

from jewelsearch.train import splits
from jewelsearch.train.labelled_data import Record


def test_docstring_examples_hold():
    assert doctest.testmod(splits).failed == 0


def test_hash_split_pins():
    names = ["ring_001.jpg", "ring_002.jpg", "pendant_017.png", "ruby/img_03.jpg", "sapphire/0042.jpg",
             "earring_9.webp", "a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert [splits.hash_split(n) for n in names] == ["train"] * 10
    assert [n for n in names if splits.hash_split(n, 0.5) == "val"] == [
        "ring_002.jpg", "ruby/img_03.jpg", "earring_9.webp", "a.jpg", "c.jpg", "d.jpg"]
    assert [i for i in range(40) if splits.hash_split(f"ruby/{i:04d}.jpg") == "val"] == [6, 10, 30, 39]


def test_calibration_pins():
    assert [i for i in range(88) if splits.in_calibration_split(f"p{i}.jpg")] == [17, 26, 39, 73, 83, 87]
    assert [i for i in range(60) if splits.in_context_head_calibration(f"products/{i}.jpg")] == [1, 16, 34, 35, 52, 57]
    assert splits.in_context_head_calibration("crop/3") and not splits.in_context_head_calibration("worn/b.jpg")


def test_stone_branch_and_render_pins():
    assert [i for i in range(40) if splits.in_stone_branch_check(f"{i}.jpg")] == [1, 2, 7, 14, 17, 20, 33, 34]
    assert [i for i in range(30) if splits.held_out_render(i)] == [0, 7, 14, 21, 28]


def test_render_refit_tuning_pins():
    assert [i for i in range(20) if splits.in_render_refit_tuning(f"tune-renders-4111/images/{i:05d}.jpg")] == \
        [0, 3, 7, 14]


def test_worn_fold_pins():
    products = ["prod-1", "prod-2", "prod-3", "necklace_a", "ring_b", "x"]
    assert [splits.fold_of(p, 5) for p in products] == [1, 3, 4, 2, 1, 3]
    assert [splits.fold_of(p, 3) for p in products] == [2, 2, 2, 1, 1, 1]


def test_worn_background_pins():
    records = [Record(Path(f"worn/{p}_{k}.jpg"), "test", {}, group=p, source="worn")
               for p in ("p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8") for k in range(2)]
    background, evaluated = splits.worn_background_split(records)
    assert sorted({splits.product_of(r) for r in background}) == ["p6", "p8"]
    assert len(background) + len(evaluated) == len(records)
    background, _ = splits.worn_background_split(records, {"p6_0.jpg"})
    assert sorted({splits.product_of(r) for r in background}) == ["p8"]
    assert [f"w{i}" for i in range(20) if splits.in_worn_background_half(f"w{i}")] == [
        "w0", "w1", "w7", "w10", "w14", "w15", "w17"]


def test_robust_tuning_pins():
    paths = [f"/data/products/train/{i}.jpg" for i in range(60)]
    assert [i for i, p in enumerate(paths) if splits.in_robust_held_out(p)] == [4, 15, 37, 46, 48]
    unlucky = [p for p in paths if not splits.in_robust_held_out(p)][:6]
    assert splits.robust_held_out(unlucky) == [False, True, False, False, False, False]
    assert splits.robust_held_out(unlucky[:1]) == [False]


def test_the_old_homes_use_the_same_rules():
    from jewelsearch.train import labelled_data, localizer, robust_tuning, worn_folds
    assert labelled_data.hash_split is splits.hash_split
    assert labelled_data.in_calibration_split is splits.in_calibration_split
    assert labelled_data.worn_background_split is splits.worn_background_split
    assert labelled_data.product_of is splits.product_of
    assert worn_folds.fold_of is splits.fold_of
    assert localizer.held_out_render is splits.held_out_render
    assert robust_tuning.HELD_OUT_FRACTION == splits.ROBUST_HELD_OUT_FRACTION
    paths = [f"x/{i}.jpg" for i in range(30)]
    assert robust_tuning.held_out_photos(paths).tolist() == splits.robust_held_out(paths)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "gemstones").is_dir() or not (SHARED / "worn" / "labels.csv").is_file(),
                    reason="needs ../shared/data")
def test_real_sets_split_as_before():
    from jewelsearch.train.labelled_data import read_gemstones, read_worn

    def digest(value) -> str:
        return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]

    gems = read_gemstones(SHARED / "gemstones")
    val = sorted(f"{r.path.parent.name}/{r.path.name}" for r in gems if r.split == "val")
    assert (len(gems), len(val), digest(val)) == (2042, 432, "4bef138818bb1878")
    worn = read_worn(SHARED / "worn")
    background = sorted({splits.product_of(r) for r in splits.worn_background_split(worn)[0]})
    assert (len(worn), len(background), digest(background)) == (197, 57, "4de61c1ded8327c2")
    folds = sorted({splits.product_of(r): splits.fold_of(splits.product_of(r), 5) for r in worn}.items())
    assert digest(folds) == "1c39c2e917f8cd37"
