"""Price phrases ("under $500", "1000到2000之间", "around 2k") to a min/max price.

The words come from the glossaries (each file's ``price`` section; the grammar takes the
union, so a new language adds words, not code). The grammar is fixed:
- before-words: "under 500" (max), "over 200" (min), "around 800" (a band), "between A and B";
- after-words: "500以下" / "500 or less" (max), "2千以上" / "500+" (min), "800左右" (band),
  "1000到2000之间" (a range);
- a bare range "500 to 1000", "$500-$1000";
- a bare amount with a currency, "$500" or "500美元", reads as "around".
Matching starts from the numbers (a query without digits costs nothing), then looks just
before and just after each with anchored patterns. An amount is an optional currency, a number ("1,000", "1.5"), an optional multiplier ("2k",
"2千", "1万") and an optional currency after it. Amounts are in the catalog's currency:
a currency word only marks a number as a price, it converts nothing.

Decisions (tested in tests/test_query_understanding.py):
- "around X" is X +- 20 % (``AROUND_BAND``), wide enough for "about $800" to keep $700 and
  $950 pieces, narrow enough to still be a filter.
- Bounds are inclusive: "under $500" keeps a $500 piece.
- A number followed by a unit word ("2 ct", "5 mm", "50分") is not a price, nor is one
  glued to letters ("18kt"). A bare range with no currency, multiplier or range word must
  reach 100 ("size 6 to 7" is not a price).
- In a range only the second amount with a multiplier ("1-2k") lends it to the first when
  that keeps the range in order (1000-2000, but "500-2k" stays 500-2000).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

AROUND_BAND = 0.2
BARE_RANGE_FLOOR = 100.0
WORD_ROLES = ("currency", "units", "max_before", "min_before", "around_before", "between_before",
              "between_joiners", "range_joiners", "range_after", "max_after", "min_after",
              "around_after")
_FLAGS = re.IGNORECASE
_NUMBER = re.compile(r"(?<![0-9a-z.,])(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?![0-9]|[.,][0-9])",
                     _FLAGS)
_BOUNDS = ("max", "min", "around")
_WINDOW = 32  # how far before a number a before-word may start ("no more than" + spaces)


@dataclass(frozen=True)
class PriceHit:
    start: int
    end: int
    min_price: float | None
    max_price: float | None


def _alternatives(words: Iterable[str], glued: bool = False) -> str:
    """Words as one regex alternative, longest first; an ASCII letter or digit at either end
    gets a boundary so "under" does not fire inside "thunder". ``glued`` words (multipliers,
    currencies after a number) may follow a digit directly: "2k", "500usd"."""
    parts = []
    for word in sorted({w.strip().lower() for w in words if w.strip()}, key=len, reverse=True):
        body = r"\s+".join(re.escape(piece) for piece in word.split())
        if word[0].isascii() and word[0].isalnum() and not glued:
            body = r"(?<![a-z0-9])" + body
        if word[-1].isascii() and word[-1].isalnum():
            body += r"(?![a-z0-9])"
        parts.append(body)
    return "(?:" + "|".join(parts) + ")" if parts else "(?!)"


class _WordsBefore:
    """Which word, if any, ends just before a position (spaces allowed between): matched on
    the reversed text so it is one anchored match, not a search over a window.

    >>> _WordsBefore({"max": ["under", "no more than"], "min": ["more than"]}).find("ring no more than 5", 18)
    (5, 'max')
    """

    def __init__(self, roles: Mapping[str, Iterable[str]]):
        self._roles: dict[str, str] = {}
        for role, words in roles.items():
            for word in words:
                if word.strip():
                    self._roles.setdefault(" ".join(word.lower().split()), role)
        alternatives = []
        for word in sorted(self._roles, key=len, reverse=True):
            body = r"\s+".join(re.escape(piece[::-1]) for piece in reversed(word.split()))
            if word[0].isascii() and word[0].isalnum():
                body += r"(?![a-z0-9])"  # "under", not the end of "thunder"
            alternatives.append(body)
        self._pattern = re.compile(r"\s*(" + "|".join(alternatives) + ")", _FLAGS) if alternatives else None

    def find(self, text: str, at: int) -> tuple[int, str] | None:
        """(where the word starts, its role) for the word ending before ``at``."""
        if self._pattern is None:
            return None
        found = self._pattern.match(text[max(0, at - _WINDOW):at][::-1])
        if found is None:
            return None
        return at - found.end(), self._roles[" ".join(found.group(1)[::-1].lower().split())]


@dataclass(frozen=True)
class _Amount:
    start: int
    end: int
    value: float
    multiplier: float | None
    currency: bool


class PriceGrammar:
    """Finds price phrases in normalised text. Built once per glossary."""

    def __init__(self, words: Mapping[str, Sequence[str]], multipliers: Mapping[str, float]):
        self._multipliers = {k.strip().lower(): float(v) for k, v in multipliers.items()}

        def after(role: str, glued: bool = False) -> re.Pattern:
            return re.compile(rf"\s*{_alternatives(words.get(role, ()), glued)}", _FLAGS)

        self._currency_before = _WordsBefore({"currency": words.get("currency", ())})
        self._currency_after = after("currency", glued=True)
        self._multiplier = re.compile(rf"\s*({_alternatives(self._multipliers, glued=True)})", _FLAGS)
        self._units = after("units", glued=True)
        self._between = _WordsBefore({"between": words.get("between_before", ())})
        self._bound_before = _WordsBefore({form: words.get(f"{form}_before", ()) for form in _BOUNDS})
        self._after = {form: after(f"{form}_after") for form in ("max", "min", "around", "range")}
        self._joiners = {"between": after("between_joiners"), "range": after("range_joiners")}

    def find(self, text: str) -> list[PriceHit]:
        """Non-overlapping price phrases, leftmost first and longest at a position.

        >>> grammar = PriceGrammar({"max_before": ["under"], "currency": ["$"]}, {"k": 1000})
        >>> grammar.find("ring under $1.5k")
        [PriceHit(start=5, end=16, min_price=None, max_price=1500.0)]
        """
        amounts = [a for a in (self._amount(n, text) for n in _NUMBER.finditer(text)) if a]
        if not amounts:
            return []
        by_start = {a.start: a for a in amounts}
        found: list[PriceHit] = []
        for a in amounts:
            found += self._around_amount(text, a, by_start)
        hits: list[PriceHit] = []
        end = -1
        for hit in sorted(found, key=lambda h: (h.start, h.start - h.end)):
            if hit.start >= end:
                hits.append(hit)
                end = hit.end
        return hits

    def _amount(self, number: re.Match, text: str) -> _Amount | None:
        start, end = number.span()
        value = float(number.group().replace(",", ""))
        multiplier = None
        if m := self._multiplier.match(text, end):
            multiplier, end = self._multipliers[m.group(1).lower()], m.end()
        currency = False
        if c := self._currency_after.match(text, end):
            currency, end = True, c.end()
        elif self._units.match(text, end):
            return None  # "2 ct", "5 mm": a size, not a price
        if before := self._currency_before.find(text, start):
            currency, start = True, before[0]
        return _Amount(start, end, value * (multiplier or 1), multiplier, currency)

    def _around_amount(self, text: str, a: _Amount, by_start: dict[int, _Amount]) -> list[PriceHit]:
        """Every reading of the phrase around amount ``a``."""
        hits = []
        for form in ("between", "range"):
            joiner = self._joiners[form].match(text, a.end)
            b = by_start.get(_skip_space(text, joiner.end())) if joiner else None
            if b is None:
                continue
            start = a.start
            if form == "between":
                word = self._between.find(text, a.start)
                if word is None:
                    continue
                start = word[0]
            tail = self._after["range"].match(text, b.end)
            hit = _range(start, tail.end() if tail else b.end, a, b, marked=bool(tail) or form == "between")
            if hit:
                hits.append(hit)
        band = (round(a.value * (1 - AROUND_BAND), 2), round(a.value * (1 + AROUND_BAND), 2))
        bounds = {"max": (None, a.value), "min": (a.value, None), "around": band}
        if word := self._bound_before.find(text, a.start):
            hits.append(PriceHit(word[0], a.end, *bounds[word[1]]))
        for form, (low, high) in bounds.items():
            if tail := self._after[form].match(text, a.end):
                hits.append(PriceHit(a.start, tail.end(), low, high))
        if a.currency:
            hits.append(PriceHit(a.start, a.end, *band))  # "$500" alone: around
        return hits


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _range(start: int, end: int, a: _Amount, b: _Amount, marked: bool) -> PriceHit | None:
    low = a.value
    if b.multiplier and not a.multiplier and low * b.multiplier <= b.value:
        low *= b.multiplier  # "1-2k": the 1 is a thousand too
    low, high = min(low, b.value), max(low, b.value)
    marked = marked or a.currency or b.currency or a.multiplier or b.multiplier
    if not marked and high < BARE_RANGE_FLOOR:
        return None  # "size 6 to 7"
    return PriceHit(start, end, low, high)
