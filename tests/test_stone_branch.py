"""Teaching the localiser's stone branch from shop photos' weak labels: only the stone output moves."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from jewelsearch.recognize.localizer import DenseHead
from jewelsearch.train.labelled_data import Record
from jewelsearch.train.localizer import PreparedScenes
from jewelsearch.train.stone_branch import (
    STONE_ROW,
    WeakPhotos,
    branch_from_head,
    seen_shares,
    train_branch,
    weak_loss,
    weakly_labelled,
)

SIDE = 6


def test_weak_loss_punishes_stone_on_a_plain_piece_and_its_absence_on_a_stone_piece():
    cells = torch.zeros(2, SIDE, SIDE, dtype=torch.bool)
    cells[:, 1:4, 1:4] = True
    plain, stone = torch.tensor([False]), torch.tensor([True])
    quiet, lit = torch.full((1, SIDE, SIDE), -4.0), torch.full((1, SIDE, SIDE), -4.0)
    lit[0, 2, 2] = lit[0, 2, 3] = 4.0  # two stone cells on the piece
    assert weak_loss(lit, cells[:1], plain) > weak_loss(quiet, cells[:1], plain)
    assert weak_loss(lit, cells[:1], stone) < weak_loss(quiet, cells[:1], stone)
    # Cells off the piece say nothing.
    off = torch.full((1, SIDE, SIDE), -4.0)
    off[0, 5, 5] = 8.0
    assert weak_loss(off, cells[:1], plain) == pytest.approx(float(weak_loss(quiet, cells[:1], plain)))


def test_weakly_labelled_keeps_only_photos_whose_label_says_either_way(tmp_path):
    records = [Record(tmp_path / "a.jpg", "train", {"gemstone": "none"}),
               Record(tmp_path / "b.jpg", "train", {"gemstone": "diamond"}),
               Record(tmp_path / "c.jpg", "train", {"category": "ring"})]
    assert weakly_labelled(records) == [(tmp_path / "a.jpg", False), (tmp_path / "b.jpg", True)]


def _taps(kind: str, rng: np.random.Generator) -> list[torch.Tensor]:
    """One stride-8 tap: channel 0 is sparkle (a stone), channel 1 is shine. A shop photo's
    polished piece shines all over; in a render only the stone shines, so the renders alone
    teach that shine is stone (the failure seen on real photos)."""
    tap = rng.normal(0, 0.1, (3, SIDE, SIDE)).astype(np.float32)
    if kind == "render":
        tap[1, 2, 2:4] += 1.0
    else:
        tap[1, 1:4, 1:4] += 1.0
    if kind in ("stone", "render"):
        tap[0, 2, 2] += 2.0
        tap[0, 2, 3] += 2.0
    return [torch.from_numpy(tap)]


def _toy(rng, kinds):
    cells = torch.zeros(len(kinds), SIDE, SIDE, dtype=torch.bool)
    cells[:, 1:4, 1:4] = True
    taps = [torch.stack([_taps(k, rng)[0] for k in kinds]).half()]
    names = [f"p{i}.jpg" for i in range(len(kinds))]
    return WeakPhotos(taps, cells, torch.tensor([k == "stone" for k in kinds]), names)


def _shine_is_stone_head() -> DenseHead:
    """A head that passes its input through (identity reductions and mixing) and calls shine
    stone, as the shipped one does on shop photos."""
    head = DenseHead((3,), width=4, hidden=8)
    with torch.no_grad():
        for layer in (head.reduce[0], head.mix[0], head.mix[2]):
            layer.weight.zero_()
            layer.bias.zero_()
        for c in range(3):
            head.reduce[0].weight[c, c] = 1.0
            head.mix[0].weight[c, c, 1, 1] = 1.0
            head.mix[2].weight[c, c, 1, 1] = 1.0
        head.out.weight.zero_()
        head.out.weight[STONE_ROW, 1] = 3.0
        head.out.bias[STONE_ROW] = -1.0
    return head


def test_branch_starts_as_the_head_stone_map_and_learns_that_shine_is_not_stone():
    head = _shine_is_stone_head()
    branch = branch_from_head(head)
    rng = np.random.default_rng(0)
    photos = _toy(rng, ["plain", "stone"] * 40)
    taps = [t.float() for t in photos.taps]
    assert torch.allclose(branch(taps)[:, 0], head(taps)[:, STONE_ROW], atol=1e-6)

    # Composites with exact targets: the two sparkle cells are stone, the rest of the piece metal.
    scene_kinds = ["render"] * 64
    scene_taps = [torch.stack([_taps(k, rng)[0] for k in scene_kinds])]
    share = torch.zeros(64, SIDE, SIDE)
    share[:, 2, 2:4] = 1
    valid = torch.zeros(64, SIDE, SIDE)
    valid[:, 1:4, 1:4] = 1
    scenes = PreparedScenes(scene_taps, valid, share, valid, [(48, 48)] * 64, [[]] * 64, [True] * 64)
    before = {k: v.clone() for k, v in head.state_dict().items()}
    start = seen_shares(branch_from_head(head), photos)
    assert start["plain_with_stone_cell"] > 0.9

    trained, fitted = train_branch(head, scenes, photos, epochs=8, scene_batch=16, photo_batch=16, lr=0.01,
                                   progress=lambda *_: None)
    after = seen_shares(trained, photos)
    assert after["plain_with_stone_cell"] < 0.1 and after["stone_with_stone_cell"] > 0.9
    assert fitted["best_epoch"] > 0
    for name, value in head.state_dict().items():  # the head (and so the piece map) is untouched
        assert torch.equal(value, before[name]), name


def test_a_localiser_with_a_stone_branch_saves_and_loads_it(tmp_path):
    from jewelsearch.recognize.localizer import Localizer

    class FakeEncoder:  # ``load`` asks the tower for dense maps; saving needs nothing of it
        pass
    head = _shine_is_stone_head()
    branch = branch_from_head(head)
    with torch.no_grad():
        branch.out.bias += 1.0
    localizer = Localizer(FakeEncoder(), head, {"in_channels": [3], "width": 4, "hidden": 8}, branch)
    localizer.save(tmp_path)
    weights = load_file(str(tmp_path / "localizer.safetensors"))
    assert "stone_branch.out.bias" in weights and "out.bias" in weights
    taps = [torch.randn(2, 3, SIDE, SIDE)]
    piece, stone = localizer.grids(taps)
    assert np.allclose(stone, torch.sigmoid(branch(taps)[:, 0]).detach().numpy(), atol=1e-6)
    assert np.allclose(piece, torch.sigmoid(head(taps)[:, 0]).detach().numpy(), atol=1e-6)


# ----- the command, end to end on the bundled model --------------------------------------

def _render_folder(folder: Path, count: int) -> None:
    """Rings on white with an exact id mask: a gold band (metal, 120) and a red stone (gem, 240)."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    with open(folder / "labels.jsonl", "w") as fh:
        for index in range(count):
            rgb = np.full((96, 96, 3), 250, np.uint8)
            mask = np.zeros((96, 96), np.uint8)
            rgb[30:70, 20:76] = (205, 165, 60)
            mask[30:70, 20:76] = 120
            rgb[40:56, 40:56] = (200, 20, 40)
            mask[40:56, 40:56] = 240
            Image.fromarray(rgb).save(folder / "images" / f"{index:05d}.png")
            Image.fromarray(mask).save(folder / "masks" / f"{index:05d}.png")
            fh.write(json.dumps({"index": index, "category": "ring", "metal": "yellow gold", "gemstone": "ruby",
                                 "image": f"images/{index:05d}.png", "mask": f"masks/{index:05d}.png",
                                 "bbox": [20, 30, 76, 70]}) + "\n")


def _products_folder(root: Path) -> None:
    """Six demo catalog renders as shop photos (pieces the localiser finds), labelled plain or not."""
    from jewelsearch.ingest.demo import demo_dir, demo_items
    rows = []
    for index, item in enumerate(list(demo_items(demo_dir()))[:6]):
        split = "val" if index == 5 else "train"
        path = Path(split) / "ring" / f"p{index}.jpg"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(item.image_bytes)
        rows.append({"path": str(path), "split": split, "category": "ring", "material": "silver",
                     "stone_type": "sapphire" if index % 2 else "none", "stone_shape": "", "color": "",
                     "description": "", "source_name": ""})
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_train_stone_branch_command_leaves_the_head_alone(tmp_path):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    from jewelsearch.embed.model_folder import bundled_model_dir
    model = tmp_path / "model"
    shutil.copytree(bundled_model_dir("jewelclip-lite0"), model)
    before = load_file(str(model / "localizer.safetensors"))
    _render_folder(tmp_path / "renders", 14)
    _products_folder(tmp_path / "products")
    result = CliRunner().invoke(main, ["--model", str(model), "train", "stone-branch", "--renders",
                                       str(tmp_path / "renders"), "--products", str(tmp_path / "products"),
                                       "--scenes", "12", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    after = load_file(str(model / "localizer.safetensors"))
    head = {n for n in before if not n.startswith("stone_branch.")}
    for name in head:  # the head is untouched: the piece map cannot move
        assert torch.equal(after[name], before[name]), name
    assert {n for n in after if n.startswith("stone_branch.")} == {"stone_branch." + n for n in head}
    summary = json.loads((model / "localizer.json").read_text())["stone_branch"]
    assert summary["composites"] == 12 and summary["epochs"] == 1
    assert summary["shop_photos"] + summary["left_out_no_piece"] == 5  # the train photos only
    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.localizer import Localizer
    assert Localizer.load(load_encoder(str(model)), model).stone_branch is not None


def test_train_stone_branch_needs_a_localiser(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    _render_folder(tmp_path / "renders", 2)
    _products_folder(tmp_path / "products")
    result = CliRunner().invoke(main, ["--model", str(tiny_model_dir), "train", "stone-branch", "--renders",
                                       str(tmp_path / "renders"), "--products", str(tmp_path / "products")])
    assert result.exit_code != 0 and "no localiser" in result.output
