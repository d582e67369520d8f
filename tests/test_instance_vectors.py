"""The second, instance vector per item: the head (embed/instance.py), its storage under a derived
key, its index beside the main one, image queries ranked by it (whole photo, pieces, several
pieces fused, with words, re-ranked), and the move of an existing catalog by ``index rebuild``.

Fast tests use a small model whose image tower is a randomly initialised EfficientNet-Lite0 at
64 px (a tower with dense maps, so it gets the default head); the test model of conftest (a
ViT) has none and keeps one vector per item. One slow test runs the bundled model.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import API_KEY, make_image
from PIL import Image

from jewelsearch.embed import load_encoder, load_image
from jewelsearch.embed.artifacts import INSTANCE_HEAD_CONFIG, INSTANCE_HEAD_WEIGHTS, SIDE_FILES
from jewelsearch.embed.dense_features import tower_pass
from jewelsearch.embed.instance import InstanceHead, encode_with_instance, instance_vectors
from jewelsearch.embed.model_folder import build_model, folder_model_id, save_model_folder
from jewelsearch.errors import InvalidInput, ModelLoadError
from jewelsearch.index.rerank import alpha_query_expansion, k_reciprocal
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.recognize.localizer import Box, Localization, crop
from jewelsearch.search.consistency import check
from jewelsearch.search.service import SearchService
from jewelsearch.storage import Catalog
from jewelsearch.storage.embeddings import model_of, space_key

DENSE_SPEC = {
    "format": 1,
    "name": "tiny-dense",
    "open_clip_config": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "timm_model_name": "tf_efficientnet_lite0", "timm_model_pretrained": False,
                       "timm_pool": "avg", "timm_proj": "linear"},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    "preprocess": {"image_size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bilinear"},
    "init": {},
}


@pytest.fixture(scope="module")
def dense_model_dir(tmp_path_factory):
    torch.manual_seed(4321)
    folder = tmp_path_factory.mktemp("models") / "tiny-dense"
    net, _, _ = build_model(DENSE_SPEC)
    save_model_folder(net, folder, DENSE_SPEC, list(net.state_dict().keys()))
    return folder


@pytest.fixture(scope="module")
def dense(dense_model_dir):
    return load_encoder(str(dense_model_dir))


@pytest.fixture(scope="module")
def head(dense):
    return InstanceHead.load(dense.folder, dense.model.visual)


def photo(seed: int, size=(80, 64)) -> bytes:
    return make_image(seed=seed, size=size)


def decoded(data: bytes) -> Image.Image:
    return load_image(data).image


def open_service(home, encoder, head=None, **kwargs) -> SearchService:
    home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.open(home / "catalog.db", home / "images")
    return SearchService(catalog, encoder, home / "index", instance_head=head, **kwargs)


@pytest.fixture
def catalog_service(tmp_path, dense, head):
    """Eight items with titles, ranked by instance vectors."""
    service = open_service(tmp_path / "home", dense, head)
    service.add_items([NewItem(photo(n), {"title": f"piece {n}", "category": "ring" if n % 2 else "necklace"})
                       for n in range(8)])
    yield service
    service.catalog.close()


def stored_instance(service) -> tuple[np.ndarray, np.ndarray]:
    return service.catalog.embeddings.all_for_model(service.instance.key)


def brute_force(service, vector, exclude=()):
    """Item ids by descending instance cosine with ``vector``, and the cosines."""
    ids, vectors = stored_instance(service)
    scores = vectors @ vector
    keep = ~np.isin(ids, list(exclude))
    ids, scores = ids[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    return ids[order].tolist(), scores[order]


# ----- the head ------------------------------------------------------------------------------

def test_default_head_is_the_gem_of_the_search_towers_last_map(dense, head):
    assert head.blocks == (("last", 1.0),) and head.p == 3.0 and head.projection is None
    assert head.dim == int(dense.model.visual.trunk.num_features) == 1280
    batch = torch.stack([dense.preprocess(decoded(photo(n))) for n in range(3)])
    with torch.inference_mode():
        result = tower_pass(dense.model.visual, batch)
        expected = F.normalize(result.last_map.clamp_min(1e-6).pow(3).mean((2, 3)).pow(1 / 3), dim=1)
        got = head.vectors(result)
    assert got.shape == (3, 1280)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_instance_vectors_come_from_the_search_tower_even_beside_a_recognition_top(dense):
    """A recognition top replaces the last map and the stride-32 tap that recognition reads; the
    instance vector must still be pooled from the search tower's own."""
    from jewelsearch.recognize.recognition_top import RecognitionTop
    visual = dense.model.visual
    top = RecognitionTop.from_trunk(visual.trunk)
    with torch.no_grad():
        for parameter in top.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    head = InstanceHead([("last", 1.0), ("tap32", 0.5), ("tap8", 0.25)], 3.0,
                        channels=InstanceHead.load(None, visual).channels)
    batch = torch.stack([dense.preprocess(decoded(photo(n))) for n in range(2)])
    with torch.inference_mode():
        plain = tower_pass(visual, batch)
        split = tower_pass(visual, batch, top)
    assert not torch.allclose(plain.last_map, split.last_map, atol=1e-3)  # the top's maps differ...
    torch.testing.assert_close(split.search_last_map, plain.last_map)
    torch.testing.assert_close(head.vectors(split), head.vectors(plain))  # ...the instance vectors do not


def test_head_files_round_trip_and_name_their_space(tmp_path, dense_model_dir, dense):
    folder = tmp_path / "model"
    shutil.copytree(dense_model_dir, folder)
    model_id = folder_model_id(folder)
    rng = np.random.default_rng(0)
    width = 1280 + 320
    mean, projection = rng.normal(size=width).astype(np.float32), rng.normal(size=(width, 64)).astype(np.float32)
    config = {"blocks": [{"name": "last", "weight": 1.0}, {"name": "tap32", "weight": 0.5}], "p": 2.0,
              "summary": {"trained_on": "pairs"}}
    saved = InstanceHead.save(folder, mean, projection, config)
    assert (folder / INSTANCE_HEAD_CONFIG).is_file() and (folder / INSTANCE_HEAD_WEIGHTS).is_file()
    assert {INSTANCE_HEAD_CONFIG, INSTANCE_HEAD_WEIGHTS} <= set(SIDE_FILES)
    assert folder_model_id(folder) == model_id  # a head is a side file: the encoder is the same model
    loaded = InstanceHead.load(folder, dense.model.visual)
    assert loaded.dim == 64 and loaded.p == 2.0 and loaded.summary == {"trained_on": "pairs"}
    assert loaded.space_id == saved.space_id and loaded.space_id.startswith("instance-")
    assert json.loads(loaded.to_json())["blocks"] == config["blocks"]
    batch = torch.stack([dense.preprocess(decoded(photo(n))) for n in range(2)])
    with torch.inference_mode():
        result = tower_pass(dense.model.visual, batch)
        got = loaded.vectors(result)

        def block(feature_map):
            return F.normalize(feature_map.clamp_min(1e-6).pow(2).mean((2, 3)).pow(0.5), dim=1)
        x = F.normalize(torch.cat([block(result.last_map), 0.5 * block(result.taps[2])], dim=1), dim=1)
        expected = F.normalize((x - torch.from_numpy(mean)) @ torch.from_numpy(projection), dim=1)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    # The summary is a report, not the space; the weights are.
    assert InstanceHead.save(folder, mean, projection, dict(config, summary={"other": 1})).space_id == saved.space_id
    assert InstanceHead.save(folder, mean, projection * 2, config).space_id != saved.space_id
    assert InstanceHead.default().space_id != saved.space_id
    # A head without a projection removes the old projection file, so it cannot be read back.
    InstanceHead.save(folder, None, None, {"blocks": [{"name": "tap16", "weight": 1.0}], "p": 4})
    assert not (folder / INSTANCE_HEAD_WEIGHTS).exists()
    plain = InstanceHead.load(folder, dense.model.visual)
    assert plain.projection is None and plain.dim == 112


@pytest.mark.parametrize("config, tensors, message", [
    ({"blocks": [{"name": "stem"}]}, None, "blocks must be distinct names"),
    ({"blocks": [{"name": "last"}, {"name": "last"}]}, None, "blocks must be distinct names"),
    ({"blocks": [{"name": "last", "weight": -1}]}, None, "weights must be positive"),
    ({"blocks": [{"name": "last"}], "p": 0}, None, "power p"),
    ({"blocks": "last"}, None, "needs blocks"),
    ({"blocks": [{"name": "last"}]}, (np.zeros(8), np.zeros((8, 4))), "reads 8 numbers"),
    ({"blocks": [{"name": "last"}]}, (np.zeros(1280), np.zeros((9, 4))), "do not fit together"),
])
def test_bad_heads_are_refused(tmp_path, dense, config, tensors, message):
    from safetensors.torch import save_file
    (tmp_path / INSTANCE_HEAD_CONFIG).write_text(json.dumps(config))
    if tensors is not None:
        save_file({"mean": torch.tensor(tensors[0], dtype=torch.float32),
                   "projection": torch.tensor(tensors[1], dtype=torch.float32)}, str(tmp_path / INSTANCE_HEAD_WEIGHTS))
    with pytest.raises(ModelLoadError, match=message):
        InstanceHead.load(tmp_path, dense.model.visual)


def test_unreadable_head_files_are_refused(tmp_path, dense):
    (tmp_path / INSTANCE_HEAD_CONFIG).write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot read"):
        InstanceHead.load(tmp_path, dense.model.visual)
    (tmp_path / INSTANCE_HEAD_CONFIG).write_text(json.dumps({"blocks": [{"name": "last"}]}))
    (tmp_path / INSTANCE_HEAD_WEIGHTS).write_bytes(b"truncated")
    with pytest.raises(ModelLoadError, match="cannot read"):
        InstanceHead.load(tmp_path, dense.model.visual)


def test_wide_vectors_leave_the_exact_scan_sooner():
    """The exact scan's limit is a number of floats read per query (50k 256-d vectors): the
    1280-d instance index switches to HNSW past 10k items; the 256-d index is unchanged."""
    from jewelsearch.index import choose_kind
    assert choose_kind(50_000, 256, 2 << 30).kind == "flat"
    assert choose_kind(10_000, 1280, 2 << 30).kind == "flat"
    assert choose_kind(10_001, 1280, 2 << 30).kind == "hnsw"
    assert choose_kind(50_000, 32, 2 << 30).kind == "flat" and choose_kind(50_001, 32, 2 << 30).kind == "hnsw"


def test_towers_without_dense_maps_keep_one_vector(tiny_model_dir, tiny_encoder):
    assert InstanceHead.load(tiny_model_dir, tiny_encoder.model.visual) is None


def test_one_pass_gives_both_vectors(dense, head):
    images = [decoded(photo(n)) for n in range(5)]
    aligned, instance = encode_with_instance(dense, head, images, batch_size=2)
    np.testing.assert_allclose(aligned, dense.encode_images(images), atol=1e-5)
    assert instance.shape == (5, 1280) and instance.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(instance, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(instance_vectors(dense, head, images), instance, atol=1e-6)


# ----- storage keys ---------------------------------------------------------------------------

def test_derived_keys_belong_to_their_model(tmp_path):
    catalog = Catalog.open(tmp_path / "c.db", tmp_path / "images")
    current, stale = space_key("m1", "instance-aaa"), space_key("m1", "instance-bbb")
    assert model_of(current) == "m1" and model_of("m1") == "m1"
    with catalog.database.write() as conn:
        ids = [catalog.items.insert(conn, {"title": f"t{n}"}, image_path="ab/x.jpg", image_sha256="ab" * 32)
               for n in range(3)]
        for item in ids:
            catalog.embeddings.put(conn, item, "m1", np.ones(4))
            catalog.embeddings.put(conn, item, "m0", np.ones(4))
        catalog.embeddings.put(conn, ids[0], current, np.ones(8))
        catalog.embeddings.put(conn, ids[0], stale, np.ones(8))
        catalog.embeddings.put(conn, ids[0], space_key("m0", "instance-aaa"), np.ones(8))
    # Further spaces are not "models": they never look like another model's embeddings.
    assert catalog.embeddings.model_ids() == {"m1": 3, "m0": 3}
    assert catalog.embeddings.spaces_of("m1") == {current: 1, stale: 1}
    assert catalog.embeddings.count(current) == 1 and catalog.embeddings.ids_for(current) == {ids[0]}
    assert catalog.embeddings.missing_for_model(current) == ids[1:]
    assert catalog.embeddings.missing_for_model(current, among="m1") == ids[1:]
    assert catalog.embeddings.missing_for_model(current, among="m9") == []
    with catalog.database.write() as conn:  # without keep_spaces, all of m1's spaces stay
        assert catalog.embeddings.delete_other_models(conn, "m1") == 4
    assert catalog.embeddings.spaces_of("m1") == {current: 1, stale: 1} and set(catalog.embeddings.model_ids()) == {"m1"}
    with catalog.database.write() as conn:  # with it, an earlier head's vectors go too
        assert catalog.embeddings.delete_other_models(conn, "m1", keep_spaces=[current]) == 1
    assert catalog.embeddings.spaces_of("m1") == {current: 1} and catalog.embeddings.count("m1") == 3
    catalog.close()


# ----- ingest, index, queries -------------------------------------------------------------------

def test_ingest_stores_and_indexes_both_vectors_from_one_pass(tmp_path, dense, head):
    service = open_service(tmp_path / "home", dense, head)
    passed = []
    hook = dense.model.visual.trunk.conv_stem.register_forward_hook(lambda m, i, o: passed.append(len(o)))
    try:
        results = service.add_items([NewItem(photo(n), {"title": f"p{n}"}) for n in range(4)])
        assert sum(passed) == 4  # one pass per photo, not one per vector
        again = service.add_items([NewItem(photo(1), {"title": "same photo, another listing"})])
        assert sum(passed) == 4  # both vectors reused from the store
    finally:
        hook.remove()
    ids = [r.item_id for r in results + again]
    key = service.instance.key
    assert key == space_key(dense.model_id, head.space_id)
    aligned, instance = encode_with_instance(dense, head, [decoded(photo(n)) for n in (0, 1, 2, 3, 1)])
    for row, item in enumerate(ids):
        np.testing.assert_allclose(service.catalog.embeddings.get(item, dense.model_id), aligned[row], atol=1e-5)
        np.testing.assert_allclose(service.catalog.embeddings.get(item, key), instance[row], atol=1e-5)
    assert sorted(service.instance.index.ids().tolist()) == sorted(ids) == sorted(service.index.ids().tolist())
    stats = service.stats()
    assert stats["instance"] == {"space": key, "dim": 1280, "indexed": 5, "index_kind": "flat", "missing": 0,
                                 "image_queries_use_it": True}
    assert stats["other_models"] == {} and stats["missing_embeddings"] == 0
    assert check(service).ok
    service.catalog.close()


def test_image_and_item_queries_rank_by_instance_vectors(catalog_service, head, dense):
    service = catalog_service
    query = photo(3)
    answer = service.query(image_bytes=query, k=5, region="whole")
    assert answer["vector"] == "instance" and answer["rerank"] == "none"
    _, vector = encode_with_instance(dense, head, [decoded(query)])
    expected_ids, expected_scores = brute_force(service, vector[0])
    assert [r["id"] for r in answer["results"]] == expected_ids[:5]
    assert answer["results"][0]["title"] == "piece 3" and answer["results"][0]["score"] == pytest.approx(1, abs=1e-4)
    np.testing.assert_allclose([r["score"] for r in answer["results"]], expected_scores[:5], atol=1e-5)
    assert all("matched" not in r for r in answer["results"])
    # An item's similar items: by its stored instance vector, itself left out, filters kept.
    item = answer["results"][0]["id"]
    similar = service.similar(item, k=7)
    stored = service.catalog.embeddings.get(item, service.instance.key)
    assert similar["vector"] == "instance" and [r["id"] for r in similar["results"]] == \
        brute_force(service, stored, exclude=[item])[0][:7]
    from jewelsearch.search.params import Filters
    rings = service.similar(item, k=7, filters=Filters(category="ring"))
    assert rings["results"] and {r["category"] for r in rings["results"]} == {"ring"}


def test_text_search_and_recommendations_keep_the_aligned_vectors(catalog_service, dense, tmp_path):
    with_head = catalog_service.query(text="gold ring", k=5, collapse=False)
    without = SearchService(catalog_service.catalog, dense, catalog_service.index_dir)
    assert without.instance is None
    plain = without.query(text="gold ring", k=5, collapse=False)
    assert "vector" not in with_head
    assert [(r["id"], r["score"]) for r in with_head["results"]] == [(r["id"], r["score"]) for r in plain["results"]]
    ids = catalog_service.index.ids().tolist()
    vectors = catalog_service.recommendations.stored_vectors(ids)
    assert all(v.shape == (32,) for v in vectors.values())  # the recommender reads the 32-d aligned vectors


def test_an_image_with_words_fuses_the_two_spaces(catalog_service, dense, head):
    service = catalog_service
    query, words = photo(5), "yellow gold necklace"
    _, instance = encode_with_instance(dense, head, [decoded(query)])
    image_order, _ = brute_force(service, instance[0])
    text_vector = dense.encode_texts([words])[0]
    ids, aligned = service.catalog.embeddings.all_for_model(dense.model_id)
    text_order = ids[np.argsort(-(aligned @ text_vector), kind="stable")].tolist()
    only_image = service.query(image_bytes=query, text=words, text_weight=0.0, k=8, region="whole")
    only_text = service.query(image_bytes=query, text=words, text_weight=1.0, k=8, region="whole")
    assert [r["id"] for r in only_image["results"]] == image_order
    assert [r["id"] for r in only_text["results"]] == text_order
    assert only_image["vector"] == "instance" and only_image["rerank"] == "none"
    # Half and half: each similarity rescaled 0-1 over the candidates, then averaged.
    half = service.query(image_bytes=query, text=words, text_weight=0.5, k=8, region="whole")
    _, stored = stored_instance(service)
    image_sims = dict(zip(ids.tolist(), (stored @ instance[0]).tolist()))
    text_sims = dict(zip(ids.tolist(), (aligned @ text_vector).tolist()))

    def rescaled(sims):
        low, high = min(sims.values()), max(sims.values())
        return {i: (s - low) / (high - low) for i, s in sims.items()}
    image_01, text_01 = rescaled(image_sims), rescaled(text_sims)
    for row in half["results"]:
        assert row["score"] == pytest.approx(0.5 * image_01[row["id"]] + 0.5 * text_01[row["id"]], abs=1e-4)
    assert [r["score"] for r in half["results"]] == sorted((r["score"] for r in half["results"]), reverse=True)


class PiecesAt:
    """A stand-in localiser that finds pieces where it is told to."""

    def __init__(self, boxes):
        self.boxes = [Box(*b, confidence=0.9 - 0.1 * n) for n, b in enumerate(boxes)]

    def locate(self, image, max_boxes=5, **_):
        return Localization(list(self.boxes), np.zeros((4, 4)), np.zeros((4, 4)))

    def usable_boxes(self, found):
        return found.boxes


def scene_with(pieces: list[tuple[bytes, tuple[int, int]]], size=(360, 280)) -> bytes:
    canvas = Image.new("RGB", size, (255, 255, 255))  # the white the catalog photos are letterboxed onto
    for data, at in pieces:
        canvas.paste(decoded(data), at)
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


def test_multi_searches_the_whole_photo_and_each_piece_and_fuses_by_the_best(catalog_service, dense, head):
    service = catalog_service
    boxes = [(20, 30, 100, 94), (200, 150, 280, 214), (150, 10, 190, 50), (5, 200, 40, 240), (300, 5, 350, 60)]
    service.localizer = PiecesAt(boxes)
    data = scene_with([(photo(2), (20, 30)), (photo(6), (200, 150))])
    answer = service.query(image_bytes=data, k=8, region="multi")
    region = answer["region"]
    assert region["used"] == "multi" and region["box"] is None
    assert region["searched"] == ["whole", "box 1", "box 2", "box 3"]  # at most three pieces
    assert len(region["boxes"]) == 5
    # Expected by hand: each part's instance vector, each item scored by its best part.
    image = decoded(data)
    parts = [image] + [crop(image, b) for b in boxes[:3]]
    _, vectors = encode_with_instance(dense, head, parts)
    ids, stored = stored_instance(service)
    sims = stored @ vectors.T
    best, winner = sims.max(axis=1), sims.argmax(axis=1)
    order = np.argsort(-best, kind="stable")
    labels = ["whole", "box 1", "box 2", "box 3"]
    assert [(r["id"], r["matched"]) for r in answer["results"]] == \
        [(int(ids[i]), labels[winner[i]]) for i in order]
    np.testing.assert_allclose([r["score"] for r in answer["results"]], best[order], atol=1e-5)
    # region=auto is unchanged: the most confident piece alone, no "matched".
    auto = service.query(image_bytes=data, k=3, region="auto")
    assert auto["region"]["used"] == "box" and auto["region"]["box"] == list(boxes[0])
    assert [r["id"] for r in auto["results"]] == brute_force(service, vectors[1])[0][:3]
    assert all("matched" not in r for r in auto["results"])
    # A caller's box wins over multi, as over auto.
    boxed = service.query(image_bytes=data, k=3, region="multi", box=boxes[1])
    assert boxed["region"]["used"] == "box" and [r["id"] for r in boxed["results"]] == \
        brute_force(service, vectors[2])[0][:3]
    # Nothing found: multi searches the whole photo and says so.
    service.localizer = PiecesAt([])
    alone = service.query(image_bytes=data, k=3, region="multi")
    assert alone["region"]["searched"] == ["whole"] and "no piece" in alone["region"]["note"]


class Recording:
    """An executor that runs each task at once in the caller's thread (the order the code had
    before any side work) and records which functions were handed to it."""

    def __init__(self):
        self.names = []

    def submit(self, fn, /, *args, **kwargs):
        from concurrent.futures import Future
        self.names.append(fn.__name__)
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, as a pool would
            future.set_exception(exc)
        return future


@pytest.mark.parametrize("rerank", ["none", "aqe"])
def test_a_multi_querys_whole_photo_list_is_searched_beside_the_pieces(catalog_service, rerank):
    """The whole photo's list goes to a helper before the pieces' pass and comes back the same:
    answers with the side work on threads equal those with it run in sequence."""
    from concurrent.futures import ThreadPoolExecutor
    service = catalog_service
    service.localizer = PiecesAt([(20, 30, 100, 94), (200, 150, 280, 214)])
    data = scene_with([(photo(2), (20, 30)), (photo(6), (200, 150))])
    recording = Recording()
    service.state.helpers = recording
    in_sequence = service.query(image_bytes=data, k=6, region="multi", rerank=rerank)
    assert recording.names.count("ranked") == 1  # the whole photo's search, handed out once
    with ThreadPoolExecutor(2) as helpers:
        service.state.helpers = helpers
        beside = [service.query(image_bytes=data, k=6, region="multi", rerank=rerank) for _ in range(3)]
    drop = lambda answer: {k: v for k, v in answer.items() if k != "took_ms"}  # noqa: E731
    assert all(drop(answer) == drop(in_sequence) for answer in beside)
    assert in_sequence["region"]["searched"] == ["whole", "box 1", "box 2"]
    # A single part (auto) or an image with words searches on the request thread alone.
    recording.names.clear()
    service.state.helpers = recording
    service.query(image_bytes=data, k=3, region="auto", rerank=rerank)
    service.query(image_bytes=data, text="ring", k=3, region="multi")
    assert "ranked" not in recording.names


class BrokenIndex:
    def search(self, *args, **kwargs):
        raise RuntimeError("index failed")


def test_a_failing_whole_photo_search_fails_the_query(catalog_service):
    """A search that fails on the helper fails the request, as it did on the request thread."""
    import dataclasses
    from concurrent.futures import ThreadPoolExecutor
    service = catalog_service
    service.localizer = PiecesAt([(20, 30, 100, 94)])
    data = scene_with([(photo(2), (20, 30))])
    service.state.instance = dataclasses.replace(service.state.instance, index=BrokenIndex())
    with ThreadPoolExecutor(1) as helpers:
        service.state.helpers = helpers
        with pytest.raises(RuntimeError, match="index failed"):
            service.query(image_bytes=data, k=3, region="multi")


@pytest.mark.parametrize("method", ["aqe", "kreciprocal"])
def test_reranking_rescores_the_top_candidates_from_stored_vectors(catalog_service, dense, head, method):
    service = catalog_service
    query = photo(4)
    _, vector = encode_with_instance(dense, head, [decoded(query)])
    order, scores = brute_force(service, vector[0])  # 8 items: all of them are the top 100
    stored = service.catalog.embeddings.get_many(order, service.instance.key)
    candidates = np.stack([stored[i] for i in order])
    new = alpha_query_expansion(vector[0], candidates, scores) if method == "aqe" \
        else k_reciprocal(vector[0], candidates)
    expected = np.argsort(-new, kind="stable")[:5]
    answer = service.query(image_bytes=query, k=5, region="whole", rerank=method)
    assert answer["rerank"] == method
    assert [r["id"] for r in answer["results"]] == [order[i] for i in expected]
    np.testing.assert_allclose([r["score"] for r in answer["results"]], new[expected], atol=1e-4)
    # The service's default applies when a query names none; words turn it off (their score is a fusion).
    service.rerank = method
    assert service.query(image_bytes=query, k=5, region="whole")["rerank"] == method
    assert service.query(image_bytes=query, text="ring", k=5, region="whole")["rerank"] == "none"
    assert service.similar(order[0], k=3)["rerank"] == method
    with pytest.raises(InvalidInput, match="rerank must be one of"):
        service.query(image_bytes=query, rerank="dba")


def test_updates_and_deletes_keep_both_indexes_in_step(catalog_service, dense, head):
    service = catalog_service
    key = service.instance.key
    item = service.catalog.items.list(1, 0)[0]["id"]
    service.update_item(item, {"title": "renamed"})  # fields alone: no vector changes
    service.update_item(item, {}, photo(40))
    _, expected = encode_with_instance(dense, head, [decoded(photo(40))])
    np.testing.assert_allclose(service.catalog.embeddings.get(item, key), expected[0], atol=1e-5)
    np.testing.assert_allclose(service.instance.index.vectors_for([item])[0], expected[0], atol=1e-5)
    assert service.query(image_bytes=photo(40), k=1, region="whole")["results"][0]["id"] == item
    service.delete_item(item)
    assert item not in service.instance.index and item not in service.index
    assert service.catalog.embeddings.get(item, key) is None
    report = check(service)
    assert not report.vectors_need_rebuild and not report.missing_instance_vectors
    assert not report.instance_store_only and not report.instance_index_only


def test_the_instance_index_is_saved_beside_the_main_one_and_checked_on_open(tmp_path, dense, head):
    home = tmp_path / "home"
    service = open_service(home, dense, head)
    service.add_items([NewItem(photo(n)) for n in range(5)])
    service.save()
    assert (home / "index" / "instance" / "CURRENT").is_file() and (home / "index" / "CURRENT").is_file()
    assert service.instance.manifest.model_id == service.instance.key and service.instance.manifest.count == 5
    service.add_items([NewItem(photo(9))])  # written, not saved: the manifests fall behind the store
    again = open_service(home, dense, head)
    assert len(again.instance.index) == 6 and again.instance.complete
    again.save(force=True)
    shutil.rmtree(home / "index" / "instance")  # lost: rebuilt from the stored vectors
    third = open_service(home, dense, head)
    assert sorted(third.instance.index.ids().tolist()) == sorted(again.index.ids().tolist())
    for svc in (service, again, third):
        svc.catalog.close()


def test_without_a_head_there_is_one_vector_per_item(tmp_path, dense):
    service = open_service(tmp_path / "home", dense, None)
    service.add_items([NewItem(photo(n)) for n in range(4)])
    assert service.instance is None and service.catalog.embeddings.spaces_of(dense.model_id) == {}
    answer = service.query(image_bytes=photo(2), k=4, region="whole")
    assert answer["vector"] == "aligned"
    vector = dense.encode_images([decoded(photo(2))])[0]
    ids, stored = service.catalog.embeddings.all_for_model(dense.model_id)
    assert [r["id"] for r in answer["results"]] == ids[np.argsort(-(stored @ vector), kind="stable")].tolist()
    assert service.stats()["instance"] is None and check(service).ok
    service.catalog.close()


def test_an_existing_catalog_moves_to_instance_vectors_with_index_rebuild(tmp_path, dense, head):
    home = tmp_path / "home"
    before = open_service(home, dense, None)
    before.add_items([NewItem(photo(n), {"title": f"piece {n}"}) for n in range(6)])
    before.save()
    aligned_before = before.catalog.embeddings.all_for_model(dense.model_id)
    before.catalog.close()

    moved = open_service(home, dense, head)
    assert not moved.instance.complete and len(moved.instance.index) == 0
    # Until the rebuild, image queries rank as before, over every item.
    waiting = moved.query(image_bytes=photo(3), k=6, region="whole")
    assert waiting["vector"] == "aligned" and len(waiting["results"]) == 6
    report = check(moved)
    assert not report.ok and report.missing_instance_vectors == sorted(aligned_before[0].tolist())
    assert moved.stats()["instance"]["missing"] == 6 and moved.items_to_embed() == report.missing_instance_vectors
    moved.rebuild_index()
    assert moved.instance.complete and len(moved.instance.index) == 6 == moved.catalog.items.count()
    ids, aligned_after = moved.catalog.embeddings.all_for_model(dense.model_id)
    assert np.array_equal(ids, aligned_before[0]) and np.array_equal(aligned_after, aligned_before[1])  # untouched
    answer = moved.query(image_bytes=photo(3), k=6, region="whole")
    assert answer["vector"] == "instance" and answer["results"][0]["title"] == "piece 3"
    assert check(moved).ok and moved.stats()["instance"]["missing"] == 0
    moved.catalog.close()
    reopened = open_service(home, dense, head)  # the saved instance index agrees with the store
    assert reopened.instance.complete and len(reopened.instance.index) == 6
    reopened.catalog.close()


def test_check_repairs_missing_instance_vectors(catalog_service):
    service = catalog_service
    item = service.catalog.items.list(1, 0)[0]["id"]
    with service.catalog.database.write() as conn:
        conn.execute("DELETE FROM embeddings WHERE item_id = ? AND model_id = ?", (item, service.instance.key))
    report = check(service, repair=True)
    assert report.missing_instance_vectors == [item] and report.instance_index_only == [] and report.repaired
    assert check(service).ok and service.catalog.embeddings.get(item, service.instance.key) is not None


# ----- over HTTP and on the command line ---------------------------------------------------------

@pytest.fixture
def dense_client(tmp_path, catalog_service):
    from jewelsearch.config import Settings
    from jewelsearch.server import create_app
    catalog_service.localizer = PiecesAt([(20, 30, 100, 94)])
    app = create_app(Settings(home=tmp_path / "home", api_key=API_KEY), catalog_service, autosave_seconds=None)
    app.config["TESTING"] = True
    return app.test_client()


def test_api_reports_the_vectors_and_takes_multi_and_rerank(dense_client):
    data = scene_with([(photo(2), (20, 30))])
    response = dense_client.post("/api/search", data={"image": (io.BytesIO(data), "q.png"), "region": "multi",
                                                      "rerank": "aqe"})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["vector"] == "instance" and body["rerank"] == "aqe" and body["region"]["used"] == "multi"
    assert all(r["matched"] in ("whole", "box 1") and r["image_url"] for r in body["results"])
    similar = dense_client.get(f"/api/items/{body['results'][0]['id']}/similar?k=3&rerank=kreciprocal")
    assert similar.status_code == 200 and similar.json["vector"] == "instance"
    assert similar.json["rerank"] == "kreciprocal"
    for path, form in [("/api/search", {"region": "everything"}), ("/api/search", {"rerank": "dba"}),
                       ("/api/explain?item=1", {"region": "multi"})]:
        bad = dense_client.post(path, data={"image": (io.BytesIO(data), "q.png"), **form})
        assert bad.status_code == 400 and "error" in bad.json, (path, form)
    assert dense_client.get("/api/items/1/similar?rerank=x").status_code == 400
    stats = dense_client.get("/api/stats").json
    assert stats["instance"]["dim"] == 1280 and stats["instance"]["image_queries_use_it"] is True
    document = dense_client.get("/openapi.json").json
    similar_params = {p["name"] for p in document["paths"]["/api/items/{item_id}/similar"]["get"]["parameters"]}
    assert "rerank" in similar_params


def test_cli_moves_a_catalog_and_searches_with_multi_and_rerank(tmp_path, dense_model_dir):
    home = tmp_path / "home"
    home.mkdir()
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(4):
        (folder / f"p{n}.png").write_bytes(photo(n))

    def run(*args):
        return CliRunner().invoke(__import__("jewelsearch.cli", fromlist=["main"]).main,
                                  ["--home", str(home), "--model", str(dense_model_dir), *args],
                                  catch_exceptions=False)
    (home / "jewelsearch.toml").write_text("instance_vectors = false\n")
    assert run("ingest", str(folder)).exit_code == 0
    (home / "jewelsearch.toml").unlink()
    checked = run("check")
    assert checked.exit_code == 1 and "missing_instance_vectors: 4" in checked.output
    rebuilt = run("index", "rebuild", "--drop-other-models")
    assert rebuilt.exit_code == 0 and "instance index: flat, 4 items, 1280-d" in rebuilt.output, rebuilt.output
    assert run("check").exit_code == 0
    info = json.loads(run("index", "info", "--json").output)
    assert info["instance"]["indexed"] == 4 and info["instance"]["missing"] == 0
    found = run("search", "--image", str(folder / "p1.png"), "--region", "multi", "--rerank", "aqe", "-k", "2")
    assert found.exit_code == 0 and "ranked by the instance vectors; re-ranking: aqe" in found.output
    payload = json.loads(run("search", "--item", "2", "-k", "2", "--json").output)
    assert payload["vector"] == "instance" and len(payload["results"]) == 2


# ----- the bundled model ---------------------------------------------------------------------------

@pytest.mark.slow
def test_bundled_model_ranks_image_queries_by_its_tower_maps(tmp_path):
    from jewelsearch.config import Settings
    from jewelsearch.ingest.demo import demo_dir, demo_items
    from jewelsearch.search.wiring import open_service as open_from_settings
    service = open_from_settings(Settings(home=tmp_path / "home"))
    head = service.instance.head if service.instance is not None else None
    # The bundled head: a 256-d projection of the pooled maps, then the 256-d aligned embedding.
    assert head is not None and head.projection is not None and head.aligned_weight > 0
    assert head.dim == head.projection.shape[1] + service.encoder.dim
    items = [it for n, it in enumerate(demo_items(demo_dir())) if n % 40 == 0]
    results = service.add_items(items)
    assert service.instance.complete and len(service.instance.index) == len(results)
    for result in results[:4]:
        photo_file = Image.open(service.image_file(result.item_id)).convert("RGB")
        w, h = photo_file.size
        buffer = io.BytesIO()
        photo_file.crop((int(w * 0.1), int(h * 0.1), int(w * 0.9), int(h * 0.9))).save(buffer, "JPEG", quality=90)
        answer = service.query(image_bytes=buffer.getvalue(), k=3)
        assert answer["vector"] == "instance" and answer["results"][0]["id"] == result.item_id
        multi = service.query(image_bytes=buffer.getvalue(), k=3, region="multi", rerank="kreciprocal")
        assert multi["region"]["used"] == "multi" and multi["results"][0]["id"] == result.item_id
    service.catalog.close()
