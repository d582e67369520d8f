"""Look-alike shopper populations, the next-in-visit measure and the strong baselines' tuning."""

from types import SimpleNamespace

import numpy as np

from jewelsearch.evaluate import recommend as evaluation
from jewelsearch.evaluate.recommend import next_in_visit, tune_baselines
from jewelsearch.evaluate.simulate import EmbeddingTastes, SimulationConfig, simulate

CATEGORIES, METALS = ["ring", "earrings", "necklace"], ["silver", "yellow gold"]


def looks_catalog(seed=0, looks=4, per_cell=5, dim=24):
    """Items whose vectors are category + metal + one of ``looks`` hidden style directions."""
    rng = np.random.default_rng(seed)
    cat_dir, metal_dir, look_dir = (rng.normal(size=(n, dim)) for n in (3, 2, looks))
    items, vectors, look_of = [], {}, {}
    item = 1
    for c, category in enumerate(CATEGORIES):
        for m, metal in enumerate(METALS):
            for look in range(looks):
                for _ in range(per_cell):
                    v = cat_dir[c] + metal_dir[m] + 1.2 * look_dir[look] + 0.2 * rng.normal(size=dim)
                    vectors[item] = (v / np.linalg.norm(v)).astype(np.float32)
                    items.append({"id": item, "category": category, "metal": metal, "gemstone": None,
                                  "stone_shape": None, "price": 100.0 + item})
                    look_of[item] = look
                    item += 1
    return items, vectors, look_of


def test_look_clusters_cut_across_category_and_metal_and_find_the_hidden_looks():
    items, vectors, look_of = looks_catalog()
    looks = EmbeddingTastes.of(items, vectors, clusters=4)
    assert looks.match.shape == (4, len(items)) and looks.match.min() >= 0 and looks.match.max() <= 1
    for row, spread in zip(looks.match, looks.spread):
        closest = np.argsort(-row)[:20]
        assert len({look_of[items[i]["id"]] for i in closest}) == 1  # one hidden look ...
        assert spread["categories"] == 3 and spread["metals"] == 2  # ... across every category and metal
    again = EmbeddingTastes.of(items, vectors, clusters=4)
    assert np.array_equal(looks.match, again.match)


def test_look_shoppers_view_their_look_and_are_deterministic():
    items, vectors, look_of = looks_catalog()
    looks = EmbeddingTastes.of(items, vectors, clusters=4)
    config = SimulationConfig(users=30, noise=0.0)
    users = simulate(items, config, 7, looks)
    assert [u.events for u in users] == [u.events for u in simulate(items, config, 7, looks)]
    single = [u for u in users if len(u.tastes) == 1]
    shares = []
    for user in single:
        seen = [look_of[e["item_id"]] for e in user.events if e["kind"] == "view"]
        shares.append(max(np.bincount(seen)) / len(seen))
    assert np.mean(shares) > 0.8  # chance: about a quarter
    assert all(set(t) == {"look"} for u in users for t in u.tastes)


def _user(events):
    return SimpleNamespace(user_id="u", tastes=[{}], events=events)


def test_next_in_visit_is_the_next_view_of_the_same_visit_not_yet_bought():
    e = lambda item, ts, kind="view": {"user_id": "u", "item_id": item, "kind": kind, "ts": ts}  # noqa: E731
    past = [e(1, 0.0), e(2, 100.0)]
    assert next_in_visit(_user(past + [e(3, 200.0, "like"), e(4, 300.0), e(5, 400.0)]), past) == 4
    assert next_in_visit(_user(past + [e(4, 100.0 + evaluation.VISIT_GAP_SECONDS + 1)]), past) is None
    bought = past + [e(2, 150.0, "purchase")]
    assert next_in_visit(_user(bought + [e(2, 200.0)]), bought) is None
    assert next_in_visit(_user(past), past) is None


def test_strong_baselines_are_tuned_on_the_tuning_populations_only(monkeypatch):
    items, vectors, _ = looks_catalog()
    seeds = []
    real = evaluation.simulate

    def recording(world, config, seed, looks=None):
        seeds.append(seed)
        return real(world, config, seed, looks)
    monkeypatch.setattr(evaluation, "simulate", recording)
    monkeypatch.setattr(evaluation, "STRONG", {"EASE": ("lambda", (1.0, 1000.0)),
                                               "ALS (implicit)": ("regularisation", (0.1, 10.0))})
    chosen, log = tune_baselines(vectors, items, SimulationConfig(users=40), 1001, list(vectors))
    assert sorted(set(seeds)) == [1001, 1002]
    assert chosen["EASE"] in (1.0, 1000.0) and chosen["ALS (implicit)"] in (0.1, 10.0)
    assert len(log) == 4
    for name in chosen:
        rows = [r for r in log if r["method"] == name]
        best = max(rows, key=lambda r: r["ndcg@10"])
        assert best[evaluation.STRONG[name][0]] == chosen[name]
