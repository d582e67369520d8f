"""Finding the piece, searching by region, evidence and explanations."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from jewelsearch.embed.preprocess import letterbox
from jewelsearch.recognize.evidence import colour_name, metal_tone
from jewelsearch.recognize.localizer import letterbox_geometry
from jewelsearch.train import region_metrics as metrics
from jewelsearch.train.composites import Cutout, make_scene

# ----- pure helpers -----------------------------------------------------------------

def test_box_average_precision_known_cases():
    truth = [[(0, 0, 10, 10)], [(5, 5, 15, 15)]]
    perfect = [[((0, 0, 10, 10), 0.9)], [((5, 5, 15, 15), 0.8)]]
    assert metrics.box_average_precision(perfect, truth) == pytest.approx(1.0)
    # A confident false positive ranked first: precision 1/2 then 2/3; the envelope makes both 2/3.
    noisy = [[((50, 50, 60, 60), 0.99), ((0, 0, 10, 10), 0.9)], [((5, 5, 15, 15), 0.8)]]
    assert metrics.box_average_precision(noisy, truth) == pytest.approx(2 / 3)
    # A duplicate detection of the same piece is a false positive, and a miss caps recall.
    assert metrics.box_average_precision([[((0, 0, 10, 10), 0.9), ((0, 0, 10, 10), 0.8)], []], truth) \
        == pytest.approx(0.5)
    assert metrics.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_letterbox_geometry_matches_preprocess():
    image = Image.new("RGB", (300, 120), (0, 0, 0))
    square = np.asarray(letterbox(image, 224))
    scale, ox, oy, cw, ch = letterbox_geometry(300, 120, 224)
    dark = np.nonzero(square.max(axis=2) < 128)
    assert (dark[1].min(), dark[0].min(), dark[1].max() + 1, dark[0].max() + 1) == (ox, oy, ox + cw, oy + ch)


def test_colour_and_tone_names():
    assert colour_name((20, 40, 200)) == "blue"
    assert colour_name((200, 20, 30)) == "red"
    assert colour_name((30, 160, 60)) == "green"
    assert colour_name((245, 245, 245)) == "colourless"
    assert metal_tone((212, 175, 55)) == "yellow"
    assert metal_tone((183, 110, 121)) == "rose"
    assert metal_tone((200, 200, 205)) == "white"


def test_scenes_masks_and_boxes_agree():
    rng = np.random.default_rng(3)
    alpha = np.zeros((40, 60), np.float32)
    alpha[5:35, 10:50] = 1
    gem = np.zeros_like(alpha)
    gem[10:20, 20:30] = 1
    cutout = Cutout(np.full((40, 60, 3), 200, np.uint8), alpha, gem)
    for _ in range(10):
        scene = make_scene(rng, [cutout])
        h, w = scene.piece.shape
        assert scene.image.size == (w, h)
        assert (scene.gem <= scene.piece + 1e-6).all()
        for x0, y0, x1, y1 in scene.boxes:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert scene.piece[y0:y1, x0:x1].max() > 0.5
        if not scene.boxes:
            assert scene.piece.max() <= 0.5


def test_context_crops_carry_the_piece_category():
    from jewelsearch.train.context_heads import context_crops
    alpha = np.ones((30, 30), np.float32)
    ring = Cutout(np.full((30, 30, 3), (250, 0, 0), np.uint8), alpha, None, "ring", "rose gold")
    pendant = Cutout(np.full((30, 30, 3), (0, 0, 250), np.uint8), alpha, None, "pendant")
    images, rows = context_crops([ring, pendant], [], 12, seed=1)
    labels = [row["category"] for row in rows]
    assert len(images) == len(labels) == 12 and set(labels) <= {"ring", "necklace"}
    # The metal travels with the piece; a cut-out without one gives none.
    assert all(row["metal"] == ("rose gold" if row["category"] == "ring" else None) for row in rows)
    for image, label in zip(images, labels):
        pixels = np.asarray(image).reshape(-1, 3).astype(int)
        red = ((pixels[:, 0] - pixels[:, 2] > 100) & (pixels[:, 1] < 80)).mean() > 0.02
        blue = ((pixels[:, 2] - pixels[:, 0] > 100) & (pixels[:, 1] < 80)).mean() > 0.02
        # The crop shows the labelled piece (pendants are filed under necklace, as in shop photos).
        assert (red and label == "ring") or (blue and label == "necklace")


# ----- the API with a model that has no localiser (the tiny test model) ----------------

@pytest.fixture
def two_items(client, auth):
    ids = []
    for seed in range(2):
        data = {"image": (io.BytesIO(make_image(seed=seed, size=(120, 80))), "x.png"), "category": "ring",
                "metal": "yellow gold"}
        ids.append(client.post("/api/items", data=data, headers=auth, content_type="multipart/form-data").json["id"])
    return ids


def test_image_search_says_which_region_it_used(client, two_items):
    data = {"image": (io.BytesIO(make_image(seed=5, size=(200, 100))), "q.png")}
    body = client.post("/api/search", data=data, content_type="multipart/form-data").json
    assert body["region"]["used"] == "whole" and "no localiser" in body["region"]["note"]
    assert body["region"]["image_size"] == [200, 100]
    data = {"image": (io.BytesIO(make_image(seed=5, size=(200, 100))), "q.png"), "box": "10,10,90,60"}
    body = client.post("/api/search", data=data, content_type="multipart/form-data").json
    assert body["region"]["used"] == "box" and body["region"]["box"] == [10, 10, 90, 60]


@pytest.mark.parametrize("box", ["10,10,500,60", "50,50,40,60", "1,2,3", "a,b,c,d", "-5,0,10,10"])
def test_bad_boxes_are_400(client, two_items, box):
    data = {"image": (io.BytesIO(make_image(seed=5, size=(200, 100))), "q.png"), "box": box}
    response = client.post("/api/search", data=data, content_type="multipart/form-data")
    assert response.status_code == 400 and "box" in response.json["error"]


def test_bad_region_is_400(client, two_items):
    data = {"image": (io.BytesIO(make_image(seed=5)), "q.png"), "region": "left"}
    response = client.post("/api/search", data=data, content_type="multipart/form-data")
    assert response.status_code == 400 and "region" in response.json["error"]


def test_explain_by_text_and_item(client, two_items):
    body = client.get(f"/api/explain?item={two_items[0]}&q=gold ring").json
    assert body["item"]["id"] == two_items[0] and body["query"] == {"q": "gold ring"}
    assert body["overlay"].startswith("data:image/png;base64,")
    h, w = body["heatmap"]["shape"]
    assert abs(w / h - 120 / 80) < 0.05  # the item photo's aspect
    grid = np.array(body["heatmap"]["grid"])
    assert np.isfinite(grid).all() and grid.sum() > 0
    body = client.get(f"/api/explain?item={two_items[0]}&query_item={two_items[1]}").json
    assert body["shared_attributes"] == {"category": "ring", "metal": "yellow gold"}
    png = client.get(f"/api/explain?item={two_items[0]}&q=ring&format=png")
    assert png.mimetype == "image/png" and Image.open(io.BytesIO(png.data)).size[0] > 0


def test_explain_by_photo(client, two_items):
    data = {"image": (io.BytesIO(make_image(seed=7, size=(90, 90))), "q.png")}
    body = client.post(f"/api/explain?item={two_items[1]}", data=data, content_type="multipart/form-data").json
    assert body["query"]["image"]["used"] == "whole" and body["similarity"] is not None


@pytest.mark.parametrize("query, status", [
    ("q=ring", 400),                        # no item
    ("item=1", 400),                        # no query
    ("item={a}&q=ring&query_item={b}", 400),  # two queries
    ("item=999999&q=ring", 404),
    ("item={a}&query_item=999999", 404),
    ("item=../../etc/passwd&q=ring", 404),
    ("item={a}&q=ring&format=gif", 400),
])
def test_explain_bad_requests(client, two_items, query, status):
    url = "/api/explain?" + query.format(a=two_items[0], b=two_items[1])
    response = client.get(url)
    assert response.status_code == status, response.json
    assert "error" in response.json


# ----- the bundled default model and its trained localiser ----------------------------

@pytest.fixture(scope="module")
def default_service(tmp_path_factory):
    from jewelsearch.config import Settings
    from jewelsearch.ingest.demo import demo_dir, demo_items
    from jewelsearch.search.wiring import open_service
    home = tmp_path_factory.mktemp("regions-home")
    service = open_service(Settings(home=home))
    if service.localizer is None:
        pytest.fail("the bundled model should ship a localiser")
    items = [it for n, it in enumerate(demo_items(demo_dir())) if n % 12 == 0]
    service.add_items(items)
    yield service
    service.catalog.close()


def _fabric(width: int, height: int) -> Image.Image:
    yy, xx = np.mgrid[0:height, 0:width]
    stripes = ((xx + yy) // 14) % 2
    colours = np.array([[70, 110, 90], [200, 190, 160]], np.uint8)
    return Image.fromarray(colours[stripes])


@pytest.mark.slow
def test_localiser_boxes_inside_and_ordered(default_service):
    row = default_service.catalog.items.list(1, 0)[0]
    piece = Image.open(default_service.image_file(row["id"])).convert("RGB").resize((110, 110))
    scene = _fabric(480, 360)
    scene.paste(piece, (300, 60))
    found = default_service.localizer.locate(scene)
    assert found.boxes, "a catalog piece pasted onto fabric should be found"
    confidences = [b.confidence for b in found.boxes]
    assert confidences == sorted(confidences, reverse=True)
    for b in found.boxes:
        assert 0 <= b.x0 < b.x1 <= 480 and 0 <= b.y0 < b.y1 <= 360 and 0 < b.confidence <= 1
    best = found.boxes[0]
    assert metrics.box_iou((best.x0, best.y0, best.x1, best.y1), (300, 60, 410, 170)) > 0.3


@pytest.mark.slow
def test_crop_of_catalog_image_finds_that_item_first(default_service):
    rows = default_service.catalog.items.list(6, 0)
    for row in rows:
        photo = Image.open(default_service.image_file(row["id"])).convert("RGB")
        w, h = photo.size
        cropped = photo.crop((int(w * 0.1), int(h * 0.1), int(w * 0.9), int(h * 0.9)))
        buffer = io.BytesIO()
        cropped.save(buffer, "JPEG", quality=90)
        answer = default_service.query(image_bytes=buffer.getvalue(), k=3)
        assert answer["results"][0]["id"] == row["id"], (row["title"], answer["region"])


@pytest.mark.slow
def test_region_search_beats_whole_photo_for_a_small_piece_on_fabric(default_service):
    """A catalog piece shrunk onto a busy sleeve: searching the detected piece ranks the right item
    far higher than searching the whole photo (mean reciprocal rank over eight pieces)."""
    rows = default_service.catalog.items.list(8, 0)

    def reciprocal_rank(answer, item_id):
        ids = [r["id"] for r in answer["results"]]
        return 1 / (ids.index(item_id) + 1) if item_id in ids else 0.0
    region, whole = [], []
    for row in rows:
        piece = Image.open(default_service.image_file(row["id"])).convert("RGB").resize((120, 120))
        scene = _fabric(640, 480)
        scene.paste(piece, (420, 300))
        buffer = io.BytesIO()
        scene.save(buffer, "PNG")
        answer = default_service.query(image_bytes=buffer.getvalue(), k=20, region="auto")
        assert answer["region"]["used"] == "box" and "category" in answer["region"]["boxes"][0]
        x0, y0, x1, y1 = answer["region"]["box"]  # on the pasted photo (its own studio backdrop included)
        assert 405 <= x0 and 285 <= y0 and x1 <= 555 and y1 <= 435 and (x1 - x0) * (y1 - y0) > 40 * 40
        region.append(reciprocal_rank(answer, row["id"]))
        whole.append(reciprocal_rank(default_service.query(image_bytes=buffer.getvalue(), k=20, region="whole"),
                                     row["id"]))
    assert np.mean(region) > np.mean(whole) + 0.15, (region, whole)


@pytest.mark.slow
@pytest.mark.parametrize("size", [(8, 8), (20, 300)])
def test_tiny_photos_fall_back_to_whole_image(default_service, size):
    buffer = io.BytesIO()
    Image.new("RGB", size, (180, 150, 40)).save(buffer, "PNG")
    answer = default_service.query(image_bytes=buffer.getvalue(), k=3)
    assert answer["region"]["used"] == "whole" and answer["region"]["note"]
    assert len(answer["results"]) == 3


@pytest.mark.slow
def test_recognize_has_boxes_and_evidence(default_service):
    row = default_service.catalog.items.list(1, 0)[0]
    answer = default_service.recognize(default_service.image_file(row["id"]).read_bytes())
    assert answer["region"]["boxes"] and answer["evidence"]["piece_fraction"] > 0
    for box in answer["region"]["boxes"]:
        assert box["category"] in ("ring", "necklace", "earrings", "bracelet", "watch", "pendant")
        assert 0 < box["category_p"] <= 1
    assert set(answer["evidence"]) >= {"stone_color", "metal_tone", "stone_count_estimate"}
    json.dumps(answer)  # JSON-serialisable as served


@pytest.mark.slow
def test_grad_cam_heatmap_has_image_aspect(default_service):
    rows = default_service.catalog.items.list(2, 0)
    answer = default_service.explain(rows[0]["id"], query_item=rows[1]["id"])
    assert answer["method"].startswith("grad-cam")
    heat = answer["heatmap"]
    photo = Image.open(default_service.image_file(rows[0]["id"]))
    assert abs(heat.shape[1] / heat.shape[0] - photo.width / photo.height) < 0.05
    assert np.isfinite(heat).all() and heat.sum() > 0 and heat.max() <= 1


def _piece_on_fabric(service, row, at=(420, 300)) -> bytes:
    piece = Image.open(service.image_file(row["id"])).convert("RGB").resize((120, 120))
    scene = _fabric(640, 480)
    scene.paste(piece, at)
    buffer = io.BytesIO()
    scene.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_recognize_answers_from_the_whole_photo_with_the_context_heads(default_service):
    """The answer reads the whole photo (on worn photos the body part around a piece is most of
    the evidence); the bundled heads read the tower's pooled maps as well as the embedding."""
    recognizer = default_service.recognizer
    assert recognizer.heads.context_attributes, "the bundled heads should have context heads"
    data = _piece_on_fabric(default_service, default_service.catalog.items.list(1, 0)[0])
    answer = default_service.recognize(data)
    scene = Image.open(io.BytesIO(data)).convert("RGB")
    vectors, pooled = recognizer.embed([scene])
    assert pooled is not None
    expected = recognizer.probabilities(vectors, pooled)
    for attribute in ("category", "metal"):
        vocab = recognizer.vocabulary(attribute)
        assert answer[attribute][0]["label"] == vocab[int(expected[attribute][0].argmax())]
        assert answer[attribute][0]["p"] == pytest.approx(float(expected[attribute][0].max()), abs=1e-3)
    assert answer["region"]["used"] == "box" and "category" in answer["region"]["boxes"][0]


@pytest.mark.slow
def test_recognize_looks_for_pieces_in_its_own_tower_pass(default_service, monkeypatch):
    """Recognition finds the pieces from the pass that embeds the photo (no separate locate
    pass), and finds what a separate ``locate`` finds."""
    from jewelsearch.recognize.evidence import evidence
    data = _piece_on_fabric(default_service, default_service.catalog.items.list(1, 0)[0])
    scene = Image.open(io.BytesIO(data)).convert("RGB")
    separate = default_service.localizer.locate(scene)
    expected_boxes = [b.as_dict()["box"] for b in default_service.localizer.usable_boxes(separate)]
    assert expected_boxes

    def no_second_pass(*args, **kwargs):
        raise AssertionError("a separate locate pass")
    monkeypatch.setattr(default_service.localizer, "locate", no_second_pass)
    answer = default_service.recognize(data)
    assert [b["box"] for b in answer["region"]["boxes"]] == expected_boxes
    assert answer["evidence"] == evidence(scene, separate)


@pytest.mark.slow
def test_a_chosen_box_does_not_label_the_detected_piece(default_service):
    data = _piece_on_fabric(default_service, default_service.catalog.items.list(1, 0)[0])
    detected = default_service.query(image_bytes=data, k=1)["region"]["boxes"]
    assert detected
    answer = default_service.query(image_bytes=data, k=1, box=(10, 10, 200, 200))
    assert answer["region"]["used"] == "box" and answer["region"]["box"] == [10, 10, 200, 200]
    # The listed pieces are offered again, but none is labelled with the chosen corner's category.
    assert answer["region"]["boxes"] and all("category" not in b for b in answer["region"]["boxes"])
    picked = default_service.query(image_bytes=data, k=1, box=tuple(detected[0]["box"]))
    assert "category" in picked["region"]["boxes"][0]
    # Search and recognition name a piece alike (both read its crop with the context heads).
    recognised = default_service.recognize(data)["region"]["boxes"][0]
    assert (picked["region"]["boxes"][0]["category"], picked["region"]["boxes"][0]["category_p"]) == \
        (recognised["category"], pytest.approx(recognised["category_p"], abs=1e-3))


@pytest.mark.slow
def test_ingest_fills_attributes_with_the_context_heads(default_service):
    from jewelsearch.ingest.pipeline import NewItem
    row = default_service.catalog.items.list(1, 0)[0]
    data = _piece_on_fabric(default_service, row, at=(200, 150))
    added = default_service.add_items([NewItem(data, {"title": "uncatalogued piece"})])[0]
    try:
        item = default_service.get_item(added.item_id)
        recognizer = default_service.recognizer
        vectors, pooled = recognizer.embed([Image.open(io.BytesIO(data)).convert("RGB")])
        expected = recognizer.probabilities(vectors, pooled)["category"][0]
        predicted = item["attributes"]["predicted"]["category"]
        assert predicted["label"] == recognizer.vocabulary("category")[int(expected.argmax())]
        assert predicted["p"] == pytest.approx(float(expected.max()), abs=1e-3)
    finally:
        default_service.delete_item(added.item_id)


@pytest.mark.slow
def test_whole_photo_fallback_reuses_the_locate_pass(default_service):
    """When nothing is found, the whole photo's embedding comes from the pass that looked for a
    piece; it must be the embedding a second pass would give."""
    from jewelsearch.recognize.query_region import choose_region
    image = Image.new("RGB", (300, 200), (128, 128, 128))
    choice = choose_region(image, default_service.localizer)
    assert choice.used == "whole" and choice.localization.embedding is not None

    class NoEncoder:
        def encode_images(self, images):
            raise AssertionError("a second tower pass")
    reused = choice.embed(NoEncoder())
    fresh = default_service.encoder.encode_images([image])[0]
    assert reused.shape == fresh.shape and float(reused @ fresh) > 0.9999
    assert abs(float(np.linalg.norm(reused)) - 1) < 1e-5


@pytest.mark.slow
def test_folding_batch_norm_keeps_embeddings_maps_and_gradients():
    """Serving folds the tower's batch norms into its convolutions: the embeddings, the maps the
    localiser and the context heads read, and Grad-CAM's gradients must stay what they were."""
    import torch

    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.dense_features import tower_pass
    from jewelsearch.embed.fold_batch_norm import fold_batch_norm
    from jewelsearch.ingest.demo import demo_dir, demo_items
    encoder = load_encoder("jewelclip-lite0")
    photos = [Image.open(io.BytesIO(item.image_bytes)).convert("RGB") for item in demo_items(demo_dir())[:6]]
    batch = torch.stack([encoder.preprocess(p) for p in photos]).contiguous(memory_format=torch.channels_last)

    def maps_and_gradient():
        with torch.inference_mode():
            maps = [m.clone() for m in tower_pass(encoder.model.visual, batch).taps]
        with torch.enable_grad():
            result = tower_pass(encoder.model.visual, batch[:1])
            result.last_map.retain_grad()
            result.embedding.sum().backward()
        return maps, result.last_map.grad.clone()
    before = encoder.encode_images(photos)
    maps_before, grad_before = maps_and_gradient()
    assert fold_batch_norm(encoder.model.visual)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.model.visual.modules())
    after = encoder.encode_images(photos)
    maps_after, grad_after = maps_and_gradient()
    assert float((before * after).sum(1).min()) > 0.99999
    for a, b in zip(maps_before, maps_after):
        assert float((a - b).abs().max()) < 1e-3 * float(a.abs().max())
    assert torch.allclose(grad_before, grad_after, rtol=1e-3, atol=1e-6)
    assert not fold_batch_norm(encoder.model.visual)  # nothing left to fold


def test_folding_leaves_unknown_towers_alone(tiny_encoder):
    import torch

    from jewelsearch.embed.fold_batch_norm import fold_batch_norm
    state = {k: v.clone() for k, v in tiny_encoder.model.visual.state_dict().items()}
    assert not fold_batch_norm(tiny_encoder.model.visual)
    assert state.keys() == tiny_encoder.model.visual.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in tiny_encoder.model.visual.state_dict().items())


def test_piece_pooled_weights_each_map_by_the_piece_map():
    import torch

    from jewelsearch.recognize.gem_features import piece_pooled
    feature_map = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 2, 4, 4)
    piece = torch.zeros(2, 1, 8, 8)
    piece[0, 0, 2:4, 4:6] = 1.0  # one cell of the 4×4 map, at stride 2
    piece[1] = 0.5
    out = piece_pooled([feature_map], piece)
    assert out.shape == (2, 3)
    assert torch.allclose(out[0, :2], feature_map[0, :, 1, 2])
    assert torch.allclose(out[1, :2], feature_map[1].mean((1, 2)))
    assert out[0, 2] == 1.0 and out[1, 2] == 0.5
    assert torch.isfinite(piece_pooled([feature_map], torch.zeros(2, 1, 8, 8))).all()  # no piece anywhere


@pytest.mark.slow
def test_recognizer_pools_under_the_piece_map_only_for_heads_that_read_it(default_service):
    import copy

    import torch

    from jewelsearch.recognize.gem_features import base_width, embed_and_pool
    from jewelsearch.recognize.recognizer import Recognizer
    encoder, localizer = default_service.encoder, default_service.localizer
    image = Image.open(default_service.image_file(default_service.catalog.items.list(1, 0)[0]["id"]))
    base = base_width(encoder)
    embedding, plain = embed_and_pool(encoder, [image])
    same_embedding, wide = embed_and_pool(encoder, [image], piece_head=localizer.head)
    assert plain.shape[1] == base
    histogram = 48  # not repeated: the piece block is every map's channels again, then the peak
    assert wide.shape[1] == base + (base - histogram) + 1
    assert np.allclose(embedding, same_embedding) and np.allclose(plain, wide[:, :base])
    heads = copy.deepcopy(default_service.recognizer.heads)
    if heads.pooled_dim == base:  # give the heads a category head that reads the piece block
        heads.widen_context(torch.zeros(wide.shape[1] - base), torch.ones(wide.shape[1] - base))
        torch.manual_seed(0)
        reader = torch.nn.Linear(heads.dim + heads.pooled_dim, len(heads.vocabularies["category"]))
        heads.add_context_head("category", reader, 1.0)
    with_piece = Recognizer(encoder, heads, localizer=localizer)
    without = Recognizer(encoder, heads)
    assert with_piece.piece_head is localizer.head and without.piece_head is None
    e1, p1 = with_piece.embed([image])
    e2, p2 = without.embed([image])
    assert p1.shape[1] == heads.pooled_dim and p2.shape[1] == base
    a, b = with_piece.probabilities(e1, p1), without.probabilities(e2, p2)
    # The stone heads read the first block: the same answer either way. The category head needs
    # the piece block; without it the embedding head answers.
    assert np.allclose(a["gemstone"], b["gemstone"], atol=1e-5)
    assert np.allclose(b["category"], heads.probabilities(e2)["category"], atol=1e-6)
    assert not np.allclose(a["category"], b["category"], atol=1e-4)
