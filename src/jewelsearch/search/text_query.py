"""Hybrid text search: what the words say (query understanding), where they occur (the
lexical index over titles, descriptions and attributes) and what they mean (the query's text
vector against the image vectors and, with weight ``text_field_weight``, against the items'
own text vectors: one search over their blend where the service keeps it), fused into one ranking with facets and folded variants.

Understood attributes are boosts, not filters: a "blue sapphire pendant" query still shows a
tanzanite pendant after the sapphires. An understood price ("under $900") is a filter, which
the answer reports so the shopper can drop it (``dropped=("price",)``), except where no item
the other filters allow lists a price (a photos-only catalog): there it could only empty the
page, so it is not applied and the answer says so (``price_not_applied``, and a note on the
price chip). A field the shopper dropped is neither boosted nor filtered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Collection, Mapping

from jewelsearch.query.parser import Understanding, understand
from jewelsearch.search.facets import FacetTally
from jewelsearch.search.fusion import fuse
from jewelsearch.search import blended_space
from jewelsearch.search.candidate_fields import ColumnCandidates, RowCandidates
from jewelsearch.search.item_text_space import blended_semantic
from jewelsearch.search.items import public_item
from jewelsearch.search.options import HybridSettings
from jewelsearch.search.params import Filters
from jewelsearch.search.state import ServiceState

# How each signal's scores are rescaled before the convex combination (search/fusion.py).
SIGNAL_SCALES = {"semantic": "min_max", "lexical": "max", "attributes": "raw"}
# Why an understood price was not applied: no item the other filters allow lists a price.
NO_PRICES = "no prices listed"
# Understood fields a shopper can drop from a query (by the chip's field name).
DROPPABLE = ("category", "metal", "gemstone", "stone_shape", "style", "price")


def text_query(state: ServiceState, text: str, k: int, filters: Filters | None, *,
               collapse: bool = True, dropped: Collection[str] = (), offset: int = 0) -> dict[str, Any]:
    """The ``k`` best cards for ``text`` among the items ``filters`` allow, after the first
    ``offset``, with what the words were understood as and the candidates' facet counts.
    ``dropped`` names understood fields (``DROPPABLE``) to ignore; ``collapse`` folds identical
    listings into one card.

    The candidate pool depends on ``k``, never on ``offset``, so the pages of one query and one
    ``k`` are slices of one ranking: no card shows twice and none is skipped. ``next_offset`` is
    null once the pool has no more cards.

    ``coverage`` tells the shopper when the page holds only near misses: ``all_understood`` is
    how many candidates have every understood field (none for "pearl earrings" where the shop
    sells pearls only as necklaces; null when nothing was understood), ``words`` how many
    listings the word index matched (0 for words no listing uses; at most the candidate pool)."""
    started = time.perf_counter()
    settings: HybridSettings = state.hybrid
    understood = understand(text, state.glossary)
    dropped = set(dropped)
    semantic_text = _semantic_text(text, understood) if settings.translate else text
    blended = state.blended if settings.text_field_weight > 0 and blended_space.uses_blended(state) else None
    pool = max(settings.pool, 4 * k)

    # The item fields it ranks by: the in-memory columns where they are current, else rows.
    columns = state.ranking_columns.current() if state.ranking_columns is not None else None
    fields = ColumnCandidates(columns) if columns is not None else RowCandidates(state.catalog.items)

    def read_words() -> _WordSide:
        return _word_side(state, settings, understood, filters or Filters(), dropped, pool, blended, fields)

    # The text tower runs on this thread while a helper reads everything the words decide (the
    # filters, the word index, its matches' rows, boosts, counts and blended vectors): the tower
    # starts at once, and the shorter side waits for a core, not the longer. Both release the
    # GIL (torch, SQLite). A cached text needs no tower, so nothing is handed over.
    if state.text_vectors.holds(semantic_text):
        words = read_words()
        vector = state.text_vectors.vector(semantic_text)
    else:
        pending = state.helpers.submit(read_words)
        vector = state.text_vectors.vector(semantic_text)
        words = pending.result()
    lexical, attributes = words.lexical, words.attributes
    semantic = _semantic_scores(state, settings, vector, pool, words.allowed, lexical, blended, words.extra_vectors)
    more = fields.add(semantic.keys() - lexical.keys())
    if words.boosts:
        attributes.update(fields.attribute_scores(more, words.boosts, settings.predicted_credit, words.preferred,
                                                   settings.guess_full_at))
    fields.count(more, words.tally)
    complete = words.complete + (fields.complete_matches(more, words.boosts) if words.boosts else 0)
    ranked = fuse({"semantic": semantic, "lexical": lexical, "attributes": attributes},
                  settings.weights, method=settings.method, scales=SIGNAL_SCALES)
    order = [item for item, _ in ranked if item in fields]
    # Only the page's cards become rows of the answer; the rest of the list is read for their
    # variants alone (``fold``).
    # One card past the page says whether another page follows.
    window = offset + k
    cards = fields.fold(order, window + 1) if collapse else [(item, []) for item in order[:window + 1]]
    more = len(cards) > window
    cards = cards[offset:window]
    scores = dict(ranked)
    full = state.catalog.items.get_many(item for item, _ in cards)
    results = [dict(public_item(full[item]), score=round(float(scores[item]), 6),
                    **({"more_like_this": len(variants), "variant_ids": variants} if variants else {}))
               for item, variants in cards if item in full]
    return {"results": results, "took_ms": round((time.perf_counter() - started) * 1000, 2),
            "offset": offset, "next_offset": window if more else None,
            "understood": _understood_answer(understood, dropped, words.effective, filters, words.unpriced,
                                             words.respelled),
            "facets": words.tally.counts(),
            "coverage": _coverage(text, understood, words.boosts, complete, len(lexical), bool(results))}


@dataclass
class _WordSide:
    """What a text query knows before its text vector: the filters in force, the word matches
    (read into the query's candidate fields), attribute scores, facet counts and blended vectors
    (the semantic candidates' are added once the vector is known)."""

    effective: Filters
    unpriced: bool
    allowed: Any
    lexical: dict[int, float]
    boosts: dict[str, tuple[str, ...]]
    preferred: dict[str, tuple[str, ...]]
    attributes: dict[int, float]
    tally: FacetTally
    extra_vectors: blended_space.ExtraVectors | None
    complete: int  # word matches with every understood field (``matches_every_field``)
    respelled: dict[str, str]  # shop words read for typos no listing holds (``search_respelling``)


def _word_side(state: ServiceState, settings: HybridSettings, understood: Understanding, requested: Filters,
               dropped: set[str], pool: int, blended, fields: RowCandidates | ColumnCandidates) -> _WordSide:
    effective = _with_understood_price(requested, understood, dropped)
    unpriced = effective != requested and not state.catalog.items.any_priced(requested.for_store())
    if unpriced:
        effective = requested
    allowed = state.catalog.items.filter_ids(effective.for_store()) if effective else None
    speller = state.glossary.speller
    hits, respelled = state.catalog.lexical.search_respelling(
        understood.terms, limit=pool, allowed_ids=allowed, may_respell=speller.may_respell if speller else None)
    lexical = dict(hits)
    # Ranking reads a few fields of every candidate (full rows only for the cards shown).
    found = fields.add(lexical)
    boosts = _attribute_boosts(understood, dropped)
    preferred = {name: values for name, values in understood.preferred.items() if name in boosts}
    attributes = fields.attribute_scores(found, boosts, settings.predicted_credit, preferred,
                                         settings.guess_full_at) if boosts else {}
    tally = FacetTally()
    fields.count(found, tally)
    extra = blended_space.extra_vectors_of(blended, lexical) if blended is not None else None
    complete = fields.complete_matches(found, boosts) if boosts else 0
    return _WordSide(effective, unpriced, allowed, lexical, boosts, preferred, attributes, tally, extra, complete,
                     respelled)


def _semantic_scores(state: ServiceState, settings: HybridSettings, vector, pool: int, allowed,
                     lexical: Mapping[int, float], blended=None, extra_vectors=None) -> dict[int, float]:
    """The semantic candidates and their scores, from one of three places:

    - the blended index (``blended``, where there is one made with this weight): one search;
    - else, with text vectors and a weight above 0, the image and item text indexes searched
      apart and blended per candidate (``item_text_space.blended_semantic``);
    - else the image index alone.
    """
    if blended is not None:
        return blended_space.semantic_scores(vector, blended, pool, allowed, extra=lexical,
                                             extra_vectors=extra_vectors)
    index = state.index  # one consistent snapshot even if a rebuild swaps it meanwhile
    (ids, scores), = index.search(vector, pool, allowed_ids=allowed)
    semantic = dict(zip(ids.tolist(), scores.tolist()))
    text_space = state.item_text
    if settings.text_field_weight > 0 and text_space is not None and len(text_space.index):
        semantic = blended_semantic(vector, index, text_space.index, semantic, settings.text_field_pool,
                                    settings.text_field_weight, allowed, extra=lexical)
    return semantic


def _attribute_boosts(understood: Understanding, dropped: set[str]) -> dict[str, tuple[str, ...]]:
    boosts = {name: tuple(values) for name, values in understood.attributes.items()
              if values and name not in dropped}
    if understood.styles and "style" not in dropped:
        boosts["style"] = tuple(understood.styles)
    return boosts


def _coverage(text: str, understood: Understanding, boosts: Mapping[str, tuple[str, ...]], complete: int,
              word_matches: int, any_results: bool) -> dict[str, Any]:
    """How far the candidates cover the query, with a note for the shopper where the page holds
    near misses only (a search engine that quietly shows diamond studs for "pearl earrings"
    looks broken; one that says the shop has none looks honest)."""
    coverage: dict[str, Any] = {"all_understood": complete if boosts else None, "words": word_matches}
    if not any_results:
        return coverage
    if boosts and not complete:
        labels = [chip["label"] for chip in understood.chips if chip["field"] in boosts]
        coverage["note"] = "No piece here has all of: " + ", ".join(dict.fromkeys(labels)) + ". The closest follow."
    elif not boosts and not word_matches and understood.terms:  # words to look up, none in any listing
        coverage["note"] = f"No listing uses the words \u201c{' '.join(text.split())[:60]}\u201d; " \
                           "the closest in meaning follow."
    return coverage


def _semantic_text(text: str, understood: Understanding) -> str:
    """The text tower reads English: a query in another language is searched by the English
    words of what was understood (plus any words left over). Typos read as glossary words
    reach the tower corrected ("emrald ring" is searched as "emerald ring")."""
    if understood.language == "en" or not understood.terms:
        return understood.corrected_text or text
    return " ".join(understood.terms)


def _with_understood_price(filters: Filters, understood: Understanding, dropped: set[str]) -> Filters:
    if "price" in dropped or (understood.min_price is None and understood.max_price is None):
        return filters
    values = filters.as_dict()
    # A price the shopper set in the filters wins over one read from the words.
    if values.get("min_price") is None and understood.min_price is not None:
        values["min_price"] = understood.min_price
    if values.get("max_price") is None and understood.max_price is not None:
        values["max_price"] = understood.max_price
    if values.get("min_price") is not None and values.get("max_price") is not None \
            and values["min_price"] > values["max_price"]:
        return filters
    return Filters(**values)


def _understood_answer(understood: Understanding, dropped: set[str], effective: Filters,
                       requested: Filters | None, unpriced: bool = False,
                       respelled: Mapping[str, str] | None = None) -> dict[str, Any]:
    answer = understood.as_dict()
    # Glossary words read from typos, then shop words the word index read (that part reaches
    # the word index only: the text tower has already read the words as typed).
    answer["corrected"].update(respelled or {})
    answer["dropped"] = sorted(dropped & set(DROPPABLE))
    price_filter = {key: getattr(effective, key) for key in ("min_price", "max_price")
                    if getattr(effective, key) is not None
                    and getattr(requested or Filters(), key) is None}
    answer["price_filter"] = price_filter or None
    if unpriced:
        read = {key: getattr(understood, key) for key in ("min_price", "max_price")
                if getattr(understood, key) is not None and getattr(requested or Filters(), key) is None}
        answer["price_not_applied"] = {**read, "reason": NO_PRICES}
        for chip in answer["chips"]:
            if chip["field"] == "price":
                chip["note"] = NO_PRICES
    return answer
