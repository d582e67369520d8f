"""Suggestions while the shopper types: the last word completed from the words the listings
use ("oval sapph" → "oval sapphire"), each with how many listings hold every word of it.

Only words the catalog holds are offered, so a suggestion never leads to an empty word match;
the words before the last count only where some listing holds them ("under $5" does not zero
every count). Chinese gets completions from a catalog's own Chinese words; the glossary's
Chinese phrases are not offered (an input method already completes those).
"""

from __future__ import annotations

from typing import Any

from jewelsearch.errors import InvalidInput
from jewelsearch.query import Glossary, understand
from jewelsearch.storage.lexical import LexicalIndex
from jewelsearch.storage.lexical_tokens import lexical_tokens

MIN_PREFIX = 2  # characters; one letter would offer the commonest words, not what was meant
MAX_SUGGESTIONS = 10
MAX_TEXT = 100  # characters: a suggestion is for a query being typed, not a pasted page
COUNT_CAP = 1000  # listings counted per suggestion; the page says "1000+"


def parse_limit(raw: Any, default: int = 6) -> int:
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_SUGGESTIONS}") from None
    if not 1 <= limit <= MAX_SUGGESTIONS:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_SUGGESTIONS}")
    return limit


# Columns whose words a shopper may be offered as they are; the attributes column also holds
# SKUs ("RG-1042-YG" gives "rg", "yg"), so its words are offered only where the glossary knows them.
OFFERED_COLUMNS = ("title", "description", "predicted")


def _offered(words: dict[str, dict[str, int]], glossary: Glossary, most: int) -> list[str]:
    """The words worth offering, the most used first (ties in word order)."""
    usable = {word: max(per_column.values()) for word, per_column in words.items()
              if any(column in per_column for column in OFFERED_COLUMNS) or word in glossary.words}
    return sorted(usable, key=lambda word: (-usable[word], word))[:most]


def suggestions(lexical: LexicalIndex, glossary: Glossary, text: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` completions of ``text``'s last word, most listings first."""
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"q is longer than {MAX_TEXT} characters")
    words = text.split()
    if not words or text[-1].isspace() or len(words[-1]) < MIN_PREFIX:
        return []  # nothing being typed: the shopper finished a word, or has barely started one
    head = words[:-1]
    # The words before, as text search reads them: a price phrase ("under $500") is a filter,
    # not words to find, and Chinese is read as the English words it means.
    terms = understand(" ".join(head), glossary).terms if head else []
    known = [token for term in terms for token in lexical_tokens(term) if lexical.holds(token)]
    out = []
    for word in _offered(lexical.completions(words[-1]), glossary, limit * 3):
        listings = lexical.count_holding_all([*known, word], COUNT_CAP)
        if listings:
            out.append({"text": " ".join([*head, word]), "listings": listings})
    out.sort(key=lambda row: -row["listings"])  # stable: ties keep the word's own order
    return out[:limit]
