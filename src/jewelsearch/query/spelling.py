"""Typo tolerance for the words shoppers type: "emrald ring", "saphire pendant", "rose gold
rign" are read as the glossary words they miss by a letter or two.

A query word is corrected only when
- it is not a glossary word itself (after folding a plural);
- it is not an English word: a word the text tower's vocabulary holds whole ("king", "good",
  "back" are one letter from "ring", "gold", "black", and mean something else). Without that
  vocabulary nothing is corrected;
- it has at least ``MIN_LENGTH`` letters;
- exactly one glossary word is nearest, within one edit (two for words of ``LONG_WORD``
  letters or more), an edit being an inserted, dropped, changed or swapped letter.

Candidates come from a deletion index (every known word with one or two letters dropped), so a
lookup costs a few set probes, not a scan of the vocabulary.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Iterable

MIN_LENGTH = 4
LONG_WORD = 8


def edit_distance(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours (optimal string alignment).

    >>> edit_distance("emrald", "emerald"), edit_distance("rign", "ring"), edit_distance("ruby", "ruby")
    (1, 1, 0)
    """
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def _deletions(word: str, most: int) -> set[str]:
    out = {word}
    for n in range(1, most + 1):
        out.update("".join(c for k, c in enumerate(word) if k not in gone)
                   for gone in combinations(range(len(word)), n))
    return out


def allowed_edits(word: str) -> int:
    return 2 if len(word) >= LONG_WORD else 1


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The whole words of the text tower's WordPiece vocabulary (about 22,000 lowercase
    words), or an empty set where the packaged vocabulary cannot be read."""
    from jewelsearch.embed.default_model import minilm_path
    try:
        lines = (Path(minilm_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    except (OSError, ImportError):
        return frozenset()
    return frozenset(word for word in lines if word.isalpha() and word.islower())


class Speller:
    """Corrections onto a fixed set of known words, never of an ``english`` word."""

    def __init__(self, known: Iterable[str], english: Iterable[str]):
        # A typo has at least MIN_LENGTH letters, so the words it can stand for have one fewer
        # ("redd" -> "red"); shorter known words could never be reached.
        self.known = frozenset(w for w in known if w.isalpha() and len(w) >= MIN_LENGTH - 1)
        self.english = frozenset(english)
        self._by_deletion: dict[str, set[str]] = {}
        for word in self.known:
            for key in _deletions(word, allowed_edits(word)):
                self._by_deletion.setdefault(key, set()).add(word)

    def _may_be_a_typo(self, word: str) -> bool:
        return bool(self.english) and len(word) >= MIN_LENGTH and word.isalpha() \
            and word not in self.known and word not in self.english

    def may_respell(self, word: str) -> bool:
        """Whether a word no glossary word is near may still be read as a shop's own word
        (``storage/lexical_vocabulary.py``): the same guards as ``correct`` (long enough, not a
        glossary word, not an English word: "opal" is never read as "oval"), in a to z only.

        >>> speller = Speller(["opal", "ring"], english=["king"])
        >>> [speller.may_respell(w) for w in ["butterfy", "opal", "king", "ab", "émeraude", "18k"]]
        [True, False, False, False, False, False]
        """
        return word.isascii() and self._may_be_a_typo(word)

    def correct(self, word: str) -> str | None:
        """The known word ``word`` was meant to be, or None (known already, too short, not near
        any, or near two equally).

        >>> speller = Speller(["emerald", "pearl", "ring", "ruby", "cut", "aquamarine"], english=["cute", "king"])
        >>> [speller.correct(w) for w in ["emrald", "perl", "rign", "aquamarin", "ruby", "cute", "king", "rubyy", "xyz"]]
        ['emerald', 'pearl', 'ring', 'aquamarine', None, None, None, 'ruby', None]
        """
        if not self._may_be_a_typo(word):
            return None
        most = allowed_edits(word)
        candidates = set()
        for key in _deletions(word, most):
            candidates |= self._by_deletion.get(key, set())
        scored = sorted((edit_distance(word, c), c) for c in candidates)
        scored = [(d, c) for d, c in scored if d <= min(most, allowed_edits(c))]
        if not scored or (len(scored) > 1 and scored[1][0] == scored[0][0]):
            return None
        return scored[0][1]
