"""Ingest of many batches as a pipeline: decode ahead in threads, the model in this thread,
writes behind in one writer thread.

On a small machine the tower pass is most of the work, and around it sit decoding (PIL, which
releases the GIL while it decodes and resizes), the fsync of each image file and the SQLite
commit (both wait on the disk). Run one after another those add up; here batch k+1 decodes
while batch k is in the model and batch k-1 is being written. The results are the ones
``Ingestor.add`` gives batch by batch: the same steps run on the same inputs, in order.

Two batches in flight must not name the same source file (the later one's lookup would miss
the earlier one's still unwritten row), so a batch that does waits for the writer first.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

from jewelsearch.errors import JewelsearchError
from jewelsearch.ingest.decoding import DecodedPhoto
from jewelsearch.ingest.pipeline import IngestResult, NewItem, PreparedBatch

Decoded = dict[int, DecodedPhoto | Exception]


def _decode_all(decode: Callable[..., DecodedPhoto], pool: ThreadPoolExecutor,
                batch: list[NewItem]) -> list[Future]:
    def one(item: NewItem) -> DecodedPhoto | Exception:
        try:
            return decode(item.image_bytes, item.fields)
        except JewelsearchError as exc:  # reported with the batch; a bug still raises
            return exc
    return [pool.submit(one, item) for item in batch]


def pipelined(batches: Iterable[list[NewItem]], *, decode: Callable[..., DecodedPhoto],
              prepare: Callable[[list[NewItem], Decoded], PreparedBatch],
              write: Callable[[PreparedBatch], list[IngestResult]],
              decode_workers: int = 2) -> Iterator[tuple[list[NewItem], list[IngestResult]]]:
    """(batch, its results) for each batch, in order. ``decode`` is ``Ingestor.decode_for_model``;
    ``prepare`` and ``write`` wrap ``Ingestor.prepare`` and ``Ingestor.write`` (the caller adds
    its locking). A bad photo comes back as a "failed" result; any other error stops the run
    after the batches before it are written. ``decode`` is called with a photo's bytes and its
    item's fields."""
    if decode_workers < 1:
        raise ValueError("decode_workers must be at least 1")
    iterator = iter(batches)
    with ThreadPoolExecutor(decode_workers, thread_name_prefix="ingest-decode") as decoders, \
            ThreadPoolExecutor(1, thread_name_prefix="ingest-write") as writer:
        current = next(iterator, None)
        decoding = _decode_all(decode, decoders, current) if current is not None else []
        in_flight: tuple[list[NewItem], Future] | None = None
        while current is not None:
            following = next(iterator, None)
            photos = {i: f.result() for i, f in enumerate(decoding)}
            decoding = _decode_all(decode, decoders, following) if following is not None else []
            if in_flight is not None and _shares_source(in_flight[0], current):
                yield in_flight[0], in_flight[1].result()
                in_flight = None
            prepared = prepare(current, photos)
            if in_flight is not None:
                yield in_flight[0], in_flight[1].result()
            in_flight = (current, writer.submit(write, prepared))
            current = following
        if in_flight is not None:
            yield in_flight[0], in_flight[1].result()


def _shares_source(earlier: list[NewItem], later: list[NewItem]) -> bool:
    sources = {item.source_path for item in earlier if item.source_path}
    return any(item.source_path in sources for item in later if item.source_path)
