"""Folding near-identical listings into one card, as shops list one design as many SKUs.

Two results are variants of one another when their title and attributes are the same (case
and spacing aside); the best-ranked one stays, and says how many more there are. Only what
the shop gave counts: values recognition filled in (``row["predicted"]``) say what two photos
look like, not that they are one design, so photos-only items never fold on them.

>>> rows = {1: {"title": "Hoop earrings in 18k yellow gold", "category": "earrings"},
...         2: {"title": "Hoop  earrings in 18K yellow gold", "category": "earrings"},
...         3: {"title": "Pearl drop earrings", "category": "earrings"}}
>>> fold_ranked([1, 2, 3], rows, limit=10)
[(1, [2]), (3, [])]
>>> guessed = {i: {"title": None, "category": "ring", "predicted": frozenset({"category"})} for i in (4, 5)}
>>> fold_ranked([4, 5], guessed, limit=10)
[(4, []), (5, [])]
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable, Mapping, Sequence

VARIANT_FIELDS = ("title", "category", "metal", "gemstone", "stone_shape")


def variant_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    """>>> variant_key({"title": " Hoop  Earrings", "category": "earrings", "metal": "gold",
    ...              "predicted": frozenset({"metal"})})
    ('hoop earrings', 'earrings', '', '', '')
    """
    # Stored attributes are already lowercase words; a title may not be. Every candidate of a
    # text query is keyed, so the usual case (nothing predicted) is spelled out, not looped.
    title = " ".join((row.get("title") or "").lower().split())
    guessed = row.get("predicted")
    get = row.get
    if not guessed:
        return (title, get("category") or "", get("metal") or "", get("gemstone") or "", get("stone_shape") or "")
    return (title,) + tuple("" if field in guessed else get(field) or "" for field in VARIANT_FIELDS[1:])


def fold_ranked(ranked: Iterable[int], rows: Mapping[int, Mapping[str, Any]],
                limit: int) -> list[tuple[int, list[int]]]:
    """The page of at most ``limit`` cards from ids in rank order: the first id of each variant
    group, with the ids of the others it folds (the answer's ``variant_ids``; their count is its
    ``more_like_this``). No row is copied; after the page is full the rest of the list is only
    read for more variants of the cards on it.

    >>> rows = {1: {"title": "Hoop"}, 2: {"title": "hoop"}, 3: {"title": "Drop"}, 4: {"title": "Stud"}}
    >>> fold_ranked([1, 3, 2, 4], rows, limit=2)
    [(1, [2]), (3, [])]
    """
    ranked = list(ranked)
    return fold_groups(ranked, [_group(rows[item]) for item in ranked], limit)


def fold_groups(ranked: Sequence[int], groups: Sequence[Hashable], limit: int) -> list[tuple[int, list[int]]]:
    """``fold_ranked`` with each id's variant group given (``groups[i]`` is ``ranked[i]``'s):
    equal groups fold; a falsy group (None, 0) never folds.

    >>> fold_groups([7, 8, 9, 10], [3, 0, 3, 5], limit=2)
    [(7, [9]), (8, [])]
    """
    folded_into: dict[Hashable, list[int]] = {}
    cards: list[tuple[int, list[int]]] = []
    for item, group in zip(ranked, groups):
        if not group:  # nothing to compare by: never folded
            if len(cards) < limit:
                cards.append((item, []))
            continue
        folded = folded_into.get(group)
        if folded is not None:
            folded.append(item)
        elif len(cards) < limit:
            folded = folded_into[group] = []
            cards.append((item, folded))
    return cards


def _group(row: Mapping[str, Any]) -> tuple[str, ...] | None:
    key = variant_key(row)
    return key if any(key) else None
