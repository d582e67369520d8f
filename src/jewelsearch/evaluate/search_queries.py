"""Query sets for the text-search evaluation, built from a labelled catalog.

An *intent* is what a shopper wants, as constraints on an item's TRUE labels (category, metal,
gemstone, stone_shape, the stone's ``color``, the style word in its title, price); it is asked
in English and in Chinese, one phrasing each, picked from several templates by an RNG seeded
with the intent. Two groups:

- ``attribute``: combinations of 1, 2 and 3 attributes present in the catalog;
- ``understanding``: needs more than matching title words: a stone colour (titles name the
  gem, not its colour), a style word ("studs", "eternity band"), a price ceiling, floor or range.

Relevance is a function of the item's true labels only, never of predicted ones. The held-out
split is a stable hash of the intent (about one in three), so both languages of an intent
fall on the same side and a catalog that grows keeps its old intents where they were.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from jewelsearch.evaluate.search_phrasing import phrase
from jewelsearch.evaluate.search_vocab import CATEGORY, COLOUR, GEMSTONE, METAL, SHAPE, STYLE

ATTRIBUTES = ("category", "metal", "gemstone", "stone_shape")
GROUPS = ("attribute", "understanding")
LANGUAGES = ("en", "zh")
HELD_OUT_SHARE = 3  # one intent in three is held out


@dataclass(frozen=True)
class Intent:
    group: str  # attribute | understanding
    kind: str  # attribute | colour | style | price
    constraints: tuple[tuple[str, Any], ...]

    @property
    def key(self) -> str:
        return json.dumps([self.kind, list(self.constraints)], sort_keys=True)

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.constraints).get(name, default)


@dataclass
class Query:
    intent: Intent
    language: str
    text: str
    split: str  # tuning | held-out
    relevant: set[int] = field(default_factory=set)

    @property
    def group(self) -> str:
        return f"{self.intent.group}/{self.language}"

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "language": self.language, "group": self.intent.group,
                "kind": self.intent.kind, "split": self.split, "intent": dict(self.intent.constraints),
                "relevant": len(self.relevant)}


def style_words(title: str | None) -> set[str]:
    """The style words a title names ("solitaire", "three-stone", "stud", ...)."""
    words = set(re.findall(r"[a-z]+(?:-[a-z]+)?", (title or "").lower()))
    found = {style for style in STYLE if style in words or f"{style}s" in words}
    return found


def split_of(intent: Intent) -> str:
    digest = int(hashlib.sha1(intent.key.encode()).hexdigest()[:8], 16)
    return "held-out" if digest % HELD_OUT_SHARE == 0 else "tuning"


def is_relevant(intent: Intent, row: Mapping[str, Any]) -> bool:
    """Whether an item with these TRUE labels answers the intent."""
    for name, value in intent.constraints:
        if name in ATTRIBUTES:
            if row.get(name) != value:
                return False
        elif name == "colour":
            if value not in str(row.get("color") or "").lower().split() or not row.get("gemstone"):
                return False
        elif name == "style":
            if value not in style_words(row.get("title")):
                return False
        elif name in ("price_max", "price_min"):
            price = row.get("price")
            if price is None or (price > value if name == "price_max" else price < value):
                return False
        else:
            raise ValueError(f"unknown constraint {name}")
    return True


def _known(row: Mapping[str, Any], name: str) -> bool:
    vocab = {"category": CATEGORY, "metal": METAL, "gemstone": GEMSTONE, "stone_shape": SHAPE}[name]
    return row.get(name) in vocab


def _attribute_intents(rows: Sequence[Mapping[str, Any]]) -> set[Intent]:
    found = set()
    for row in rows:
        present = [a for a in ATTRIBUTES if _known(row, a)]
        for size in (1, 2, 3):
            for combo in itertools.combinations(present, size):
                # A cut alone ("oval jewelry") is not a search anyone types; it goes with a gem.
                if "stone_shape" in combo and "gemstone" not in combo:
                    continue
                found.add(Intent("attribute", "attribute", tuple((a, row[a]) for a in combo)))
    return found


def _nice(value: float) -> int:
    """A round price a shopper would type: two significant figures."""
    digits = max(len(str(int(value))) - 2, 0)
    return int(round(value / 10 ** digits) * 10 ** digits) or 10


def _price_intents(rows: Sequence[Mapping[str, Any]], rng: random.Random) -> set[Intent]:
    found = set()
    scopes = [()] + sorted({(r["category"],) for r in rows if _known(r, "category")}
                    | {(r["category"], r["gemstone"]) for r in rows if _known(r, "category") and _known(r, "gemstone")})
    for scope in scopes:
        names = ("category", "gemstone")[:len(scope)]
        prices = sorted(r["price"] for r in rows if r.get("price") is not None
                        and all(r.get(n) == v for n, v in zip(names, scope)))
        if len(prices) < 4:
            continue
        base = tuple(zip(names, scope))

        low, high = (_nice(prices[min(int(rng.uniform(a, b) * len(prices)), len(prices) - 1)])
                     for a, b in ((0.25, 0.45), (0.6, 0.8)))
        found.add(Intent("understanding", "price", base + (("price_max", low),)))
        found.add(Intent("understanding", "price", base + (("price_min", high),)))
        if low < high:
            found.add(Intent("understanding", "price", base + (("price_max", high), ("price_min", low))))
    return found


def _understanding_intents(rows: Sequence[Mapping[str, Any]], rng: random.Random) -> dict[str, set[Intent]]:
    colours, styles = set(), set()
    for row in rows:
        words = str(row.get("color") or "").lower().split()
        for colour in COLOUR:
            if colour in words and row.get("gemstone"):
                colours.add(Intent("understanding", "colour", (("colour", colour),)))
                if _known(row, "category"):
                    colours.add(Intent("understanding", "colour",
                                       (("category", row["category"]), ("colour", colour))))
        for style in style_words(row.get("title")):
            styles.add(Intent("understanding", "style", (("style", style),)))
            if _known(row, "metal"):
                styles.add(Intent("understanding", "style", (("metal", row["metal"]), ("style", style))))
    return {"colour": colours, "style": styles, "price": _price_intents(rows, rng)}


def _sample(intents: set[Intent], limit: int, rng: random.Random) -> list[Intent]:
    ordered = sorted(intents, key=lambda i: i.key)
    return ordered if len(ordered) <= limit else sorted(rng.sample(ordered, limit), key=lambda i: i.key)


def build_intents(rows: Sequence[Mapping[str, Any]], *, seed: int = 0, per_size: int = 20,
                  per_kind: int = 20) -> list[Intent]:
    """Attribute intents (up to ``per_size`` each of 1, 2 and 3 attributes) and understanding
    intents (up to ``per_kind`` each of colour, style and price), all with a relevant item."""
    rng = random.Random(seed)
    attribute = _attribute_intents(rows)
    chosen: list[Intent] = []
    for size in (1, 2, 3):
        chosen += _sample({i for i in attribute if len(i.constraints) == size}, per_size, rng)
    for intents in _understanding_intents(rows, rng).values():
        chosen += _sample(intents, per_kind, rng)
    return [i for i in chosen if any(is_relevant(i, row) for row in rows)]


def build_queries(rows: Sequence[Mapping[str, Any]], *, seed: int = 0, per_size: int = 20,
                  per_kind: int = 20) -> list[Query]:
    """Every intent asked in English and Chinese, with the indices of ``rows`` it finds relevant."""
    queries = []
    for intent in build_intents(rows, seed=seed, per_size=per_size, per_kind=per_kind):
        relevant = {i for i, row in enumerate(rows) if is_relevant(intent, row)}
        examples = [rows[i] for i in sorted(relevant)]
        for language in LANGUAGES:
            rng = random.Random(f"{seed}:{language}:{intent.key}")
            queries.append(Query(intent, language, phrase(intent, language, rng, examples),
                                 split_of(intent), relevant))
    return queries
