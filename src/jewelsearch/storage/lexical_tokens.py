"""Words to index tokens: the one tokenizer for catalog text and for queries.

The lexical index stores what this function returns, joined by spaces, and a query is
tokenised by the same function, so a document and a query agree by construction (SQLite's
``unicode61`` tokenizer only splits on those spaces and folds diacritics).

- Text is NFKC-normalised ("ｒｉｎｇ" -> "ring", "①" -> "1"), lower-cased, and stripped of
  zero-width characters and soft hyphens, which would otherwise split or hide a word.
- Latin, digit and other spaced-script words are runs of letters and digits: "18k" and "14k"
  stay whole, punctuation splits ("rose-gold" -> "rose", "gold"), and an apostrophe inside a
  word is dropped ("tiger's" -> "tigers").
- Simple English plurals fold to a singular ("rings" -> "ring", "earrings" -> "earring",
  "watches" -> "watch"); see ``singular`` for the rule and why it beats FTS5's porter stemmer
  here.
- CJK runs (Han, kana, Hangul: no spaces between words) become every single character plus
  every overlapping pair, so two-character words such as 吊坠 (pendant) and 戒指 (ring) match
  as a pair and a one-character query still matches.
- Anything else (emoji, symbols, punctuation) is dropped.
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width space / non-joiner / joiner, word joiner, BOM, soft hyphen, Mongolian vowel separator.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"))
_APOSTROPHES = re.compile(r"(?<=\w)['\u2019\u02bc](?=\w)")

_CJK_RANGES = (
    (0x3040, 0x30FF),    # hiragana, katakana
    (0x3400, 0x4DBF),    # Han extension A
    (0x4E00, 0x9FFF),    # Han unified ideographs
    (0xAC00, 0xD7AF),    # Hangul syllables
    (0xF900, 0xFAFF),    # Han compatibility ideographs
    (0x20000, 0x3FFFF),  # Han extensions B and later
)

# Words ending in "s" that are not plurals (a ring is "brass", a stone is "lapis").
_NOT_PLURAL_ENDINGS = ("ss", "us", "is", "ous")
_ES_PLURAL_ENDINGS = ("ches", "shes", "xes", "zes", "sses")


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def singular(word: str) -> str:
    """A simple English singular, applied to documents and queries alike.

    Measured against FTS5's ``porter`` tokenizer on the demo catalog's 91 words and the
    plurals a shopper types: both join "rings"/"ring", "pendants"/"pendant",
    "watches"/"watch", "rubies"/"ruby" and merge the same four demo word pairs, but porter
    stems "earrings" and "earring" to "ear" (so "ear cuff" matches earrings) and merges
    "engaged" with "engagement". Folding here also keeps the stored text the literal
    tokens that match, whatever tokenizer reads them.

    >>> [singular(w) for w in ["rings", "earrings", "watches", "accessories", "brass", "lapis", "18k"]]
    ['ring', 'earring', 'watch', 'accessory', 'brass', 'lapis', '18k']
    """
    if len(word) <= 3 or not word.endswith("s") or not word.isalpha():
        return word
    if word.endswith(_NOT_PLURAL_ENDINGS):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(_ES_PLURAL_ENDINGS):
        return word[:-2]
    return word[:-1]


def _cjk_tokens(run: str) -> list[str]:
    """Single characters, then overlapping pairs.

    >>> _cjk_tokens("吊坠")
    ['吊', '坠', '吊坠']
    """
    pairs = [run[i:i + 2] for i in range(len(run) - 1)]
    return list(run) + pairs


def lexical_tokens(text: str) -> list[str]:
    """Index tokens of ``text``, in reading order (duplicates kept: term frequency counts).

    >>> lexical_tokens("Oval Sapphire Pendants in 18K white-gold")
    ['oval', 'sapphire', 'pendant', 'in', '18k', 'white', 'gold']
    >>> lexical_tokens("蓝宝石吊坠")
    ['蓝', '宝', '石', '吊', '坠', '蓝宝', '宝石', '石吊', '吊坠']
    >>> lexical_tokens("ｒｉｎｇ\u200bs, tiger's eye 💍 (NEAR) title:*")
    ['ring', 'tiger', 'eye', 'near', 'title']
    >>> lexical_tokens("14k金戒指")
    ['14k', '金', '戒', '指', '金戒', '戒指']
    """
    if not text:
        return []
    text = unicodedata.normalize("NFKC", str(text)).translate(_INVISIBLE).lower()
    text = _APOSTROPHES.sub("", text)
    tokens: list[str] = []
    word: list[str] = []
    cjk: list[str] = []

    def flush() -> None:
        if word:
            tokens.append(singular("".join(word)))
            word.clear()
        if cjk:
            tokens.extend(_cjk_tokens("".join(cjk)))
            cjk.clear()

    for char in text:
        if is_cjk(char):
            if word:
                tokens.append(singular("".join(word)))
                word.clear()
            cjk.append(char)
        elif char.isalnum():
            if cjk:
                tokens.extend(_cjk_tokens("".join(cjk)))
                cjk.clear()
            word.append(char)
        else:
            flush()
    flush()
    return tokens


def fts_string(token: str) -> str:
    """An FTS5 string literal: whatever the token holds, FTS5 reads it as text to match.

    >>> fts_string('say "hi" NEAR')
    '"say ""hi"" NEAR"'
    """
    return '"' + token.replace('"', '""') + '"'
