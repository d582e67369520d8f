import io
import random

import numpy as np
import pytest
import torch
from conftest import make_image

from jewelsearch.embed.captions import caption, prompts_for
from jewelsearch.embed.vocab import (
    CATEGORIES,
    CUTS,
    GEMSTONE_PHOTO_CLASSES,
    GEMSTONES,
    METALS,
    gemstone_from_product,
    label_from_folder,
    metal_from_product,
)
from jewelsearch.evaluate import metrics
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.recognize.heads import AttributeHeads, expected_calibration_error, fit_temperature
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.search.service import SearchService


def test_vocabularies_are_lowercase_words_with_spaces():
    assert len(GEMSTONE_PHOTO_CLASSES) == 68
    for vocab in (CATEGORIES, METALS, GEMSTONES, CUTS):
        for label in vocab:
            assert label == label.lower() and "_" not in label and label.strip() == label
    assert "sapphire blue" in GEMSTONES and label_from_folder("lapis_lazuli") == "lapis lazuli"


def test_product_label_mapping():
    assert metal_from_product("gold", "yellow") == "yellow gold"
    assert metal_from_product("gold", "pink") == "rose gold"
    assert metal_from_product("unknown", "white") is None
    assert gemstone_from_product("sapphire", "pink") == "sapphire pink"
    assert gemstone_from_product("none", "") == "none"


def test_captions_use_only_given_labels():
    rng = random.Random(0)
    for _ in range(50):
        text = caption({"category": "ring", "gemstone": "sapphire blue", "metal": "rose gold"}, rng)
        assert "ring" in text or "band" in text
        assert "sapphire" in text
        assert "emerald" not in text and "silver" not in text
    plain = {caption({"category": "earrings", "gemstone": "none", "cut": "none"}, rng) for _ in range(20)}
    assert not any("none" in t for t in plain)
    assert any("gemstone" in p or "gem" in p for p in prompts_for("gemstone", "ruby"))


def test_classification_metrics():
    probs = np.array([[0.9, 0.1, 0], [0.2, 0.8, 0], [0.6, 0.4, 0], [0, 0.1, 0.9]])
    result = metrics.classification(["a", "b", "b", "c"], probs, ["a", "b", "c"])
    assert result["accuracy"] == 0.75
    assert result["macro_recall"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert result["confusion"]["counts"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    restricted = metrics.classification(["b"], np.array([[0.9, 0.1, 0]]), ["a", "b", "c"], ["b", "c"])
    assert restricted["accuracy"] == 1.0


def test_retrieval_metrics():
    emb = np.eye(4, dtype=np.float32)
    emb[1] = emb[0]
    result = metrics.image_retrieval(emb, ["x", "x", "y", "z"], k=1)
    assert result["queries"] == 2 and result["precision@1"] == 1.0 and result["mAP"] == 1.0
    text = metrics.text_retrieval(np.array([[1, 0, 0, 0]], np.float32), [np.array([0, 0, 1, 0], bool)], emb, k=1)
    assert text["recall@1"] == 0.0 and text["mrr"] == pytest.approx(1 / 3)
    same = metrics.same_product_retrieval(emb, ["p", "p", "q", None])
    assert same == {"queries": 2, "recall@1": 1.0, "recall@10": 1.0}


def test_temperature_scaling_reduces_overconfidence():
    torch.manual_seed(0)
    targets = torch.randint(0, 5, (500,))
    logits = torch.randn(500, 5) * 0.5
    logits[torch.arange(250), targets[:250]] += 2.0   # half right, but very confident
    logits = logits * 8
    t = fit_temperature(logits, targets)
    assert t > 2
    before = expected_calibration_error(torch.softmax(logits, 1).numpy(), targets.numpy())
    after = expected_calibration_error(torch.softmax(logits / t, 1).numpy(), targets.numpy())
    assert after < before


VOCABULARIES = {"category": CATEGORIES, "metal": METALS, "gemstone": GEMSTONES, "cut": CUTS}


def _certain_heads(dim: int, folder, certain: dict[str, str]) -> AttributeHeads:
    """Random heads whose answer for each attribute in ``certain`` is that label, saved and loaded."""
    torch.manual_seed(0)
    h = AttributeHeads(dim, {a: list(v) for a, v in VOCABULARIES.items()})
    with torch.no_grad():
        for attribute, label in certain.items():
            h.heads[attribute].bias[VOCABULARIES[attribute].index(label)] = 50
    h.save(folder)
    return AttributeHeads.load(folder)


@pytest.fixture
def heads(tiny_encoder, tmp_path):
    # "ring" and "rose gold" certain, so filling is predictable.
    return _certain_heads(tiny_encoder.dim, tmp_path, {"category": "ring", "metal": "rose gold", "gemstone": "none"})


def test_heads_roundtrip_and_top5(tiny_encoder, heads):
    recognizer = Recognizer(tiny_encoder, heads)
    from PIL import Image
    prediction = recognizer.recognize_images([Image.open(io.BytesIO(make_image(seed=1)))])[0]
    assert set(prediction) == {"category", "metal", "gemstone", "cut"}
    for guesses in prediction.values():
        assert len(guesses) == 5
        ps = [g["p"] for g in guesses]
        assert ps == sorted(ps, reverse=True) and 0 <= ps[-1] <= ps[0] <= 1
    assert prediction["category"][0]["label"] == "ring"


def test_zero_shot_without_heads(tiny_encoder):
    recognizer = Recognizer(tiny_encoder)
    probs = recognizer.zero_shot_probabilities(tiny_encoder.encode_texts(["x"]))
    assert probs["gemstone"].shape == (1, len(GEMSTONES))
    np.testing.assert_allclose(probs["category"].sum(1), 1, atol=1e-5)


def test_ingest_fills_missing_attributes_marked_predicted(service, heads):
    svc = SearchService(service.catalog, service.encoder, service.index_dir,
                        recognizer=Recognizer(service.encoder, heads))
    given, missing = svc.add_items([NewItem(make_image(seed=1), {"title": "a", "category": "necklace"}),
                                    NewItem(make_image(seed=2), {"title": "b"})])
    row = svc.get_item(missing.item_id)
    assert row["category"] == "ring" and row["metal"] == "rose gold"
    assert row["attributes"]["predicted"]["category"]["label"] == "ring"
    assert row["attributes"]["predicted"]["category"]["p"] > 0.9
    assert row["gemstone"] is None  # "none" (no stone) is never filled in as a gemstone
    # The next guesses are kept for metal, gemstone and cut (text search weighs them), never "none".
    for field_name in ("metal", "gemstone", "stone_shape"):
        runners = row["attributes"]["predicted"][field_name]["runners_up"]
        assert len(runners) == 2 and all(label != "none" and 0 <= p <= 1 for label, p in runners)
        assert runners[0][1] >= runners[1][1]
    assert "runners_up" not in row["attributes"]["predicted"]["category"]
    kept = svc.get_item(given.item_id)
    assert kept["category"] == "necklace" and "category" not in kept["attributes"]["predicted"]
    # filters work on predicted values
    assert svc.catalog.items.filter_ids({"metal": "rose gold"}) == [given.item_id, missing.item_id]


def test_recognize_endpoint(client, service, heads, app):
    app.config["JEWELSEARCH_SERVICE"] = SearchService(
        service.catalog, service.encoder, service.index_dir, recognizer=Recognizer(service.encoder, heads))
    data = {"image": (io.BytesIO(make_image(seed=4)), "x.png")}
    body = client.post("/api/recognize", data=data, content_type="multipart/form-data").json
    assert body["category"][0] == {"label": "ring", "p": pytest.approx(1.0, abs=1e-3)}
    assert body["method"] == "heads"
    bad = client.post("/api/recognize", data={"image": (io.BytesIO(b"nope"), "x.png")},
                      content_type="multipart/form-data")
    assert bad.status_code == 400
    assert client.post("/api/recognize").status_code == 400
    assert body["subject"] == "piece"
    stone = client.post("/api/recognize", data={"image": (io.BytesIO(make_image(seed=4)), "x.png"),
                                                "subject": "stone"}, content_type="multipart/form-data")
    assert stone.status_code == 200 and stone.json["subject"] == "stone"
    wrong = client.post("/api/recognize?subject=bracelet", data={"image": (io.BytesIO(make_image(seed=4)), "x.png")},
                        content_type="multipart/form-data")
    assert wrong.status_code == 400 and "subject must be one of piece, stone" in wrong.json["error"]


def test_paired_drop_interval_brackets_the_drop_and_narrows_with_more_photos():
    rng = np.random.default_rng(0)
    clean = (rng.random(400) < 0.9).astype(float)
    degraded = clean * (rng.random(400) < 0.8)
    drop = 100 * (clean.mean() - degraded.mean())
    low, high = metrics.paired_drop_interval(clean, degraded)
    assert low < drop < high and low > 0
    small_low, small_high = metrics.paired_drop_interval(clean[:45], degraded[:45])
    assert small_high - small_low > high - low
    assert metrics.paired_drop_interval(clean, clean) == (0.0, 0.0)


def test_evaluation_reports_each_accuracy_drop_with_an_interval(tiny_encoder, tmp_path):
    from jewelsearch.evaluate.recognition import evaluate, robustness_drops, worst_drop_intervals
    from jewelsearch.evaluate.report import write_report
    from jewelsearch.train.augment import DEGRADATIONS
    from jewelsearch.train.labelled_data import Record
    torch.manual_seed(3)
    heads = AttributeHeads(tiny_encoder.dim, {"category": ["ring", "necklace"], "metal": list(METALS),
                                              "gemstone": list(GEMSTONES), "cut": list(CUTS)})
    records = []
    for i in range(12):
        path = tmp_path / f"photo{i}.png"
        path.write_bytes(make_image(size=(64, 64), seed=i))
        records.append(Record(path, "val", {"category": ("ring", "necklace")[i % 2]}))
    report = evaluate(Recognizer(tiny_encoder, heads), {"photos": records})
    assert "correct" not in report["sets"]["photos"]["category_heads"]  # aggregates only
    by_degradation = report["drop_intervals"]["photos/category_heads.accuracy"]
    assert set(by_degradation) == set(DEGRADATIONS)
    clean = report["robustness"]["clean"]["photos"]["category_heads.accuracy"]
    for degradation, (low, high) in by_degradation.items():
        drop = 100 * (clean - report["robustness"][degradation]["photos"]["category_heads.accuracy"])
        assert low - 1e-9 <= drop <= high + 1e-9
    report["worst_drop_points"] = robustness_drops(report)
    report["worst_drop_intervals"] = worst_drop_intervals(report)
    assert set(report["worst_drop_intervals"]) == {"photos/category_heads.accuracy"}
    page = write_report(report, tmp_path / "report").read_text()
    assert "photos/category_heads.accuracy" in page and "95 % interval" in page


def test_fill_decision_fills_confident_guesses_and_never_none():
    from jewelsearch.ingest.pipeline import FILL_THRESHOLD, fill_decision
    assert fill_decision({"label": "opal", "p": FILL_THRESHOLD}) == "opal"
    assert fill_decision({"label": "opal", "p": FILL_THRESHOLD - 0.01}) is None
    assert fill_decision({"label": "none", "p": 0.99}) is None


def test_fill_decision_gate_keeps_stone_fields_empty_where_no_stone_is_seen():
    from jewelsearch.ingest.pipeline import fill_decision
    sure = {"label": "opal", "p": 0.9}
    assert fill_decision(sure, "gemstone", stone_seen=False) is None
    assert fill_decision(sure, "cut", stone_seen=False) is None
    assert fill_decision(sure, "gemstone", stone_seen=True) == "opal"
    assert fill_decision(sure, "gemstone", stone_seen=None) == "opal"  # no localiser: as before
    assert fill_decision({"label": "silver", "p": 0.9}, "metal", stone_seen=False) == "silver"


class _StoneMaps:
    """A localiser stand-in: every photo gets the same maps, with or without a stone on the piece."""

    def __init__(self, stone: bool):
        self.stone = stone
        self.calls = 0

    def locate(self, image, **_):
        from jewelsearch.recognize.localizer import Localization
        self.calls += 1
        piece = np.zeros((20, 20), np.float32)
        piece[5:15, 5:15] = 1
        stone = np.zeros_like(piece)
        if self.stone:
            stone[8:11, 8:11] = 1  # 9 pixels: at least evidence's 4
        return Localization([], piece, stone)


@pytest.mark.parametrize("stone", [False, True])
def test_ingest_fills_gemstone_and_cut_only_where_the_localiser_sees_a_stone(service, tiny_encoder, tmp_path, stone):
    # A confident opal, oval: what the heads said of plain silver hoops.
    sure = _certain_heads(tiny_encoder.dim, tmp_path, {"metal": "silver", "gemstone": "opal", "cut": "oval"})
    localizer = _StoneMaps(stone)
    recognizer = Recognizer(service.encoder, sure, localizer=localizer)
    svc = SearchService(service.catalog, service.encoder, service.index_dir, recognizer=recognizer)
    plain, given = svc.add_items([NewItem(make_image(seed=3), {"title": "hoops"}),
                                  NewItem(make_image(seed=4), {"title": "b", "gemstone": "ruby", "stone_shape": "pear"})])
    row = svc.get_item(plain.item_id)
    predicted = row["attributes"]["predicted"]
    assert row["metal"] == "silver"  # metal never waits for a stone
    assert predicted["gemstone"]["label"] == "opal" and predicted["stone_shape"]["label"] == "oval"
    if stone:
        assert row["gemstone"] == "opal" and row["stone_shape"] == "oval"
        assert "filled" not in predicted["gemstone"]
    else:
        assert row["gemstone"] is None and row["stone_shape"] is None
        assert predicted["gemstone"]["filled"] is False and predicted["gemstone"]["why_not_filled"] == "no stone seen"
        assert predicted["stone_shape"]["why_not_filled"] == "no stone seen"
        # A stone nobody saw earns no credit from its guesses either.
        assert "runners_up" not in predicted["gemstone"] and "runners_up" not in predicted["stone_shape"]
    assert localizer.calls == 1  # the item that has its gemstone and cut is not located
    assert svc.get_item(given.item_id)["gemstone"] == "ruby"


def test_guesses_earn_attribute_credit_by_probability_only_when_asked():
    from jewelsearch.search.attribute_match import attribute_match
    from jewelsearch.storage.items import ranked_guesses
    unsure = {"label": "silver", "p": 0.3, "filled": False, "runners_up": [["platinum", 0.25], ["white gold", 0.2]]}
    row = {"category": "ring", "metal": None, "predicted": frozenset(),
           "guesses": {"metal": ranked_guesses(unsure, None)}}
    platinum_ring = {"category": ("ring",), "metal": ("platinum",)}
    assert attribute_match(row, platinum_ring, 0.5) == pytest.approx(2 / 3)  # the category only, as before
    # 0.25 / 0.5 of a predicted value's credit (0.5) for the metal: (2 + 0.25) / 3
    assert attribute_match(row, platinum_ring, 0.5, guess_full_at=0.5) == pytest.approx(2.25 / 3)
    assert attribute_match(row, platinum_ring, 0.5, guess_full_at=1.0) == pytest.approx(2.125 / 3)
    assert attribute_match(row, {"metal": ("yellow gold",)}, 0.5, guess_full_at=0.5) == 0.0
    # A filled top guess earns what it earned before, with full credit at the fill threshold.
    sure = {"label": "rose gold", "p": 0.8, "runners_up": [["yellow gold", 0.1]]}
    filled = {"metal": "rose gold", "predicted": frozenset({"metal"}),
              "guesses": {"metal": ranked_guesses(sure, "rose gold")}}
    assert attribute_match(filled, {"metal": ("rose gold",)}, 0.5, guess_full_at=0.5) == \
        attribute_match(filled, {"metal": ("rose gold",)}, 0.5) == 0.5
    # A value the shop gave (or changed the guess to) is never a guess.
    assert ranked_guesses(sure, "white gold") == ()
    assert ranked_guesses({**unsure, "why_not_filled": "no stone seen"}, None) == ()
    # Malformed stored guesses are skipped, not trusted.
    assert ranked_guesses({"label": "silver", "p": "high", "runners_up": [["gold"], None, ["platinum", float("nan")]]},
                          None) == ()
