"""Typos of a shop's own words, read from its word index (``storage/lexical_vocabulary.py``).

The catalog: the real product rows that carry a description (``../shared/data/products/
labels.csv``, 399 rows), their descriptions loaded as titles into a temporary store (words only,
no photos). The words: every word of 5+ letters the descriptions use that the glossary does not
know ("infinity", "tassel", "engraving", "twisted"). Each gets one typo (``evaluate/typos``,
seed 0); typos that are themselves English, glossary or catalog words are left out, as the
reading never touches those. Asked alone, each typo is

- read right (as the word it came from), read wrong (as another word), or not read;
- scored by R-precision@10 against the rows holding the word: with the reading, and without.

False readings: English words of 5+ letters that no description uses (the text tower's
vocabulary, 300 drawn with the seed), each given a typo the same way. Any reading of those is
a reading the shopper did not mean (the shop has no such word), unless it lands on a form of
the same word.

    python tools/eval_shop_word_typos.py --shared ../shared/data [--seed 0] [--out reports/search/shop-word-typos.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

from jewelsearch.evaluate.metrics import bootstrap_interval
from jewelsearch.evaluate.typos import with_typo
from jewelsearch.query import load_glossary
from jewelsearch.query.spelling import english_words
from jewelsearch.storage import Catalog
from jewelsearch.storage.items import normalise_item_fields
from jewelsearch.storage.lexical_tokens import lexical_tokens


def descriptions(shared: Path) -> list[str]:
    with open(shared / "products" / "labels.csv", newline="", encoding="utf-8") as fh:
        return [row["description"] for row in csv.DictReader(fh) if row["description"].strip()]


def interval(values) -> list[float]:
    low, high = bootstrap_interval(values)
    return [round(float(np.mean(values)), 3), round(low, 3), round(high, 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (args.shared / "products" / "labels.csv").is_file():
        sys.exit(f"no products/labels.csv under {args.shared}")
    texts = descriptions(args.shared)
    glossary, english = load_glossary(), english_words()
    speller = glossary.speller
    with tempfile.TemporaryDirectory() as scratch:
        catalog = Catalog.open(Path(scratch) / "c.db", Path(scratch) / "images")
        holding: dict[str, set[int]] = {}
        for n, text in enumerate(texts):
            with catalog.database.write() as conn:
                item = catalog.items.insert(conn, normalise_item_fields({"title": text}), image_path=f"x/{n}.jpg",
                                            image_sha256=f"{n:064d}")
            for token in set(lexical_tokens(text)):
                holding.setdefault(token, set()).add(item)
        words = sorted(w for w in holding if len(w) >= 5 and w.isalpha() and w.isascii() and w not in speller.known)
        rng = random.Random(args.seed)
        rows, right, wrong, none, with_reading, without = [], 0, 0, 0, [], []
        for word in words:
            typo = with_typo(word, rng)
            if typo is None or typo in english or typo in speller.known or typo in holding:
                continue
            hits, read_as = catalog.lexical.search_respelling([typo], limit=10, may_respell=speller.may_respell)
            plain = catalog.lexical.search([typo], limit=10)
            n = min(10, len(holding[word]))
            reading = read_as.get(typo)
            right += reading == word
            wrong += reading is not None and reading != word
            none += reading is None
            with_reading.append(sum(item in holding[word] for item, _ in hits[:n]) / n)
            without.append(sum(item in holding[word] for item, _ in plain[:n]) / n)
            rows.append({"word": word, "typo": typo, "read_as": reading, "listings": len(holding[word])})
        # Typos of English words this shop never uses: any reading is one the shopper did not mean.
        absent = sorted(w for w in english if len(w) >= 5 and w.isalpha() and w not in holding and w not in speller.known)
        false_rows = []
        for word in random.Random(args.seed).sample(absent, 300):
            typo = with_typo(word, rng)
            if typo is None or typo in english or typo in speller.known or typo in holding:
                continue
            _, read_as = catalog.lexical.search_respelling([typo], limit=10, may_respell=speller.may_respell)
            false_rows.append({"word": word, "typo": typo, "read_as": read_as.get(typo)})
        catalog.close()
    asked = len(rows)
    false_read = [r for r in false_rows if r["read_as"] is not None]
    summary = {
        "catalog": f"{len(texts)} product descriptions as titles", "seed": args.seed,
        "shop_words": len(words), "typos_asked": asked,
        "read_right": right, "read_wrong": wrong, "not_read": none,
        "r_precision_at_10_with_reading": interval(with_reading),
        "r_precision_at_10_without": interval(without),
        "absent_words_asked": len(false_rows), "absent_words_read_as_something": len(false_read),
        "examples_wrong": [r for r in rows if r["read_as"] not in (None, r["word"])][:15],
        "examples_not_read": [r for r in rows if r["read_as"] is None][:15],
        "examples_absent_read": false_read[:15],
    }
    print(json.dumps({k: v for k, v in summary.items() if not k.startswith("examples")}, indent=1))
    for key in ("examples_wrong", "examples_not_read", "examples_absent_read"):
        print(key, [(r["typo"], r["word"], r["read_as"]) for r in summary[key]])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(summary, queries=rows, absent=false_rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
