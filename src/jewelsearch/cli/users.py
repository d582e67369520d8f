"""Commands about shoppers' data: ``users forget`` erases a shopper."""

from __future__ import annotations

import json

import click

from jewelsearch.cli import Context


@click.group()
def users():
    """Shoppers' data (erasure requests)."""


@users.command("forget")
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_obj
def forget(obj: Context, user_id, as_json):
    """Erase USER_ID: their events, and the co-engagement and popularity built from them.

    Needs no model, and is safe while `jewelsearch serve` runs: the server rebuilds those
    signals before its next recommendation. The log and the output name the shopper only by a
    keyed reference, never by the id."""
    from jewelsearch.search.erasure import forget_user
    catalog = obj.open_catalog()
    try:
        result = forget_user(catalog, user_id)
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"erased: {result['events_removed']} events removed (reference {result['reference']})")
    if result["factors_dropped"]:
        click.echo("the fitted ALS factors held their events and were deleted; "
                   "`jewelsearch recommender fit` fits them again")
    if not result["file_scrubbed"]:
        click.echo("note: a reader kept the write-ahead log open; the removed rows' old bytes leave it "
                   "when SQLite next reuses it", err=True)
