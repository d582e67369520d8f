"""``jewelsearch items``: read, change and remove catalog items one by one, as the API's
``/api/items`` routes do (``ingest`` adds them)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import click

from jewelsearch.cli import Context, fail

# What a listing line shows of an item, in order.
SUMMARY_FIELDS = ("category", "metal", "gemstone", "stone_shape")
TIMES = ("created_at", "updated_at")  # stored as Unix seconds, shown in UTC


@click.group()
def items():
    """Read, change or remove catalog items (add them with `ingest`)."""


@items.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@click.option("--sort", type=click.Choice(["oldest", "newest", "price_asc", "price_desc"]), default="oldest",
              show_default=True, help="Order of the list; by price, unpriced items come last.")
@click.option("--filter", "filters", multiple=True,
              help="key=value, e.g. category=ring, gemstone=sapphire (a family), max_price=500.")
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON, as GET /api/items does.")
@click.pass_obj
def list_items(obj: Context, limit, offset, sort, filters, as_json):
    """List the items the filters allow (all without), oldest first or in --sort order: id,
    title, attributes, price."""
    from jewelsearch.cli.query import parse_filter_options
    from jewelsearch.search.browse import browse
    allowed = parse_filter_options(filters)
    catalog = obj.open_catalog()
    try:
        page = browse(catalog, allowed, sort=sort, limit=limit, offset=offset)
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps(page, ensure_ascii=False))
        return
    for row in page["items"]:
        attributes = ", ".join(str(row[key]) for key in SUMMARY_FIELDS if row.get(key))
        price = f"  {row['price']:.2f} {row.get('currency') or ''}".rstrip() if row.get("price") is not None else ""
        click.echo(f"[{row['id']}] {row.get('title') or '(no title)'}  {attributes}{price}")
    shown = "items" if not allowed else "items the filters allow"
    click.echo(f"{len(page['items'])} of {page['total']} {shown} (offset {offset})"
               + (f"; more: --offset {page['next_offset']}" if page["next_offset"] is not None else ""))


@items.command("show")
@click.argument("item_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(obj: Context, item_id, as_json):
    """Every field of ITEM_ID, with what recognition predicted."""
    from jewelsearch.search.items import get_item
    catalog = obj.open_catalog()
    try:
        row = get_item(catalog, item_id)
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps(row, ensure_ascii=False))
        return
    predicted = (row.get("attributes") or {}).get("predicted") or {}
    for key, value in row.items():
        if key == "attributes" or value in (None, ""):
            continue
        if key in TIMES:
            value = datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc).isoformat(timespec="seconds")
        guess = predicted.get(key)
        note = f"  (predicted, p={guess['p']:.2f}{_runners_up(guess)})" if guess and guess.get("filled", True) else ""
        click.echo(f"{key}: {value}{note}")
    unfilled = {key: guess for key, guess in predicted.items() if guess.get("filled") is False}
    for key, guess in unfilled.items():
        click.echo(f"{key}: not filled in (best guess {guess['label']}, p={guess['p']:.2f}{_runners_up(guess)})")


def _runners_up(guess) -> str:
    """The next guesses ingest kept (text search weighs them too), as "; then LABEL p, ..."."""
    pairs = guess.get("runners_up") or []
    return "; then " + ", ".join(f"{label} {p:.2f}" for label, p in pairs) if pairs else ""


@items.command("update")
@click.argument("item_id")
@click.option("--set", "assignments", multiple=True, metavar="FIELD=VALUE",
              help="A field to change, e.g. --set title='Oval ruby ring' --set price=420; "
                   "an empty value clears it. Repeat for several.")
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A new photo for the item (re-embedded and re-recognised).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def update(obj: Context, item_id, assignments, image, as_json):
    """Change fields of ITEM_ID and/or its photo, as PATCH /api/items/ID does."""
    from jewelsearch.storage.items import ITEM_FIELDS
    if not assignments and image is None:
        fail("give --set FIELD=VALUE or --image")
    fields = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        name = name.strip()
        if not sep or not name:
            fail(f"--set takes FIELD=VALUE, got {assignment!r}")
        if name not in ITEM_FIELDS:
            fail(f"unknown field {name!r}; fields: {', '.join(ITEM_FIELDS)}")
        fields[name] = value
    row = obj.service.update_item(item_id, fields, image.read_bytes() if image else None)
    obj.service.save()  # the indexes on disk follow, so the next command need not rebuild them
    if as_json:
        click.echo(json.dumps(row, ensure_ascii=False))
        return
    click.echo(f"updated [{row['id']}] {row.get('title') or '(no title)'}")


@items.command("delete")
@click.argument("item_id")
@click.option("--yes", is_flag=True, help="Do not ask first.")
@click.pass_obj
def delete(obj: Context, item_id, yes):
    """Remove ITEM_ID: its row, vectors, word-index entry and photo."""
    from jewelsearch.search.items import get_item
    catalog = obj.open_catalog()
    try:
        row = get_item(catalog, item_id)  # an unknown id fails here, before any model loads
    finally:
        catalog.close()
    if not yes:
        click.confirm(f"delete [{row['id']}] {row.get('title') or '(no title)'}?", abort=True)
    obj.service.delete_item(row["id"])
    obj.service.save()
    click.echo(f"deleted [{row['id']}]")


@items.command("guess-again")
@click.argument("item_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every item in the catalog.")
@click.option("--batch", default=32, show_default=True, type=click.IntRange(1, 256))
@click.pass_obj
def guess_again(obj: Context, item_ids, every, batch):
    """Run recognition again over ITEM_IDS (or --all): after a model upgrade, or to keep the
    runners-up an older ingest did not. Only fields the shop left empty, or recognition filled
    in, are guessed again; the shop's own values are never touched."""
    from jewelsearch.search.items import get_item
    if bool(item_ids) == every:
        fail("give item ids or --all (not both)")
    if item_ids:
        catalog = obj.open_catalog()
        try:
            for item_id in item_ids:
                get_item(catalog, item_id)  # an unknown id fails here, before any model loads
        finally:
            catalog.close()
    seen = 0

    def show(done) -> None:
        nonlocal seen
        seen += len(done.changed) + len(done.unchanged) + len(done.skipped)
        click.echo(f"{seen} items: {len(done.changed)} changed in this batch", err=True)

    report = obj.service.guess_again(list(item_ids) or None, batch=batch, progress=show)
    click.echo(f"changed {len(report.changed)}, unchanged {len(report.unchanged)}, "
               f"skipped {len(report.skipped)}")
    reasons: dict[str, int] = {}
    for why in report.skipped.values():
        reasons[why] = reasons.get(why, 0) + 1
    for why, count in sorted(reasons.items(), key=lambda pair: -pair[1]):
        click.echo(f"  skipped {count}: {why}")


COMMANDS = (items,)
