"""Text-search quality: run labelled queries through the search service and score them.

Each query goes through ``SearchService.query(text=..., k=...)``, the public API a shopper's
request reaches, so the figures measure whatever the engine does (vectors today, lexical and
query understanding once they land). Scores per query: R-precision capped at 10 (n = min(10,
relevant); the share of the top n that is relevant), P@10, nDCG@10 (binary gains) and MRR;
means per group (attribute / understanding x en / zh) and split (tuning / held-out), with 95 %
bootstrap intervals over queries. A BM25-on-titles reference (SQLite FTS5 in memory, every
token quoted) runs the same queries.
"""

from __future__ import annotations

import math
import re
import sqlite3
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from jewelsearch.evaluate.metrics import bootstrap_interval
from jewelsearch.evaluate.search_queries import Query

METRICS = ("r_precision", "p_at_10", "ndcg_at_10", "mrr")
Ranker = Callable[[str, int], list[int]]  # query text, k -> row indices, best first


def r_precision(ranked: Sequence[int], relevant: set[int], cap: int = 10) -> float:
    n = min(cap, len(relevant))
    return sum(1 for r in ranked[:n] if r in relevant) / n if n else 0.0


def precision_at(ranked: Sequence[int], relevant: set[int], k: int = 10) -> float:
    return sum(1 for r in ranked[:k] if r in relevant) / k


def ndcg_at(ranked: Sequence[int], relevant: set[int], k: int = 10) -> float:
    gain = sum(1 / math.log2(i + 2) for i, r in enumerate(ranked[:k]) if r in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return gain / ideal if ideal else 0.0


def reciprocal_rank(ranked: Sequence[int], relevant: set[int], k: int = 10) -> float:
    return next((1 / (i + 1) for i, r in enumerate(ranked[:k]) if r in relevant), 0.0)


def score(ranked: Sequence[int], relevant: set[int], k: int = 10) -> dict[str, float]:
    return {"r_precision": r_precision(ranked, relevant, k), "p_at_10": precision_at(ranked, relevant, k),
            "ndcg_at_10": ndcg_at(ranked, relevant, k), "mrr": reciprocal_rank(ranked, relevant, k)}


def service_ranker(service: Any, item_rows: dict[int, int]) -> Ranker:
    """Ranks with the search service; ``item_rows`` maps catalog item ids to catalog row indices."""
    def rank(text: str, k: int) -> list[int]:
        hits = service.query(text=text, k=k)["results"]
        # A folded card stands for its variants too: they are one click away, in its place.
        ids = [i for h in hits for i in [h.get("id"), *h.get("variant_ids", [])]]
        return [item_rows[i] for i in ids if i in item_rows][:k]
    return rank


class TitleBM25:
    """BM25 over titles alone: SQLite FTS5 in memory, every query token quoted (so no token
    is read as FTS syntax) and ORed, so a word no title holds ("with", "jewelry", "under")
    does not empty the list; items matching more, rarer words rank first."""

    def __init__(self, titles: Sequence[str | None]):
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE titles USING fts5(title)")
        self.db.executemany("INSERT INTO titles(rowid, title) VALUES (?, ?)",
                            [(i, t or "") for i, t in enumerate(titles)])

    def __call__(self, text: str, k: int) -> list[int]:
        tokens = re.findall(r"\w+", text)
        if not tokens:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in tokens)
        rows = self.db.execute("SELECT rowid FROM titles WHERE titles MATCH ? ORDER BY bm25(titles) LIMIT ?",
                               (match, k)).fetchall()
        return [r[0] for r in rows]


def run_queries(queries: Iterable[Query], rank: Ranker, k: int = 10,
                progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """One record per query: its description plus its scores."""
    out = []
    for query in queries:
        ranked = rank(query.text, k)
        out.append({**query.to_json(), **score(ranked, query.relevant, k)})
        if progress:
            progress(1)
    return out


def summarise(records: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
    """{group: {split: {metric: {mean, low, high}, n}}}, with "all" for both splits."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    groups = sorted({(r["group"], r["language"]) for r in records})
    for group, language in groups:
        name = f"{group}/{language}"
        summary[name] = {}
        for split in ("tuning", "held-out", "all"):
            chosen = [r for r in records if r["group"] == group and r["language"] == language
                      and (split == "all" or r["split"] == split)]
            cell: dict[str, Any] = {"n": len(chosen)}
            for metric in METRICS:
                values = [r[metric] for r in chosen]
                low, high = bootstrap_interval(values, seed=seed)
                cell[metric] = {"mean": float(np.mean(values)) if values else 0.0, "low": low, "high": high}
            summary[name][split] = cell
    return summary
