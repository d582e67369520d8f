"""The strong baselines of ``eval recommend`` on a tiny planted world: two groups of items that
shoppers engage with together; a held-out item of a shopper's group must rank above chance."""

import random
from types import SimpleNamespace

import numpy as np
import pytest

from jewelsearch.evaluate import baselines
from jewelsearch.evaluate.baselines import Interactions

ITEMS = list(range(1, 41))  # group A: 1-20, group B: 21-40
WEIGHT = {"view": 1.0, "purchase": 10.0}.__getitem__


def _world(seed=0):
    rng = random.Random(seed)
    events, cases = [], []
    for u in range(60):
        group = ITEMS[:20] if u % 2 == 0 else ITEMS[20:]
        picks = rng.sample(group, 8)
        user = SimpleNamespace(user_id=f"u{u}", tastes=[{}])
        past = [{"user_id": user.user_id, "item_id": i, "kind": "view", "ts": float(t)} for t, i in enumerate(picks[:6])]
        events.extend(past)
        cases.append((user, past, set(picks[6:])))
    return events, cases


def _vectors():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 16))
    out = {}
    for item in ITEMS:
        v = centres[0 if item <= 20 else 1] + 0.3 * rng.normal(size=16)
        out[item] = (v / np.linalg.norm(v)).astype(np.float32)
    return out


def _in_group_share(method, cases):
    """Share of the top 10 that lies in the shopper's own group (chance: one half)."""
    shares = []
    for user, past, _ in cases:
        own = set(ITEMS[:20]) if int(user.user_id[1:]) % 2 == 0 else set(ITEMS[20:])
        ranked = method((user, past))
        assert len(ranked) == 10 and len(set(ranked)) == 10
        shares.append(np.mean([i in own for i in ranked]))
    return float(np.mean(shares))


def _builders():
    return {
        "ease": lambda data: baselines.ease(data, WEIGHT, 50.0),
        "als": lambda data: baselines.als(data, 0.1, factors=8, seed=3),
        "bpr": lambda data: baselines.bpr(data, 8, seed=3),
        "vbpr": lambda data: baselines.vbpr(data, _vectors(), 0.01, epochs=10, seed=3),
    }


@pytest.mark.parametrize("name", ["ease", "als", "bpr", "vbpr"])
def test_baseline_recommends_the_shoppers_group_well_above_chance(name):
    events, cases = _world()
    method = _builders()[name](Interactions.of(events, ITEMS, WEIGHT))
    assert _in_group_share(method, cases) > 0.8


@pytest.mark.parametrize("name", ["ease", "als", "bpr", "vbpr"])
def test_baseline_is_deterministic_for_a_seed(name):
    events, cases = _world()
    first, second = (_builders()[name](Interactions.of(events, ITEMS, WEIGHT)) for _ in range(2))
    assert [first(c[:2]) for c in cases] == [second(c[:2]) for c in cases]


def test_bought_items_are_never_recommended():
    events, cases = _world()
    user, past, _ = cases[0]
    bought = [dict(e, kind="purchase") for e in past[:3]]
    for build in _builders().values():
        ranked = build(Interactions.of(events + bought, ITEMS, WEIGHT))((user, past + bought))
        assert not {e["item_id"] for e in bought} & set(ranked)


def test_ease_weights_match_the_closed_form_and_have_a_zero_diagonal():
    x = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float)
    b = baselines.ease_weights(__import__("scipy").sparse.csr_matrix(x), 1.0)
    assert np.allclose(np.diag(b), 0)
    # Off the diagonal, B minimises ||X - XB||^2 + lambda ||B||^2 under diag(B) = 0: for column j,
    # b_j solves (G_{-j} + lambda I) b = G_{-j, j} restricted to the other items.
    gram = x.T @ x
    for j in range(3):
        others = [i for i in range(3) if i != j]
        solved = np.linalg.solve(gram[np.ix_(others, others)] + np.eye(2), gram[others, j])
        assert np.allclose(b[others, j], solved)


def test_interactions_sum_event_weights_on_a_log_scale():
    events = [{"user_id": "a", "item_id": 2, "kind": "view", "ts": 0}, {"user_id": "a", "item_id": 2, "kind": "purchase", "ts": 1},
              {"user_id": "b", "item_id": 99, "kind": "view", "ts": 0}]  # 99 is not in the catalog
    data = Interactions.of(events, [1, 2, 3], WEIGHT)
    assert data.matrix.shape == (1, 3)
    assert data.matrix[0, 1] == pytest.approx(np.log1p(11.0))
