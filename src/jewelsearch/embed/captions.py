"""Captions from labels: the words shoppers type, in varied templates.

Varied wording keeps the text tower from keying on one template; every caption
is built only from labels the item really has, so it never lies.
"""

from __future__ import annotations

import random
from typing import Mapping

from jewelsearch.embed.vocab import GEM_SPOKEN

CATEGORY_WORDS = {
    "ring": ["ring", "ring", "band"], "necklace": ["necklace", "necklace", "chain necklace"],
    "pendant": ["pendant", "pendant necklace"], "earrings": ["earrings", "pair of earrings", "studs"],
    "bracelet": ["bracelet", "bangle", "bracelet"], "watch": ["watch", "wristwatch", "watch"],
}
METAL_WORDS = {
    "yellow gold": ["yellow gold", "gold", "18k yellow gold"], "rose gold": ["rose gold", "pink gold"],
    "white gold": ["white gold", "white gold"], "platinum": ["platinum"],
    "silver": ["silver", "sterling silver"], "steel": ["stainless steel", "steel"],
}


def spoken_gem(gem: str) -> str:
    return GEM_SPOKEN.get(gem, gem)


def caption(labels: Mapping[str, str | None], rng: random.Random) -> str:
    """One natural caption from whatever labels are present.

    >>> caption({"category": "ring", "gemstone": "sapphire blue", "metal": "rose gold",
    ...          "cut": "oval"}, random.Random(0))  # doctest: +SKIP
    'oval blue sapphire ring in rose gold'
    """
    category = labels.get("category")
    gem = labels.get("gemstone")
    gem = None if gem == "none" else gem
    metal = labels.get("metal")
    cut = labels.get("cut")
    cut = None if cut == "none" else cut
    description = labels.get("description")
    if description and rng.random() < 0.35:
        return description
    cat = rng.choice(CATEGORY_WORDS.get(category, [category])) if category else None
    met = rng.choice(METAL_WORDS.get(metal, [metal])) if metal else None
    gem_words = spoken_gem(gem) if gem else None
    if cut and gem_words and rng.random() < 0.7:
        gem_words = f"{cut}{rng.choice(['', '-cut', ' cut'])} {gem_words}"
    if cat is None:  # a loose stone
        if gem_words is None:
            return "a piece of jewelry"
        return rng.choice([f"{gem_words}", f"a loose {gem_words}", f"a {gem_words} gemstone",
                           f"{gem_words} stone", f"a photo of a {gem_words}"])
    parts = []
    if gem_words:
        parts.append(rng.choice([f"{gem_words} {cat}", f"{cat} with a {gem_words}",
                                 f"{cat} with {gem_words}"]))
    else:
        parts.append(cat)
    text = parts[0]
    if met:
        text = rng.choice([f"{text} in {met}", f"{met} {text}" if not gem_words else f"{text} in {met}",
                           f"{text}, {met}"])
    return rng.choice([text, text, f"a {text}", f"a photo of a {text}"]) if not text.startswith("a ") else text


def prompts_for(field: str, label: str) -> list[str]:
    """Text prompts for zero-shot classification of one attribute value."""
    if field == "category":
        words = CATEGORY_WORDS.get(label, [label])
        return [f"a photo of a {w}" for w in dict.fromkeys(words)] + [f"a {label}"]
    if field == "metal":
        return [f"jewelry in {m}" for m in dict.fromkeys(METAL_WORDS.get(label, [label]))]
    if label == "none":
        return ["plain jewelry without gemstones", "a plain metal piece"]
    if field == "gemstone":
        gem = spoken_gem(label)
        return [f"a {gem}", f"a photo of a {gem} gemstone", f"jewelry with a {gem}"]
    if field == "cut":
        return [f"a {label} cut gemstone", f"a {label}-cut stone"]
    return [label]
