"""The home's fitted ALS item factors (``recommend/factors.py``): where they live, fitting them
offline from the event log, and whether a copy may still be served.

The factors file sits beside the catalog database. It records the event log's erasure count
when its events were read; a copy whose count differs from the log's was fitted on events an
erasure has since removed, and is never used (erasure also deletes the file, and a fit that
overlaps an erasure is refused rather than saved).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jewelsearch.recommend.factors import (
    DEFAULT_FACTORS,
    DEFAULT_ITERATIONS,
    DEFAULT_REGULARISATION,
    FactorsError,
    ItemFactors,
)
from jewelsearch.storage import Catalog

log = logging.getLogger(__name__)

FILE_NAME = "recommend-factors.npz"


class FitOverlapError(RuntimeError):
    """A shopper was erased while the factors were being fitted; nothing was saved."""


def factors_path(catalog: Catalog) -> Path:
    return Path(catalog.database.path).with_name(FILE_NAME)


def fit_factors(catalog: Catalog, *, factors: int = DEFAULT_FACTORS,
                regularisation: float = DEFAULT_REGULARISATION, iterations: int = DEFAULT_ITERATIONS,
                seed: int = 0) -> dict[str, Any]:
    """Fit ALS item factors on every event and save them; the summary says what was fitted.
    Raises ``FactorsError`` when there are too few events, ``FitOverlapError`` when an erasure
    happened meanwhile."""
    events = catalog.events
    erasures = events.change_marker()[1]
    fitted = ItemFactors.fit(events.iterate_all(), erasures=erasures, factors=factors,
                             regularisation=regularisation, iterations=iterations, seed=seed)
    if events.change_marker()[1] != erasures:
        raise FitOverlapError("a shopper was erased while the factors were fitted; nothing was saved, "
                              "fit again")
    path = factors_path(catalog)
    fitted.save(path)
    return {"path": str(path), "items": len(fitted.item_ids), "shoppers": fitted.shoppers,
            "events": fitted.events, "factors": int(fitted.factors.shape[1]),
            "regularisation": fitted.regularisation}


def load_current(catalog: Catalog) -> ItemFactors | None:
    """The saved factors, when there are any and no erasure happened since they were fitted."""
    path = factors_path(catalog)
    if not path.exists():
        return None
    try:
        fitted = ItemFactors.load(path)
    except FactorsError as exc:
        log.warning("ALS factors not used: %s", exc)
        return None
    except FileNotFoundError:  # erased between the check and the read
        return None
    return fitted if fitted.erasures == catalog.events.change_marker()[1] else None
