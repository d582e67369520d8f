"""The local-feature check over an image query's top candidates (index/local_match.py), its local
features (embed/local_features.py), and how eval retrieval applies it and judges it
(evaluate/retrieval.py, retrieval_local.py), on descriptor sets whose answer is known by
construction."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jewelsearch.evaluate.retrieval import QueryCrops, query_similarities
from jewelsearch.evaluate.retrieval_local import judge_weights, verdict
from jewelsearch.index.local_match import local_rerank, mutual_match_score


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


EYE = np.eye(6, dtype=np.float32)


def test_identical_sets_score_one_and_disjoint_sets_zero():
    parts = EYE[:4]
    assert mutual_match_score(parts, parts) == pytest.approx(1.0)
    assert mutual_match_score(parts, EYE[4:]) == 0.0
    assert mutual_match_score(parts, np.zeros((0, 6), np.float32)) == 0.0


def test_only_mutual_pairs_count():
    """Three query parts all nearest to one candidate part: that part picks one of them back,
    so one pair counts, not three."""
    query = unit([[1, 0.1, 0, 0, 0, 0], [1, 0, 0.2, 0, 0, 0], [1, 0, 0, 0.3, 0, 0]])
    candidate = EYE[:1]
    one_pair = float(query[0] @ candidate[0])
    assert mutual_match_score(query, candidate) == pytest.approx(one_pair)  # min size is 1
    # Against a set of the same size, the two unmatched query parts add nothing.
    spread = np.vstack([EYE[:1], EYE[4:6]])
    assert mutual_match_score(query, spread) == pytest.approx(one_pair / 3, abs=1e-6)


def test_the_piece_whose_parts_match_passes_a_global_look_alike():
    """Candidate a shares all four of the query's parts; candidate b shares one, but its global
    score is a little higher (a look-alike of the same kind). The check puts a first."""
    query = EYE[:4]
    same_piece = EYE[:4][::-1].copy()       # the same parts seen in another order (another camera)
    look_alike = np.vstack([EYE[:1], EYE[4:6], unit([[0, 1, 1, 1, 1, 1]])])
    scores = np.array([0.80, 0.82], np.float32)
    plain = np.argsort(-scores)
    checked = np.argsort(-local_rerank(query, [same_piece, look_alike], scores, weight=0.5))
    assert plain.tolist() == [1, 0] and checked.tolist() == [0, 1]
    # Weight 0 keeps the global order.
    assert np.argsort(-local_rerank(query, [same_piece, look_alike], scores, weight=0.0)).tolist() == [1, 0]
    with pytest.raises(ValueError):
        local_rerank(query, [same_piece], scores)


def _photo(rgb):
    return Image.new("RGB", (8, 8), rgb)


class _ByColour:
    def __call__(self, images):
        return unit([np.asarray(im, dtype=np.float32).reshape(-1, 3).mean(0) + 1e-3 for im in images])


def test_eval_rescoring_sees_each_searched_view_and_only_the_top_candidates():
    """Two queries, multi-crop (whole + one piece each): the check is told each view's flat
    number (0..3) and rescores only its top 2 candidates; the rest keep their scores."""
    gallery = unit([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1]])
    queries = [QueryCrops([_photo((255, 0, 0)), _photo((0, 255, 0))], 1),
               QueryCrops([_photo((0, 0, 255)), _photo((0, 255, 0))], 1)]
    told = []

    def check(view, top, scores):
        told.append((view, sorted(top.tolist())))
        return scores + (top == 1) * 1.0   # the check prefers gallery row 1

    plain = query_similarities(_ByColour(), queries, gallery, "multi")
    checked = query_similarities(_ByColour(), queries, gallery, "multi", local=check, local_candidates=2)
    assert sorted(v for v, _ in told) == [0, 1, 2, 3]
    assert dict(told)[0] == [0, 1]                  # the red whole photo's top two: rows 0 and 1
    assert plain[0].argmax() == 0 and checked[0].argmax() == 1
    # Row 3 (blue) is not among query 0's views' top two: its score is the plain one.
    assert checked[0, 3] == pytest.approx(plain[0, 3])


def test_rule_wins_only_with_a_clear_piece_gain_and_no_drop():
    rng = np.random.default_rng(0)
    base = {"worn_same_product": np.where(np.arange(50) < 10, 0, 3), "pasted_to_catalog": np.where(rng.random(200) < 0.3, 0, 5),
            "render_to_render": np.where(rng.random(100) < 0.5, 0, 5)}
    better_pasted = dict(base, pasted_to_catalog=np.where(base["pasted_to_catalog"] == 0, 0,
                                                          np.where(np.arange(200) % 3 == 0, 0, 5)))
    worse_worn = dict(better_pasted, worn_same_product=np.where(np.arange(50) < 2, 9, base["worn_same_product"]))
    slight = dict(base, render_to_render=np.where(np.arange(100) == 99, 0, base["render_to_render"]))
    result = judge_weights(base, {0.25: slight, 0.5: better_pasted, 1.0: worse_worn})
    assert result["weights"]["0.5"]["verdict"] == "wins"
    assert result["weights"]["1.0"]["verdict"].startswith("loses")   # two worn hits lost
    assert result["weights"]["0.25"]["verdict"].startswith("no clear gain")
    assert result["chosen"] == "0.5" and result["decision"].startswith("on by default")
    assert judge_weights(base, {0.5: base})["decision"].startswith("off by default")


def test_rule_counts_a_worn_drop_as_a_loss():
    changes = {"worn_same_product": {"delta": -0.01, "interval": [-0.03, 0.0]},
               "pasted_to_catalog": {"delta": 0.2, "interval": [0.1, 0.3]}}
    assert verdict(changes).startswith("loses: R@1 drops on worn")
