"""Commands that fill and look after the catalog: ingest, index, events import, check, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from jewelsearch.cli import Context, fail


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--metadata", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV or JSONL with a path column and item fields (title, category, price, ...).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--decode-workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Threads that decode photos ahead of the model (local engine).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: decode, embed and recognise on a Ray cluster; this process writes the store.")
@click.option("--address", default=None,
              help="With --engine ray: the cluster (auto, ray://HOST:PORT); default a local one on this machine.")
@click.option("--workers", type=int, default=None,
              help="With --engine ray: embedding actors (default one per CPU of the cluster).")
@click.pass_obj
def ingest(obj: Context, paths, metadata, batch_size, decode_workers, engine, address, workers):
    """Add images (files, folders, or with --engine ray also CSV/JSONL/Parquet manifests) to the
    catalog; unchanged files are skipped."""
    if engine == "ray":
        return _ray_ingest(obj, paths, metadata, batch_size, address, workers)
    if address or workers:
        fail("--address and --workers go with --engine ray")
    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.ingest.sources import SourceError, find_images, read_metadata

    try:
        files = find_images(paths)
        meta = read_metadata(metadata) if metadata else {}
    except SourceError as exc:
        fail(str(exc))
    service = obj.service
    counts = {"added": 0, "updated": 0, "unchanged": 0, "failed": 0}

    def batches():
        for start in range(0, len(files), batch_size):
            batch = []
            for file in files[start:start + batch_size]:
                row = meta.get(str(file)) or meta.get(file.name) or {}
                try:
                    batch.append(NewItem(file.read_bytes(), row, source_path=str(file.resolve())))
                except OSError as exc:
                    counts["failed"] += 1
                    tqdm.write(f"skipped {file}: {exc.strerror}")
                    bar.update(1)
            yield batch

    with tqdm(total=len(files), unit="img", disable=None) as bar:
        # Decode ahead, model, write behind (ingest/stream.py); a bad photo is reported and skipped.
        for batch, results in service.ingest_batches(batches(), decode_workers=decode_workers, photos=len(files)):
            for item, result in zip(batch, results):
                counts[result.status] += 1
                if result.status == "failed":
                    tqdm.write(f"skipped {item.source_path}: {result.error}")
            bar.update(len(batch))
    service.save()
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


def _ray_ingest(obj: Context, paths, metadata, batch_size, address, workers):
    from jewelsearch.ingest.manifest import read_inputs
    from jewelsearch.ingest.sources import SourceError
    from jewelsearch.search.ray_ingest import connect, plan_pool, ray_ingest

    try:
        photos = read_inputs(list(paths), metadata)
    except SourceError as exc:
        fail(str(exc))
    if workers is not None and workers < 1:
        fail("--workers must be 1 or more")
    try:
        started = connect(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        fail(f"cannot reach the Ray cluster at {address}: {exc}")
    try:
        import ray
        try:
            plan = plan_pool(ray.cluster_resources().get("CPU", 0), workers)
        except ValueError as exc:
            fail(str(exc))
        click.echo(f"ray: {plan.actors} embedding actors, {plan.cpus_per_actor:.2f} CPU each", err=True)
        with tqdm(total=len(photos), unit="img", disable=None) as bar:
            report = ray_ingest(obj.settings, photos, workers=workers, batch_size=batch_size,
                                progress=bar.update,
                                report_failure=lambda path, why: tqdm.write(f"skipped {path}: {why}"))
    finally:
        if started:
            import ray
            ray.shutdown()
    click.echo(f"added={report.added} updated={report.updated} unchanged={report.skipped} failed={report.failed}")


@click.group()
def index():
    """Inspect or rebuild the vector index."""


@index.command("info")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def index_info(obj: Context, as_json):
    service = obj.service
    info = dict(service.stats(), index_params=service.index.params,
                rebuilt_on_open=service.rebuilt_on_open)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            click.echo(f"{key}: {value}")


@index.command("rebuild")
@click.option("--drop-other-models", is_flag=True,
              help="Delete vectors made by other models, and by this model's earlier instance heads.")
@click.pass_obj
def index_rebuild(obj: Context, drop_other_models):
    """Re-embed, from the stored photos, items missing an embedding or an instance vector for the
    current model, and from their words items missing a text vector; rebuild the indexes."""
    service = obj.service
    missing = len(service.items_to_embed())
    with tqdm(total=missing, unit="img", disable=None) as bar:
        manifest = service.rebuild_index(progress=bar.update)
    if drop_other_models:
        keep = [space.key for space in (service.instance, service.item_text) if space is not None]
        with service.catalog.database.write() as conn:
            dropped = service.catalog.embeddings.delete_other_models(conn, service.encoder.model_id, keep_spaces=keep)
        click.echo(f"dropped {dropped} vectors of other models and earlier instance heads")
    click.echo(f"index: {manifest.kind}, {manifest.count} items, model {manifest.model_id}")
    if service.instance is not None:
        space = service.instance
        click.echo(f"instance index: {space.manifest.kind}, {space.manifest.count} items, {space.manifest.dim}-d, "
                   f"space {space.key}")
    if service.item_text is not None:
        texts = service.item_text
        click.echo(f"item text index: {texts.manifest.kind}, {texts.manifest.count} items, space {texts.key}")
    if service.blended is not None:
        blended = service.blended
        click.echo(f"blended index: {blended.manifest.kind}, {blended.manifest.count} items, "
                   f"text_field_weight {blended.weight}")


@click.group()
def events():
    """Import user events (views, likes, purchases...)."""


@events.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Store the valid rows and report the others.")
@click.pass_obj
def events_import(obj: Context, file, skip_invalid):
    """Import FILE.csv or FILE.jsonl with user_id, item_id, kind[, ts, weight] columns."""
    import time as _time

    from jewelsearch.ingest.sources import read_event_rows
    started = _time.perf_counter()
    result = obj.service.import_events(read_event_rows(file), skip_invalid=skip_invalid)
    elapsed = _time.perf_counter() - started
    click.echo(f"imported {result['imported']} of {result['rows']} events in {elapsed:.2f}s "
               f"({result['rows'] / max(elapsed, 1e-9):,.0f} rows/s); skipped {result['skipped']}")
    for error in result["errors"]:
        click.echo(f"  {error}", err=True)


@click.command()
@click.option("--repair", is_flag=True, help="Re-embed, rebuild the indexes, delete orphan files.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def check(obj: Context, repair, as_json):
    """Verify store ↔ index (and instance index) ↔ word index ↔ image files agree; exit 1 if not (after
    --repair: if still not)."""
    from jewelsearch.search.consistency import check as run_check
    report = run_check(obj.service, repair=repair)
    if repair:  # report what is left after the repair, and what was done
        repaired = report.repaired
        report = run_check(obj.service)
        report.repaired = repaired
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(f"items {report.items}, indexed {report.indexed}")
        for name in ("missing_embeddings", "index_only", "store_only", "missing_instance_vectors",
                     "instance_index_only", "instance_store_only", "missing_item_text_vectors",
                     "item_text_index_only", "item_text_store_only",
                     "blended_index_only", "blended_store_only", "blended_stale", "missing_images", "orphan_files",
                     "lexical_missing", "lexical_orphans", "lexical_stale"):
            values = getattr(report, name)
            if values:
                click.echo(f"{name}: {len(values)} (e.g. {values[:5]})")
        for done in report.repaired:
            click.echo(f"repaired: {done}")
        click.echo("ok" if report.ok else "problems found" + ("" if repair else "; run with --repair"))
    if not report.ok:
        sys.exit(1)


@click.command()
@click.option("--if-missing", is_flag=True, help="Do nothing when the catalog already has items.")
@click.pass_obj
def demo(obj: Context, if_missing):
    """Load the bundled demo catalog into the home directory."""
    from jewelsearch.ingest.demo import demo_dir, demo_items
    service = obj.service
    if if_missing and service.catalog.items.count() > 0:
        click.echo(f"catalog at {obj.settings.home} already has items; not loading the demo")
        return
    folder = demo_dir()
    if folder is None:
        click.echo("no bundled demo catalog in this installation; serving an empty catalog", err=True)
        return
    items = demo_items(folder)
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    with tqdm(total=len(items), unit="img", disable=None) as bar:
        for start in range(0, len(items), 32):
            for result in service.add_items(items[start:start + 32]):
                counts[result.status] += 1
            bar.update(len(items[start:start + 32]))
    service.save()
    click.echo("demo catalog: " + " ".join(f"{k}={v}" for k, v in counts.items()))


COMMANDS = (ingest, index, events, check, demo)
