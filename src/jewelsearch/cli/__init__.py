"""Command-line interface; the only place that prints or exits."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from jewelsearch.config import Settings, load_settings
from jewelsearch.errors import JewelsearchError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


class Context:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._service = None

    @property
    def service(self):
        if self._service is None:
            from jewelsearch.search.wiring import SettingsError, open_service
            try:
                self._service = open_service(self.settings)
            except SettingsError as exc:
                fail(f"bad settings: {exc}")
        return self._service


def fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class JewelsearchGroup(click.Group):
    """Turns library errors into one clear line and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except JewelsearchError as exc:
            fail(str(exc), 2 if exc.status < 500 else 1)


@click.group(cls=JewelsearchGroup)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Catalog directory (default: $JEWELSEARCH_HOME or ./jewelsearch-data).")
@click.option("--model", default=None, help="Model folder, bundled model name, or open_clip model name.")
@click.option("--pretrained", default=None, help="open_clip pretrained tag or checkpoint path.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress and warnings.")
@click.pass_context
def main(ctx, home, model, pretrained, verbose):
    """jewelsearch: visual similarity search and recommendations for jewelry."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        settings = load_settings(home, overrides={"model": model, "pretrained": pretrained})
    except (ValueError, OSError) as exc:
        fail(f"bad settings: {exc}")
    ctx.obj = Context(settings)


def _read_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """Rows keyed by their ``path``/``image``/``file`` column (as given and by file name)."""
    rows: list[dict[str, Any]]
    try:
        if path.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        else:
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
    except (OSError, ValueError, csv.Error) as exc:
        fail(f"cannot read metadata {path}: {exc}")
    keyed: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row.get("path") or row.get("image") or row.get("file")
        if not key:
            fail(f"{path}: every row needs a path (or image/file) column")
        keyed[str(key)] = row
        keyed.setdefault(Path(str(key)).name, row)
    return keyed


def _find_images(paths: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            fail(f"no such file or directory: {raw}")
    return found


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--metadata", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV or JSONL with a path column and item fields (title, category, price, ...).")
@click.option("--batch-size", default=32, show_default=True)
@click.pass_obj
def ingest(obj: Context, paths, metadata, batch_size):
    """Add images (files or folders) to the catalog; unchanged files are skipped."""
    from jewelsearch.ingest.pipeline import NewItem

    files = _find_images(paths)
    meta = _read_metadata(metadata) if metadata else {}
    service = obj.service
    counts = {"added": 0, "updated": 0, "unchanged": 0, "failed": 0}
    with tqdm(total=len(files), unit="img", disable=None) as bar:
        for start in range(0, len(files), batch_size):
            batch = []
            for file in files[start:start + batch_size]:
                row = meta.get(str(file)) or meta.get(file.name) or {}
                try:
                    batch.append(NewItem(file.read_bytes(), row, source_path=str(file.resolve())))
                except OSError as exc:
                    counts["failed"] += 1
                    tqdm.write(f"skipped {file}: {exc.strerror}")
            try:
                results = service.add_items(batch)
            except JewelsearchError:
                results = []
                for item in batch:  # find the bad one(s); keep the rest
                    try:
                        results.extend(service.add_items([item]))
                    except JewelsearchError as exc:
                        counts["failed"] += 1
                        tqdm.write(f"skipped {item.source_path}: {exc}")
            for result in results:
                counts[result.status] += 1
            bar.update(len(files[start:start + batch_size]))
    service.save()
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


def _parse_filter_options(pairs: tuple[str, ...]):
    from jewelsearch.search.params import parse_filters
    raw = {}
    for pair in pairs:
        if "=" not in pair:
            fail(f"--filter expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        if key not in ("category", "metal", "gemstone", "stone_shape", "min_price", "max_price"):
            fail(f"unknown filter {key!r}")
        raw[key] = value
    return parse_filters(raw)


def _print_results(results: list[dict], as_json: bool, payload: dict) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=2))
        return
    if not results:
        click.echo("no results")
    for rank, row in enumerate(results, 1):
        price = f"{row['price']:.2f} {row.get('currency', '')}" if row.get("price") is not None else ""
        attrs = ", ".join(str(row[k]) for k in ("category", "metal", "gemstone") if row.get(k))
        click.echo(f"{rank:>3}. [{row['id']}] {row['score']:.3f}  {row.get('title') or '(untitled)'}"
                   f"  {attrs}  {price}")
        for reason in row.get("reasons", []):
            click.echo(f"       - {reason['text']}")


@main.command()
@click.option("--text", "-t", default=None, help="Text query, e.g. 'oval sapphire pendant'.")
@click.option("--image", "-i", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--item", default=None, help="Find items similar to this item id.")
@click.option("-k", default=10, show_default=True)
@click.option("--filter", "filters", multiple=True, help="key=value, e.g. category=ring, max_price=500.")
@click.option("--text-weight", default=0.5, show_default=True, help="Weight of text when combined with an image.")
@click.option("--region", type=click.Choice(["auto", "whole"]), default="auto", show_default=True,
              help="Image queries: search with the detected piece (auto) or the whole photo.")
@click.option("--box", default=None, help="Image queries: search with this box, x0,y0,x1,y1 in pixels.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def search(obj: Context, text, image, item, k, filters, text_weight, region, box, as_json):
    """Search by text, image, item id, or image + text."""
    from jewelsearch.search.params import parse_k, parse_query_text
    service = obj.service
    k = parse_k(k, maximum=service.limits.max_k)
    text = parse_query_text(text, service.limits.max_text_chars)
    if text is None and image is None and item is None:
        fail("give --text, --image or --item")
    image_bytes = image.read_bytes() if image else None
    from jewelsearch.recognize.query_region import parse_box
    payload = service.query(text=text, image_bytes=image_bytes, item_id=item, k=k,
                            filters=_parse_filter_options(filters), text_weight=text_weight,
                            region=region, box=parse_box(box))
    if not as_json and "region" in payload:
        used = payload["region"]
        click.echo(f"query region: {used['used']} {used['box'] or ''} ({used['note']}); "
                   f"{len(used['boxes'])} piece(s) found")
    _print_results(payload["results"], as_json, payload)


@main.command()
@click.argument("item_id")
@click.option("--query-item", default=None, help="The query item the result was found for.")
@click.option("--text", "-t", default=None, help="The text query the result was found for.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the heatmap overlay PNG here.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def explain(obj: Context, item_id, query_item, text, out, as_json):
    """Why ITEM_ID matched a query item or a text: heatmap overlay and shared attributes."""
    answer = obj.service.explain(item_id, query_item=query_item, text=text)
    if out:
        out.write_bytes(answer["overlay_png"])
    summary = {k: answer[k] for k in ("query", "similarity", "shared_attributes", "method")}
    summary["item"] = answer["item"]["id"]
    summary["overlay"] = str(out) if out else None
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    shared = ", ".join(f"{k} {v}" for k, v in summary["shared_attributes"].items()) or "none"
    click.echo(f"item {summary['item']}: similarity {summary['similarity']}, shared attributes: {shared}; "
               f"heatmap by {summary['method']}" + (f" written to {out}" if out else " (use --out to save it)"))


@main.group()
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
@click.option("--drop-other-models", is_flag=True, help="Delete embeddings made by other models.")
@click.pass_obj
def index_rebuild(obj: Context, drop_other_models):
    """Re-embed items missing an embedding for the current model, rebuild the index."""
    service = obj.service
    missing = len(service.catalog.embeddings.missing_for_model(service.encoder.model_id))
    with tqdm(total=missing, unit="img", disable=None) as bar:
        manifest = service.rebuild_index(progress=bar.update)
    if drop_other_models:
        with service.catalog.database.write() as conn:
            dropped = service.catalog.embeddings.delete_other_models(conn, service.encoder.model_id)
        click.echo(f"dropped {dropped} embeddings of other models")
    click.echo(f"index: {manifest.kind}, {manifest.count} items, model {manifest.model_id}")


@main.group()
def events():
    """Import user events (views, likes, purchases...)."""


def _read_event_rows(path: Path):
    if path.suffix.lower() == ".jsonl":
        with open(path) as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        row = {"_error": f"line {n} is not JSON"}
                    yield row if isinstance(row, dict) else {"_error": f"line {n} is not an object"}
    else:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("weight") not in (None, ""):
                    try:
                        row["weight"] = float(row["weight"])
                    except ValueError:
                        pass
                yield row


@events.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Store the valid rows and report the others.")
@click.pass_obj
def events_import(obj: Context, file, skip_invalid):
    """Import FILE.csv or FILE.jsonl with user_id, item_id, kind[, ts, weight] columns."""
    import time as _time
    started = _time.perf_counter()
    result = obj.service.import_events(_read_event_rows(file), skip_invalid=skip_invalid)
    elapsed = _time.perf_counter() - started
    click.echo(f"imported {result['imported']} of {result['rows']} events in {elapsed:.2f}s "
               f"({result['rows'] / max(elapsed, 1e-9):,.0f} rows/s); skipped {result['skipped']}")
    for error in result["errors"]:
        click.echo(f"  {error}", err=True)


@main.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--stone", is_flag=True, help="The photo shows a loose stone: the gem specialist names it alone.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def recognize(obj: Context, image, stone, as_json):
    """Recognise category, metal, gemstone and cut (top 5, calibrated)."""
    payload = obj.service.recognize(image.read_bytes(), subject="stone" if stone else "piece")
    if as_json:
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"method: {payload['method']}; looked at: {payload['region']['used']} {payload['region']['box'] or ''}")
    for attribute in ("category", "metal", "gemstone", "cut"):
        guesses = ", ".join(f"{g['label']} {g['p']:.2f}" for g in payload[attribute])
        click.echo(f"{attribute:>9}: {guesses}")
    for box in payload["region"]["boxes"]:
        click.echo(f"    piece: {box['box']} confidence {box['confidence']:.2f}")
    if payload.get("evidence"):
        e = payload["evidence"]
        click.echo(f" evidence: stone colour {e['stone_color'] or '-'}, metal tone {e['metal_tone'] or '-'}, "
                   f"about {e['stone_count_estimate']} stone(s)")


@main.command()
@click.option("--repair", is_flag=True, help="Re-embed, rebuild the index, delete orphan files.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def check(obj: Context, repair, as_json):
    """Verify store ↔ index ↔ image files agree; exit 1 if not (after --repair: if still not)."""
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
        for name in ("missing_embeddings", "index_only", "store_only", "missing_images", "orphan_files"):
            values = getattr(report, name)
            if values:
                click.echo(f"{name}: {len(values)} (e.g. {values[:5]})")
        for done in report.repaired:
            click.echo(f"repaired: {done}")
        click.echo("ok" if report.ok else "problems found" + ("" if repair else "; run with --repair"))
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("user_id")
@click.option("-k", default=10, show_default=True)
@click.option("--text", "-q", default=None, help="Optional stated preference, e.g. 'minimalist gold'.")
@click.option("--filter", "filters", multiple=True)
@click.option("--exclude-seen", is_flag=True, help="Leave out items the user engaged with recently.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def recommend(obj: Context, user_id, k, text, filters, exclude_seen, as_json):
    """Recommendations for a user, with reasons."""
    from jewelsearch.search.params import parse_k, parse_query_text
    from jewelsearch.storage.events import validate_user_id
    service = obj.service
    payload = service.recommend(validate_user_id(user_id), parse_k(k, maximum=service.limits.max_k),
                                filters=_parse_filter_options(filters),
                                text=parse_query_text(text, service.limits.max_text_chars),
                                exclude_seen=exclude_seen)
    _print_results(payload["results"], as_json, payload)


@main.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8000).")
@click.option("--threads", default=None, type=int, help="Server worker threads.")
@click.option("--allow-unauthenticated-writes", is_flag=True,
              help="Accept writes without an API key (only for a private machine).")
@click.pass_obj
def serve(obj: Context, host, port, threads, allow_unauthenticated_writes):
    """Serve the JSON API and web page with waitress."""
    from jewelsearch.server import create_app
    settings = obj.settings.with_overrides(host=host, port=port, server_threads=threads,
                                           allow_unauthenticated_writes=allow_unauthenticated_writes or None)
    from jewelsearch.search.wiring import use_serving_threads
    app = create_app(settings, obj.service)
    torch_threads = use_serving_threads(settings)
    if not settings.api_key and not settings.allow_unauthenticated_writes:
        click.echo("note: no JEWELSEARCH_API_KEY set, so write endpoints answer 403", err=True)
    click.echo(f"jewelsearch serving {obj.service.stats()['items']} items on "
               f"http://{settings.host}:{settings.port}/ ({settings.server_threads} request threads; "
               f"torch threads per request: {torch_threads})", err=True)
    from jewelsearch.server.graceful import serve as serve_gracefully
    serve_gracefully(app, host=settings.host, port=settings.port, threads=settings.server_threads,
                     idle_timeout=settings.request_timeout_seconds,
                     on_stop=lambda: obj.service.save())
    click.echo("stopped", err=True)


@main.command()
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="Root of the real photo sets (products/, gemstones/, worn/).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model folder to write.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/train"),
              show_default=True, help="Feature cache and logs (resumable).")
@click.option("--renders", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Studio renders (labels.jsonl) to train on too; the localiser's held-out renders are left out.")
@click.option("--epochs", default=60, show_default=True)
@click.option("--seed", default=0, show_default=True)
def train(data_root, out, work, renders, epochs, seed):
    """Fine-tune the default model's projections and attribute heads on real photos (and renders)."""
    from jewelsearch.train.contrastive import TrainConfig
    from jewelsearch.train.contrastive import train as run_training
    from jewelsearch.train.labelled_data import read_renders, read_shared_data
    from jewelsearch.train.localizer import held_out_render
    records = read_shared_data(data_root)
    if not any(r.split == "train" for r in records):
        fail(f"no training photos under {data_root}")
    if renders is not None and not (renders / "labels.jsonl").is_file():
        fail(f"no labels.jsonl in {renders}")
    studio = read_renders(renders, held_out=held_out_render) if renders is not None else []
    result = run_training(records, out, work, TrainConfig(epochs=epochs, seed=seed), renders=studio)
    (Path(out) / "training_history.json").write_text(json.dumps(
        {"best_epoch": result.best_epoch, "temperatures": result.temperatures,
         "trained_on": result.trained_on, "calibrated_on": result.calibrated_on,
         "views": list(TrainConfig().views), "history": result.history}, indent=2))
    click.echo(f"model {result.model_id} written to {out} (best epoch {result.best_epoch})")


def _hand_boxes(csv_path: Path) -> dict[str, list]:
    """A boxes CSV (path, x0, y0, x1, y1), or a clear usage error."""
    from jewelsearch.train.photo_boxes import BoxFileError, read_boxes
    try:
        return read_boxes(csv_path)
    except (BoxFileError, OSError, UnicodeDecodeError) as exc:
        fail(str(exc))


def _protected_photos(csv_path: Path) -> set[str]:
    """File names in a CSV's path column (e.g. hand-boxed validation photos) that training leaves out."""
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        if "path" not in (reader.fieldnames or []):
            fail(f"{csv_path}: needs a path column")
        return {row["path"] for row in reader}


@main.command("train-localizer")
@click.option("--renders", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="A `studio render` folder (images, masks, labels.jsonl).")
@click.option("--products", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Optional products/ folder (train/ and val/) whose white-sweep photos become cut-outs.")
@click.option("--worn", "worn_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Optional worn/ folder: half of its products lend real scenery as backgrounds; "
                   "the other half stays for `eval regions`.")
@click.option("--protect", "protect_csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV with a path column (e.g. hand-drawn boxes) whose photos never become backgrounds.")
@click.option("--boxes", "boxes_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Hand-drawn boxes (path, x0, y0, x1, y1; every visible piece) of background-half worn photos: "
                   "their jewelry is then labelled as jewelry instead of counted as background.")
@click.option("--scenes", default=4000, show_default=True, type=click.IntRange(10, 200_000))
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seed", default=0, show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/localizer"),
              show_default=True, help="Cache of prepared scenes, so a re-run only retrains the head.")
@click.pass_obj
def train_localizer_command(obj: Context, renders, products, worn_root, protect_csv, boxes_csv, scenes, epochs, seed,
                            work):
    """Train the piece localiser head into the model folder (the encoder stays as it is)."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.train.localizer import train_localizer
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained)
    if encoder.folder is None:
        fail("the localiser is stored in a model folder; pass --model with one")
    protected = _protected_photos(protect_csv) if protect_csv else set()
    photo_boxes = _hand_boxes(boxes_csv) if boxes_csv else None
    if photo_boxes is not None and protected & set(photo_boxes):
        fail("--boxes names photos that --protect keeps out of training: "
             + ", ".join(sorted(protected & set(photo_boxes))[:5]))
    summary = train_localizer(encoder, renders, products, encoder.folder, worn_root=worn_root, protected=protected,
                              photo_boxes=photo_boxes, train_scenes=scenes,
                              val_scenes=max(50, scenes // 8), epochs=epochs, seed=seed, cache_dir=work,
                              progress=click.echo)
    click.echo(json.dumps(summary, indent=2))


@main.command("train-stone-channel")
@click.option("--renders", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="A `studio render` folder: its training renders give exact per-cell stone targets.")
@click.option("--products", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="products/ folder: its train photos' stone labels (none, or a stone) are the weak labels.")
@click.option("--worn", "worn_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Optional worn/ folder whose background half lends real scenery (as train-localizer).")
@click.option("--protect", "protect_csv", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--boxes", "boxes_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--scenes", default=1500, show_default=True, type=click.IntRange(10, 100_000))
@click.option("--epochs", default=12, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def train_stone_channel_command(obj: Context, renders, products, worn_root, protect_csv, boxes_csv, scenes, epochs,
                                seed):
    """Train a stone branch for the localiser (the piece map stays bit-identical), on render
    composites and shop photos labelled plain or with a stone."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.localizer import Localizer
    from jewelsearch.train.labelled_data import read_products
    from jewelsearch.train.localizer import background_photos
    from jewelsearch.train.stone_branch import train_stone_channel
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained)
    localizer = Localizer.load(encoder, encoder.folder)
    if localizer is None:
        fail("this model has no localiser to refit (train one with `jewelsearch train-localizer`)")
    if not (Path(products) / "labels.csv").is_file():
        fail(f"no labels.csv in {products}")
    protected = _protected_photos(protect_csv) if protect_csv else set()
    photo_boxes = _hand_boxes(boxes_csv) if boxes_csv else None
    background = background_photos(worn_root, protected, photo_boxes)
    shop = [r for r in read_products(Path(products)) if r.split == "train"]
    try:
        summary = train_stone_channel(localizer, renders, shop, encoder.folder, background=background,
                                      scenes=scenes, epochs=epochs, seed=seed, progress=click.echo)
    except ValueError as exc:
        fail(str(exc))
    click.echo(json.dumps(summary, indent=2))


@main.command("train-context-head")
@click.option("--renders", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--products", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="products/ folder (train split photos are used; val stays for evaluation).")
@click.option("--worn", "worn_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="worn/ folder: every photo's labels are trained on (with fold heads for evaluation); "
                   "the background half of its products lends real scenery.")
@click.option("--protect", "protect_csv", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--crops", default=3000, show_default=True, type=click.IntRange(10, 100_000))
@click.option("--worn-views", default=6, show_default=True, type=click.IntRange(0, 20),
              help="Augmented copies of each worn photo.")
@click.option("--shop-views", default=2, show_default=True, type=click.IntRange(0, 20),
              help="Augmented copies of each shop photo.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(0, 20),
              help="Also fit the heads once per fold of worn products, that fold left out, so evaluation "
                   "judges every worn photo with heads that never saw its product (0 or 1: no folds).")
@click.option("--seed", default=0, show_default=True)
@click.option("--rows-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Keep the embedded training rows here (.npz) and reuse them when the image tower and options "
                   "match (a retrained projection re-embeds them from their saved pooled maps), so a refit skips "
                   "the tower passes (delete it after changing the augmentation code).")
@click.option("--piece-pooling/--no-piece-pooling", default=False, show_default=True,
              help="Also pool the tower's maps under the localiser's piece map (needs a localiser in the model "
                   "folder): the heads read what the piece looks like, not only the whole photo.")
@click.pass_obj
def train_context_head_command(obj: Context, renders, products, worn_root, protect_csv, crops, worn_views,
                               shop_views, folds, seed, rows_cache, piece_pooling):
    """Refit the category and metal heads on shop photos, worn photos and pieces cropped from busy scenes."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.heads import AttributeHeads
    from jewelsearch.train.composites import render_cutouts
    from jewelsearch.train.context_heads import load_rows, retrain_context_heads, save_rows, training_rows
    from jewelsearch.train.localizer import background_photos, held_out_render, product_cutouts
    from jewelsearch.train.worn_folds import FOLDS_META, FOLDS_WEIGHTS
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained)
    heads = AttributeHeads.load(encoder.folder) if encoder.folder is not None else None
    if heads is None:
        fail("the model folder has no attribute heads to refit")
    piece_head = None
    if piece_pooling:
        from jewelsearch.recognize.localizer import WEIGHTS_FILE, Localizer
        localizer = Localizer.load(encoder, encoder.folder)
        if localizer is None:
            fail("--piece-pooling needs a localiser in the model folder (train one with `jewelsearch train-localizer`)")
        piece_head = localizer.head
    protected = _protected_photos(protect_csv) if protect_csv else set()
    worn = []
    if worn_root is not None:
        from jewelsearch.train.labelled_data import read_worn
        worn = read_worn(worn_root)  # every worn photo's labels; the folds keep evaluation honest
    from jewelsearch.recognize.recognition_top import load_recognition_top
    top = load_recognition_top(encoder)
    reembed, source = _rows_source(encoder, top)
    recipe = {**source, "renders": str(Path(renders).resolve()),
              "products": str(Path(products).resolve()), "worn": sorted(str(r.path) for r in worn),
              "protected": sorted(protected), "crops": crops, "worn_views": worn_views, "shop_views": shop_views,
              "seed": seed}
    if piece_head is not None:  # only when asked, so caches made before the option still match
        recipe["piece_pooling"] = hashlib.sha256((encoder.folder / WEIGHTS_FILE).read_bytes()).hexdigest()[:16]
    rows = load_rows(rows_cache, recipe, reembed) if rows_cache else None
    if rows is not None:
        click.echo(f"reusing the {len(rows.labels)} embedded rows in {rows_cache}")
    else:
        # The localiser's held-out renders stay held out here too, and scenery stays its
        # background half, so the crops show the scenes it trained on.
        cutouts = render_cutouts(renders, keep=lambda i: not held_out_render(i)) + product_cutouts(products, "train")
        rows = training_rows(encoder, products, cutouts, background_photos(worn_root, protected), worn=worn,
                             crops=crops, worn_views=worn_views, shop_views=shop_views, seed=seed,
                             piece_head=piece_head, top=top, progress=click.echo)
        if rows_cache:
            save_rows(rows, rows_cache, recipe)
    # The refit keeps the context standardisation other context heads (gemstone and cut, from
    # train-stone-heads) were fitted on; only rows narrower than it start every context head
    # again, and then those heads are dropped, not left to misread.
    before = set(heads.context_attributes)
    summary, fold_heads = retrain_context_heads(heads, rows, folds=folds, seed=seed, progress=click.echo)
    summary["piece_pooling"] = piece_head is not None
    heads.save(encoder.folder)
    dropped = sorted(before - set(heads.context_attributes))
    if dropped:
        (encoder.folder / "stone_heads.json").unlink(missing_ok=True)
        click.echo(f"dropped the {', '.join(dropped)} context heads (fitted on the old standardisation); "
                   "run train-stone-heads again")
    for name in (FOLDS_META, FOLDS_WEIGHTS):
        (encoder.folder / name).unlink(missing_ok=True)  # folds of older heads would judge unfairly
    if fold_heads is not None:
        fold_heads.save(encoder.folder)
    (encoder.folder / "context_head.json").write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(f"category and metal heads written to {encoder.folder}")


def _rows_source(encoder, top):
    """(re-embedding function or None, what a rows cache's recipe names as its source).

    With pooled maps the rows depend on the frozen tower only: a retrained projection re-embeds
    them from the maps instead of passing every image through the tower again. With a
    recognition top the pooled maps are no longer the search tower's, so the embeddings cannot
    be recomputed from them and the rows name the model as well."""
    from jewelsearch.recognize.gem_features import embed_from_pooled, supports_gem_features, tower_fingerprint
    if not supports_gem_features(encoder):
        return None, {"model_id": encoder.model_id}
    if top is not None:
        return None, {"model_id": encoder.model_id, "tower": tower_fingerprint(encoder, top)}
    return partial(embed_from_pooled, encoder), {"tower": tower_fingerprint(encoder)}


def _train_split_sources(command):
    """--products, --gemstones and --renders, whose train splits a training command reads."""
    command = click.option("--renders", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                           help="Studio renders (labels.jsonl); the localiser's held-out ones stay out.")(command)
    command = click.option("--gemstones", type=click.Path(exists=True, file_okay=False, path_type=Path),
                           required=True, help="gemstones/ folder (class subfolders); its train split is used.")(command)
    return click.option("--products", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
                        help="products/ folder (labels.csv); its train split is used.")(command)


def _train_split_records(products: Path, gemstones: Path, renders: Path | None) -> list:
    from jewelsearch.train.labelled_data import read_gemstones, read_products, read_renders
    from jewelsearch.train.localizer import held_out_render
    records = [r for r in read_products(products) + read_gemstones(gemstones) if r.split == "train"]
    if renders is not None:
        records += [r for r in read_renders(renders, held_out=held_out_render) if r.split == "train"]
    return records


@main.command("train-stone-heads")
@_train_split_sources
@click.option("--views", default=2, show_default=True, type=click.IntRange(0, 6),
              help="Augmented copies of each shop photo and render (half with photo-quality losses).")
@click.option("--gem-views", default=1, show_default=True, type=click.IntRange(0, 6),
              help="Augmented copies of each loose-stone photo.")
@click.option("--exposure-views", default=0, show_default=True, type=click.IntRange(0, 6),
              help="Extra copies of each shop photo and render with a strong exposure error.")
@click.option("--seed", default=0, show_default=True)
@click.option("--rows-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the embedded rows here, or reuse them when made by the same tower and recipe.")
@click.pass_obj
def train_stone_heads_command(obj: Context, products, gemstones, renders, views, gem_views, exposure_views, seed,
                              rows_cache):
    """Fit gemstone and cut heads that also read the tower's pooled maps (after train-context-head, whose
    context standardisation they share; they read its first block, never the piece pooling)."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.gem_features import supports_gem_features
    from jewelsearch.recognize.heads import AttributeHeads
    from jewelsearch.recognize.recognition_top import load_recognition_top
    from jewelsearch.train.context_heads import load_rows, save_rows
    from jewelsearch.train.stone_heads import fit_stone_heads, stone_rows
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained)
    heads = AttributeHeads.load(encoder.folder) if encoder.folder is not None else None
    if heads is None or not supports_gem_features(encoder):
        fail("stone heads need a jewelsearch model folder with attribute heads and a convolutional tower")
    records = _train_split_records(products, gemstones, renders)
    top = load_recognition_top(encoder)
    reembed, source = _rows_source(encoder, top)
    # The labels are part of the recipe: rows cached before a labelling change must not be reused.
    labels = json.dumps(sorted((str(r.path), sorted(r.labels.items())) for r in records))
    recipe = {**source, "paths": sorted(str(r.path) for r in records),
              "labels": hashlib.sha256(labels.encode()).hexdigest()[:16],
              "views": views, "gem_views": gem_views, "seed": seed}
    if exposure_views:  # only when asked, so caches made before the option still match
        recipe["exposure_views"] = exposure_views
    rows = load_rows(rows_cache, recipe, reembed) if rows_cache else None
    if rows is not None:
        click.echo(f"reusing the {len(rows.labels)} embedded rows in {rows_cache}")
    else:
        rows = stone_rows(encoder, records, views_by_source={"products": views, "renders": views,
                                                             "gemstones": gem_views},
                          exposure_views=exposure_views, seed=seed, top=top, progress=click.echo)
        if rows_cache:
            save_rows(rows, rows_cache, recipe)
    try:
        summary = fit_stone_heads(heads, rows, seed=seed, progress=click.echo)
    except ValueError as error:
        fail(str(error))
    heads.save(encoder.folder)
    (encoder.folder / "stone_heads.json").write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(f"stone heads kept: {', '.join(summary['kept']) or 'none'}; written to {encoder.folder}")


@main.command("tune-robust")
@_train_split_sources
@click.option("--worn", "worn_root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="worn/ folder: the background half of its products (never evaluated) joins, unlabelled.")
@click.option("--protect", "protect_csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Box CSV of evaluation photos: their products stay out.")
@click.option("--views", default=3, show_default=True, type=click.IntRange(1, 10),
              help="Degraded copies of each photo (one random photo-quality loss each).")
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(1, 100))
@click.option("--lr", default=1e-4, show_default=True, type=click.FloatRange(1e-7, 1e-1))
@click.option("--clean-weight", default=3.0, show_default=True, type=click.FloatRange(0, 100),
              help="How many degraded views a clean view counts as (it keeps clean photos' features).")
@click.option("--seed", default=0, show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the distillation set and a per-epoch checkpoint here, so a rerun resumes.")
@click.option("--store", type=click.Choice(["recognition", "tower"]), default="recognition", show_default=True,
              help="recognition: keep the tuned top beside the tower, read by recognition only (search "
                   "embeddings and the model id stay); tower: replace the tower's top (every embedding moves).")
@click.pass_obj
def tune_robust_command(obj: Context, products, gemstones, renders, worn_root, protect_csv, views, epochs, lr,
                        clean_weight, seed, work, store):
    """Fine-tune the image tower's top so degraded photos give the clean photo's features.
    The targets are the loaded tower's own maps: with --store tower, run it on an untuned copy,
    or it tunes again; a recognition top is always tuned from the search tower and replaced."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.images import load_image_file
    from jewelsearch.embed.model_folder import WEIGHTS_FILE, store_parameters
    from jewelsearch.recognize.gem_features import tower_fingerprint
    from jewelsearch.recognize.recognition_top import TOP_FILE, RecognitionTop
    from jewelsearch.train.labelled_data import product_of
    from jewelsearch.train.localizer import background_records
    from jewelsearch.train.robust_tuning import (
        DistillationSet,
        distillation_set,
        supports_robust_tuning,
        tune_top,
        tuned_parameter_names,
    )
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained)
    if encoder.folder is None or not supports_robust_tuning(encoder.model.visual):
        fail("tune-robust needs a jewelsearch model folder with an EfficientNet-style image tower")
    records = _train_split_records(products, gemstones, renders)
    worn = background_records(worn_root, _protected_photos(protect_csv) if protect_csv else set()) \
        if worn_root is not None else []
    records += worn
    paths = sorted(str(r.path) for r in records)
    recipe = {"tower": tower_fingerprint(encoder), "paths": paths, "views": views, "seed": seed}
    cache = Path(work) / "distillation.pt" if work else None
    data = DistillationSet.load(cache, recipe) if cache else None
    if data is not None:
        click.echo(f"reusing the distillation set in {cache}")
    else:
        data = distillation_set(encoder, paths, lambda p: load_image_file(Path(p)).image, views=views, seed=seed,
                                progress=click.echo)
        if cache:
            data.save(cache, recipe)
    # The checkpoint belongs to this distillation set and these options only.
    checkpoint = Path(work) / f"tuning-{recipe['tower']}-{epochs}-{lr}-{clean_weight}-{seed}.pt" if work else None
    try:
        summary = tune_top(encoder, data, epochs=epochs, lr=lr, clean_weight=clean_weight, seed=seed,
                           checkpoint=checkpoint, progress=click.echo)
    except ValueError as error:
        fail(str(error))
    if store == "tower":
        state = encoder.model.state_dict()
        # float32: what was evaluated is what loads.
        store_parameters(encoder.folder, {name: state[name] for name in tuned_parameter_names(encoder.model)})
        written = encoder.folder / WEIGHTS_FILE
        if (encoder.folder / TOP_FILE).is_file():
            # A recognition top tuned from the old tower would otherwise go on replacing the new one.
            (encoder.folder / TOP_FILE).unlink()
            click.echo(f"removed {encoder.folder / TOP_FILE}: recognition now reads the tuned tower")
    else:
        top = RecognitionTop.from_trunk(encoder.model.visual.trunk)
        top.save(encoder.folder)
        written = encoder.folder / TOP_FILE
    summary["stored"] = store
    summary["paths"] = len(paths)
    # Evaluation leaves out the worn products the tower has seen (labelled_data.worn_products_seen).
    summary["worn_products_seen"] = sorted({product_of(r) for r in worn})
    (encoder.folder / "robust_tuning.json").write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(json.dumps({k: summary[k] for k in ("before", "after")}, indent=2))
    click.echo(f"tuned top written to {written}")


@main.command("train-gem-head")
@click.option("--gemstones", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="gemstones/ folder (class subfolders); its train split is used, val stays for evaluation.")
@click.option("--views", default=2, show_default=True, type=click.IntRange(0, 10),
              help="Extra augmented copies of each photo (blur, noise, small, JPEG, exposure; never hue).")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20))
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def train_gem_head_command(obj: Context, gemstones, views, folds, seed):
    """Fit the gem specialist (which loose stone) on the tower's pooled maps and colour."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.recognize.gem_features import supports_gem_features
    from jewelsearch.recognize.recognition_top import load_recognition_top
    from jewelsearch.train.gem_specialist import train_gem_specialist
    from jewelsearch.train.labelled_data import read_gemstones
    encoder = load_encoder(obj.settings.model, obj.settings.pretrained)
    if encoder.folder is None or not supports_gem_features(encoder):
        fail("the gem specialist needs a jewelsearch model folder with a convolutional image tower")
    records = [r for r in read_gemstones(gemstones) if r.split == "train"]
    if not records:
        fail(f"no photos in class subfolders of {gemstones}")
    with tqdm(total=len(records) * (1 + views), unit="img", disable=None) as bar:
        specialist, summary = train_gem_specialist(encoder, records, views=views, folds=folds, seed=seed,
                                                   progress=click.echo, on_images=bar.update,
                                                   top=load_recognition_top(encoder))
    specialist.save(encoder.folder, summary)
    click.echo(json.dumps(summary, indent=2))
    click.echo(f"gem specialist written to {encoder.folder}")


@main.group("eval")
def eval_group():
    """Measure a model (recognition, retrieval, robustness) or the recommender."""


@eval_group.command("model")
@click.option("--shared", "shared_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Root of the real photo sets: evaluates products/val, held-out gemstones, worn.")
@click.option("--folder", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of class subfolders.")
@click.option("--attribute", default="category", show_default=True,
              type=click.Choice(["category", "metal", "gemstone", "cut"]),
              help="What the --folder class names are.")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A CSV with path plus category/metal/gemstone/cut (and optional group) columns.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/eval"),
              show_default=True)
@click.option("--robustness/--no-robustness", default=True, show_default=True)
@click.pass_obj
def eval_model(obj: Context, shared_root, folder, attribute, csv_path, out, robustness):
    """Evaluate the loaded model; writes eval.json and report.html."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.embed.model_folder import resolve_model_folder
    from jewelsearch.evaluate.recognition import evaluate, robustness_drops, worst_drop_intervals
    from jewelsearch.evaluate.report import write_report
    from jewelsearch.recognize.builder import load_recognizer
    from jewelsearch.train.labelled_data import (
        read_class_folders,
        read_label_csv,
        read_shared_data,
        unseen_worn,
        worn_products_seen,
    )
    from jewelsearch.train.worn_folds import WornFolds, judge_by_fold
    encoder_folder = resolve_model_folder(obj.settings.model)
    sets = {}
    if shared_root:
        records = read_shared_data(shared_root)
        sets["products_val"] = [r for r in records if r.source == "products" and r.split == "val"]
        sets["gemstones_val"] = [r for r in records if r.source == "gemstones" and r.split == "val"]
        # Worn products the localiser trained on, or the heads without a fold that left them out, are left out.
        sets["worn"] = unseen_worn([r for r in records if r.source == "worn"], worn_products_seen(encoder_folder))
    if folder:
        sets[folder.name] = read_class_folders(folder, attribute)
    if csv_path:
        sets[csv_path.stem] = read_label_csv(csv_path)
    sets = {k: v for k, v in sets.items() if v}
    if not sets:
        fail("give --shared, --folder or --csv with labelled photos")
    settings = obj.settings
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size)
    recognizer = load_recognizer(encoder)
    heads = recognizer.heads
    # Worn photos whose product the shipped heads trained on are judged by the fold heads that did not.
    judge = judge_by_fold(WornFolds.load(encoder.folder, heads), heads)
    total = sum(len(v) for v in sets.values()) * (7 if robustness else 1)
    with tqdm(total=total, unit="img", disable=None) as bar:
        report = evaluate(recognizer, sets, robustness=robustness, progress=bar.update, judge=judge)
    if robustness:
        report["worst_drop_points"] = robustness_drops(report)
        report["worst_drop_intervals"] = worst_drop_intervals(report)
    page = write_report(report, out)
    click.echo(f"report: {page}")
    for name, result in report["sets"].items():
        for key, value in result.items():
            if isinstance(value, dict) and "accuracy" in value:
                click.echo(f"{name:>14} {key:<22} acc {value['accuracy']:.3f}  top5 {value['top5']:.3f}  "
                           f"macroF1 {value['macro_f1']:.3f}  ECE {value['ece']:.3f}  (n={value['n']})")
            elif key in ("image_retrieval", "same_product"):
                click.echo(f"{name:>14} {key:<22} {json.dumps(value)}")
            elif key == "text_retrieval":
                for q, v in value.items():
                    click.echo(f"{name:>14} text→image {q:<12} recall@10 {v['recall@10']:.3f}  "
                               f"MRR {v['mrr']:.3f}  ({v['queries']} queries)")
    if robustness:
        worst = max(report["worst_drop_points"].items(), key=lambda kv: kv[1])
        interval = report["worst_drop_intervals"].get(worst[0])
        click.echo(f"largest drop under one degradation: {worst[0]} {worst[1]:.1f} points"
                   + (f" (95 % interval over the photos {interval[0]:.1f} to {interval[1]:.1f})" if interval else ""))


@eval_group.command("regions")
@click.option("--worn", "worn_root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="A worn/ folder with labels.csv (path, category, metal, product).")
@click.option("--boxes", "boxes_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Optional hand-drawn boxes: CSV with path, x0, y0, x1, y1 (one row per piece).")
@click.option("--catalog", "catalog_root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Optional products/ folder: its val photos become a clean catalog, and pieces cut from them "
                   "are pasted onto the judged worn photos as shopper photos with a known answer.")
@click.option("--shopper-photos", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/eval/regions.json"),
              show_default=True)
@click.pass_obj
def eval_regions(obj: Context, worn_root, boxes_csv, catalog_root, shopper_photos, out):
    """Whole-photo vs. detected-piece search and recognition on worn photos, side by side."""
    from jewelsearch.embed import load_encoder
    from jewelsearch.evaluate.regions import evaluate_regions
    from jewelsearch.recognize.builder import load_recognizer
    from jewelsearch.recognize.heads import AttributeHeads
    from jewelsearch.recognize.localizer import Localizer
    from jewelsearch.train.labelled_data import read_worn, unseen_worn, worn_products_seen
    from jewelsearch.train.worn_folds import WornFolds, judge_by_fold
    settings = obj.settings
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size)
    localizer = Localizer.load(encoder, encoder.folder)
    if localizer is None:
        fail("this model has no localiser (train one with `jewelsearch train-localizer`)")
    hand = _hand_boxes(boxes_csv) if boxes_csv else None
    heads = AttributeHeads.load(encoder.folder)
    # Judge only on worn products the localiser and the heads never trained on.
    records = unseen_worn(read_worn(worn_root), worn_products_seen(encoder.folder))
    judge = judge_by_fold(WornFolds.load(encoder.folder, heads), heads)
    recognizer = load_recognizer(encoder, gem_specialist=False)
    report = evaluate_regions(recognizer, localizer, records, hand, judge=judge)
    report["localizer"] = dict(localizer.config.get("held_out") or {})
    if localizer.stone_branch is not None and "stone_mask_iou" in report["localizer"]:
        # The training-time figure is the head's stone map, which a stone branch replaced;
        # tools/stone_iou.py judges both on the same held-out composites.
        report["localizer"]["stone_mask_iou_of_the_head"] = report["localizer"].pop("stone_mask_iou")
        report["localizer"]["stone_map"] = "stone branch (train-stone-channel): see tools/stone_iou.py"
    if catalog_root is not None:
        from jewelsearch.embed.images import load_image_file
        from jewelsearch.evaluate.shopper import evaluate_shopper_photos
        catalog = sorted(p for p in (Path(catalog_root) / "val").glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not catalog:
            fail(f"{catalog_root}/val holds no photos")
        scenery = [load_image_file(r.path).image for r in records]
        try:
            report["shopper_photos"] = evaluate_shopper_photos(encoder, localizer, catalog, scenery,
                                                               count=shopper_photos)
        except ValueError as exc:
            fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(json.dumps(report, indent=2))


@main.group()
def studio():
    """Render synthetic jewelry photos with exact labels (needs the [studio] extra)."""


@studio.command("render")
@click.option("--n", "count", type=click.IntRange(1, 1_000_000), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--size", default=384, show_default=True, type=click.IntRange(16, 4096))
@click.option("--spp", default=128, show_default=True, type=click.IntRange(1, 65536))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--coverage", is_flag=True, help="Walk every style × metal × gem × cut instead of sampling.")
def studio_render(count, out, seed, size, spp, workers, coverage):
    """Render N pieces into OUT (images/, masks/, labels.jsonl); re-running resumes."""
    try:
        from jewelsearch.studio.batch import coverage_specs, random_specs, render_specs
    except ImportError as exc:
        fail(f"the studio needs the [studio] extra (pip install 'jewelsearch[studio]'): {exc}")
    specs = coverage_specs(count, seed) if coverage else random_specs(count, seed)
    with tqdm(total=count, unit="img", disable=None) as bar:
        rendered = render_specs(specs, out, size=size, spp=spp, workers=workers, progress=bar.update)
    click.echo(f"rendered {rendered} new images into {out}")


@studio.command("sheet")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/studio.png"))
def studio_sheet(folder, out):
    """A contact sheet showing every category, cut and metal in FOLDER."""
    from jewelsearch.studio.batch import contact_sheet
    contact_sheet(folder, out)
    click.echo(f"wrote {out}")


@studio.command("demo-catalog")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Defaults to the package's demo/ folder.")
def studio_demo_catalog(folder, out):
    """Package rendered FOLDER as the bundled demo catalog."""
    from jewelsearch.ingest.demo import DEMO_DIR
    from jewelsearch.studio.batch import write_demo_catalog
    n = write_demo_catalog(folder, out or DEMO_DIR)
    click.echo(f"demo catalog: {n} items in {out or DEMO_DIR}")


@eval_group.command("recommend")
@click.option("--users", default=400, show_default=True, type=click.IntRange(20, 100_000))
@click.option("--seed", default=1, show_default=True, help="Population that is reported.")
@click.option("--tune-seed", default=1001, show_default=True,
              help="First of the two separate populations the weights are tuned on (this seed and the next).")
@click.option("--no-tune", is_flag=True,
              help="Judge the configured blend weights (the defaults, or [blend] in the home's jewelsearch.toml).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/recommend"),
              show_default=True)
@click.option("--shoppers-from", type=click.Choice(["catalog", "given"]), default="catalog", show_default=True,
              help="What the simulated shoppers' tastes are drawn from: the catalog as served, or only the fields "
                   "it was given (not those recognition filled in), so that two models meet the same shoppers.")
@click.pass_obj
def eval_recommend(obj: Context, users, seed, tune_seed, no_tune, out, shoppers_from):
    """Simulated shoppers on the current catalog: blended recommender vs baselines."""
    from jewelsearch.evaluate.recommend import run
    from jewelsearch.evaluate.recommend_report import write_recommend_report
    service = obj.service
    items = service.catalog.items.list(limit=10**9)
    if len(items) < 50:
        fail("the catalog needs at least 50 items; load one first (e.g. `jewelsearch demo`)")
    ids, vectors = service.catalog.embeddings.all_for_model(service.encoder.model_id)
    lookup = {int(i): v for i, v in zip(ids, vectors)}
    # Untuned, the weights judged are the ones the server uses: the defaults or the home's [blend].
    report = run(service.index, lookup, items, users=users, seed=seed, tune_seed=tune_seed,
                 weights=service.blend_weights if no_tune else None,
                 do_tune=not no_tune, shoppers_from_given=shoppers_from == "given")
    path = write_recommend_report(report, out)
    click.echo(f"report: {path}")
    click.echo(f"{'method':<26} {'HR@10':>6} {'NDCG@10':>8} {'cover':>6} {'divers':>7} {'NDCG multi':>10}")
    for name, r in report["results"].items():
        click.echo(f"{name:<26} {r['hr@10']:>6.3f} {r['ndcg@10']:>8.3f} {r['coverage']:>6.3f} "
                   f"{r['diversity']:>7.3f} {r['multi_taste_ndcg@10']:>10.3f}")
    others = ", ".join(f"seed {r['seed']} {100 * r['ndcg_gain_over_best_baseline']:+.1f}%"
                       for r in report["replicates"])
    click.echo(f"NDCG@10 gain over the best baseline ({report['best_baseline']}): "
               f"{100 * report['ndcg_gain_over_best_baseline']:+.1f}%; other populations: {others}; "
               f"mean {100 * report['mean_ndcg_gain_over_best_baseline']:+.1f}%")
    pooled = report["pooled"]
    low, high = pooled["ndcg_gain_interval"]
    click.echo(f"pooled over seeds {pooled['seeds']} ({pooled['users']} shoppers) vs {pooled['best_baseline']}: "
               f"{100 * pooled['ndcg_gain_over_best_baseline']:+.1f}% (95% interval {100 * low:+.1f}% to "
               f"{100 * high:+.1f}%); smallest coverage margin over content-only "
               f"{pooled['smallest_coverage_vs_content']:+.3f}")


@main.command()
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


if __name__ == "__main__":
    main()
