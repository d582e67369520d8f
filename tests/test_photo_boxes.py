"""Hand-drawn boxes: reading them, and real scenery whose boxed jewelry becomes labelled jewelry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from jewelsearch.train.composites import Cutout, make_scene, photo_background
from jewelsearch.train.photo_boxes import BoxedPhoto, BoxFileError, ellipse_mask, read_boxes


def test_read_boxes_groups_rows_by_file_name(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("path,x0,y0,x1,y1\nsub/a.jpg,1,2,30,40\na.jpg,50,50,60,70\nb.jpg,0,0,5.0,5\n")
    assert read_boxes(path) == {"a.jpg": [(1, 2, 30, 40), (50, 50, 60, 70)], "b.jpg": [(0, 0, 5, 5)]}


@pytest.mark.parametrize("text, message", [
    ("path,x0,y0,x1\na.jpg,1,2,3\n", "missing column"),
    ("path,x0,y0,x1,y1\na.jpg,1,2,x,4\n", "line 2: coordinates must be numbers"),
    ("path,x0,y0,x1,y1\na.jpg,1,2,30,40\na.jpg,30,2,10,40\n", "line 3: need 0 <= x0 < x1"),
])
def test_bad_box_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "boxes.csv"
    path.write_text(text)
    with pytest.raises(BoxFileError, match=message):
        read_boxes(path)


def test_shrunk_photo_scales_its_boxes():
    photo = BoxedPhoto.shrunk(Image.new("RGB", (1024, 512)), [(100, 100, 300, 200), (1000, 500, 1024, 512)])
    assert photo.image.size == (512, 256)
    assert photo.boxes == [(50, 50, 150, 100), (500, 250, 512, 256)]


def test_ellipse_mask_fills_the_box_centre_not_its_corners():
    mask = ellipse_mask(50, 80, [(10, 10, 50, 30)])
    assert mask[20, 30] == 1 and mask[10, 10] == 0 and mask[29, 49] == 0
    assert mask[:, :10].sum() == 0 and mask[31:].sum() == 0
    # An ellipse covers pi/4 of its box.
    assert mask.sum() == pytest.approx(np.pi / 4 * 40 * 20, rel=0.05)


def _photo_with_red_piece() -> BoxedPhoto:
    image = Image.new("RGB", (300, 200), (90, 90, 90))
    ImageDraw.Draw(image).ellipse((200, 120, 259, 159), fill=(255, 0, 0))  # a round piece, boxed tightly
    return BoxedPhoto(image, [(200, 120, 260, 160)])


def test_boxed_scenery_carries_its_piece_through_crop_resize_and_flip():
    photo = _photo_with_red_piece()
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(40):
        scenery = photo_background(rng, photo, 128, 160)
        red = (scenery.pixels[..., 0] > 200) & (scenery.pixels[..., 1] < 60)
        # Wherever the crop shows the piece, the mask says jewelry there.
        assert scenery.piece.shape == (128, 160)
        if red.sum() > 20:
            assert scenery.piece[red].mean() > 0.9
        for x0, y0, x1, y1 in scenery.boxes:
            found += 1
            assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 128
            inside = red[y0:y1, x0:x1].sum()
            assert inside >= 0.8 * red.sum() and inside >= 0.6 * (x1 - x0) * (y1 - y0)
        if not red.any():
            assert not scenery.boxes
    assert found >= 10


def test_plain_photos_keep_the_scene_as_it_was():
    """Without boxes a real photo is scenery only, drawn from the same random stream as before."""
    image = _photo_with_red_piece().image
    cutout = Cutout(np.full((20, 20, 3), 200, np.uint8), np.ones((20, 20), np.float32), np.zeros((20, 20)), "ring")
    plain = make_scene(np.random.default_rng(5), [cutout], [image], photo_share=1.0)
    boxed = make_scene(np.random.default_rng(5), [cutout], [BoxedPhoto(image, [])], photo_share=1.0)
    assert np.array_equal(np.asarray(plain.image), np.asarray(boxed.image))
    assert plain.boxes == boxed.boxes and plain.gem_known


def test_scene_on_boxed_scenery_lists_the_real_piece_without_a_category():
    photo = _photo_with_red_piece()
    cutout = Cutout(np.full((20, 20, 3), 200, np.uint8), np.ones((20, 20), np.float32), np.zeros((20, 20)), "ring")
    rng = np.random.default_rng(1)
    real = 0
    for _ in range(30):
        scene = make_scene(rng, [cutout], [photo], photo_share=1.0)
        assert len(scene.boxes) == len(scene.categories) == len(scene.metals)
        unlabelled = [c for c in scene.categories if c is None]
        real += len(unlabelled)
        if unlabelled:
            # The real piece's stones are not marked, so no stone target comes from this scene.
            assert not scene.gem_known
        for x0, y0, x1, y1 in scene.boxes:
            assert scene.piece[y0:y1, x0:x1].max() > 0.5
    assert real >= 5


def test_region_evaluation_scores_the_top_box_against_hand_boxes(tmp_path, tiny_encoder):
    """``top_box_on_a_piece`` is the share of hand-boxed photos whose most confident box (the one
    a region query uses) is centred on a piece; box AP counts every box."""
    from jewelsearch.evaluate.regions import evaluate_regions
    from jewelsearch.recognize.localizer import Box, Localization
    from jewelsearch.recognize.recognizer import Recognizer
    from jewelsearch.train.labelled_data import Record

    class FixedLocalizer:
        """Answers every photo with the same boxes, most confident first."""
        def __init__(self, boxes):
            self.boxes = boxes

        def locate(self, image, **_):
            return Localization(self.boxes, np.zeros((4, 4)), np.zeros((4, 4)))

        def usable_boxes(self, found):
            return found.boxes

    records = []
    for n in range(4):
        path = tmp_path / f"p{n}.png"
        Image.new("RGB", (100, 80), (40 * n, 90, 90)).save(path)
        records.append(Record(path, "test", {"category": "ring"}, group=f"g{n // 2}"))
    hand = {"p0.png": [(10, 10, 30, 30)], "p1.png": [(60, 40, 90, 70)], "p2.png": [(10, 10, 30, 30)]}
    localizer = FixedLocalizer([Box(12, 12, 30, 28, 0.9), Box(60, 40, 88, 70, 0.5)])
    report = evaluate_regions(Recognizer(tiny_encoder), localizer, records, hand)
    # The top box sits on the piece in p0 and p2, not in p1 (where the second box does).
    assert report["hand_boxed"]["photos"] == 3
    assert report["hand_boxed"]["top_box_on_a_piece"] == pytest.approx(2 / 3, abs=1e-4)
    assert 0.5 < report["hand_boxed"]["box_ap50"] < 1
    assert report["photos_with_a_box"] == 4
    assert report["same_product"]["whole_to_whole"]["queries"] == 4


def test_piece_crop_is_skipped_when_the_piece_fills_the_photo():
    from jewelsearch.recognize.localizer import Box, piece_crop
    photo = Image.new("RGB", (400, 300))
    assert piece_crop(photo, []) is None
    small = piece_crop(photo, [Box(300, 200, 340, 240, 0.9), Box(0, 0, 390, 290, 0.5)])
    assert small is not None and small.size == (52, 52)  # the most confident box, with context
    assert piece_crop(photo, [Box(40, 20, 330, 280, 0.9)]) is None


class _RedPieceLocalizer:
    """Finds the red pixels: a stand-in localiser that is right by construction."""
    def __init__(self, miss: bool = False):
        self.miss = miss

    def locate(self, image, **_):
        from jewelsearch.recognize.localizer import Box, Localization
        pixels = np.asarray(image).astype(int)
        ys, xs = np.nonzero((pixels[..., 0] > 180) & (pixels[..., 1] < 80))
        boxes = [] if not len(ys) else [Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, 0.9)]
        if self.miss:
            boxes = [Box(0, 0, 20, 20, 0.9)]
        return Localization(boxes, np.zeros((4, 4)), np.zeros((4, 4)))

    def usable_boxes(self, found):
        return found.boxes


def test_shopper_photos_paste_a_catalog_piece_and_score_both_queries(tmp_path, tiny_encoder):
    from jewelsearch.evaluate.shopper import evaluate_shopper_photos
    paths = []
    for n, colour in enumerate([(230, 20, 20), (200, 40, 30), (90, 90, 250)]):
        image = Image.new("RGB", (120, 120), (255, 255, 255))
        ImageDraw.Draw(image).ellipse((30 + n * 5, 30, 90, 90), fill=colour)
        paths.append(tmp_path / f"c{n}.png")
        image.save(paths[-1])
    scenery = [Image.new("RGB", (300, 260), (60, 120, 60))]
    report = evaluate_shopper_photos(tiny_encoder, _RedPieceLocalizer(), paths, scenery, count=12, seed=3)
    assert report["queries"] == 12 and report["catalog_photos"] == 3 and report["pasted_pieces"] == 3
    # The blue piece is never found by a red-finding localiser; the red ones always are.
    assert 0 < report["top_box_on_the_piece"] < 1
    assert report["piece_among_the_boxes"] == report["top_box_on_the_piece"]  # one box at most
    for mode in ("whole", "region", "box_picked_by_the_shopper"):
        assert 0 <= report[mode]["recall@1"] <= report[mode]["recall@10"] == 1.0  # only 3 photos
    missed = evaluate_shopper_photos(tiny_encoder, _RedPieceLocalizer(miss=True), paths, scenery, count=12, seed=3)
    assert missed["top_box_on_the_piece"] == 0


def test_paste_piece_marks_the_pasted_piece():
    from jewelsearch.train.composites import paste_piece
    cutout = Cutout(np.full((30, 30, 3), (250, 0, 0), np.uint8), np.ones((30, 30), np.float32), None, "ring")
    rng = np.random.default_rng(0)
    for _ in range(5):
        scene = paste_piece(rng, cutout, Image.new("RGB", (300, 200), (0, 90, 0)), size=(0.1, 0.2))
        (x0, y0, x1, y1), = scene.boxes
        pixels = np.asarray(scene.image).astype(int)
        red = (pixels[..., 0] > 150) & (pixels[..., 1] < 60)
        assert red[y0:y1, x0:x1].sum() >= 0.95 * red.sum() > 0
        assert 0.08 * min(scene.image.size) <= max(x1 - x0, y1 - y0) <= 0.3 * min(scene.image.size)
        assert scene.categories == ["ring"]


def test_region_query_searches_the_whole_photo_when_the_piece_fills_it():
    from jewelsearch.recognize.query_region import choose_region
    big = Image.new("RGB", (200, 200), (255, 255, 255))
    ImageDraw.Draw(big).ellipse((10, 10, 190, 190), fill=(230, 20, 20))
    choice = choose_region(big, _RedPieceLocalizer())
    assert choice.used == "whole" and choice.image is big and "fills most of the photo" in choice.note
    assert choice.boxes  # still listed, so the page can offer the piece
    small = Image.new("RGB", (400, 300), (60, 120, 60))
    ImageDraw.Draw(small).ellipse((300, 200, 340, 240), fill=(230, 20, 20))
    choice = choose_region(small, _RedPieceLocalizer())
    assert choice.used == "box" and choice.box == [300, 200, 341, 241] and choice.image.size[0] < 100


@pytest.mark.parametrize("text, message", [
    ("path,x0,y0,x1,y1\na.jpg,5,5,2,9\n", "need 0 <= x0 < x1"),
    ("name,left\na.jpg,1\n", "missing column"),
])
def test_train_localizer_rejects_a_bad_boxes_file_before_any_work(tmp_path, tiny_model_dir, text, message):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    renders = tmp_path / "renders"
    renders.mkdir()
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(text)
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "--model", str(tiny_model_dir),
                                       "train", "localizer", "--renders", str(renders), "--boxes", str(boxes)])
    assert result.exit_code != 0 and message in result.output
    assert not list(tiny_model_dir.glob("localizer*"))  # nothing written


def test_train_localizer_refuses_boxes_on_protected_photos(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    renders = tmp_path / "renders"
    renders.mkdir()
    (tmp_path / "boxes.csv").write_text("path,x0,y0,x1,y1\nheld-out.jpg,1,1,9,9\n")
    (tmp_path / "protect.csv").write_text("path,x0,y0,x1,y1\nheld-out.jpg,2,2,8,8\n")
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "--model", str(tiny_model_dir),
                                       "train", "localizer", "--renders", str(renders), "--boxes",
                                       str(tmp_path / "boxes.csv"), "--protect", str(tmp_path / "protect.csv")])
    assert result.exit_code != 0 and "held-out.jpg" in result.output and "--protect" in result.output


def test_shopper_photos_need_a_plain_sweep_catalog_and_scenery(tmp_path, tiny_encoder):
    from jewelsearch.evaluate.shopper import evaluate_shopper_photos
    busy = tmp_path / "busy.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(busy)
    with pytest.raises(ValueError, match="plain sweep"):
        evaluate_shopper_photos(tiny_encoder, _RedPieceLocalizer(), [busy], [Image.new("RGB", (50, 50))])


def test_train_localizer_needs_a_path_column_to_protect(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    renders = tmp_path / "renders"
    renders.mkdir()
    (tmp_path / "protect.csv").write_text("name\nheld-out.jpg\n")
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "--model", str(tiny_model_dir),
                                       "train", "localizer", "--renders", str(renders),
                                       "--protect", str(tmp_path / "protect.csv")])
    assert result.exit_code != 0 and "needs a path column" in result.output
