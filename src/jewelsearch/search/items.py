"""Catalog items through the service: add, update, delete and read items and their image files.

Writes hold the service's write lock around the ingestor (one transaction each) and the
index changes (the main index, the instance index where there is one, the item text index,
and the blended index refreshed from those two for the items written), and mark the indexes
as needing a save; reads take no lock.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from jewelsearch.errors import InvalidInput, ItemNotFound
from jewelsearch.ingest.guess_again import GuessReport, guess_batch
from jewelsearch.ingest.pipeline import IngestResult, NewItem, PreparedBatch
from jewelsearch.ingest.stream import pipelined
from jewelsearch.search import blended_space
from jewelsearch.search.state import ServiceState
from jewelsearch.storage import Catalog
from jewelsearch.storage.items import parse_item_id

HIDDEN_FIELDS = ("image_path", "source_path")  # where files live on this server is not a client's business


def public_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """An item row as clients see it.

    >>> public_item({"id": 1, "title": "Ring", "image_path": "ab/ab12.jpg"})
    {'id': 1, 'title': 'Ring'}
    """
    return {k: v for k, v in row.items() if k not in HIDDEN_FIELDS}


def add_items(state: ServiceState, items: list[NewItem], *, skip_bad: bool = False,
              job_photos: int | None = None) -> list[IngestResult]:
    """One batch in one transaction; ``skip_bad`` writes the good items of a batch with bad
    photos and reports the bad ones as "failed" (else the first bad one raises). ``job_photos``:
    the size of a larger job this batch is part of (a Ray actor's), which picks the tower pass's
    runtime as it does for the same job ingested locally; default: the batch's size."""
    with state.write_lock:
        results = state.ingestor.add(state.index, items, instance_index=_instance_index(state),
                                     text_index=_text_index(state), skip_bad=skip_bad, job_photos=job_photos)
        _refresh_blended(state, results)
        _mark_dirty(state, results)
        return results


def ingest_batches(state: ServiceState, batches: Iterable[list[NewItem]], *, decode_workers: int = 2,
                   photos: int | None = None) -> Iterator[tuple[list[NewItem], list[IngestResult]]]:
    """Many batches through the pipelined path (``ingest/stream.py``): (batch, results) in order,
    each batch in one transaction as ``add_items(batch, skip_bad=True)`` would write it.
    ``photos``: the job's size where the caller knows it (the CLI's file count), else counted
    as batches come; it picks the tower pass's runtime (``ingest/tower_runtime.py``)."""
    seen = 0

    def prepare(batch: list[NewItem], decoded) -> PreparedBatch:
        nonlocal seen  # one model step at a time (``pipelined``)
        seen += len(batch)
        return state.ingestor.prepare(batch, decoded=decoded, skip_bad=True,
                                      job_photos=max(seen, photos or 0))

    def write(prepared: PreparedBatch) -> list[IngestResult]:
        with state.write_lock:
            results = state.ingestor.write(prepared, state.index, instance_index=_instance_index(state),
                                           text_index=_text_index(state))
            _refresh_blended(state, results)
            _mark_dirty(state, results)
            return results

    yield from pipelined(batches, decode=state.ingestor.decode_for_model, prepare=prepare, write=write,
                         decode_workers=decode_workers)


def _refresh_blended(state: ServiceState, results: list[IngestResult]) -> None:
    written = [r.item_id for r in results if r.status in ("added", "updated")]
    if state.blended is not None and written:
        blended_space.refresh(state.blended, state.index, _text_index(state), written)


def _mark_dirty(state: ServiceState, results: list[IngestResult]) -> None:
    state.dirty = state.dirty or any(r.status not in ("unchanged", "failed") for r in results)


def update_item(state: ServiceState, item_id: Any, fields: Mapping[str, Any],
                image_bytes: bytes | None = None) -> dict[str, Any]:
    with state.write_lock:
        item_id = parse_item_id(item_id)
        state.ingestor.update(state.index, item_id, fields, image_bytes, instance_index=_instance_index(state),
                              text_index=_text_index(state))
        if state.blended is not None:
            blended_space.refresh(state.blended, state.index, _text_index(state), [item_id])
        state.dirty = True
        return get_item(state.catalog, item_id)


def guess_again(state: ServiceState, item_ids: Sequence[Any] | None = None, *, batch: int = 32,
                progress: Callable[[GuessReport], None] | None = None) -> GuessReport:
    """Recognition run again over these items (default: every item), ``batch`` at a time. Each
    batch (its tower pass and its transaction) holds this service's write lock; reads go on
    throughout, and other writes wait at most one batch. An item another process wrote meanwhile
    is skipped, not overwritten (``ingest/guess_again.py``). ``progress`` gets each batch's report."""
    if state.ingestor.recognizer is None:
        raise InvalidInput("this model recognises nothing: there is nothing to guess again")
    ids = state.catalog.items.all_ids() if item_ids is None else [parse_item_id(i) for i in item_ids]
    report = GuessReport()
    for start in range(0, len(ids), batch):
        with state.write_lock:
            done = guess_batch(state.ingestor, ids[start:start + batch])
        report.add(done)
        if progress is not None:
            progress(done)
    return report


def delete_item(state: ServiceState, item_id: Any) -> None:
    with state.write_lock:
        item_id = parse_item_id(item_id)
        state.ingestor.delete(state.index, item_id, instance_index=_instance_index(state),
                              text_index=_text_index(state))
        if state.blended is not None:
            state.blended.index.remove([item_id])
        state.dirty = True
        if state.index.needs_compaction:
            state.index = state.index.compacted()
        space = state.instance
        if space is not None and space.index.needs_compaction:
            state.instance = dataclasses.replace(space, index=space.index.compacted())
        texts = state.item_text
        if texts is not None and texts.index.needs_compaction:
            state.item_text = dataclasses.replace(texts, index=texts.index.compacted())
        blended = state.blended
        if blended is not None and blended.index.needs_compaction:
            state.blended = dataclasses.replace(blended, index=blended.index.compacted())


def _instance_index(state: ServiceState):
    return state.instance.index if state.instance is not None else None


def _text_index(state: ServiceState):
    return state.item_text.index if state.item_text is not None else None


def get_item(catalog: Catalog, item_id: Any) -> dict[str, Any]:
    return public_item(catalog.items.get(item_id))


def image_file(catalog: Catalog, item_id: Any) -> Path:
    """The item's stored photo; an item whose file is gone is not found (a 404, not a 500)."""
    row = catalog.items.get(item_id)
    path = catalog.images.path_for(row["image_path"])
    if not path.is_file():
        raise ItemNotFound(item_id)
    return path
