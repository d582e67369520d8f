"""Erasing a shopper (a right-to-erasure request: GDPR art. 17, CCPA, PIPL).

Where a shopper's events go, and what erasure does about each:

- the ``events`` table: their rows are deleted in one transaction; ``secure_delete`` (on for
  every connection, ``storage/db.py``) zeroes the bytes, and a checkpoint then empties the
  write-ahead log, which still holds the pages as they were;
- co-engagement and popularity (``Recommendations``' cache): dropped through ``drop_caches``
  in this process, and marked stale for any other (a server while the CLI erases) by the
  erasure counter in ``EventStore.change_marker``, so they are rebuilt from the remaining
  events before the next recommendation is answered;
- the ALS item factors (``recommend-factors.npz`` beside the database, fitted by
  `jewelsearch recommender fit`): the file is overwritten and deleted *before* the rows go, so
  no moment serves factors fitted on erased events; a process holding a copy stops using it
  because the erasure counter no longer matches the one the factors were fitted under, and a
  fit running across the erasure refuses to save. Recommendations go on without that source
  until the next fit;
- history, interests, taste and the reasons that name an item ("you liked …"): built from the
  events on each request and never cached, so they are gone with the rows.

The log names the shopper only by a keyed hash: an HMAC whose random key is kept in the store.
The answer carries the same reference, so the shop can file it as a receipt and match it with
the log line, while neither gives the id away, even a guessable one such as an e-mail address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import Any, Callable

from jewelsearch.recommend.factors import drop_factors
from jewelsearch.search.fitted_factors import factors_path
from jewelsearch.storage import Catalog
from jewelsearch.storage.db import Database
from jewelsearch.storage.events import validate_user_id

log = logging.getLogger(__name__)

REFERENCE_KEY = "erasure_log_key"  # meta row holding the HMAC key of logged references
CHECKPOINT_TRIES = 5  # a request reading at that moment makes SQLite keep the log; it ends soon


def forget_user(catalog: Catalog, user_id: Any,
                drop_caches: Callable[[], None] | None = None) -> dict[str, Any]:
    """Remove every event of ``user_id`` and what was built from them; an unknown shopper
    removes nothing and is not an error, so a retried request answers the same way.

    Returns ``events_removed``, ``factors_dropped`` (the fitted ALS factors were deleted),
    ``reference`` (as logged) and ``file_scrubbed`` (False only
    when readers kept SQLite from emptying its write-ahead log: the rows are gone from every
    answer, and their old bytes leave the log as SQLite reuses it)."""
    user_id = validate_user_id(user_id)
    # Any fitted factors may hold this shopper's events; they go first, whether or not the
    # shopper turns out to have events (a retry after a crash between the two steps).
    factors_dropped = drop_factors(factors_path(catalog))
    with catalog.database.write() as conn:
        removed = catalog.events.delete_user(conn, user_id)
        key = catalog.database.get_meta(REFERENCE_KEY)
        if key is None:
            key = secrets.token_hex(32)
            catalog.database.set_meta(conn, REFERENCE_KEY, key)
    if drop_caches is not None:
        drop_caches()
    scrubbed = _checkpoint(catalog.database) if removed else True
    reference = _reference(key, user_id)
    # WARNING, so the default (quiet) logging keeps it: an erasure is rare and must leave a trace.
    log.warning("erased a shopper (reference %s): %d events removed%s", reference, removed,
             "" if scrubbed else "; the write-ahead log is still in use and is overwritten later")
    return {"events_removed": removed, "factors_dropped": factors_dropped, "reference": reference,
            "file_scrubbed": scrubbed}


def _reference(key: str, user_id: str) -> str:
    return hmac.new(key.encode(), user_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]


def _checkpoint(database: Database) -> bool:
    for attempt in range(CHECKPOINT_TRIES):
        if database.checkpoint():
            return True
        time.sleep(0.05 * (attempt + 1))
    return False
