"""Search queries: by text, by image, by item id, or an image plus a text; similar items.

A text alone is a hybrid text search (``search/text_query.py``). Image and item queries rank
in the image space (``search/image_ranking.py``): the instance vectors where the catalog has
them all, else the text-aligned vectors. Each query part becomes one unit vector (a weighted sum
of the item's and the photo's vectors, and, in the text-aligned space, the text's), searched in
the index snapshot taken once per request, optionally re-ranked, then filled in from the item
rows. In the instance space a text is fused with the image instead of summed (its vector lives
in the other space).
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any, Collection

import numpy as np

from jewelsearch.errors import InvalidInput, ModelMismatch
from jewelsearch.index.rerank import METHODS as RERANK_METHODS
from jewelsearch.recognize.query_region import SEARCH_DEFAULT_REGION
from jewelsearch.search.image_query import image_parts
from jewelsearch.search.image_ranking import fuse_by_max, image_and_text, image_space, ranked
from jewelsearch.search.items import public_item
from jewelsearch.search.maintenance import check_model
from jewelsearch.search.params import Filters
from jewelsearch.search.state import ServiceState
from jewelsearch.search.text_query import DROPPABLE, text_query

Box = tuple[int, int, int, int]


def query(state: ServiceState, *, text: str | None = None, image_bytes: bytes | None = None,
          item_id: Any = None, k: int = 10, filters: Filters | None = None,
          text_weight: float = 0.5, region: str = SEARCH_DEFAULT_REGION, box: Box | None = None,
          collapse: bool = True, dropped: Collection[str] = (), rerank: str | None = None,
          offset: int = 0) -> dict[str, Any]:
    """Search by text, image, item id, or image + text; returns the ``k`` results after the
    first ``offset``, the offset of the next page (``next_offset``, null after the last) and timing.

    Image queries search with the whole photo and each piece found (``region="multi"``, the
    default; each result then says which part ``matched``), the most confident piece
    (``region="auto"``), a caller's ``box``, or the whole photo (``region="whole"``); the answer
    says which (``region``), which
    vectors ranked (``vector``: "instance" or "aligned") and which re-ranking ran (``rerank``:
    the service's default unless given; none with words, whose score is a fusion).
    """
    started = time.perf_counter()
    check_model(state)
    if not 0.0 <= text_weight <= 1.0:
        raise InvalidInput("text_weight must be between 0 and 1")
    unknown = set(dropped) - set(DROPPABLE)
    if unknown:
        raise InvalidInput(f"drop takes some of {', '.join(DROPPABLE)}; got {', '.join(sorted(unknown))}")
    if text and len(text) > state.limits.max_text_chars:
        raise InvalidInput(f"q is longer than {state.limits.max_text_chars} characters")
    if offset < 0 or offset + k > state.limits.max_k:
        raise InvalidInput(f"offset must be 0 or more and offset + k at most {state.limits.max_k}")
    rerank = state.rerank if rerank is None else rerank
    if rerank not in RERANK_METHODS:
        raise InvalidInput(f"rerank must be one of {', '.join(RERANK_METHODS)}")
    if text and image_bytes is None and item_id is None:
        return text_query(state, text, k, filters, collapse=collapse, dropped=dropped, offset=offset)
    if image_bytes is None and item_id is None:
        raise InvalidInput("give a text query (q), an image, or an item id")
    space = image_space(state)
    image_weight = 1.0 - text_weight if text else 1.0
    fixed: list[tuple[float, np.ndarray]] = []  # what every query part shares: the item's vector
    exclude: list[int] = []
    if item_id is not None:
        item = state.catalog.items.get(item_id)
        vector = state.catalog.embeddings.get(item["id"], space.key)
        if vector is None:
            raise ModelMismatch(f"item {item['id']} has no {space.name} vector for {state.encoder.model_id}; "
                                "run `jewelsearch index rebuild`")
        fixed.append((image_weight, vector))
        exclude.append(item["id"])
    text_vector = state.text_vectors.vector(text) if text else None
    if space.name == "aligned" and text_vector is not None:
        fixed.append((text_weight, text_vector))  # one space: the text joins the sum, as it always has
    region_info = None
    allowed = state.catalog.items.filter_ids(filters.for_store()) if filters else None
    applied = rerank if text is None else "none"
    fused_with_text = space.name == "instance" and text_vector is not None
    early: dict[str, Future] = {}
    # The ranking up to the page's end and one result past it (does another page follow?). Below
    # the index's own search depth (HNSW's efSearch, the re-ranking and fusion pools) a longer
    # list begins with the shorter one, so pages of one query agree.
    window = offset + k
    depth = window + 1

    def as_query(part) -> np.ndarray:
        return _unit(sum((w * v for w, v in fixed), image_weight * _in_space(part, space.name)))

    def search_beside(part) -> None:
        # The whole photo's list is searched on a helper thread while the pieces go through the
        # tower; the same call the request thread would make, so the same list.
        early[part.label] = state.helpers.submit(ranked, state, space, as_query(part), depth, allowed, exclude, applied)

    if image_bytes is not None:
        parts, region_info = image_parts(state, image_bytes, region, box, space.head,
                                         on_whole=None if fused_with_text else search_beside)
        queries = [(p.label, as_query(p)) for p in parts]
    else:
        queries = [("item", _unit(sum(w * v for w, v in fixed)))]
    if fused_with_text:
        hits = image_and_text(state, space, queries, text_vector, text_weight, depth, allowed, exclude)
    else:
        hits = fuse_by_max([(label, *(early[label].result() if label in early
                                      else ranked(state, space, vector, depth, allowed, exclude, applied)))
                            for label, vector in queries], depth)
    more = len(hits) > window
    hits = hits[offset:window]
    rows = state.catalog.items.get_many([item for item, _, _ in hits])
    several = len(queries) > 1
    results = [dict(public_item(rows[item]), score=round(float(score), 6), **({"matched": part} if several else {}))
               for item, score, part in hits if item in rows]
    answer = {"results": results, "took_ms": round((time.perf_counter() - started) * 1000, 2),
              "offset": offset, "next_offset": window if more else None, "vector": space.name, "rerank": applied}
    if region_info is not None:
        answer["region"] = region_info
    return answer


def _in_space(part, space: str) -> np.ndarray:
    return part.instance if space == "instance" else part.aligned


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def similar(state: ServiceState, item_id: Any, k: int = 10, filters: Filters | None = None,
            rerank: str | None = None, offset: int = 0) -> dict[str, Any]:
    return query(state, item_id=item_id, k=k, filters=filters, rerank=rerank, offset=offset)


def search_vector(state: ServiceState, vector: np.ndarray, k: int, filters: Filters | None,
                  exclude: list[int]) -> list[dict[str, Any]]:
    """The ``k`` nearest items allowed by ``filters``, as public rows with their scores."""
    allowed = state.catalog.items.filter_ids(filters.for_store()) if filters else None
    index = state.index  # one consistent snapshot even if a rebuild swaps it meanwhile
    (ids, scores), = index.search(vector, k, allowed_ids=allowed, exclude_ids=exclude)
    rows = state.catalog.items.get_many(ids.tolist())
    return [dict(public_item(rows[i]), score=round(float(s), 6))
            for i, s in zip(ids.tolist(), scores.tolist()) if i in rows]
