"""Glossaries: the phrases shoppers type, per language, loaded from ``query/glossary/*.json``.

Every ``*.json`` file in the folder is one language, so a third language is a new file, not
new code. A file holds:
- ``language`` ("en"), ``about`` (free text);
- ``families`` / ``colours``: named gemstone sets ("sapphire" -> every sapphire colour, "blue"
  -> the blue gems) that entries in any file refer to by name;
- ``entries``: sections (categories, styles, metals, ...) of ``{"phrases": [...], meaning}``,
  the meaning any of ``category``/``metal``/``gemstone``/``stone_shape``/``style`` (value
  lists), ``family``, ``colour``, ``karat``; optional ``label`` (English chip label when a
  field has several values) and ``terms`` (English words for the lexical index);
- ``filler``: words consumed without meaning ("and", "的");
- ``price``: the words of price phrases (see ``query/price.py``) and ``multipliers``.

Loading checks every value against ``embed.vocab`` (via ``query/canon.py``) and raises
``GlossaryError`` naming the file and entry. A phrase in two files must mean the same in
both; it then counts for neither language when the parser guesses the query's language.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from jewelsearch.errors import JewelsearchError
from jewelsearch.query.canon import FIELDS, KARATS, STYLES, ordered, spoken
from jewelsearch.query.price import WORD_ROLES, PriceGrammar
from jewelsearch.query.spelling import Speller, english_words
from jewelsearch.query.text_units import has_cjk, unit_keys

DEFAULT_FOLDER = Path(__file__).parent / "glossary"
_TOP_KEYS = {"language", "about", "families", "usual", "colours", "entries", "filler", "price"}
_MEANING_KEYS = {*FIELDS, "style", "family", "colour", "karat"}
_ENTRY_KEYS = {"phrases", "label", "terms", *_MEANING_KEYS}


class GlossaryError(JewelsearchError):
    """A glossary file is unreadable or names something the vocabulary does not know."""

    status = 500


@dataclass(frozen=True)
class Meaning:
    """What one phrase says. ``fields`` maps stored field -> values (vocabulary order)."""

    fields: tuple[tuple[str, tuple[str, ...]], ...] = ()
    styles: tuple[str, ...] = ()
    karat: int | None = None
    colour: str | None = None
    label: str | None = None
    terms: tuple[str, ...] = ()
    filler: bool = False
    languages: frozenset[str] = frozenset()
    # The member a family's plain name usually means in a shop ("sapphire": blue sapphire):
    # ranked first among the family, never a filter on it.
    preferred: tuple[tuple[str, str], ...] = ()

    def same_as(self, other: Meaning) -> bool:
        return (self.fields, self.styles, self.karat, self.colour, self.filler) == \
            (other.fields, other.styles, other.karat, other.colour, other.filler)

    def chip_label(self, field: str, values: tuple[str, ...]) -> str:
        """English label of this meaning's chip for ``field`` showing ``values``."""
        if len(values) == 1:
            return spoken(field, values[0])
        if values == dict(self.fields).get(field) and self.label:
            return self.label
        return " or ".join(spoken(field, v) for v in values)


@dataclass(frozen=True)
class Glossary:
    """Every loaded language merged into one phrase table and one price grammar."""

    phrases: Mapping[tuple[str, ...], Meaning]
    lengths: Mapping[str, tuple[int, ...]]  # first unit key -> phrase lengths, longest first
    words: frozenset[str]  # every non-CJK unit key, for folding plurals onto known words
    price: PriceGrammar
    scripts: Mapping[str, str]  # language -> "cjk" or "latin", from its phrases
    files: tuple[str, ...]
    speller: Speller | None = None  # typos onto ``words`` (``query/spelling.py``)

    @cached_property
    def cjk_phrases(self) -> tuple[str, ...]:
        """The phrases written in CJK characters, as typed ("蓝宝石"), once per glossary: the
        search box completes them at every keystroke (``search/suggest.py``)."""
        return tuple("".join(keys) for keys in self.phrases if all(has_cjk(key) for key in keys))


def load_glossary(folder: Path | str | None = None, extra: Path | str | None = None) -> Glossary:
    """Load and check every ``*.json`` in ``folder`` (default: the packaged glossaries), and
    then in ``extra``, a shop's own folder (its synonyms, another language): one glossary, as
    if the files sat in one folder, so a shop's phrase that means something else than the same
    phrase in another file is an error naming both."""
    folder = Path(folder) if folder is not None else DEFAULT_FOLDER
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise GlossaryError(f"no glossary files (*.json) in {folder}")
    documents = [(path.name, _read(path)) for path in paths]
    if extra is not None:
        extra = Path(extra)
        extra_paths = sorted(extra.glob("*.json")) if extra.is_dir() else []
        if not extra_paths:
            raise GlossaryError(f"no glossary files (*.json) in {extra}" if extra.is_dir()
                                else f"glossary folder {extra} does not exist")
        documents += [(str(path), _read(path)) for path in extra_paths]
    families = _named_sets(documents, "families")
    colours = _named_sets(documents, "colours")
    usual = _usual_members(documents, families)
    phrases: dict[tuple[str, ...], Meaning] = {}
    origin: dict[tuple[str, ...], str] = {}
    price_words: dict[str, list[str]] = {role: [] for role in WORD_ROLES}
    multipliers: dict[str, float] = {}
    scripts: dict[str, str] = {}
    for name, doc in documents:
        language = doc["language"]
        seen_cjk = seen_latin = 0
        for where, phrase, meaning in _meanings(name, doc, families, colours, usual):
            keys = unit_keys(phrase)
            if not keys:
                raise GlossaryError(f"{where}: phrase {phrase!r} has no letters, digits or CJK characters")
            seen_cjk, seen_latin = seen_cjk + has_cjk(phrase), seen_latin + (not has_cjk(phrase))
            meaning = _with_language(meaning, language)
            if keys in phrases:
                if not phrases[keys].same_as(meaning):
                    raise GlossaryError(f"{where}: phrase {phrase!r} already means something else "
                                        f"in {origin[keys]}")
                meaning = _with_language(phrases[keys], language)
            phrases[keys], origin[keys] = meaning, where
        scripts[language] = "cjk" if seen_cjk > seen_latin else "latin"
        _collect_price(name, doc.get("price", {}), price_words, multipliers)
    words = frozenset(k for keys in phrases for k in keys if not has_cjk(k))
    phrases = _folded(phrases, origin, words)
    lengths: dict[str, set[int]] = {}
    for keys in phrases:
        lengths.setdefault(keys[0], set()).add(len(keys))
    return Glossary(phrases=phrases, lengths={k: tuple(sorted(v, reverse=True)) for k, v in lengths.items()},
                    words=words, price=PriceGrammar(price_words, multipliers), scripts=scripts,
                    files=tuple(name for name, _ in documents), speller=Speller(words, english_words()))


def fold(key: str, words: frozenset[str]) -> str:
    """An English plural onto a known singular, for phrases and queries alike.

    >>> known = frozenset({"ring", "watch", "ruby", "huggie", "princess"})
    >>> [fold(k, known) for k in ("rings", "watches", "rubies", "huggies", "princess", "glass")]
    ['ring', 'watch', 'ruby', 'huggie', 'princess', 'glass']
    """
    if len(key) < 4 or not key.endswith("s"):
        return key
    for stem in (key[:-1], key[:-2] if key.endswith("es") else "", key[:-3] + "y" if key.endswith("ies") else ""):
        if stem and stem in words:
            return stem
    return key


def _folded(phrases: dict[tuple[str, ...], Meaning], origin: dict[tuple[str, ...], str],
            words: frozenset[str]) -> dict[tuple[str, ...], Meaning]:
    """The phrase table keyed by folded units ("ear rings" -> ("ear", "ring")); two phrases
    that fold together must mean the same."""
    folded: dict[tuple[str, ...], Meaning] = {}
    for keys, meaning in phrases.items():
        key = tuple(fold(k, words) for k in keys)
        if key in folded and not folded[key].same_as(meaning):
            raise GlossaryError(f"{origin[keys]}: phrase {' '.join(keys)!r} is the plural of a phrase "
                                f"that means something else")
        folded[key] = meaning if key not in folded else Meaning(
            **{**meaning.__dict__, "languages": meaning.languages | folded[key].languages})
    return folded


@lru_cache(maxsize=1)
def default_glossary() -> Glossary:
    """The packaged glossaries, loaded once per process (they never change at run time)."""
    return load_glossary(DEFAULT_FOLDER)


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GlossaryError(f"{path}: cannot read glossary: {exc}") from exc
    if not isinstance(doc, dict):
        raise GlossaryError(f"{path}: a glossary is a JSON object")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise GlossaryError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(_TOP_KEYS)})")
    if not isinstance(doc.get("language"), str) or not doc["language"].strip():
        raise GlossaryError(f"{path}: 'language' must name the language, e.g. \"en\"")
    if not isinstance(doc.get("entries", {}), dict):
        raise GlossaryError(f"{path}: 'entries' must map section names to lists of entries")
    return doc


def _named_sets(documents, key: str) -> dict[str, tuple[str, ...]]:
    named: dict[str, tuple[str, ...]] = {}
    for name, doc in documents:
        for set_name, values in doc.get(key, {}).items():
            values = _values(f"{name}: {key} {set_name!r}", "gemstone", values)
            if set_name in named and named[set_name] != values:
                raise GlossaryError(f"{name}: {key} {set_name!r} is defined differently in another file")
            named[set_name] = values
    return named


def _values(where: str, field: str, values: Any) -> tuple[str, ...]:
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise GlossaryError(f"{where}: {field} must be a non-empty list of strings")
    known = STYLES if field == "style" else FIELDS[field]
    unknown = [v for v in values if v not in known]
    if unknown:
        raise GlossaryError(f"{where}: {field} value(s) {unknown} not in the vocabulary (embed.vocab / "
                            f"query.canon); known: {', '.join(known)}")
    return ordered(field, values)


def _usual_members(documents, families) -> dict[str, str]:
    """``usual``: family name -> the member its plain name usually means."""
    usual: dict[str, str] = {}
    for name, doc in documents:
        section = doc.get("usual", {})
        if not isinstance(section, dict):
            raise GlossaryError(f"{name}: 'usual' must map a family name to one of its members")
        for family, member in section.items():
            if family not in families or member not in families[family]:
                raise GlossaryError(f"{name}: usual {family!r} -> {member!r} is not a family and one of its members")
            if usual.get(family, member) != member:
                raise GlossaryError(f"{name}: usual {family!r} is defined differently in another file")
            usual[family] = member
    return usual


def _meanings(name: str, doc: Mapping[str, Any], families, colours, usual):
    """(where, phrase, Meaning) for every phrase of the file, entries first, then filler."""
    for section, entries in doc.get("entries", {}).items():
        if not isinstance(entries, list):
            raise GlossaryError(f"{name}: section {section!r} must be a list of entries")
        for index, entry in enumerate(entries):
            first = entry.get("phrases", ["?"])[0] if isinstance(entry, dict) else "?"
            where = f"{name}: {section} entry {index} ({first!r})"
            meaning = _meaning(where, entry, families, colours, usual)
            for phrase in entry["phrases"]:
                yield where, phrase, meaning
    filler = doc.get("filler", [])
    if not isinstance(filler, list) or not all(isinstance(p, str) for p in filler):
        raise GlossaryError(f"{name}: 'filler' must be a list of phrases")
    for phrase in filler:
        yield f"{name}: filler {phrase!r}", phrase, Meaning(filler=True)


def _meaning(where: str, entry: Any, families, colours, usual) -> Meaning:
    if not isinstance(entry, dict):
        raise GlossaryError(f"{where}: an entry is a JSON object")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise GlossaryError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_ENTRY_KEYS)})")
    phrases = entry.get("phrases")
    if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
        raise GlossaryError(f"{where}: 'phrases' must be a non-empty list of non-empty strings")
    if not _MEANING_KEYS & set(entry):
        raise GlossaryError(f"{where}: says nothing; give one of {sorted(_MEANING_KEYS)}")
    fields = {f: _values(where, f, entry[f]) for f in FIELDS if f in entry}
    label, terms = entry.get("label"), entry.get("terms")
    for key, named in (("family", families), ("colour", colours)):
        if key in entry:
            if entry[key] not in named:
                raise GlossaryError(f"{where}: {key} {entry[key]!r} is not defined in any glossary file")
            gems = named[entry[key]]
            fields["gemstone"] = ordered("gemstone", fields.get("gemstone", ()) + gems)
            label = label or (entry[key] if key == "family" else f"{entry[key]} stones")
            terms = terms if terms is not None else entry[key].split()
    karat = entry.get("karat")
    if karat is not None and karat not in KARATS:
        raise GlossaryError(f"{where}: karat must be one of {KARATS}")
    if label is not None and not isinstance(label, str):
        raise GlossaryError(f"{where}: 'label' must be a string")
    if terms is not None and (not isinstance(terms, list) or not all(isinstance(t, str) for t in terms)):
        raise GlossaryError(f"{where}: 'terms' must be a list of English words")
    styles = _values(where, "style", entry["style"]) if "style" in entry else ()
    if terms is None:
        # Apostrophes dropped as the index does: "tiger's eye" -> "tigers", "eye".
        terms = [w for f, values in fields.items() for v in values for w in spoken(f, v).replace("'", "").split()]
        terms += list(styles) + ([f"{karat}k"] if karat else [])
    preferred = (("gemstone", usual[entry["family"]]),) if entry.get("family") in usual else ()
    return Meaning(fields=tuple((f, fields[f]) for f in FIELDS if f in fields), styles=styles, karat=karat,
                   colour=entry.get("colour"), label=label, terms=tuple(terms), preferred=preferred)


def _with_language(meaning: Meaning, language: str) -> Meaning:
    return Meaning(**{**meaning.__dict__, "languages": meaning.languages | {language}})


def _collect_price(name: str, section: Any, words: dict[str, list[str]], multipliers: dict[str, float]) -> None:
    if not isinstance(section, dict):
        raise GlossaryError(f"{name}: 'price' must be an object")
    unknown = set(section) - set(WORD_ROLES) - {"multipliers"}
    if unknown:
        raise GlossaryError(f"{name}: price: unknown keys {sorted(unknown)} (known: {', '.join(WORD_ROLES)}, "
                            "multipliers)")
    for role in WORD_ROLES:
        listed = section.get(role, [])
        if not isinstance(listed, list) or not all(isinstance(w, str) and w.strip() for w in listed):
            raise GlossaryError(f"{name}: price {role} must be a list of non-empty strings")
        words[role] += listed
    for word, factor in section.get("multipliers", {}).items():
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 0:
            raise GlossaryError(f"{name}: price multiplier {word!r} must be a positive number")
        multipliers[word] = float(factor)
