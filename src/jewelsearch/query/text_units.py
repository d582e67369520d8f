"""Query text to matchable units: Unicode normalisation, then words and CJK characters.

A glossary phrase and a query are split the same way, so matching is comparing unit keys:
- Text is NFKC-normalised ("ｒｉｎｇ" -> "ring", "＄５００" -> "$500") after zero-width
  characters and soft hyphens are dropped (they would split or hide a word).
- A Latin (or other spaced-script) unit is a run of letters and digits, an apostrophe inside
  it kept in the text and dropped from the key ("Tiger's" -> key "tigers").
- Each CJK character (Han, kana) is a unit of its own: Chinese has no spaces, so phrases are
  found by longest match over characters.
- "&" is a unit whose key is "and".
- ``joined`` says a unit follows the one before with only spaces or hyphens between (or
  nothing), so "emerald-cut" matches the phrase "emerald cut" but "emerald, cut" does not.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

# Zero-width space / non-joiner / joiner, word joiner, BOM, soft hyphen, Mongolian vowel
# separator, left-to-right and right-to-left marks.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u200e\u200f"))
CJK = "\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{CJK}]")
_UNIT = re.compile(rf"[{CJK}]|[^\W_{CJK}]+(?:['\u2019][^\W_{CJK}]+)*|&")
_JOINING_GAP = re.compile(r"[\s\-\u2010\u2011]*")
_APOSTROPHES = str.maketrans("", "", "'\u2019")


class Unit(NamedTuple):  # a NamedTuple: a query makes hundreds, and it is cheap to build
    start: int
    end: int
    key: str  # lowercase, apostrophes dropped; "&" -> "and"
    cjk: bool
    joined: bool  # only spaces/hyphens (or nothing) since the previous unit


def normalise(text: str) -> str:
    """NFKC after dropping invisible characters.

    >>> normalise("Ｏｖａｌ" + chr(0x200B) + " ring")
    'Oval ring'
    """
    return unicodedata.normalize("NFKC", text.translate(_INVISIBLE))


def has_cjk(text: str) -> bool:
    return _CJK_CHAR.search(text) is not None


def split_units(text: str) -> list[Unit]:
    """Units of already-normalised text, with offsets into it.

    >>> [u.key for u in split_units("Tiger's-eye & 蓝宝石")]
    ['tigers', 'eye', 'and', '蓝', '宝', '石']
    """
    units: list[Unit] = []
    previous_end = -1
    for match in _UNIT.finditer(text):
        word = match.group()
        cjk = len(word) == 1 and _CJK_CHAR.match(word) is not None
        key = "and" if word == "&" else word.lower().translate(_APOSTROPHES)
        start = match.start()
        joined = previous_end == start or (previous_end >= 0 and
                                           _JOINING_GAP.fullmatch(text, previous_end, start) is not None)
        units.append(Unit(start, match.end(), key, cjk, joined))
        previous_end = match.end()
    return units


def unit_keys(phrase: str) -> tuple[str, ...]:
    """A glossary phrase as the unit keys a query must show: "Emerald-cut" -> ("emerald", "cut")."""
    return tuple(u.key for u in split_units(normalise(phrase)))
