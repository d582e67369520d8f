"""``jewelsearch ingest --engine ray``: ingest on a Ray cluster, the store written by the driver.

The pipeline (Ray Data):

1. **read** (small tasks, 1/8 CPU each): each photo's bytes and sha256. A photo whose content
   the store already holds is passed on as ``skipped`` and never embedded, so a run stopped
   half-way resumes where it stopped; an unreadable file is passed on as ``failed``.
2. **embed and recognise** (an actor pool; each actor loads the model once): every actor runs
   the local ingest itself (``SearchService.add_items``) on a scratch catalog of its own, so it
   decodes, embeds, recognises and fills in fields exactly as a local ingest does, with the
   same code, and then ships each item as that ingest stored it (row, photo, every vector).
   A bad photo is reported and the rest of its batch still goes through.
3. **write** (the driver): batches of finished items in one transaction each
   (``search/finished_items.py``), then the indexes rebuilt from the stored vectors and saved.

SQLite stays the one store: only the driver writes to it, so the workers may run on any node.
The read tasks carry the set of stored photo hashes (64 bytes a photo: 64 MB at a million
items); far beyond that, resume by source path instead.

Sizing (the pitfall measured on 2 cores): an actor asking for one whole CPU per actor, with
as many actors as cores, takes every CPU and the read tasks wait for ever. The pool here is
sized from the cluster's CPUs with a fraction left for reading (``plan_pool``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from jewelsearch.config import Settings
from jewelsearch.errors import JewelsearchError
from jewelsearch.index.sync import open_index
from jewelsearch.ingest.manifest import PhotoInput
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.blended_space import open_blended_space
from jewelsearch.search.finished_items import FinishedItem, finished_from_row, write_finished
from jewelsearch.search.instance_space import instance_index_dir
from jewelsearch.search.item_text_space import item_text_index_dir, item_text_key
from jewelsearch.search.options import IndexSettings
from jewelsearch.storage import Catalog
from jewelsearch.storage.embeddings import SPACE_SEPARATOR, model_of
from jewelsearch.storage.images import sha256_bytes
from jewelsearch.storage.items import ITEM_FIELDS

log = logging.getLogger(__name__)

READ_CPUS = 0.125  # per read task; two of them always fit beside the pool
WRITE_BATCH = 64  # finished items per store transaction
PLACEHOLDER_SHA = "0" * 64  # the stored photo of a scratch copy of an existing item (never matches)


@dataclass(frozen=True)
class PoolPlan:
    actors: int
    cpus_per_actor: float
    torch_threads: int


def plan_pool(cluster_cpus: float, workers: int | None = None) -> PoolPlan:
    """How many embedding actors, with how much CPU each, on a cluster with ``cluster_cpus``.

    Room for two read tasks is kept free; the rest is shared among the actors (one per whole
    core unless ``workers`` says otherwise), each asking for a fraction, so the pool can never
    hold every CPU. An actor runs torch on as many threads as whole cores it has (at least one).
    """
    usable = cluster_cpus - 2 * READ_CPUS
    if usable <= 0:
        raise ValueError(f"the Ray cluster has {cluster_cpus} CPUs; ingest needs at least {2 * READ_CPUS + 0.25}")
    if workers is not None and workers < 1:
        raise ValueError("--workers must be 1 or more")
    actors = workers or max(1, round(usable))
    share = usable / actors
    return PoolPlan(actors, share, max(1, int(share + 0.5)))


@dataclass
class RayIngestReport:
    added: int = 0
    updated: int = 0
    skipped: int = 0  # content the store already held
    failed: int = 0
    pool: PoolPlan | None = None
    dims: dict[str, int] = field(default_factory=dict)  # storage key -> dimension of the vectors written
    first_actor_ready: float | None = None  # epoch seconds when the first actor had loaded the model


class PhotoWorker:
    """One embedding actor: the model loaded once, the local ingest run on a scratch catalog.

    Plain Python (Ray calls it with a pyarrow batch), so it can be tested without Ray.
    """

    def __init__(self, settings: Settings, torch_threads: int = 1, job_photos: int | None = None):
        from jewelsearch.search.wiring import open_service  # loads torch: only in the actor
        # The whole job's size, not the actor's batch: it picks the tower pass's runtime (torch, or
        # OpenVINO in the settings' precision) as a local ingest of the same job does, so the two
        # store the same vectors (bf16's differ from torch's by more than 1e-5).
        self.job_photos = job_photos
        self.scratch = Path(tempfile.mkdtemp(prefix="jewelsearch-ray-worker-"))
        self.service = open_service(settings.with_overrides(home=self.scratch / "home", torch_threads=torch_threads))
        self.ready_at = time.time()  # the model is loaded: reported, so a run's rate can leave loading out
        self.spaces = tuple(k for k in (self.service.encoder.model_id,
                                        self.service.instance.key if self.service.instance else None,
                                        self.service.item_text.key if self.service.item_text else None) if k)

    def __call__(self, batch) -> Any:
        import pyarrow as pa
        rows = batch.to_pylist()
        out: dict[str, list] = {"path": [], "status": [], "detail": [], "payload": []}
        ready_at = self.ready_at

        def emit(path: str, status: str, detail: str = "", payload: bytes = b"") -> None:
            out["path"].append(path)
            out["status"].append(status)
            out["detail"].append(detail)
            out["payload"].append(payload)

        todo = []
        for row in rows:
            if row["status"] != "read":
                emit(row["path"], row["status"], row["detail"])
                continue
            if row["existing"]:
                self._seed_existing(row["path"], json.loads(row["existing"]))
            todo.append(NewItem(row["data"], json.loads(row["fields"]), source_path=row["path"]))
        for item, result in self._add(todo):
            if isinstance(result, str):
                emit(item.source_path, "failed", result)
            else:
                emit(item.source_path, "done", payload=pickle.dumps(self._finished(result)))
        return pa.table({"path": pa.array(out["path"], pa.string()), "status": pa.array(out["status"], pa.string()),
                         "detail": pa.array(out["detail"], pa.string()),
                         "payload": pa.array(out["payload"], pa.binary()),
                         "ready_at": pa.array([ready_at] * len(out["path"]), pa.float64())})

    def _add(self, items: list[NewItem]) -> list[tuple[NewItem, Any]]:
        """(item, item id) for each item ingested, (item, reason) for each that could not be;
        as the local ``jewelsearch ingest`` does: the batch at once, else one by one."""
        if not items:
            return []
        try:
            return [(item, r.item_id) for item, r in
                    zip(items, self.service.add_items(items, job_photos=self.job_photos))]
        except JewelsearchError:
            pass
        done: list[tuple[NewItem, Any]] = []
        for item in items:
            try:
                done.append((item, self.service.add_items([item], job_photos=self.job_photos)[0].item_id))
            except JewelsearchError as exc:
                done.append((item, str(exc)))
        return done

    def _seed_existing(self, path: str, existing: dict[str, Any]) -> None:
        """Put the store's current row for ``path`` into the scratch catalog, so a changed photo
        at a known path takes the local ingest's update path (its earlier fields kept)."""
        catalog = self.service.catalog
        if catalog.items.find_by_source(path) is not None:
            return
        with catalog.database.write() as conn:
            catalog.items.insert(conn, existing["fields"], image_path="", image_sha256=PLACEHOLDER_SHA,
                                 source_path=path, attributes=existing["attributes"])
            catalog.database.bump_version(conn)

    def _finished(self, item_id: int) -> FinishedItem:
        catalog = self.service.catalog
        row = catalog.items.get(item_id)
        photo = catalog.images.path_for(row["image_path"])
        image = photo.read_bytes()
        vectors = {}
        for key in self.spaces:
            vector = catalog.embeddings.get(item_id, key)
            if vector is not None:
                vectors[key] = vector
        photo.unlink(missing_ok=True)  # the driver stores it; the scratch catalog keeps no copies
        return finished_from_row(row, image, photo.suffix.lstrip("."), vectors, self.spaces)

    def __del__(self):
        shutil.rmtree(getattr(self, "scratch", ""), ignore_errors=True)


def read_photos(batch, known: frozenset[str]) -> Any:
    """The read stage: bytes and sha256 of each photo; content in ``known`` is ``skipped``."""
    import pyarrow as pa
    rows = batch.to_pylist()
    data, shas, status, detail = [], [], [], []
    for row in rows:
        try:
            raw = Path(row["path"]).read_bytes()
        except OSError as exc:
            data.append(None)
            shas.append("")
            status.append("failed")
            detail.append(exc.strerror or str(exc))
            continue
        sha = sha256_bytes(raw)
        seen = sha in known
        data.append(None if seen else raw)
        shas.append(sha)
        status.append("skipped" if seen else "read")
        detail.append("")
    return pa.table({"path": pa.array([r["path"] for r in rows], pa.string()),
                     "fields": pa.array([r["fields"] for r in rows], pa.string()),
                     "existing": pa.array([r["existing"] for r in rows], pa.string()),
                     "data": pa.array(data, pa.binary()), "sha256": pa.array(shas, pa.string()),
                     "status": pa.array(status, pa.string()), "detail": pa.array(detail, pa.string())})


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (``auto``, ``ray://host:port``), or start a local one
    with this machine's CPUs. True when this call started Ray (the caller shuts it down)."""
    import ray
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING)
    return True


def ray_ingest(settings: Settings, photos: list[PhotoInput], *, workers: int | None = None,
               batch_size: int = 32, progress: Callable[[int], Any] | None = None,
               report_failure: Callable[[str, str], Any] | None = None) -> RayIngestReport:
    """Ingest ``photos`` into the home of ``settings`` on the Ray cluster this process is
    connected to (``connect``). ``progress(n)`` is called as items are written,
    ``report_failure(path, reason)`` for each photo skipped as bad."""
    import ray
    import ray.data

    settings.home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.open(settings.db_path, settings.images_dir)
    try:
        known = catalog.items.image_hashes()
        plan = plan_pool(ray.cluster_resources().get("CPU", 0), workers)
        report = RayIngestReport(pool=plan)
        if photos:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False  # ours counts written items
            dataset = ray.data.from_items([_input_row(catalog, p) for p in photos],
                                          override_num_blocks=max(1, min(len(photos) // batch_size, 200)))
            dataset = dataset.map_batches(read_photos, fn_kwargs={"known": known}, batch_format="pyarrow",
                                          batch_size=batch_size, num_cpus=READ_CPUS)
            dataset = dataset.map_batches(PhotoWorker, fn_constructor_kwargs={"settings": settings,
                                                                              "torch_threads": plan.torch_threads,
                                                                              "job_photos": len(photos)},
                                          batch_format="pyarrow", batch_size=batch_size,
                                          compute=ray.data.ActorPoolStrategy(size=plan.actors),
                                          num_cpus=plan.cpus_per_actor)
            for batch in dataset.iter_batches(batch_size=WRITE_BATCH, batch_format="pyarrow"):
                _write_batch(catalog, batch.to_pylist(), report, report_failure)
                if progress:
                    progress(batch.num_rows)
        _rebuild_indexes(catalog, settings, report.dims)
        return report
    finally:
        catalog.close()


def _input_row(catalog: Catalog, photo: PhotoInput) -> dict[str, str]:
    existing = catalog.items.find_by_source(photo.path)
    seed = "" if existing is None else json.dumps(
        {"fields": {k: v for k, v in existing.items() if k in ITEM_FIELDS and v is not None},
         "attributes": existing["attributes"]}, default=str)
    return {"path": photo.path, "fields": json.dumps(photo.fields, default=str), "existing": seed}


def _write_batch(catalog: Catalog, rows: Iterable[dict[str, Any]], report: RayIngestReport,
                 report_failure: Callable[[str, str], Any] | None) -> None:
    finished = []
    for row in rows:
        ready = row["ready_at"]
        report.first_actor_ready = ready if report.first_actor_ready is None else min(report.first_actor_ready, ready)
        if row["status"] == "done":
            finished.append(pickle.loads(row["payload"]))
        elif row["status"] == "skipped":
            report.skipped += 1
        else:
            report.failed += 1
            if report_failure:
                report_failure(row["path"], row["detail"])
    for item in finished:
        report.dims.update((key, len(vector)) for key, vector in item.vectors.items())
    counts, failed = write_finished(catalog, finished)
    report.added += counts["added"]
    report.updated += counts["updated"]
    for path, reason in failed:
        report.failed += 1
        if report_failure:
            report_failure(path, reason)


def _rebuild_indexes(catalog: Catalog, settings: Settings, dims: dict[str, int]) -> None:
    """Bring each saved index of the spaces written (storage key -> dimension) in step with the
    store, rebuilt from the stored vectors, so the next search or server opens it as it is."""
    for key, dim in dims.items():
        if SPACE_SEPARATOR not in key:
            directory = settings.index_dir
        elif key == item_text_key(model_of(key)):
            directory = item_text_index_dir(settings.index_dir)
        else:
            directory = instance_index_dir(settings.index_dir)
        open_index(catalog, directory, key, dim, kind=settings.index_kind,
                   memory_budget_bytes=settings.index_memory_budget_mb << 20)
    # The blended index is made from the image and text vectors just written (with the weight
    # the service will open with), so the next open finds it in step too.
    text_keys = [key for key in dims if SPACE_SEPARATOR in key and key == item_text_key(model_of(key))]
    if text_keys and settings.text_field_weight > 0:
        model_id = model_of(text_keys[0])
        open_blended_space(catalog, settings.index_dir, model_id, text_keys[0], dims.get(model_id, dims[text_keys[0]]),
                           settings.text_field_weight,
                           IndexSettings(kind=settings.index_kind,
                                         memory_budget_bytes=settings.index_memory_budget_mb << 20))
