"""``understand``: a shopper's words to structured intent (attributes, styles, karat, price).

1. Normalise (NFKC, no zero-width characters) and cap the length.
2. Price phrases first (``query/price.py``), so "between 1k and 2k" is not read as words.
3. The rest, unit by unit (``query/text_units.py``): at each unit the longest glossary phrase
   starting there wins ("white gold" before "white", "emerald cut" before "emerald"); an
   English word also matches its singular ("rings", "watches", "rubies"). What matches
   nothing is the residual.
4. Values of one field are alternatives (union): "ruby or sapphire ring". Then two rules:
   - a colour narrows named gems: "blue ... sapphire" keeps the blue sapphire, "white pearl"
     the pearl; with no gem named the colour stands for its gems; a colour that fits none of
     the named gems is dropped in favour of them.
   - a karat means gold: "18K白金" keeps white gold of 白金's white gold and platinum.
5. Chips: one per understood field of each match, with the words matched, so the shopper can
   see and drop what was read. Chip values follow the rules of step 4.

The language is that of the glossaries whose phrases matched (phrases shared by two
glossaries vote for neither), plus the script of the words left over; several -> "mixed".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jewelsearch.query.canon import FIELDS, GOLDS, ordered, spoken
from jewelsearch.query.glossary import Glossary, Meaning, default_glossary, fold
from jewelsearch.query.price import PriceHit
from jewelsearch.query.text_units import Unit, has_cjk, normalise, split_units

MAX_CHARS = 1000  # a query longer than this is read only this far: understand stays fast
_TERM = re.compile(r"[^\W_]+")
_LATIN_LETTER = re.compile(r"[^\W\d_]")  # any letter; CJK is checked first


@dataclass(frozen=True)
class Understanding:
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    styles: tuple[str, ...] = ()
    karat: int | None = None
    min_price: float | None = None
    max_price: float | None = None
    residual: str = ""
    terms: tuple[str, ...] = ()
    language: str = "en"
    chips: tuple[dict, ...] = ()
    # Per field, the values a plain family name usually means (ranked first, not required).
    preferred: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Typos read as glossary words: (the word typed, the word read), and the text with them read so.
    corrected: tuple[tuple[str, str], ...] = ()
    corrected_text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form the search answer carries as ``"understood"``."""
        return {"language": self.language,
                "attributes": {name: list(values) for name, values in self.attributes.items()},
                "styles": list(self.styles), "karat": self.karat,
                "min_price": self.min_price, "max_price": self.max_price,
                "residual": self.residual, "terms": list(self.terms),
                "chips": [{**chip, "values": list(chip["values"])} for chip in self.chips],
                "preferred": {name: list(values) for name, values in self.preferred.items()},
                "corrected": dict(self.corrected)}


@dataclass(frozen=True)
class _Match:
    start: int
    end: int
    meaning: Meaning


def understand(text: str, glossary: Glossary | None = None) -> Understanding:
    """What the words ask for.

    >>> u = understand("oval sapphire pendant under $500")
    >>> u.attributes["stone_shape"], u.attributes["category"], u.max_price
    (('oval',), ('pendant',), 500.0)
    """
    glossary = glossary or default_glossary()
    text = normalise(text)[:MAX_CHARS]
    prices = glossary.price.find(text)
    units = split_units(text)
    corrections = _corrections(units, prices, glossary)
    matches, residual_units = _match_units(text, units, prices, glossary, corrections)
    fields = _resolve_fields(matches)
    karat = next((m.meaning.karat for m in matches if m.meaning.karat), None)
    if karat and "metal" in fields:
        golds = tuple(m for m in fields["metal"] if m in GOLDS)
        fields["metal"] = golds or fields["metal"]
    residual = _residual_words(text, residual_units, {units[i].start: word for i, word in corrections.items()})
    low = max((p.min_price for p in prices if p.min_price is not None), default=None)
    high = min((p.max_price for p in prices if p.max_price is not None), default=None)
    return Understanding(
        attributes={f: fields[f] for f in FIELDS if fields.get(f)},
        styles=ordered("style", (s for m in matches for s in m.meaning.styles)),
        karat=karat, min_price=low, max_price=high,
        residual=" ".join(word for _, word in residual),
        terms=_terms(matches, fields, residual),
        language=_language(matches, [w for _, w in residual] + [text[p.start:p.end] for p in prices], glossary),
        chips=_chips(text, matches, fields, karat, prices),
        preferred=_preferred(matches, fields),
        corrected=tuple(dict.fromkeys((text[units[i].start:units[i].end], word) for i, word in corrections.items())),
        corrected_text=_with_corrections(text, units, corrections) if corrections else None)


def _preferred(matches: list[_Match], fields: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """The usual members of the families named, where the understood values still hold them."""
    out: dict[str, list[str]] = {}
    for match in matches:
        for name, value in match.meaning.preferred:
            if value in fields.get(name, ()) and value not in out.get(name, []):
                out.setdefault(name, []).append(value)
    return {name: tuple(values) for name, values in out.items()}


def _in_price(unit: Unit, prices: list[PriceHit]) -> bool:
    return any(p.start < unit.end and unit.start < p.end for p in prices)


def _corrections(units: list[Unit], prices: list[PriceHit], glossary: Glossary) -> dict[int, str]:
    """Unit index -> the glossary word a typo there stands for (``query/spelling.py``)."""
    if glossary.speller is None:
        return {}
    out = {}
    for i, unit in enumerate(units):
        if unit.cjk or _in_price(unit, prices) or fold(unit.key, glossary.words) in glossary.words:
            continue
        if (word := glossary.speller.correct(unit.key)) is not None:
            out[i] = word
    return out


def _with_corrections(text: str, units: list[Unit], corrections: dict[int, str]) -> str:
    """``text`` with each corrected unit replaced by the word it was read as.

    >>> _with_corrections("Emrald ring", split_units("Emrald ring"), {0: "emerald"})
    'emerald ring'
    """
    out, at = [], 0
    for i in sorted(corrections):
        out += [text[at:units[i].start], corrections[i]]
        at = units[i].end
    return "".join(out) + text[at:]


def _match_units(text: str, units: list[Unit], prices: list[PriceHit], glossary: Glossary,
                 corrections: dict[int, str] | None = None):
    """Longest glossary phrase at each unit, left to right; units inside a price are taken.
    ``corrections`` (unit index -> word) read typos as the glossary words they stand for."""
    taken = [_in_price(u, prices) for u in units]
    corrections = corrections or {}
    keys = [u.key if u.cjk else fold(corrections.get(i, u.key), glossary.words) for i, u in enumerate(units)]
    matches: list[_Match] = []
    residual: list[Unit] = []
    i = 0
    while i < len(units):
        if taken[i]:
            i += 1
            continue
        found = 0
        for length in glossary.lengths.get(keys[i], ()):
            j = i + length
            if j <= len(units) and tuple(keys[i:j]) in glossary.phrases \
                    and not any(taken[i:j]) and all(u.joined for u in units[i + 1:j]):
                found = length
                break
        if found:
            meaning = glossary.phrases[tuple(keys[i:i + found])]
            matches.append(_Match(units[i].start, units[i + found - 1].end, meaning))
            i += found
        else:
            residual.append(units[i])
            i += 1
    return matches, residual


def _resolve_fields(matches: list[_Match]) -> dict[str, tuple[str, ...]]:
    named: dict[str, list[str]] = {}
    colour_gems: list[str] = []
    for match in matches:
        for name, values in match.meaning.fields:
            if name == "gemstone" and match.meaning.colour:
                colour_gems += values
            else:
                named.setdefault(name, []).extend(values)
    fields = {name: ordered(name, values) for name, values in named.items()}
    if colour_gems:
        gems = fields.get("gemstone", ())
        narrowed = tuple(g for g in gems if g in colour_gems)
        fields["gemstone"] = narrowed or gems or ordered("gemstone", colour_gems)
    return fields


def _chips(text: str, matches: list[_Match], fields, karat: int | None, prices: list[PriceHit]) -> tuple[dict, ...]:
    """One chip per (field, values), at its first mention: "ring or ring" shows one chip."""
    chips: dict[tuple, tuple[int, dict]] = {}
    for m in matches:
        meaning = m.meaning
        shown = [(name, tuple(v for v in values if v in fields.get(name, ())) or values)
                 for name, values in meaning.fields]
        shown += [("style", meaning.styles)] if meaning.styles else []
        for name, values in shown:
            if (name, values) not in chips:
                chips[name, values] = (m.start, {"field": name, "values": values, "text": text[m.start:m.end],
                                                 "label": meaning.chip_label(name, values)})
        if meaning.karat and meaning.karat == karat and ("karat", (karat,)) not in chips:
            chips["karat", (karat,)] = (m.start, {"field": "karat", "values": (karat,), "label": f"{karat}k",
                                                  "text": text[m.start:m.end]})
    for price in prices:
        key = ("price", (price.min_price, price.max_price))
        if key not in chips:
            chips[key] = (price.start, {"field": "price", "values": key[1], "label": _price_label(price),
                                        "text": text[price.start:price.end]})
    return tuple(chip for _, chip in sorted(chips.values(), key=lambda c: c[0]))


def _price_label(price: PriceHit) -> str:
    def money(value: float) -> str:
        return f"${value:,.0f}" if value == int(value) else f"${value:,.2f}"
    if price.min_price is None:
        return f"under {money(price.max_price)}"
    if price.max_price is None:
        return f"over {money(price.min_price)}"
    return f"{money(price.min_price)}-{money(price.max_price)}"


def _residual_words(text: str, units: list[Unit], corrected: dict[int, str] | None = None) -> list[tuple[int, str]]:
    """Unmatched units in their original form (a typo as the word it was read as:
    ``corrected`` maps a unit's start to it), with where each starts; adjacent CJK characters
    stay one word ("好看", not "好" "看")."""
    corrected = corrected or {}
    words: list[tuple[int, str]] = []
    previous: Unit | None = None
    for unit in units:
        piece = corrected.get(unit.start, text[unit.start:unit.end])
        if words and unit.cjk and previous is not None and previous.cjk and previous.end == unit.start:
            words[-1] = (words[-1][0], words[-1][1] + piece)
        else:
            words.append((unit.start, piece))
        previous = unit
    return words


def _terms(matches: list[_Match], fields, residual: list[tuple[int, str]]) -> tuple[str, ...]:
    """Lowercase letter/digit/CJK words for the lexical index, in the order of the query.
    A value a rule of step 4 set aside takes its words along ("18K白金": no "platinum")."""
    set_aside: dict[int, set[str]] = {}
    pieces = []
    for m in matches:
        if id(m.meaning) not in set_aside:
            set_aside[id(m.meaning)] = _set_aside(m.meaning, fields)
        pieces += [(m.start, t) for t in m.meaning.terms if t not in set_aside[id(m.meaning)]]
    pieces += residual
    terms: dict[str, None] = {}
    for _, piece in sorted(pieces, key=lambda p: p[0]):
        for word in _TERM.findall(piece.lower()):
            terms.setdefault(word, None)
    return tuple(terms)


def _set_aside(meaning: Meaning, fields) -> set[str]:
    if all(v in fields.get(name, ()) for name, values in meaning.fields for v in values):
        return set()
    kept, dropped = set(), set()
    for name, values in meaning.fields:
        for value in values:
            words = set(spoken(name, value).replace("'", "").split())
            (kept if value in fields.get(name, (value,)) else dropped).update(words)
    return dropped - kept


def _script(words: str) -> str | None:
    if has_cjk(words):
        return "cjk"
    return "latin" if _LATIN_LETTER.search(words) else None


def _language(matches: list[_Match], left_over: list[str], glossary: Glossary) -> str:
    """Languages of the matched phrases; text no glossary matched (left-over words, price
    phrases) votes by its script for that script's first language ("zh", "en" preferred)."""
    votes = {lang for m in matches if len(m.meaning.languages) == 1 for lang in m.meaning.languages}
    voted_scripts = {glossary.scripts.get(lang) for lang in votes}
    for script in {_script(words) for words in left_over} - voted_scripts - {None}:
        preferred = "zh" if script == "cjk" else "en"
        candidates = [lang for lang, s in glossary.scripts.items() if s == script]
        votes.add(preferred if preferred in candidates or not candidates else candidates[0])
    if not votes:
        return "en"
    return votes.pop() if len(votes) == 1 else "mixed"
