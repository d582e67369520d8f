"""Probe: should the word index drop the words no listing holds before its AND pass?

Today a query whose words no listing holds together goes to the OR pass, which scores the newest
``CANDIDATES`` listings holding any word. The alternative: leave out the words no listing holds
("oval" in a shop without oval pieces), then AND the rest. On a catalog home (the 100k synthetic
one of ``benchmarks/bench_text_speed.py --home``) with the text benchmark's queries it prints:

- the word index's p50 either way (the same process, alternating);
- over the queries that hold an unheld word: the share of the word index's top 20 that hold every
  held word;
- with ``--end-to-end``: the share of the hybrid top 10 whose category, metal and gemstone are
  all among the understood values, either way (the served query, real model).

Usage: python tools/probe_held_words.py HOME [--end-to-end]
(docs/experiments/2026-12-07-held-words-and-pass.md). HOME is read only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_text_search import queries  # noqa: E402

from jewelsearch.query import default_glossary  # noqa: E402
from jewelsearch.query.parser import understand  # noqa: E402
from jewelsearch.storage import Catalog  # noqa: E402
from jewelsearch.storage import lexical  # noqa: E402
from jewelsearch.storage.lexical_tokens import fts_string, lexical_tokens  # noqa: E402
from jewelsearch.storage.lexical_vocabulary import holds  # noqa: E402

TODAY = lexical.LexicalIndex._search


def held_words_search(index, tokens, limit, allowed):
    """The alternative: the words some listing holds, ANDed first; never 'together' (so the
    typo reading still runs where a word was left out)."""
    held = [t for t in tokens if holds(index.database.conn, lexical.TABLE, t)]
    if held and len(held) < len(tokens):
        return TODAY(index, held, limit, allowed)[0], False
    return TODAY(index, tokens, limit, allowed)


def share_holding_all(conn, ids, held) -> float:
    if not ids:
        return 0.0
    match = " AND ".join(fts_string(t) for t in held)
    found = {row[0] for row in conn.execute(
        f"SELECT rowid FROM {lexical.TABLE} WHERE {lexical.TABLE} MATCH ? AND +rowid IN (SELECT value FROM json_each(?))",
        [match, str(ids)])}
    return len(found) / len(ids)


def word_index(home: Path) -> None:
    catalog = Catalog.open(home / "catalog.db", home / "images")
    index, conn, glossary = catalog.lexical, catalog.database.conn, default_glossary()
    asked = [list(dict.fromkeys(t for term in understand(q, glossary).terms for t in lexical_tokens(term)))
             for q in queries(300)]
    times = {"today": [], "held words": []}
    for turn in range(2):
        for tokens in asked:
            for name in (("today", "held words") if turn == 0 else ("held words", "today")):
                started = time.perf_counter()
                (TODAY if name == "today" else held_words_search)(index, tokens, 200, None)
                times[name].append((time.perf_counter() - started) * 1000)
    print("word index p50: " + ", ".join(f"{name} {statistics.median(t):.2f} ms" for name, t in times.items()))
    shares = {"today": [], "held words": []}
    for tokens in asked:
        held = [t for t in tokens if holds(conn, lexical.TABLE, t)]
        if not held or held == tokens:
            continue
        shares["today"].append(share_holding_all(conn, [i for i, _ in TODAY(index, tokens, 200, None)[0][:20]], held))
        shares["held words"].append(share_holding_all(
            conn, [i for i, _ in held_words_search(index, tokens, 200, None)[0][:20]], held))
    print(f"{len(shares['today'])} queries hold a word no listing holds; share of the word index's top 20 holding "
          "every held word: " + ", ".join(f"{name} {statistics.mean(v):.3f}" for name, v in shares.items()))
    catalog.close()


def end_to_end(home: Path) -> None:
    from jewelsearch.config import Settings
    from jewelsearch.search.wiring import open_service
    service = open_service(Settings(home=home, text_cache_size=0), read_only=True, saved_behind_ok=True)
    for name, search in (("today", TODAY), ("held words", held_words_search)):
        lexical.LexicalIndex._search = search
        shares = []
        for text in queries(300):
            answer = service.query(text=text, k=10)
            understood = {f: v for f, v in answer["understood"]["attributes"].items()
                          if f in ("category", "metal", "gemstone")}
            if understood and answer["results"]:
                shares.append(statistics.mean(all(str(row.get(f) or "").lower() in v for f, v in understood.items())
                                              for row in answer["results"]))
        print(f"{name}: {len(shares)} queries, mean share of the hybrid top 10 with every understood "
              f"category/metal/gemstone {statistics.mean(shares):.3f}")
    lexical.LexicalIndex._search = TODAY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--end-to-end", action="store_true")
    args = parser.parse_args()
    word_index(args.home)
    if args.end_to_end:
        end_to_end(args.home)


if __name__ == "__main__":
    main()
