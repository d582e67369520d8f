"""Browsing the catalog without words or a photo: the items the filters allow, a page at a time,
oldest or newest first or by price, with how many there are and (on request) facet counts over
all of them, not only the page's. What a shop front's "Rings, cheapest first" is.

Unlike a search, browsing has no relevance to rank by, so every allowed item is listed, in an
order the store keeps indexes for (at 100k items a first page of 24 takes 0.15–3 ms whatever the
order and filter; ``benchmarks/bench_browse.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jewelsearch.errors import InvalidInput
from jewelsearch.search.candidate_fields import count_rows
from jewelsearch.search.facets import PLAIN_FIELDS, PRICE_BANDS, FacetTally
from jewelsearch.search.items import public_item
from jewelsearch.search.params import Filters
from jewelsearch.search.ranking_columns import Columns
from jewelsearch.storage.catalog import Catalog
from jewelsearch.storage.items import LIST_ORDERS

SORTS = tuple(LIST_ORDERS)  # oldest (the default), newest, price_asc, price_desc


def parse_sort(value: Any) -> str:
    """The order of a catalog page; oldest first when absent.

    >>> parse_sort(None), parse_sort("price_asc")
    ('oldest', 'price_asc')
    """
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return "oldest"
    if not isinstance(value, str) or value.strip() not in LIST_ORDERS:
        raise InvalidInput(f"sort must be one of {', '.join(SORTS)}")
    return value.strip()


def browse(catalog: Catalog, filters: Filters | None, *, sort: str = "oldest", limit: int = 50,
           offset: int = 0, facets: bool = False, columns: Columns | None = None) -> dict[str, Any]:
    """A page of the items ``filters`` allow, in ``sort`` order: ``items``, ``total`` (how many
    the filters allow), ``next_offset`` (null after the last page), and with ``facets`` the
    counts per category, metal, gemstone family, cut and price band over every allowed item,
    from the in-memory ranking ``columns`` where they are current, else by the store."""
    allowed = filters.for_store() if filters else {}
    rows = catalog.items.list(limit, offset, allowed, sort)
    total = catalog.items.count_matching(allowed)
    answer: dict[str, Any] = {"items": [public_item(row) for row in rows], "total": total, "limit": limit,
                              "offset": offset, "sort": sort,
                              "next_offset": offset + limit if offset + limit < total else None}
    if facets:
        answer["facets"] = (facet_counts(catalog, allowed) if columns is None
                            else column_facet_counts(catalog, allowed, columns))
    return answer


def facet_counts(catalog: Catalog, allowed: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The facets a search answer carries (``FacetTally``), counted by the store over every item
    ``allowed`` (``Filters.for_store``) instead of over a query's candidates."""
    tally = FacetTally()
    plain = {field: catalog.items.value_counts(allowed, field) for field in PLAIN_FIELDS}
    bands = dict(zip(PRICE_BANDS, catalog.items.price_range_counts(allowed, PRICE_BANDS)))
    tally.add_counted(plain, catalog.items.value_counts(allowed, "gemstone"), bands)
    return tally.counts()


def column_facet_counts(catalog: Catalog, allowed: dict[str, Any], columns: Columns) -> dict[str, list[dict[str, Any]]]:
    """``facet_counts`` from the ranking columns: the store only says which items the filters
    allow, and the columns count them (at 100k items, 20k allowed: a few ms against the store's
    GROUP BY passes, which took over 100 ms; ``benchmarks/bench_browse.py``)."""
    ids = catalog.items.filter_ids(allowed)
    rows = np.arange(len(columns.ids)) if ids is None else columns.positions(ids)[1]
    tally = FacetTally()
    if len(rows):
        count_rows(columns, rows, tally)
    return tally.counts()
