"""The render refit of context heads and the render diagnosis: a refit learns the renders'
labels while the real photos keep the shipped head's answers, a refit that moves the real
photos' answers or does not beat the shipped head is refused, and the diagnosis counts what
ingest would fill in (threshold, "none", stone gate) as ingest does."""

import numpy as np
import pytest
import torch

from jewelsearch.evaluate.render_recognition import diagnose, fill_figures, fills
from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.train.render_features import RenderFeatures, read_render_labels, render_truth
from jewelsearch.train.render_refit import RefitRows, RefitSetting, refit_attribute, refit_head, refit_heads


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny fits (conftest)


def _separable(n: int, rng: np.random.Generator, classes: int = 3, width: int = 6):
    y = rng.integers(0, classes, n)
    x = rng.normal(scale=0.3, size=(n, width)).astype(np.float32)
    x[np.arange(n), y] += 2.0
    return torch.from_numpy(x), torch.from_numpy(y)


def _wrong_head(width: int = 6, classes: int = 3) -> torch.nn.Linear:
    """A head that reads feature c as class (c + 1) mod 3: wrong on every render."""
    head = torch.nn.Linear(width, classes)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        for c in range(classes):
            head.weight[(c + 1) % classes, c] = 0.5
    return head


def test_a_refit_learns_the_renders_and_keeps_the_real_photos_answers():
    rng = np.random.default_rng(0)
    render_x, render_y = _separable(120, rng)
    head = _wrong_head()
    with torch.no_grad():
        head.weight[0, 3] = 2.0
    # Real photos live in other columns (3-5): there the shipped head says class 0, and keeps saying it.
    real_x = torch.zeros(40, 6)
    real_x[:, 3:] = torch.from_numpy(np.abs(rng.normal(size=(40, 3))).astype(np.float32)) + 0.5
    shipped = torch.softmax(head(real_x), -1).detach()
    new = refit_head(head, 1.0, render_x, render_y, real_x, shipped, RefitSetting(1.0, 0.01))
    with torch.no_grad():
        assert float((new(render_x).argmax(1) == render_y).float().mean()) > 0.95
        assert float((head(render_x).argmax(1) == render_y).float().mean()) < 0.05
        assert torch.equal(new(real_x).argmax(1), head(real_x).argmax(1))


def _rows(rng, anchors_follow_renders: bool) -> tuple[torch.nn.Linear, RefitRows]:
    fit_x, fit_y = _separable(150, rng)
    tune_x, tune_y = _separable(60, rng)
    head = _wrong_head()
    # Anchors that look like renders: any refit that fixes the renders moves their answers.
    anchors = _separable(60, rng)[0] if anchors_follow_renders else torch.zeros(60, 6)
    return head, RefitRows(fit_x, fit_y, tune_x, tune_y, anchors[:40], anchors[40:])


def test_refit_attribute_chooses_by_tuning_accuracy_within_the_agreement_limit():
    head, rows = _rows(np.random.default_rng(1), anchors_follow_renders=False)
    new, summary = refit_attribute(head, 1.0, rows)
    assert new is not None and summary["chosen"]["tuning_accuracy"] > 0.9
    assert summary["shipped_tuning_accuracy"] < 0.1 and len(summary["grid"]) == 9
    assert summary["chosen"]["tuning_accuracy"] == max(g["tuning_accuracy"] for g in summary["grid"]
                                                       if g["anchor_agreement"] >= 0.95)


def test_refit_attribute_keeps_the_shipped_head_when_real_answers_would_move():
    head, rows = _rows(np.random.default_rng(2), anchors_follow_renders=True)
    # Only the real photos' tuning part judges agreement; the fit part is pulled the other way.
    new, summary = refit_attribute(head, 1.0, RefitRows(rows.fit_x, rows.fit_y, rows.tune_x, rows.tune_y,
                                                        torch.zeros(0, 6), rows.anchor_tune_x),
                                   grid=(RefitSetting(1.0, 0.01), RefitSetting(2.0, 0.01)))
    assert new is None and summary["chosen"] is None
    assert all(g["anchor_agreement"] < 0.95 for g in summary["grid"])


def test_refit_attribute_keeps_a_head_that_is_already_right():
    rng = np.random.default_rng(3)
    fit_x, fit_y = _separable(90, rng)
    tune_x, tune_y = _separable(30, rng)
    head = torch.nn.Linear(6, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, 6) * 3)
        head.bias.zero_()
    new, summary = refit_attribute(head, 1.0, RefitRows(fit_x, fit_y, tune_x, tune_y, torch.zeros(4, 6),
                                                        torch.zeros(4, 6)))
    assert new is None and summary["shipped_tuning_accuracy"] == 1.0


def _features(n: int, rng, dim: int = 4, pooled: int = 5, vocab=("ring", "earrings", "bracelet")) -> RenderFeatures:
    labels = [{"category": vocab[i % len(vocab)], "metal": "silver", "gemstone": "none", "cut": "none"}
              for i in range(n)]
    embeddings = rng.normal(scale=0.3, size=(n, dim)).astype(np.float32)
    for i in range(n):
        embeddings[i, i % len(vocab)] += 2.0
    return RenderFeatures([f"r/images/{i:05d}.jpg" for i in range(n)], labels, embeddings,
                          rng.normal(size=(n, pooled)).astype(np.float32), np.ones(n, bool))


def test_refit_heads_replaces_only_the_heads_it_improves_and_saves_loadable_heads(tmp_path):
    rng = np.random.default_rng(4)
    vocab = {"category": ["ring", "earrings", "bracelet"], "metal": ["silver", "platinum"]}
    heads = AttributeHeads(4, vocab, pooled_dim=5, context_attributes=("category", "metal"))
    with torch.no_grad():
        for head in list(heads.context.values()) + list(heads.heads.values()):
            head.weight.zero_()
            head.bias.zero_()
        heads.context["category"].weight[:, :3] = torch.roll(torch.eye(3), 1, 0) * 0.5  # wrong on renders
        heads.context["category"].bias[2] = 1.0  # what it says of the (blank) real photos
        heads.context["metal"].bias[0] = 5.0  # says silver, as every render is
    features = _features(90, rng)
    tuning = [i % 5 == 0 for i in range(90)]
    anchors_e = np.zeros((30, 4), np.float32)
    summary = refit_heads(heads, ["category", "metal"], features, tuning, anchors_e, np.zeros((30, 5), np.float32),
                          [i % 3 == 0 for i in range(30)])
    assert summary["category"]["chosen"] is not None and summary["metal"]["chosen"] is None
    probs = heads.probabilities(features.embeddings, features.pooled)
    truth = [x["category"] for x in features.labels]
    assert np.mean([vocab["category"][i] == t for i, t in zip(probs["category"].argmax(1), truth)]) > 0.9
    heads.save(tmp_path)
    again = AttributeHeads.load(tmp_path).probabilities(features.embeddings, features.pooled)
    np.testing.assert_allclose(again["category"], probs["category"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        refit_heads(heads, ["cut"], features, tuning, anchors_e, np.zeros((30, 5), np.float32), [False] * 30)


def test_render_truth_and_label_files(tmp_path):
    assert render_truth({"category": "ring", "metal": "rose gold", "gemstone": "opal", "cut": "cabochon"}) == \
        {"category": "ring", "metal": "rose gold", "gemstone": "opal", "cut": "cabochon"}
    assert render_truth({"category": "earrings", "metal": "silver", "gemstone": None, "cut": "round"})["cut"] == "none"
    (tmp_path / "items.jsonl").write_text('{"image": "images/0.jpg", "category": "ring", "stone_shape": "oval"}\n')
    assert read_render_labels(tmp_path)[0]["cut"] == "oval"


def test_fills_follow_ingest_threshold_none_and_stone_gate():
    vocab = ["diamond", "ruby", "none"]
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.4, 0.3], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]])
    seen = np.array([True, True, True, False])
    assert fills(probs, vocab, "gemstone", seen, 0.5) == ["diamond", None, None, None]
    assert fills(probs, vocab, "metal", seen, 0.35) == ["diamond", "ruby", None, "diamond"]
    # One threshold per label.
    assert fills(probs, vocab, "gemstone", seen, np.array([0.85, 0.3, 0.5])) == [None, "ruby", None, None]
    assert fill_figures(["diamond", None, "ruby", None], ["diamond", "ruby", "diamond", "none"]) == \
        {"fill_rate": 0.5, "precision": 0.5, "right_share": 0.25}


def test_diagnose_counts_accuracy_confusions_and_leaves_out_unnameable_labels():
    rng = np.random.default_rng(5)
    features = _features(6, rng)
    features.labels[0]["cut"] = "cabochon"
    probs = {"category": np.tile([0.9, 0.05, 0.05], (6, 1)), "cut": np.tile([0.2, 0.8], (6, 1))}
    report = diagnose(probs, {"category": ["ring", "earrings", "bracelet"], "cut": ["round", "none"]}, features)
    assert report["category"]["accuracy"] == pytest.approx(2 / 6, abs=1e-3)
    assert report["category"]["confusions"][0] in ("earrings -> ring: 2", "bracelet -> ring: 2")
    assert report["cut"]["photos"] == 5 and report["cut"]["outside_vocabulary"] == 1
    assert report["cut"]["accuracy"] == 1.0 and report["cut"]["ingest"]["fill_rate"] == 0.0


def test_render_heads_command_refuses_a_folder_without_context_heads(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    renders = tmp_path / "renders"
    renders.mkdir()
    (renders / "labels.jsonl").write_text("")
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "--model", str(tiny_model_dir), "train",
                                       "render-heads", "--renders", str(renders), "--products", str(tmp_path),
                                       "--gemstones", str(tmp_path)])
    assert result.exit_code != 0 and "has none" in result.output
    assert not (tiny_model_dir / "render_refit.json").exists() and result.exception is None or \
        isinstance(result.exception, SystemExit)
