"""Render-to-render instance retrieval on held-out studio specs (evaluate/retrieval_renders.py):
which specs are held out, how each is varied, how views pair into queries and answers, how the
measure is judged and reported, and the skip when the studio cannot render."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from jewelsearch.evaluate import retrieval_renders as renders
from jewelsearch.evaluate.retrieval import QueryCrops, average_precisions
from jewelsearch.evaluate.retrieval_renders import (
    IDENTITY_FIELDS,
    RenderPairs,
    RenderSetPlan,
    cache_folder,
    held_out_specs,
    identity,
    plan_renders,
    view_of,
)
from jewelsearch.evaluate.retrieval_report import write_retrieval_report
from jewelsearch.evaluate.retrieval_run import LocalMatching, RetrievalSets, judge


def test_held_out_specs_are_distinct_pieces_from_no_training_batch_and_reproducible():
    plan = RenderSetPlan(specs=60)
    specs = held_out_specs(plan)
    assert len(specs) == 60 and len({identity(s) for s in specs}) == 60
    for spec in specs:
        batch = spec.seed // renders.SPEC_SEED_STRIDE
        assert batch == renders.HELD_OUT_SEED and batch not in renders.TRAINING_BATCH_SEEDS
    assert [asdict(s) for s in held_out_specs(plan)] == [asdict(s) for s in specs]


def test_a_plan_on_a_training_batch_or_with_one_view_is_refused():
    for bad in ({"seed": 0}, {"seed": 7919}, {"views": 1}, {"specs": 1}):
        with pytest.raises(ValueError):
            RenderSetPlan(**bad)


def test_each_view_keeps_the_piece_and_changes_camera_and_backdrop():
    spec = held_out_specs(RenderSetPlan(specs=2))[0]
    assert view_of(spec, 0) == spec
    seen_backdrops = {spec.background}
    for view in (1, 2):
        other = view_of(spec, view)
        assert identity(other) == identity(spec)
        assert other.background not in seen_backdrops
        assert (other.camera_elevation, other.camera_azimuth) != (spec.camera_elevation, spec.camera_azimuth)
        seen_backdrops.add(other.background)
        assert view_of(spec, view) == other  # deterministic
    assert "finish" in IDENTITY_FIELDS


def test_views_pair_into_queries_and_their_own_specs_other_views():
    views, pairs = plan_renders(RenderSetPlan(specs=3, views=3))
    assert len(views) == 9
    assert pairs.query_rows.tolist() == [0, 3, 6]
    assert pairs.gallery_rows.tolist() == [1, 2, 4, 5, 7, 8]
    assert [a.tolist() for a in pairs.answers()] == [[0, 1], [2, 3], [4, 5]]
    # Spec-major: rows 3-5 are spec 1's views, of one piece.
    assert len({identity(v) for v in views[3:6]}) == 1 and identity(views[0]) != identity(views[3])


def test_the_render_cache_is_keyed_by_what_the_pixels_depend_on(tmp_path):
    plan = RenderSetPlan(specs=3)
    views, _ = plan_renders(plan)
    assert cache_folder(tmp_path, plan, views) == cache_folder(tmp_path, plan, views)
    for other in (RenderSetPlan(specs=3, size=256), RenderSetPlan(specs=3, spp=8), RenderSetPlan(specs=4)):
        assert cache_folder(tmp_path, other, plan_renders(other)[0]) != cache_folder(tmp_path, plan, views)


def test_average_precision_of_constructed_rankings():
    sims = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.9, 0.8, 0.7], [0.5, 0.5, 0.2, 0.1]])
    answers = [np.array([0, 1]), np.array([0, 3]), np.array([1])]
    # Both first: 1; found 3rd and 4th: (1/3 + 2/4) / 2; a tie with a wrong row counts against.
    np.testing.assert_allclose(average_precisions(sims, answers), [1.0, (1 / 3 + 2 / 4) / 2, 0.5])


def _unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _by_colour(images):
    return _unit([np.asarray(im, dtype=np.float32).reshape(-1, 3).mean(0) + 1e-3 for im in images])


def _sets_with_renders(tmp_path):
    """Three 'specs' painted red, green, blue; their views are shades of the same colour."""
    red, green, blue = (250, 10, 10), (10, 250, 10), (10, 10, 250)
    catalog = [Image.new("RGB", (8, 8), c) for c in (red, green)]
    sets = RetrievalSets([QueryCrops([catalog[0]], None)], [np.array([2])], [0], catalog + catalog,
                         [QueryCrops([catalog[1]], None)], [np.array([1])], catalog, ["ring", "pendant"])
    paths = []
    for n, colour in enumerate(c for c in (red, green, blue) for _ in range(3)):
        path = tmp_path / f"{n}.png"
        Image.new("RGB", (8, 8), tuple(max(0, v - 20 * (n % 3)) for v in colour)).save(path)
        paths.append(path)
    sets.add_renders(paths, RenderPairs(np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)), None)
    return sets


def test_judge_scores_render_queries_against_the_other_views_and_reports_them(tmp_path):
    sets = _sets_with_renders(tmp_path)
    assert sets.describe()["render_queries"] == 3 and sets.describe()["render_gallery"] == 6
    ranks: dict = {}
    result = judge(sets, _by_colour, modes=("whole",), ranks_out=ranks)
    render = result["whole"]["render_to_render"]
    assert render["recall@1"] == 1.0 and render["map"] == 1.0 and render["queries"] == 3
    assert ranks["whole"]["render_to_render"].tolist() == [0, 0, 0]
    report = {"model": "m", "sets": sets.describe(), "results": {"colour": result}}
    page = write_retrieval_report(report, tmp_path / "out").read_text()
    assert "render R@1" in page and "3 held-out render specs" in page
    assert json.loads((tmp_path / "out" / "retrieval.json").read_text())["results"]["colour"]


def test_a_local_check_reaches_every_measure_and_takes_features_once(tmp_path):
    sets = _sets_with_renders(tmp_path)
    calls = []

    def features(images):
        calls.append(len(images))
        return [_by_colour([im]) for im in images]

    def prefer_last(query, candidates, scores):
        assert len(candidates) == len(scores) and candidates[0].shape == query.shape
        return -scores  # reverses the top candidates' order

    local = LocalMatching(features, prefer_last)
    checked = judge(sets, _by_colour, modes=("whole",), local=local)
    plain = judge(sets, _by_colour, modes=("whole",))
    for measure in ("worn_same_product", "pasted_to_catalog", "render_to_render"):
        assert checked["whole"][measure]["recall@1"] < plain["whole"][measure]["recall@1"], measure
    first = list(calls)
    judge(sets, _by_colour, modes=("whole",), local=local.scored_by(prefer_last))
    assert calls == first  # a second weight reuses the descriptors


def test_without_renders_the_report_says_why(tmp_path):
    sets = _sets_with_renders(tmp_path)
    sets.render_skipped = "mitsuba is not installed"
    result = judge(sets, _by_colour, modes=("whole",))
    assert "render_to_render" not in result["whole"]
    report = {"model": "m", "sets": sets.describe(), "results": {"colour": result}}
    page = write_retrieval_report(report, tmp_path / "out").read_text()
    assert "render skipped: mitsuba is not installed" in page


def test_the_studio_missing_gives_a_reason(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mitsuba(name, *args, **kwargs):
        if name == "mitsuba":
            raise ImportError("no mitsuba")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mitsuba)
    assert "mitsuba is not installed" in renders.studio_missing()


def test_eval_retrieval_skips_renders_with_the_reason_when_the_studio_is_missing(monkeypatch, tmp_path):
    from jewelsearch.cli import instance
    monkeypatch.setattr(renders, "studio_missing", lambda: "mitsuba is not installed (test)")
    sets = _sets_with_renders(tmp_path)
    instance._add_renders(sets, None, RenderSetPlan(specs=2), tmp_path / "cache")
    assert sets.render_skipped == "mitsuba is not installed (test)" and not (tmp_path / "cache").exists()


def test_local_descriptors_are_unit_rows_of_the_strongest_positions(tmp_path):
    from test_instance_vectors import DENSE_SPEC

    from jewelsearch.embed.local_features import local_descriptors
    from jewelsearch.embed.model_folder import build_model, save_model_folder
    torch.manual_seed(1)
    net, _, _ = build_model(DENSE_SPEC)
    folder = tmp_path / "tiny-dense"
    save_model_folder(net, folder, DENSE_SPEC, list(net.state_dict().keys()))
    from jewelsearch.embed import load_encoder
    encoder = load_encoder(str(folder))
    photos = [Image.new("RGB", (64, 64), (200, 30, 30)), Image.new("RGB", (80, 64), (30, 30, 200))]
    rows = local_descriptors(encoder, photos, keep=3)
    assert len(rows) == 2 and rows[0].shape == (3, 1280) and rows[0].dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(rows[0].astype(np.float32), axis=1), 1.0, atol=2e-3)
    # At 64 px the last map has 2 x 2 positions: asking for more keeps all four.
    assert local_descriptors(encoder, photos[:1], keep=10)[0].shape[0] == 4


def test_eval_retrieval_refuses_a_render_plan_of_one_spec_before_loading_anything(tmp_path):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    (tmp_path / "worn").mkdir()
    (tmp_path / "products").mkdir()
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "eval", "retrieval", "--worn",
                                       str(tmp_path / "worn"), "--catalog", str(tmp_path / "products"),
                                       "--renders", "1"])
    assert result.exit_code != 0 and "at least 2 specs" in result.output


def test_a_remembered_descriptor_embeds_each_list_of_photos_once(tmp_path):
    from jewelsearch.evaluate.retrieval_run import remembered
    sets = _sets_with_renders(tmp_path)
    calls = []

    def counting(images):
        calls.append(len(images))
        return _by_colour(images)

    once = remembered(counting)
    first = judge(sets, once, modes=("whole", "multi"))
    passes = len(calls)
    assert judge(sets, once, modes=("multi",))["multi"] == first["multi"] and len(calls) == passes
