"""Suggestions while the shopper types: the last word completed from the words the listings
use ("oval sapph" → "oval sapphire"), each with how many listings hold every word of it.

Only words the catalog holds are offered, and only where some listing holds every word of the
suggestion, so a suggestion never leads to an empty word match. The words before the last are
read as text search reads them (``_required``): a price phrase ("under $500") is a filter, not
words to find, and a typo of a glossary word is read as the word. Chinese is written without spaces and read
through the glossary, so there the typed characters' tail is completed to the glossary's
Chinese phrases ("椭圆蓝" → "椭圆蓝宝石"), counted by the English words the whole text is read
as; one per meaning.
"""

from __future__ import annotations

from typing import Any

from jewelsearch.embed.vocab import CATEGORIES
from jewelsearch.errors import InvalidInput
from jewelsearch.query import Glossary, Understanding, understand
from jewelsearch.query.text_units import has_cjk
from jewelsearch.storage.lexical import LexicalIndex
from jewelsearch.storage.lexical_tokens import lexical_tokens, singular

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


# The index folds plurals ("earrings" is held as "earring"); a category is offered as shops and
# shoppers write it.
SAID_AS = {singular(name): name for name in CATEGORIES if singular(name) != name}


def _offered(words: dict[str, dict[str, int]], glossary: Glossary, most: int) -> list[str]:
    """The words worth offering, the most used first (ties in word order)."""
    usable = {word: max(per_column.values()) for word, per_column in words.items()
              if any(column in per_column for column in OFFERED_COLUMNS) or word in glossary.words}
    return sorted(usable, key=lambda word: (-usable[word], word))[:most]


def _required(lexical: LexicalIndex, glossary: Glossary, text: str,
              reading: Understanding | None = None, strict: bool = False) -> list[str] | None:
    """The words a listing must hold to count for ``text``, as text search reads it: its terms
    that some listing holds. A word the glossary adds to what was typed ("yellow" for "gold", a
    listing may say just "gold") is dropped where no listing holds it; a word typed that no
    listing holds makes it None, as does any term no listing holds where ``strict`` (Chinese,
    whose typed characters are not the English words the index holds). A price phrase and
    filler are no terms, so they never count."""
    if not text:
        return []
    reading = reading or understand(text, glossary)
    typed = set(lexical_tokens(text))
    required = []
    for token in dict.fromkeys(t for term in reading.terms for t in lexical_tokens(term)):
        if lexical.holds(token):
            required.append(token)
        elif strict or token in typed:
            return None
    return required


def suggestions(lexical: LexicalIndex, glossary: Glossary, text: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` completions of ``text``'s last word, most listings first."""
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"q is longer than {MAX_TEXT} characters")
    words = text.split()
    if not words or text[-1].isspace():
        return []  # the shopper finished a word
    if has_cjk(words[-1]):
        return _chinese(lexical, glossary, words, limit)
    if len(words[-1]) < MIN_PREFIX:
        return []  # one letter would offer the commonest words, not what was meant
    head = words[:-1]
    known = _required(lexical, glossary, " ".join(head))
    if known is None:
        return []  # a word typed before the last is one no listing uses
    out = []
    for word in _offered(lexical.completions(words[-1]), glossary, limit * 3):
        listings = lexical.count_holding_all([*known, word], COUNT_CAP)
        if listings:
            out.append({"text": " ".join([*head, SAID_AS.get(word, word)]), "listings": listings})
    out.sort(key=lambda row: -row["listings"])  # stable: ties keep the word's own order
    return out[:limit]


def _chinese(lexical: LexicalIndex, glossary: Glossary, words: list[str], limit: int) -> list[dict[str, Any]]:
    """Glossary phrases completing the typed text's Chinese tail, each counted as the whole
    text is read; of phrases meaning the same, the longest (the full word, not a short form)."""
    typed = words[-1]
    before = " ".join(words[:-1])
    best: dict[tuple, tuple[int, str, str]] = {}
    for start in range(len(typed)):
        tail = typed[start:]
        for phrase in glossary.cjk_phrases:
            if len(phrase) <= len(tail) or not phrase.startswith(tail):
                continue
            text = f"{before} {typed[:start]}{phrase}".strip()
            reading = understand(text, glossary)
            tokens = _required(lexical, glossary, text, reading, strict=True)
            listings = lexical.count_holding_all(tokens, COUNT_CAP) if tokens else 0
            meaning = (typed[:start], tuple(sorted((k, tuple(v)) for k, v in reading.attributes.items())),
                       tuple(reading.terms))
            if listings and (meaning not in best or len(phrase) > len(best[meaning][2])):
                best[meaning] = (listings, text, phrase)
        if best:
            break  # the longest tail that starts a phrase is what is being typed
    ranked = sorted(best.values(), key=lambda row: (-row[0], -len(row[2]), row[1]))
    return [{"text": text, "listings": listings} for listings, text, _ in ranked[:limit]]
