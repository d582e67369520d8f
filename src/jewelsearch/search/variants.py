"""Folding near-identical listings into one card, as shops list one design as many SKUs.

Two results are variants of one another when their title and attributes are the same (case
and spacing aside); the best-ranked one stays, and says how many more there are.

>>> rows = [{"id": 1, "title": "Hoop earrings in 18k yellow gold", "category": "earrings"},
...         {"id": 2, "title": "Hoop  earrings in 18K yellow gold", "category": "earrings"},
...         {"id": 3, "title": "Pearl drop earrings", "category": "earrings"}]
>>> [(r["id"], r.get("more_like_this", 0)) for r in collapse_variants(rows)]
[(1, 1), (3, 0)]
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

VARIANT_FIELDS = ("title", "category", "metal", "gemstone", "stone_shape")


def variant_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    # Stored attributes are already lowercase words; a title may not be.
    return (" ".join((row.get("title") or "").lower().split()),) + \
        tuple(row.get(field) or "" for field in VARIANT_FIELDS[1:])


def collapse_variants(rows: Iterable[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """The first row of each variant group, in order, with ``more_like_this`` (how many others
    the group holds) and ``variant_ids`` where it holds any; at most ``limit`` cards."""
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    cards: list[dict[str, Any]] = []
    for row in rows:
        key = variant_key(row)
        if not any(key):  # nothing to compare by: never folded
            cards.append(row)
            continue
        card = groups.get(key)
        if card is None:
            card = groups[key] = row
            cards.append(card)
        else:
            card.setdefault("variant_ids", []).append(row["id"])
            card["more_like_this"] = len(card["variant_ids"])
    return cards if limit is None else cards[:limit]


def fold_ranked(ranked: Iterable[int], rows: Mapping[int, Mapping[str, Any]],
                limit: int) -> list[tuple[int, list[int]]]:
    """``collapse_variants`` over ids in rank order, for a page of ``limit`` cards: each card's
    id with the ids of the variants it folds, without copying a row. After the page is full the
    rest of the list is only read for more variants of the cards on it.

    >>> rows = {1: {"title": "Hoop"}, 2: {"title": "hoop"}, 3: {"title": "Drop"}, 4: {"title": "Stud"}}
    >>> fold_ranked([1, 3, 2, 4], rows, limit=2)
    [(1, [2]), (3, [])]
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    cards: list[tuple[int, list[int]]] = []
    for item in ranked:
        key = variant_key(rows[item])
        if not any(key):  # nothing to compare by: never folded
            if len(cards) < limit:
                cards.append((item, []))
            continue
        folded = groups.get(key)
        if folded is not None:
            folded.append(item)
        elif len(cards) < limit:
            folded = groups[key] = []
            cards.append((item, folded))
    return cards
