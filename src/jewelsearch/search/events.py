"""Shopper events through the service: record one, or import many all-or-nothing.

An event must name an existing item (an unknown one is a 404, not a dangling row).
Each call writes in one transaction, so an import that fails stores none of its rows.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from jewelsearch.errors import InvalidInput, ItemNotFound
from jewelsearch.storage import Catalog
from jewelsearch.storage.items import parse_item_id

IMPORT_BATCH = 50_000  # rows per executemany inside the one import transaction
REPORTED_ERRORS = 20


def record_event(catalog: Catalog, raw: Mapping[str, Any]) -> int:
    event = catalog.events.validate(raw)
    item_id = parse_item_id(event["item_id"])
    catalog.items.get(item_id)  # unknown items are a 404, not a dangling event
    event["item_id"] = item_id
    with catalog.database.write() as conn:
        return catalog.events.insert(conn, event)


def import_events(catalog: Catalog, rows: Iterable[Mapping[str, Any]], *, skip_invalid: bool = False,
                  batch: int = IMPORT_BATCH) -> dict[str, Any]:
    """Bulk-load events. All-or-nothing unless ``skip_invalid``: then bad rows are
    counted and reported, good ones stored."""
    known = set(catalog.items.all_ids())
    good, errors, seen = [], [], 0
    for line_number, raw in enumerate(rows, 1):
        seen += 1
        try:
            event = catalog.events.validate(raw)
            item_id = parse_item_id(event["item_id"])
            if item_id not in known:
                raise ItemNotFound(item_id)
            event["item_id"] = item_id
            good.append(event)
        except (InvalidInput, ItemNotFound) as exc:
            errors.append(f"row {line_number}: {exc}")
    if errors and not skip_invalid:
        raise InvalidInput(f"{len(errors)} invalid event(s), nothing imported; first: "
                           + "; ".join(errors[:3]))
    with catalog.database.write() as conn:
        for start in range(0, len(good), batch):
            catalog.events.insert_many(conn, good[start:start + batch])
    return {"rows": seen, "imported": len(good), "skipped": len(errors), "errors": errors[:REPORTED_ERRORS]}
