"""The word index's own vocabulary, read through SQLite's ``fts5vocab`` views (in the temp
schema, so the catalog file is not changed): typos of the shop's own words, and completions.

Typos (``respellings``): a query word no listing holds, read as the word one edit away that
the most listings hold ("butterfy pendant" finds the butterfly pendants). Completions
(``completions``): the words that start with what is being typed, with how many listings hold
each in each column (``search/suggest.py`` chooses which to offer).

The glossary's speller (``query/spelling.py``) knows the jewelry vocabulary; a shop also
writes collection names, motifs and designers ("aurora", "filigree", "butterfly") that no
glossary lists and that change as items come and go. Those are read from the word index
itself, through SQLite's ``fts5vocab`` view of its terms, so nothing has to be kept in step.

The lookup runs only where a query's words found no listing together, and only for a word
no listing holds: a query spelled right pays nothing. Every candidate one edit away (a
dropped, added, changed or swapped letter, a to z) is looked up in one statement; the one
held by the most listings wins, and a tie corrects nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from jewelsearch.storage.lexical_tokens import fts_string, singular

LETTERS = "abcdefghijklmnopqrstuvwxyz"
VOCABULARY = "lexical_vocabulary"  # a view on the word index's terms, per connection (temp)
LONGEST = 30  # letters; a longer "word" is no typo, and its edits would make a long statement


def single_edits(word: str) -> set[str]:
    """Every word one edit from ``word`` (not ``word`` itself).

    >>> {"rng", "irng", "rung", "rings"} <= single_edits("ring"), "ring" in single_edits("ring")
    (True, False)
    """
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {left + right[1:] for left, right in splits if right}
    out |= {left + right[1] + right[0] + right[2:] for left, right in splits if len(right) > 1}
    out |= {left + c + right[1:] for left, right in splits if right for c in LETTERS}
    out |= {left + c + right for left, right in splits for c in LETTERS}
    out.discard(word)
    return out


def holds(conn: sqlite3.Connection, table: str, token: str) -> bool:
    """Whether any row of the FTS5 ``table`` holds ``token`` (one seek, no scoring)."""
    sql = f"SELECT 1 FROM {table} WHERE {table} MATCH ? LIMIT 1"
    return conn.execute(sql, [fts_string(token)]).fetchone() is not None


def vocabulary(conn: sqlite3.Connection, table: str, kind: str = "row") -> str:
    """The name of a ``fts5vocab`` view on ``table``'s terms for this connection (made once,
    in the temp schema, so the catalog file is not changed): ``kind`` "row" counts the rows
    holding each term, "col" the rows holding it in each column."""
    view = f"temp.{VOCABULARY}_{kind}"
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {view} USING fts5vocab(main, '{table}', '{kind}')")
    return view


def completions(conn: sqlite3.Connection, table: str, prefix: str) -> dict[str, dict[str, int]]:
    """Words the index holds that start with ``prefix``, letters only (no number fragments),
    each with how many rows hold it in each column."""
    view = vocabulary(conn, table, "col")
    # Every word in [prefix, prefix + the last code point) starts with prefix (SQLite compares
    # UTF-8 bytes, and U+10FFFF encodes highest).
    rows = conn.execute(f"SELECT term, col, doc FROM {view} WHERE term >= ? AND term < ?",
                        [prefix, prefix + "\U0010ffff"]).fetchall()
    out: dict[str, dict[str, int]] = {}
    for term, column, docs in rows:
        if term.isalpha():
            out.setdefault(term, {})[column] = int(docs)
    return out


def respellings(conn: sqlite3.Connection, table: str, tokens: Iterable[str]) -> dict[str, str]:
    """For each of ``tokens`` that no row holds, the held word one edit away that the most
    rows hold, where one does and no other is held as often."""
    out: dict[str, str] = {}
    missing = [token for token in dict.fromkeys(tokens)
               if len(token) <= LONGEST and not holds(conn, table, token)]
    if not missing:
        return out
    view = vocabulary(conn, table)
    for token in missing:
        # The index holds words as ``lexical_tokens`` wrote them: plurals folded.
        candidates = sorted({singular(word) for word in single_edits(token)} - {token})
        counts: Mapping[str, int] = dict(conn.execute(
            f"SELECT term, doc FROM {view} WHERE term IN ({', '.join('?' * len(candidates))})",
            candidates).fetchall())
        ranked = sorted(counts.items(), key=lambda pair: -pair[1])
        if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
            out[token] = ranked[0][0]
    return out
