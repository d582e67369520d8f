"""Ingest's model work in worker processes, one torch thread each; this process writes.

One process with two torch threads meets at an OpenMP barrier after each operation; two
processes with one thread each never wait for each other. Against a process that decoded and
embedded one after the other, two one-thread workers ran 2.4x the photos per second under load
(``benchmarks/bench_ingest_procs.py``), but against the threaded pipeline, which already
overlaps decoding and writes with the model, they were not faster on this 2-core machine
(``bench_ingest_pipeline.py --variants pipe,procs``; docs/experiments/
2026-12-07-ingest-worker-processes.md), so the CLI uses them only when asked (``--processes``).

The workers are forked from this process after the model is loaded, so none loads it again,
and each opens its own database connection (a SQLite connection must not cross a fork). A
worker decodes a batch and runs ``Ingestor.prepare`` on it: the same steps, on the same
inputs, as the in-process pipeline (``ingest/stream.py``); only the thread count of the
tower's kernels differs, which moves vectors by float rounding (tested within 1e-5). Batches
come back in order and are written here, one transaction each, while the workers embed the
next ones.

A batch that names a source file of a batch still in flight waits until that one is written
(its lookup must see the earlier row, else the photo would be added twice). Fork is used only
where the caller has started no threads of its own (the CLI); the server keeps the in-process path.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Iterable, Iterator

from jewelsearch.embed import LoadedImage
from jewelsearch.errors import JewelsearchError
from jewelsearch.ingest.pipeline import Ingestor, IngestResult, NewItem, PreparedBatch
from jewelsearch.ingest.stream import shares_source

# The worker's ingestor, set once in each forked worker by ``_start_worker``.
_worker_ingestor: Ingestor | None = None


def forking_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def in_processes(batches: Iterable[list[NewItem]], *, ingestor: Ingestor,
                 write: Callable[[PreparedBatch], list[IngestResult]], processes: int = 2
                 ) -> Iterator[tuple[list[NewItem], list[IngestResult]]]:
    """(batch, its results) for each batch, in order, as ``stream.pipelined`` gives them; the
    decoding and model work run in ``processes`` forked workers. ``write`` wraps
    ``Ingestor.write`` (the caller adds its locking). A bad photo comes back as a "failed"
    result; any other error stops the run after the batches before it are written."""
    if processes < 1:
        raise ValueError("processes must be at least 1")
    if not forking_available():
        raise RuntimeError("worker processes need the fork start method (Linux, macOS)")
    context = multiprocessing.get_context("fork")
    # With fork the initializer's arguments are inherited, not pickled: the loaded model
    # reaches the workers as it is.
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker,
                             initargs=(ingestor,)) as pool:
        in_flight: deque[tuple[list[NewItem], Future]] = deque()
        # One batch queued beyond one per worker, so a worker never idles while this process writes.
        depth = processes + 1
        try:
            for batch in batches:
                if not batch:
                    continue
                while any(shares_source(earlier, batch) for earlier, _ in in_flight) \
                        or len(in_flight) >= depth:
                    done, future = in_flight.popleft()
                    yield done, write(future.result())
                in_flight.append((batch, pool.submit(_prepare, batch)))
            while in_flight:
                done, future = in_flight.popleft()
                yield done, write(future.result())
        finally:
            for _, future in in_flight:  # an error or a closed generator: drop what is not written
                future.cancel()


def _start_worker(ingestor: Ingestor) -> None:
    global _worker_ingestor
    import torch

    # One thread: the other workers hold the other cores.
    torch.set_num_threads(1)
    ingestor.catalog.database.forget_connections()
    _worker_ingestor = ingestor


def _prepare(batch: list[NewItem]) -> PreparedBatch:
    ingestor = _worker_ingestor
    decoded: dict[int, object] = {}
    for position, item in enumerate(batch):
        try:
            decoded[position] = ingestor.decode_for_model(item.image_bytes, item.fields)
        except JewelsearchError as exc:  # reported with the batch; a bug still raises
            decoded[position] = exc
    return _without_pixels(ingestor.prepare(batch, decoded=decoded, skip_bad=True))


def _without_pixels(batch: PreparedBatch) -> PreparedBatch:
    """The batch as ``write`` reads it, minus the decoded pixels (a 512 px photo is 786 kB as
    pixels against about 50 kB as its file): only the file bytes go back to the writer."""
    rows = []
    for row in batch.rows:
        if row is not None and row[4] is not None:
            loaded = row[4]
            row = (*row[:4], LoadedImage(None, loaded.format, loaded.data, loaded.ext), row[5])
        rows.append(row)
    batch.rows = rows
    return batch
