"""Re-ranking (index/rerank.py) on small hand-made vector sets whose answers can be worked out
by hand: unit vectors on a circle, placed by angle, so every distance order is the angle order."""

import numpy as np
import pytest

from jewelsearch.index.rerank import METHODS, alpha_query_expansion, k_reciprocal, rerank


def on_circle(*degrees: float) -> np.ndarray:
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


QUERY = np.array([1.0, 0.0])


def order(scores, names):
    return [names[i] for i in np.argsort(-np.asarray(scores), kind="stable")]


def test_alpha_query_expansion_pulls_the_query_towards_its_best_neighbour():
    """a1 at 20°, b at -24°, a2 at 25°: by cosine a1, b, a2. With top_n=1 and alpha=3 the
    query becomes q + cos(20°)³·a1 = (1.780, 0.284), at 9.1°: a2 is then 15.9° away and b 33.1°,
    so a2 passes b."""
    names = ["a1", "b", "a2"]
    vectors = on_circle(20, -24, 25)
    cosines = vectors @ QUERY
    assert order(cosines, names) == ["a1", "b", "a2"]
    expanded = alpha_query_expansion(QUERY, vectors, cosines, top_n=1, alpha=3)
    assert order(expanded, names) == ["a1", "a2", "b"]
    np.testing.assert_allclose(expanded, np.cos(np.radians([20 - 9.07, -24 - 9.07, 25 - 9.07])), atol=2e-3)


def test_alpha_query_expansion_without_neighbours_is_the_cosine():
    vectors = on_circle(20, -24, 25, 90)
    np.testing.assert_allclose(alpha_query_expansion(QUERY, vectors, vectors @ QUERY, top_n=0), vectors @ QUERY,
                               atol=1e-6)
    # A neighbour the query does not resemble (negative cosine) adds nothing: taking it as the
    # second neighbour changes nothing.
    far = on_circle(180, 20)
    np.testing.assert_allclose(alpha_query_expansion(QUERY, far, far @ QUERY, top_n=2),
                               alpha_query_expansion(QUERY, far, far @ QUERY, top_n=1), atol=1e-6)
    assert alpha_query_expansion(QUERY, np.zeros((0, 2)), np.zeros(0)).shape == (0,)


# q at 0°; g1 at 10° and g2 at 21° sit with it; b1, b2, b3 (-15°, -17°, -19.5°) are a tight
# cluster of their own, b1 nearer the query than g2 is.
K_NAMES = ["g1", "b1", "b2", "b3", "g2"]
K_POINTS = on_circle(10, -15, -17, -19.5, 21)


def test_k_reciprocal_drops_a_near_candidate_whose_neighbours_are_elsewhere():
    """With k1=2 (k1/2 = 1), k2=1 (no local expansion), by hand:
    N(q)={q,g1,b1}, N(g1)={g1,q,g2}, N(g2)={g2,g1,q}, N(b1)={b1,b2,b3}; so R(q)={q,g1} (b1 does not
    have q among its 2 nearest), R*(q)={q,g1}, R*(g2)={g2,g1} (g1's half set {g1,q} shares only g1
    with R(g2)={g2,g1}: 1 < 2/3·2), R*(b1)={b1,b2,b3}. The encodings of q and of every b share
    nothing: Jaccard 1. q and g2 share g1: Jaccard 1 - e^-d(g1,g2) / (2 + e^-d(q,g1)) = 0.675;
    q and g1 share q and g1: 1 - 2e^-d(q,g1) / (2 + e^-d(g1,g2)) = 0.345.
    So g2 passes all three b's, whichever lambda of the paper's (0.3) or none at all."""
    cosines = K_POINTS @ QUERY
    assert order(cosines, K_NAMES) == ["g1", "b1", "b2", "b3", "g2"]
    jaccard = k_reciprocal(QUERY, K_POINTS, k1=2, k2=1, lambda_=0.0)
    np.testing.assert_allclose(-jaccard, [0.345, 1, 1, 1, 0.675], atol=2e-3)
    assert order(jaccard, K_NAMES)[:2] == ["g1", "g2"]
    mixed = k_reciprocal(QUERY, K_POINTS, k1=2, k2=1, lambda_=0.3)
    assert order(mixed, K_NAMES) == ["g1", "g2", "b1", "b2", "b3"]


def test_k_reciprocal_with_lambda_one_keeps_the_original_order():
    scores = k_reciprocal(QUERY, K_POINTS, k1=2, k2=1, lambda_=1.0)
    assert order(scores, K_NAMES) == order(K_POINTS @ QUERY, K_NAMES)
    np.testing.assert_allclose(-scores, 2 - 2 * (K_POINTS @ QUERY), atol=1e-6)  # the squared distance


def test_k_reciprocal_handles_small_sets_duplicates_and_defaults():
    assert k_reciprocal(QUERY, np.zeros((0, 2))).shape == (0,)
    one = k_reciprocal(QUERY, on_circle(30))  # k1 cut to what the set holds
    assert one.shape == (1,) and np.isfinite(one).all()
    twins = k_reciprocal(QUERY, on_circle(0, 0, 40), k1=20, k2=6)  # duplicates of the query itself
    assert np.isfinite(twins).all() and twins[0] == pytest.approx(twins[1]) and twins[0] > twins[2]
    rng = np.random.default_rng(0)
    many = rng.normal(size=(100, 16))
    scores = k_reciprocal(rng.normal(size=16), many)  # the defaults, k1=20, k2=6, on a top-100
    assert scores.shape == (100,) and np.isfinite(scores).all()


def test_rerank_dispatches_by_name():
    vectors = on_circle(20, -24, 25)
    cosines = vectors @ QUERY
    assert set(METHODS) == {"none", "aqe", "kreciprocal"}
    np.testing.assert_allclose(rerank("none", QUERY, vectors, cosines), cosines, atol=1e-6)
    np.testing.assert_allclose(rerank("aqe", QUERY, vectors, cosines), alpha_query_expansion(QUERY, vectors, cosines))
    np.testing.assert_allclose(rerank("kreciprocal", QUERY, vectors, cosines), k_reciprocal(QUERY, vectors))
    with pytest.raises(ValueError):
        rerank("dba", QUERY, vectors, cosines)
