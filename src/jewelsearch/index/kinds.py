"""Which FAISS structure fits a catalog of n vectors in a memory budget.

Rules in the spirit of autofaiss: exact search while it is cheap (small
catalogs: a brute-force scan of 50k×256 floats takes a few ms; wider vectors
switch sooner, at the same number of floats scanned: 10k items of the 1280-d
instance vectors, whose 50k-item scan took 55 ms), HNSW while
full vectors plus graph links fit the budget (sub-millisecond, ~0.99 recall),
and IVF-PQ beyond that, re-ranked with exact vectors read from the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

KINDS = ("flat", "hnsw", "ivfpq")
FLAT_MAX_ITEMS = 50_000
FLAT_MAX_FLOATS = FLAT_MAX_ITEMS * 256  # what a query's scan may read: 50k 256-d vectors
HNSW_M = 32


@dataclass(frozen=True)
class IndexChoice:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def estimated_bytes(kind: str, n: int, dim: int, params: dict[str, Any] | None = None) -> int:
    """Approximate resident memory of the index (vectors + structure + id map)."""
    params = params or {}
    id_map = 8 + 1 + 64  # label, alive flag, dict entry
    if kind == "flat":
        return n * (dim * 4 + id_map)
    if kind == "hnsw":
        m = params.get("M", HNSW_M)
        return int(n * (dim * 4 + m * 2 * 4 * 1.1 + id_map))
    if kind == "ivfpq":
        code = params.get("pq_m", default_pq_m(dim))
        return n * (code + 8 + id_map) + params.get("nlist", default_nlist(n)) * dim * 4
    raise ValueError(f"unknown index kind {kind!r}")


def default_nlist(n: int) -> int:
    # ~4·sqrt(n) lists, with ≥39 training points per list as FAISS recommends.
    return int(max(1, min(4 * math.sqrt(max(n, 1)), n // 39 if n >= 39 else 1, 65536)))


def default_pq_m(dim: int) -> int:
    # 4 dims per sub-quantizer keeps enough accuracy for the exact re-rank to fix.
    for m in (dim // 4, dim // 8, dim // 2, dim):
        if m >= 1 and dim % m == 0:
            return m
    return dim


def default_params(kind: str, n: int, dim: int) -> dict[str, Any]:
    if kind == "flat":
        return {}
    if kind == "hnsw":
        return {"M": HNSW_M, "ef_construction": 80, "ef_search": 96}
    if kind == "ivfpq":
        nlist = default_nlist(n)
        # Probe ~2.5 % of the lists (at least 32) and re-rank 40·k PQ candidates exactly: at
        # 1M clustered vectors, 10·k candidates capped recall@10 at 0.90 whatever nprobe was.
        return {"nlist": nlist, "pq_m": default_pq_m(dim), "nprobe": min(nlist, max(32, nlist // 40)),
                "rerank": 40}
    raise ValueError(f"unknown index kind {kind!r}")


def choose_kind(n: int, dim: int, memory_budget_bytes: int, forced: str = "auto") -> IndexChoice:
    """Pick the index kind for ``n`` vectors of ``dim`` floats.

    >>> choose_kind(1_000, 256, 2 << 30).kind
    'flat'
    >>> choose_kind(200_000, 256, 2 << 30).kind
    'hnsw'
    >>> choose_kind(5_000_000, 256, 2 << 30).kind
    'ivfpq'
    >>> choose_kind(20_000, 1280, 2 << 30).kind
    'hnsw'
    """
    if forced != "auto":
        if forced not in KINDS:
            raise ValueError(f"index kind must be auto or one of {', '.join(KINDS)}")
        return IndexChoice(forced, default_params(forced, n, dim))
    if n <= min(FLAT_MAX_ITEMS, FLAT_MAX_FLOATS // max(dim, 1)) \
            and estimated_bytes("flat", n, dim) <= memory_budget_bytes:
        return IndexChoice("flat")
    if estimated_bytes("hnsw", n, dim) <= memory_budget_bytes:
        return IndexChoice("hnsw", default_params("hnsw", n, dim))
    return IndexChoice("ivfpq", default_params("ivfpq", n, dim))
