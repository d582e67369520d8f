"""Search queries: by text, by image, by item id, or an image plus a text; similar items.

Each query becomes one unit vector (a weighted sum of its parts), searched in the index
snapshot taken once per request, then filled in from the item rows.
"""

from __future__ import annotations

import time
from typing import Any, Collection

import numpy as np

from jewelsearch.errors import InvalidInput, ModelMismatch
from jewelsearch.recognize.query_region import choose_region
from jewelsearch.search.items import public_item
from jewelsearch.search.maintenance import check_model
from jewelsearch.search.params import Filters
from jewelsearch.search.recognition import label_boxes
from jewelsearch.search.state import ServiceState
from jewelsearch.search.text_query import DROPPABLE, text_query

Box = tuple[int, int, int, int]


def query(state: ServiceState, *, text: str | None = None, image_bytes: bytes | None = None,
          item_id: Any = None, k: int = 10, filters: Filters | None = None,
          text_weight: float = 0.5, region: str = "auto", box: Box | None = None,
          collapse: bool = True, dropped: Collection[str] = ()) -> dict[str, Any]:
    """Search by text, image, item id, or image + text; returns results and timing.

    A text alone is a hybrid text search (``search/text_query.py``: words, understood
    attributes and the text vector, with facets and folded variants). Image queries search
    with the detected piece (``region="auto"``), a caller's ``box``, or the whole photo
    (``region="whole"``); the answer says which.
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
    if text and image_bytes is None and item_id is None:
        return text_query(state, text, k, filters, collapse=collapse, dropped=dropped)
    parts: list[tuple[float, np.ndarray]] = []
    exclude: list[int] = []
    if item_id is not None:
        item = state.catalog.items.get(item_id)
        vector = state.catalog.embeddings.get(item["id"], state.encoder.model_id)
        if vector is None:
            raise ModelMismatch(f"item {item['id']} has no embedding for {state.encoder.model_id}; "
                                "run `jewelsearch index rebuild`")
        parts.append((1.0 - text_weight if text else 1.0, vector))
        exclude.append(item["id"])
    region_info = None
    if image_bytes is not None:
        vector, region_info = _image_vector(state, image_bytes, region, box)
        parts.append((1.0 - text_weight if text else 1.0, vector))
    if text:
        parts.append((text_weight if parts else 1.0, state.text_vectors.vector(text)))
    if not parts:
        raise InvalidInput("give a text query (q), an image, or an item id")
    vector = sum(w * v for w, v in parts)
    vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
    hits = search_vector(state, vector, k, filters, exclude)
    answer = {"results": hits, "took_ms": round((time.perf_counter() - started) * 1000, 2)}
    if region_info is not None:
        answer["region"] = region_info
    return answer


def _image_vector(state: ServiceState, image_bytes: bytes, region: str,
                  box: Box | None) -> tuple[np.ndarray, dict[str, Any]]:
    """The query photo's vector (of the region searched) and what the answer says about it."""
    image = state.ingestor.decode(image_bytes).image
    choice = choose_region(image, state.localizer, region=region, box=box)
    region_info = choice.describe(image.size)
    searched = [b for b in region_info["boxes"] if choice.used == "box" and b["box"] == choice.box]
    recognizer = state.recognizer
    if searched and recognizer is not None:
        # The searched piece is embedded anyway (with the pooled maps, in the same pass),
        # so naming its category costs only the head: the same label /api/recognize gives.
        vectors, pooled = recognizer.embed([choice.image])
        label_boxes(recognizer, searched[:1], vectors, pooled)
        return vectors[0], region_info
    return choice.embed(state.encoder), region_info


def similar(state: ServiceState, item_id: Any, k: int = 10, filters: Filters | None = None) -> dict[str, Any]:
    return query(state, item_id=item_id, k=k, filters=filters)


def search_vector(state: ServiceState, vector: np.ndarray, k: int, filters: Filters | None,
                  exclude: list[int]) -> list[dict[str, Any]]:
    """The ``k`` nearest items allowed by ``filters``, as public rows with their scores."""
    allowed = state.catalog.items.filter_ids(filters.for_store()) if filters else None
    index = state.index  # one consistent snapshot even if a rebuild swaps it meanwhile
    (ids, scores), = index.search(vector, k, allowed_ids=allowed, exclude_ids=exclude)
    rows = state.catalog.items.get_many(ids.tolist())
    return [dict(public_item(rows[i]), score=round(float(s), 6))
            for i, s in zip(ids.tolist(), scores.tolist()) if i in rows]
