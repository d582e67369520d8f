"""Typos for evaluation: one dropped, swapped, doubled or changed letter in a word of five
letters or more, never its first or last letter (shoppers rarely miss those), drawn from a
seeded random generator so a query set is the same on every run."""

from __future__ import annotations

import random
import re
import string

WORD = re.compile(r"[A-Za-z]{5,}")


def with_typo(text: str, rng: random.Random) -> str | None:
    """``text`` with one typo in one of its words of 5+ letters, or None if it has none.

    >>> with_typo("oval sapphire pendant", random.Random(0)) != "oval sapphire pendant"
    True
    """
    words = list(WORD.finditer(text))
    if not words:
        return None
    word = rng.choice(words)
    w, at = word.group(), rng.randrange(1, len(word.group()) - 1)
    kind = rng.choice(["drop", "swap", "double", "change"])
    if kind == "drop":
        typo = w[:at] + w[at + 1:]
    elif kind == "swap":
        typo = w[:at] + w[at + 1] + w[at] + w[at + 2:]
    elif kind == "double":
        typo = w[:at] + w[at] + w[at:]
    else:
        typo = w[:at] + rng.choice([c for c in string.ascii_lowercase if c != w[at].lower()]) + w[at + 1:]
    return text[:word.start()] + typo + text[word.end():]
