"""Refitting the localiser's stone channel on shop photos' weak labels: only the stone row moves."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from jewelsearch.embed.labelled_data import Record
from jewelsearch.embed.localizer import DenseHead
from jewelsearch.embed.stone_channel import STONE_ROW, WeakPhotos, refit_stone_row, weak_loss, weakly_labelled

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


def _hidden(kind: str, rng: np.random.Generator) -> torch.Tensor:
    """Channel 0 is sparkle (a stone), channel 1 is shine. A shop photo's polished piece shines
    all over; in a render only the stone shines, so the renders alone teach that shine is stone
    (the failure seen on real photos)."""
    hidden = rng.normal(0, 0.1, (4, SIDE, SIDE)).astype(np.float32)
    if kind == "render":
        hidden[1, 2, 2:4] += 1.0
    else:
        hidden[1, 1:4, 1:4] += 1.0
    if kind in ("stone", "render"):
        hidden[0, 2, 2] += 2.0
        hidden[0, 2, 3] += 2.0
    return torch.from_numpy(hidden)


def test_refit_moves_the_stone_row_alone_and_learns_that_shine_is_not_stone():
    torch.manual_seed(0)
    head = DenseHead((3,), width=4, hidden=4)
    with torch.no_grad():  # the failure seen on shop photos: shine alone reads as stone
        head.out.weight[STONE_ROW] = 0
        head.out.weight[STONE_ROW, 1, 0, 0] = 3.0
        head.out.bias[STONE_ROW] = -1.0
    before = {k: v.clone() for k, v in head.state_dict().items()}
    rng = np.random.default_rng(0)
    kinds = ["plain", "stone"] * 20
    cells = torch.zeros(len(kinds), SIDE, SIDE, dtype=torch.bool)
    cells[:, 1:4, 1:4] = True
    photos = WeakPhotos(torch.stack([_hidden(k, rng) for k in kinds]).half(), cells,
                        torch.tensor([k == "stone" for k in kinds]))
    # Composites with exact targets: the two sparkle cells are stone, the rest of the piece metal.
    scenes = torch.stack([_hidden("render", rng) for _ in range(10)])
    share = torch.zeros(10, SIDE, SIDE)
    share[:, 2, 2:4] = 1
    valid = cells[:10].float()

    def seen(kind):
        logits = torch.einsum("nchw,c->nhw", photos.hidden.float(), head.out.weight[STONE_ROW, :, 0, 0]) \
            + head.out.bias[STONE_ROW]
        chosen = photos.has_stone if kind == "stone" else ~photos.has_stone
        return float(((logits >= 0) & cells).flatten(1).any(1)[chosen].float().mean())

    assert seen("plain") == 1.0
    history = refit_stone_row(head, scenes, share, valid, photos, steps=300, lr=0.05)
    assert seen("plain") == 0.0 and seen("stone") == 1.0
    assert history[-1]["photos"] < history[0]["photos"]
    after = head.state_dict()
    for name, value in before.items():
        if name.startswith("out."):
            kept = [r for r in range(value.shape[0]) if r != STONE_ROW]
            assert torch.equal(after[name][kept], value[kept])  # the piece row
            assert not torch.equal(after[name][STONE_ROW], value[STONE_ROW])
        else:
            assert torch.equal(after[name], value), name


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
    from jewelsearch.demo_catalog import demo_dir, demo_items
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
def test_train_stone_channel_command_changes_only_the_stone_row(tmp_path):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    from jewelsearch.embed.model_folder import bundled_model_dir
    model = tmp_path / "model"
    shutil.copytree(bundled_model_dir("jewelclip-lite0"), model)
    before = load_file(str(model / "localizer.safetensors"))
    _render_folder(tmp_path / "renders", 14)
    _products_folder(tmp_path / "products")
    result = CliRunner().invoke(main, ["--model", str(model), "train-stone-channel", "--renders",
                                       str(tmp_path / "renders"), "--products", str(tmp_path / "products"),
                                       "--scenes", "12", "--steps", "5"])
    assert result.exit_code == 0, result.output
    after = load_file(str(model / "localizer.safetensors"))
    assert set(after) == set(before)
    for name, value in before.items():
        if name.startswith("out."):
            assert torch.equal(after[name][:STONE_ROW], value[:STONE_ROW]), name
        else:
            assert torch.equal(after[name], value), name
    refit = json.loads((model / "localizer.json").read_text())["stone_channel_refit"]
    assert refit["composites"] == 12 and refit["steps"] == 5
    assert refit["shop_photos"] + refit["left_out_no_piece"] == 5  # the train photos only


def test_train_stone_channel_needs_a_localiser(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    _render_folder(tmp_path / "renders", 2)
    _products_folder(tmp_path / "products")
    result = CliRunner().invoke(main, ["--model", str(tiny_model_dir), "train-stone-channel", "--renders",
                                       str(tmp_path / "renders"), "--products", str(tmp_path / "products")])
    assert result.exit_code != 0 and "no localiser" in result.output
