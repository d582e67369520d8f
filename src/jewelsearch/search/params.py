"""Parsing and validating search filters, k and offset from untrusted input."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from jewelsearch.embed.vocab import gem_family_members
from jewelsearch.errors import InvalidInput
from jewelsearch.index.rerank import METHODS as RERANK_METHODS
from jewelsearch.storage.items import FILTER_FIELDS

MAX_FILTER_CHARS = 100


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    metal: str | None = None
    gemstone: str | None = None
    stone_shape: str | None = None
    min_price: float | None = None
    max_price: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def __bool__(self) -> bool:
        return bool(self.as_dict())

    def for_store(self) -> dict[str, Any]:
        """The filters as ``ItemStore.filter_ids`` takes them: a gemstone family ("sapphire")
        becomes every label of the family ("sapphire blue", "sapphire pink", ...).

        >>> Filters(gemstone="sapphire").for_store()["gemstone"][:2]
        ('sapphire blue', 'sapphire pink')
        """
        values = self.as_dict()
        if self.gemstone is not None:
            values["gemstone"] = gem_family_members(self.gemstone)  # a label alone is its own family
        return values


def parse_filters(raw: Mapping[str, Any]) -> Filters:
    """Filters from request args / CLI ``key=value`` pairs; unknown keys are ignored
    by the caller, bad values raise InvalidInput.

    >>> parse_filters({"category": "Ring", "max_price": "500"})
    Filters(category='ring', metal=None, gemstone=None, stone_shape=None, min_price=None, max_price=500.0)
    """
    values: dict[str, Any] = {}
    for key in FILTER_FIELDS:
        value = raw.get(key)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"filter {key} must be a string")
        if len(value) > MAX_FILTER_CHARS or any(ord(c) < 32 for c in value):
            raise InvalidInput(f"filter {key} must be at most {MAX_FILTER_CHARS} printable characters")
        values[key] = " ".join(value.lower().replace("_", " ").split())
    for key in ("min_price", "max_price"):
        value = raw.get(key)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"{key} must be a number, got {str(value)[:40]!r}")
        if not math.isfinite(number) or number < 0:
            raise InvalidInput(f"{key} must be a finite, non-negative number")
        values[key] = number
    if values.get("min_price") is not None and values.get("max_price") is not None \
            and values["min_price"] > values["max_price"]:
        raise InvalidInput("min_price is greater than max_price")
    return Filters(**values)


def _integer(value: Any, name: str, default: int) -> int:
    """An integer parameter from untrusted input; ``default`` when absent or blank."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return default
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be an integer")
    try:
        return int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {str(value)[:40]!r}")


def parse_k(value: Any, default: int = 10, maximum: int = 200, name: str = "k") -> int:
    """How many results (``name`` is the parameter's name in messages: ``k``, or ``limit``)."""
    k = _integer(value, name, default)
    if not 1 <= k <= maximum:
        raise InvalidInput(f"{name} must be between 1 and {maximum}")
    return k


def parse_offset(value: Any, k: int, window: int = 200) -> int:
    """How many results a page skips (its first result's rank, from 0). A query's pages run
    through its first ``window`` results (``max_k``): ``offset + k`` may not pass it.

    >>> parse_offset("20", k=10), parse_offset(None, k=10)
    (20, 0)
    """
    offset = _integer(value, "offset", 0)
    if offset < 0:
        raise InvalidInput("offset must be 0 or more")
    if offset + k > window:
        raise InvalidInput(f"offset + k must be at most {window}: a query's pages run through its first "
                           f"{window} results")
    return offset


def parse_flag(value: Any, name: str) -> bool:
    """A yes/no query parameter: true/false, 1/0, yes/no; absent means false."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidInput(f"{name} must be true or false, got {str(value)[:40]!r}")


def parse_query_text(value: Any, max_chars: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("q must be a string")
    text = " ".join(value.split())
    if not text:
        return None
    if len(text) > max_chars:
        raise InvalidInput(f"q is longer than {max_chars} characters")
    if "\x00" in text:
        raise InvalidInput("q must not contain NUL characters")
    return text


def parse_collapse(value: Any) -> bool:
    """Whether near-identical listings fold into one card; on unless the caller says false."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return True
    return parse_flag(value, "collapse")


def parse_dropped(value: Any) -> tuple[str, ...]:
    """Understood fields the shopper removed, as ``drop=price,gemstone`` (or a list of names);
    the search checks the names.

    >>> parse_dropped("price, gemstone")
    ('gemstone', 'price')
    """
    if value is None:
        return ()
    parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = set()
    for part in parts:
        if not isinstance(part, str) or len(part) > MAX_FILTER_CHARS:
            raise InvalidInput("drop must be a comma-separated list of understood field names")
        if part.strip():
            names.add(part.strip().lower())
    return tuple(sorted(names))


def parse_rerank(value: Any) -> str | None:
    """An image query's re-ranking (``none``, ``aqe``, ``kreciprocal``); None (absent) means the
    service's default.

    >>> parse_rerank(" AQE "), parse_rerank("")
    ('aqe', None)
    """
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if not isinstance(value, str) or value.strip().lower() not in RERANK_METHODS:
        raise InvalidInput(f"rerank must be one of {', '.join(RERANK_METHODS)}")
    return value.strip().lower()
