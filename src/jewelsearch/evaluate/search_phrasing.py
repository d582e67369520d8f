"""Turning a search intent into a shopper's words, in English or Chinese.

Each kind of intent has several templates; the caller's seeded RNG picks one, so a query set
is the same on every run. Parts a template needs but the intent lacks are dropped, and the
piece is called "jewelry" / 首饰 when the intent names no category.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Mapping, Sequence

from jewelsearch.evaluate.search_vocab import (CATEGORY, COLOUR, GEMSTONE, METAL, SHAPE, STYLE,
                                               STYLE_NAMES_PIECE)

EN, ZH = 0, 1

ATTRIBUTE_TEMPLATES = {
    "en": ["{shape} {gem} {piece} in {metal}", "{metal} {piece} with {shape} {gem}", "{metal} {shape} {gem} {piece}"],
    "zh": ["{metal}{shape}{gem}{piece}", "{metal}镶{shape}{gem}{piece}", "{shape}{gem}{piece} {metal}"],
}
COLOUR_TEMPLATES = {
    "en": ["{colour} stone {piece}", "{piece} with a {colour} stone", "{colour} gemstone {piece}"],
    "zh": ["{colour}宝石{piece}", "镶{colour}宝石的{piece}", "{piece} {colour}宝石"],
}
STYLE_TEMPLATES = {
    "en": ["{style} {piece} in {metal}", "{metal} {style} {piece}"],
    "zh": ["{metal}{style}{piece}", "{style}{piece} {metal}"],
}
PRICE_TEMPLATES = {
    "en": {"max": ["{what} under ${max}", "{what} below {max} dollars", "{what} less than ${max}"],
           "min": ["{what} over ${min}", "{what} above {min} dollars", "{what} more than ${min}"],
           "range": ["{what} between ${min} and ${max}", "{what} ${min}-${max}"]},
    "zh": {"max": ["{max}美元以下的{what}", "{what} {max}美元以内", "{what} 低于{max}美元"],
           "min": ["{min}美元以上的{what}", "{what} 高于{min}美元", "{what} {min}美元以上"],
           "range": ["{what} {min}到{max}美元", "{min}-{max}美元的{what}"]},
}


def _word(table: Mapping[str, tuple[str, str]], value: Any, language: str) -> str:
    return table[value][EN if language == "en" else ZH] if value in table else ""


def _piece(category: str | None, language: str) -> str:
    if category is None:
        return "jewelry" if language == "en" else "首饰"
    return _word(CATEGORY, category, language)


def _fill(template: str, language: str, **parts: str) -> str:
    """Fill a template, dropping a missing part and the little words ("in", "with", 镶) that
    only made sense with it."""
    text = template
    if not parts.get("metal"):
        text = text.replace(" in {metal}", "").replace("{metal}镶", "")
    if not parts.get("gem"):
        text = text.replace(" with {shape} {gem}", "").replace("镶{shape}{gem}", "{shape}{gem}")
    text = text.format(**{k: v or "" for k, v in parts.items()})
    text = " ".join(text.split())
    return text.replace("镶镶", "镶").strip()


def _attribute(intent, language: str, rng: random.Random) -> str:
    parts = {"metal": _word(METAL, intent.get("metal"), language),
             "gem": _word(GEMSTONE, intent.get("gemstone"), language),
             "shape": _word(SHAPE, intent.get("stone_shape"), language),
             "piece": _piece(intent.get("category"), language)}
    if not parts["metal"] and not parts["gem"] and intent.get("category"):
        return parts["piece"]
    if not parts["gem"] and language == "zh":
        return f"{parts['metal']}{parts['piece']}"
    return _fill(rng.choice(ATTRIBUTE_TEMPLATES[language]), language, **parts)


def _colour(intent, language: str, rng: random.Random) -> str:
    return _fill(rng.choice(COLOUR_TEMPLATES[language]), language,
                 colour=_word(COLOUR, intent.get("colour"), language),
                 piece=_piece(intent.get("category"), language))


def _style(intent, language: str, rng: random.Random, examples: Sequence[Mapping[str, Any]]) -> str:
    style = intent.get("style")
    # The piece the style is worn as ("solitaire" -> ring), unless the style word says it.
    categories = Counter(row.get("category") for row in examples if row.get("category"))
    category = categories.most_common(1)[0][0] if categories else None
    piece = "" if style in STYLE_NAMES_PIECE or category is None else _piece(category, language)
    return _fill(rng.choice(STYLE_TEMPLATES[language]), language, style=_word(STYLE, style, language),
                 piece=piece, metal=_word(METAL, intent.get("metal"), language))


def _price(intent, language: str, rng: random.Random) -> str:
    what = _fill("{gem}{piece}" if language == "zh" else "{gem} {piece}", language,
                 gem=_word(GEMSTONE, intent.get("gemstone"), language),
                 piece=_piece(intent.get("category"), language))
    high, low = intent.get("price_max"), intent.get("price_min")
    kind = "range" if high is not None and low is not None else "max" if high is not None else "min"
    return rng.choice(PRICE_TEMPLATES[language][kind]).format(what=what, max=high, min=low).strip()


def phrase(intent, language: str, rng: random.Random, examples: Sequence[Mapping[str, Any]] = ()) -> str:
    """The words a shopper types for ``intent`` in ``language`` ("en" or "zh")."""
    if intent.kind == "attribute":
        return _attribute(intent, language, rng)
    if intent.kind == "colour":
        return _colour(intent, language, rng)
    if intent.kind == "style":
        return _style(intent, language, rng, examples)
    if intent.kind == "price":
        return _price(intent, language, rng)
    raise ValueError(f"unknown intent kind {intent.kind}")
