"""Fusing ranked lists (``search/fusion.py``): the convex combination over arrays gives the
scores, to the last bit, and the order that one item at a time would."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jewelsearch.search import fusion
from jewelsearch.search.fusion import fuse

SCALES = {"semantic": "min_max", "lexical": "max", "attributes": "raw"}


def one_item_at_a_time(signals, weights, scales):
    """The convex combination as the definition reads, in plain Python floats."""
    fused: dict[int, float] = {}
    for name, scores in signals.items():
        weight = float(weights.get(name, 0.0))
        if weight <= 0 or not scores:
            continue
        for item, value in fusion.SCALES[scales.get(name, "min_max")](scores).items():
            fused[item] = fused.get(item, 0.0) + weight * value
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))


scores = st.dictionaries(st.integers(0, 60), st.floats(-2.0, 50.0, allow_nan=False), max_size=40)


@settings(max_examples=300, deadline=None)
@given(semantic=scores, lexical=scores, attributes=scores,
       weights=st.fixed_dictionaries({name: st.sampled_from([0.0, 0.1, 0.35, 1.0, 2.5]) for name in SCALES}))
def test_the_array_form_gives_the_same_bits_and_order(semantic, lexical, attributes, weights):
    signals = {"semantic": semantic, "lexical": lexical, "attributes": attributes}
    assert fuse(signals, weights, scales=SCALES) == one_item_at_a_time(signals, weights, SCALES)


def test_ties_go_to_the_lower_id_and_flat_or_empty_signals_are_handled():
    signals = {"semantic": {5: 0.3, 2: 0.3, 9: 0.3}, "lexical": {}, "attributes": {7: 0.0}}
    got = fuse(signals, {"semantic": 1.0, "lexical": 1.0, "attributes": 1.0}, scales=SCALES)
    assert got == [(2, 1.0), (5, 1.0), (9, 1.0), (7, 0.0)]  # all equal min-max scores give 1
    assert fuse({"lexical": {1: -3.0, 2: 0.0}}, {"lexical": 1.0}, scales=SCALES) == [(1, 0.0), (2, 0.0)]
    assert fuse({"semantic": {1: 0.5}}, {"semantic": 0.0}) == []
    assert fuse({}, {"semantic": 1.0}) == []


def test_an_unknown_method_or_scale_is_refused():
    with pytest.raises(ValueError):
        fuse({"semantic": {1: 1.0}}, {"semantic": 1.0}, method="borda")
    with pytest.raises(KeyError):
        fuse({"semantic": {1: 1.0}}, {"semantic": 1.0}, scales={"semantic": "zscore"})


def test_the_module_examples_hold():
    assert doctest.testmod(fusion).failed == 0
