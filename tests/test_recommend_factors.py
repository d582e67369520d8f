"""ALS item factors in the runtime blend: fit, fold-in, the blend's source, the fit command,
and erasure dropping what was fitted on the erased shopper's events."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_image

from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.recommend import BlendWeights, CollaborativeSignals, Recommender, build_history
from jewelsearch.recommend.factors import FactorsError, ItemFactors
from jewelsearch.search.fitted_factors import factors_path

GROUP_A, GROUP_B = list(range(1, 21)), list(range(21, 41))
T0 = 1_780_000_000.0


def planted_events(seed=0, users=60):
    """Even shoppers engage with group A, odd ones with group B."""
    rng = random.Random(seed)
    events = []
    for u in range(users):
        for n, item in enumerate(rng.sample(GROUP_A if u % 2 == 0 else GROUP_B, 6)):
            events.append({"user_id": f"u{u}", "item_id": item, "kind": "view", "ts": T0 + n, "weight": 1.0})
    return events


def test_fold_in_recommends_the_shoppers_group_and_is_deterministic():
    first = ItemFactors.fit(planted_events(), erasures=0, factors=8, regularisation=0.1)
    second = ItemFactors.fit(planted_events(), erasures=0, factors=8, regularisation=0.1)
    assert np.array_equal(first.factors, second.factors)
    for history, own in (({1: 3.0, 2: 1.0}, set(GROUP_A)), ({30: 2.0}, set(GROUP_B))):
        top = first.scores(history, 10)
        assert len(top) == 10 and len(set(top) & own) >= 9  # chance: 5
    assert first.scores({999: 1.0}, 10) == {}  # nothing known about the shopper: no opinion


def test_fit_refuses_too_few_events():
    with pytest.raises(FactorsError, match="too few events"):
        ItemFactors.fit([{"user_id": "a", "item_id": 1, "weight": 1.0}], erasures=0)


def test_save_and_load_round_trip_and_damage_is_refused(tmp_path):
    fitted = ItemFactors.fit(planted_events(), erasures=3, factors=4, regularisation=0.1)
    fitted.save(tmp_path / "f.npz")
    loaded = ItemFactors.load(tmp_path / "f.npz")
    assert np.array_equal(loaded.factors, fitted.factors) and loaded.erasures == 3
    assert loaded.scores({1: 1.0}, 5) == fitted.scores({1: 1.0}, 5)
    (tmp_path / "bad.npz").write_bytes(b"not numpy")
    with pytest.raises(FactorsError):
        ItemFactors.load(tmp_path / "bad.npz")
    assert not list(tmp_path.glob("*.partial"))


def test_the_blend_takes_candidates_and_a_reason_from_the_factors():
    from jewelsearch.index import IndexChoice, VectorIndex
    rng = np.random.default_rng(0)
    # Photos say nothing about the groups, and 200 pieces no one engaged with crowd the look-alikes.
    vectors = {i: (v / np.linalg.norm(v)).astype(np.float32) for i, v in
               zip(GROUP_A + GROUP_B + list(range(100, 300)), rng.normal(size=(240, 16)))}
    ids = np.array(sorted(vectors))
    index = VectorIndex.build(ids, np.stack([vectors[i] for i in ids]), IndexChoice("flat"))
    events = planted_events()
    signals = CollaborativeSignals.build([], now=T0 + 100)  # no co-engagement, no popularity
    fitted = ItemFactors.fit(events, erasures=0, factors=8, regularisation=0.1)
    only_factors = BlendWeights(similarity=0.0, co_engagement=0.0, popularity=0.0, history=0.0, taste=0.0,
                                explore=0.0, diversity=0.0, factors=1.0)
    history = build_history("new", [{"item_id": 25, "kind": "like", "ts": T0, "weight": 4.0}], now=T0 + 100)
    lookup = lambda ids: {i: vectors[i] for i in ids if i in vectors}  # noqa: E731
    with_factors = Recommender(index, lookup, signals, only_factors, factors=fitted).recommend(history, 10)
    assert sum(r.item_id in GROUP_B for r in with_factors) >= 9
    assert any(reason["type"] == "shoppers_like_you" for r in with_factors for reason in r.reasons)
    without = Recommender(index, lookup, signals, only_factors).recommend(history, 10)
    assert sum(r.item_id in GROUP_B for r in without) < 9  # the factors made the difference


@pytest.fixture
def shop(service):
    results = service.add_items([NewItem(make_image(seed=i, size=(48, 48)), {"title": f"Piece {i}"})
                                 for i in range(8)])
    ids = [r.item_id for r in results]
    for u in range(6):
        for n, item in enumerate(ids[:4] if u % 2 == 0 else ids[4:]):
            service.record_event({"user_id": f"shopper{u}", "item_id": item, "kind": "like", "ts": T0 + n})
    return ids


def _fit(settings, *extra):
    from jewelsearch.cli import main
    return CliRunner().invoke(main, ["--home", str(settings.home), "recommender", "fit", "--factors", "4", *extra])


def test_fit_command_saves_factors_the_service_serves(settings, service, shop):
    assert service.recommendations.item_factors() is None
    result = _fit(settings, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["items"] == 8 and summary["shoppers"] == 6 and summary["events"] == 24
    assert factors_path(service.catalog).exists()
    fitted = service.recommendations.item_factors()
    assert fitted is not None and set(fitted.item_ids.tolist()) == set(shop)
    from dataclasses import replace
    settings_ = service.recommendations.settings
    service.recommendations.settings = replace(settings_, blend_weights=replace(settings_.blend_weights, factors=1.0))
    assert service.recommend("shopper0", 4)["results"]


def test_erasure_drops_the_factors_in_this_process(settings, service, shop):
    assert _fit(settings).exit_code == 0
    assert service.recommendations.item_factors() is not None
    answer = service.forget_user("shopper0")
    assert answer["events_removed"] == 4 and answer["factors_dropped"] is True
    assert not factors_path(service.catalog).exists()
    assert service.recommendations.item_factors() is None
    assert _fit(settings).exit_code == 0  # refit on what remains
    refitted = service.recommendations.item_factors()
    assert refitted is not None and refitted.shoppers == 5


def test_a_copy_fitted_before_an_erasure_elsewhere_is_never_served(settings, service, shop):
    from jewelsearch.cli import main
    assert _fit(settings).exit_code == 0
    saved = factors_path(service.catalog).read_bytes()
    assert service.recommendations.item_factors() is not None
    forget = CliRunner().invoke(main, ["--home", str(settings.home), "users", "forget", "shopper1"])
    assert forget.exit_code == 0 and "ALS factors" in forget.output
    assert service.recommendations.item_factors() is None
    factors_path(service.catalog).write_bytes(saved)  # a stale copy put back (a backup, a slow fit)
    assert service.recommendations.item_factors() is None


def test_a_fit_that_overlaps_an_erasure_saves_nothing(settings, service, shop, monkeypatch):
    from jewelsearch.search import fitted_factors
    real_fit = ItemFactors.fit.__func__

    def fit_while_erasing(cls, events, **options):
        events = list(events)
        service.forget_user("shopper2")
        return real_fit(cls, events, **options)
    monkeypatch.setattr(ItemFactors, "fit", classmethod(fit_while_erasing))
    with pytest.raises(fitted_factors.FitOverlapError):
        fitted_factors.fit_factors(service.catalog, factors=4)
    assert not factors_path(service.catalog).exists()


@pytest.mark.parametrize("args, message", [
    (["--factors", "0"], "--factors"), (["--regularisation", "0"], "--regularisation"),
    (["--iterations", "x"], "--iterations")])
def test_fit_command_refuses_bad_options(settings, service, args, message):
    result = _fit(settings, *args)
    assert result.exit_code != 0 and message in result.output


def test_fit_command_needs_events_and_a_catalog(tmp_path, settings, service):
    from jewelsearch.cli import main
    empty = _fit(settings)
    assert empty.exit_code == 1 and "too few events" in empty.output
    nowhere = CliRunner().invoke(main, ["--home", str(tmp_path / "nowhere"), "recommender", "fit"])
    assert nowhere.exit_code == 1 and "no catalog" in nowhere.output
    assert not factors_path(service.catalog).exists()


def test_default_weights_without_fitted_factors_serve_and_say_so_once(settings, service, shop, caplog):
    assert service.recommendations.settings.blend_weights.factors > 0  # the ALS source is on by default
    with caplog.at_level("WARNING", logger="jewelsearch.search.recommendations"):
        first = service.recommend("shopper0", 4)["results"]
        service.recommend("shopper1", 4)
    said = [r for r in caplog.records if "ALS source absent" in r.getMessage()]
    assert first and len(said) == 1 and "recommender fit" in said[0].getMessage()
    caplog.clear()
    assert _fit(settings).exit_code == 0
    with caplog.at_level("WARNING", logger="jewelsearch.search.recommendations"):
        assert service.recommend("shopper0", 4)["results"]
        service.forget_user("shopper5")  # the factors go with the erased shopper's events
        assert service.recommend("shopper0", 4)["results"]
    assert len([r for r in caplog.records if "ALS source absent" in r.getMessage()]) == 1
