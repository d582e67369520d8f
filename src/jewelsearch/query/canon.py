"""The canonical values a glossary may name, and how each reads as an English chip label.

Attribute values are the stored item values of ``embed.vocab`` (lowercase words, "sapphire
blue", "white gold"). Two additions live here because vocab has no place for them yet:
- ``STYLES``: how a piece is built (solitaire, halo, stud ...). The studio's styles (see
  ``studio/spec.py:STYLES``; a test keeps the two in step) plus the catalog words "cuff" and
  "cluster". Styles are not a stored field; the search boosts them through titles.
- the stone shape "cabochon": the studio and the demo catalog store it for domed opaque
  stones, though ``vocab.CUTS`` lists faceted cuts only.
"""

from __future__ import annotations

from jewelsearch.embed.vocab import (
    CATEGORIES,
    CUTS,
    GEM_SPOKEN,
    GEMSTONES,
    METALS,
    NO_STONE,
)

STYLES = ("solitaire", "halo", "three-stone", "eternity", "cluster", "pendant", "stud", "drop",
          "hoop", "tennis", "bangle", "cuff", "chain", "pearls")
SHAPES = tuple(c for c in CUTS if c != NO_STONE) + ("cabochon",)

# Stored field -> every value a glossary may map a phrase to, in the order answers list them.
FIELDS: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "metal": METALS,
    "gemstone": tuple(g for g in GEMSTONES if g != NO_STONE),
    "stone_shape": SHAPES,
}
GOLDS = tuple(m for m in METALS if m.endswith(" gold"))
KARATS = (9, 10, 14, 18, 22, 24)

_ORDER = {field: {v: i for i, v in enumerate(values)} for field, values in
          {**FIELDS, "style": STYLES}.items()}


def ordered(field: str, values) -> tuple[str, ...]:
    """Unique values in vocabulary order, so two phrasings of one meaning compare equal.

    >>> ordered("metal", ["white gold", "platinum", "white gold"])
    ('white gold', 'platinum')
    """
    rank = _ORDER[field]
    return tuple(sorted(set(values), key=lambda v: rank.get(v, len(rank))))


def spoken(field: str, value: str) -> str:
    """One value as a shopper reads it: "sapphire blue" -> "blue sapphire", the shape
    "emerald" -> "emerald cut" (so it is not read as the gem)."""
    if field == "gemstone":
        return GEM_SPOKEN.get(value, value)
    if field == "stone_shape" and value == "emerald":
        return "emerald cut"
    return value
