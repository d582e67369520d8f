"""How well a candidate matches the attributes a text query was understood to ask for: the row
form (``attribute_match``, one item) and the column form (``attribute_scores``, many items over
``search/ranking_columns.py``), which give the same numbers."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from jewelsearch.search.ranking_columns import GUESSED_FIELDS, PREDICTED_BIT, Columns, style_title

# What another member of a family earns where the plain family name was asked for: a pink
# sapphire is another stone to a shopper who typed "sapphire", halfway between a match and a miss.
FAMILY_CREDIT = 0.5
# The category names what the shopper is buying ("pearl earrings" are earrings first), so it
# counts twice as much as a stone, metal, cut or style.
FIELD_WEIGHTS = {"category": 2.0}


def attribute_match(row: Mapping[str, Any], boosts: Mapping[str, tuple[str, ...]], predicted_credit: float,
                    preferred: Mapping[str, tuple[str, ...]] | None = None, guess_full_at: float | None = None) -> float:
    """The weighted share of understood fields the item matches. A value recognition predicted earns
    ``predicted_credit`` of a given one; where a plain family name was understood
    ("sapphire"), its usual member earns full credit and the other members ``FAMILY_CREDIT``.
    With ``guess_full_at``, a field recognition guessed (``row["guesses"]``, its top guesses)
    earns ``predicted_credit`` times ``guess_credit`` instead: every guess counts, by its
    probability, not only a top guess that was filled in.

    >>> attribute_match({"gemstone": "sapphire blue", "category": "ring", "predicted": frozenset()},
    ...                 {"gemstone": ("sapphire blue",), "category": ("pendant",)}, 0.5)
    0.3333333333333333
    >>> attribute_match({"gemstone": "sapphire pink", "predicted": frozenset()},
    ...                 {"gemstone": ("sapphire blue", "sapphire pink")}, 0.5, {"gemstone": ("sapphire blue",)})
    0.5
    """
    preferred = preferred or {}
    if not boosts:
        return 0.0
    predicted = row["predicted"]  # the field names recognition filled (``ItemStore.ranking_rows``)
    earned = total = 0.0
    for name, values in boosts.items():
        weight = FIELD_WEIGHTS.get(name, 1.0)
        total += weight
        if name == "style":
            # The title is read only for a style word (a few queries), not for every candidate;
            # an item without words may carry the style recognition filled in.
            title = style_title(row.get("title"))
            if any(value.replace("-", " ") in title for value in values):
                earned += weight
            elif row.get("style") in values:
                earned += weight * predicted_credit
        elif guess_full_at is not None and name in (guesses := row.get("guesses") or {}):
            earned += weight * predicted_credit * guess_credit(guesses[name], values, preferred.get(name), guess_full_at)
        elif row.get(name) in values:
            credit = FAMILY_CREDIT if name in preferred and row.get(name) not in preferred[name] else 1.0
            earned += weight * credit * (predicted_credit if name in predicted else 1.0)
    return earned / total


def guess_credit(guesses: Sequence[tuple[str, float]], values: tuple[str, ...], preferred: tuple[str, ...] | None,
                 full_at: float) -> float:
    """How much of a match recognition's guesses for one field make: each guess that is a wanted
    value earns its probability over ``full_at`` (at most 1; a family's other members
    ``FAMILY_CREDIT`` of that), and together at most 1. With ``full_at`` at the fill threshold a
    top guess that was filled in earns what a filled value earned before; a piece whose metal
    the head was unsure of still earns something for each metal it thought likely.

    >>> guess_credit((("silver", 0.45), ("platinum", 0.3)), ("platinum",), None, 0.5)
    0.6
    >>> guess_credit((("sapphire blue", 0.7), ("sapphire pink", 0.2)), ("sapphire blue", "sapphire pink"), ("sapphire blue",), 0.5)
    1.0
    """
    credit = 0.0
    for label, p in guesses:
        if label in values:
            credit += (FAMILY_CREDIT if preferred is not None and label not in preferred else 1.0) * min(1.0, p / full_at)
    return min(1.0, credit)


def attribute_scores(columns: Columns, rows: np.ndarray, boosts: Mapping[str, tuple[str, ...]],
                     predicted_credit: float, preferred: Mapping[str, tuple[str, ...]] | None = None,
                     guess_full_at: float | None = None) -> np.ndarray:
    """``attribute_match`` of the items at ``rows`` of ``columns``, all at once. Each step does
    the same floating-point operations in the same order as the row form, so the scores are
    equal, not just close."""
    preferred = preferred or {}
    earned = np.zeros(len(rows), dtype=np.float64)
    if not boosts:
        return earned
    total = 0.0
    for name, values in boosts.items():
        weight = FIELD_WEIGHTS.get(name, 1.0)
        total += weight
        if name == "style":
            wanted = [value.replace("-", " ") for value in values]
            in_title = np.fromiter((any(word in title for word in wanted) for title in columns.style_titles[rows]),
                                   dtype=bool, count=len(rows))
            guessed = np.isin(columns.style[rows], columns.style_vocabulary.known(values))
            earned += np.where(in_title, weight, np.where(guessed, weight * predicted_credit, 0.0))
            continue
        if name not in columns.codes:
            continue  # no item holds such a field (the row form finds no value either)
        codes = columns.codes[name][rows]
        vocabulary = columns.vocabularies[name]
        matched = np.isin(codes, vocabulary.known(values))
        credit = np.where(np.isin(codes, vocabulary.known(preferred[name])), 1.0, FAMILY_CREDIT) \
            if name in preferred else np.ones(len(rows))
        guessed = (columns.predicted[rows] & PREDICTED_BIT[name]) != 0 if name in PREDICTED_BIT \
            else np.zeros(len(rows), dtype=bool)
        plain = np.where(matched, weight * credit * np.where(guessed, predicted_credit, 1.0), 0.0)
        if guess_full_at is not None and name in GUESSED_FIELDS:
            # Only the candidates recognition guessed for (none in a catalog with every field given).
            at = np.flatnonzero(columns.guess_codes[name][rows, 0])
            if len(at):
                soft = _guess_credits(columns.guess_codes[name][rows[at]], columns.guess_probabilities(name, rows[at]),
                                      vocabulary.known(values),
                                      None if name not in preferred else vocabulary.known(preferred[name]),
                                      guess_full_at)
                plain[at] = weight * predicted_credit * soft
        earned += plain
    return earned / total


def _guess_credits(codes: np.ndarray, p: np.ndarray, wanted: np.ndarray, preferred: np.ndarray | None,
                   full_at: float) -> np.ndarray:
    """``guess_credit`` of many items' guesses (codes and probabilities, a column per guess, best
    first), with the same operations in the same order."""
    family = np.ones(codes.shape) if preferred is None else np.where(np.isin(codes, preferred), 1.0, FAMILY_CREDIT)
    terms = np.where(np.isin(codes, wanted), family * np.minimum(1.0, p / full_at), 0.0)
    credit = np.zeros(len(codes), dtype=np.float64)
    for slot in range(codes.shape[1]):  # summed guess by guess, in the row form's order
        credit += terms[:, slot]
    return np.minimum(1.0, credit)


def matches_every_field(row: Mapping[str, Any], boosts: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether the item has every understood field, whoever gave the value (the shop or
    recognition) and whichever member of a family it is: what a shopper would call "a piece
    like the one I asked for". A query that understood nothing has no such piece.

    >>> row = {"category": "earrings", "gemstone": "diamond", "title": "Oval diamond stud earrings", "predicted": frozenset()}
    >>> matches_every_field(row, {"category": ("earrings",), "gemstone": ("pearl",)})
    False
    >>> matches_every_field(row, {"category": ("earrings",), "style": ("stud",)})
    True
    """
    return bool(boosts) and _fields_matched(row, boosts) == len(boosts)


def _fields_matched(row: Mapping[str, Any], boosts: Mapping[str, tuple[str, ...]]) -> int:
    """How many of the understood fields the item matches at all (any credit)."""
    matched = 0
    for name, values in boosts.items():
        if name == "style":
            title = style_title(row.get("title"))
            matched += any(value.replace("-", " ") in title for value in values) or row.get("style") in values
        else:
            matched += row.get(name) in values
    return matched


def every_field_matched(columns: Columns, rows: np.ndarray, boosts: Mapping[str, tuple[str, ...]]) -> np.ndarray:
    """``matches_every_field`` of the items at ``rows`` of ``columns``, all at once."""
    if not boosts:
        return np.zeros(len(rows), dtype=bool)
    every = np.ones(len(rows), dtype=bool)
    for name, values in boosts.items():
        if name == "style":
            wanted = [value.replace("-", " ") for value in values]
            in_title = np.fromiter((any(word in title for word in wanted) for title in columns.style_titles[rows]),
                                   dtype=bool, count=len(rows))
            every &= in_title | _among(columns.style[rows], columns.style_vocabulary.known(values))
        elif name not in columns.codes:
            return np.zeros(len(rows), dtype=bool)  # no item holds such a field
        else:
            every &= _among(columns.codes[name][rows], columns.vocabularies[name].known(values))
    return every


def _among(codes: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``np.isin(codes, wanted)`` by a lookup table: a few hundred codes against a few wanted
    ones, where ``isin``'s sorting costs more than the test."""
    if not len(codes):
        return np.zeros(0, dtype=bool)
    table = np.zeros(max(int(codes.max()), int(wanted.max(initial=0))) + 1, dtype=bool)
    table[wanted] = True
    return table[codes]
