"""Commands that ask the catalog something: search, explain, recognize, recommend."""

from __future__ import annotations

import json
from pathlib import Path

import click

from jewelsearch.cli import Context, fail

FILTER_KEYS = ("category", "metal", "gemstone", "stone_shape", "min_price", "max_price")


def parse_filter_options(pairs: tuple[str, ...]):
    """``--filter key=value`` options as the service's filters, or a clear usage error."""
    from jewelsearch.search.params import parse_filters
    raw = {}
    for pair in pairs:
        if "=" not in pair:
            fail(f"--filter expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        if key not in FILTER_KEYS:
            fail(f"unknown filter {key!r}")
        raw[key] = value
    return parse_filters(raw)


def print_results(results: list[dict], as_json: bool, payload: dict) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=2))
        return
    if not results:
        click.echo("no results")
    for rank, row in enumerate(results, payload.get("offset", 0) + 1):
        price = f"{row['price']:.2f} {row.get('currency', '')}" if row.get("price") is not None else ""
        attrs = ", ".join(str(row[k]) for k in ("category", "metal", "gemstone") if row.get(k))
        more = f"  (+{row['more_like_this']} more like this)" if row.get("more_like_this") else ""
        matched = f"  [matched: {row['matched']}]" if row.get("matched") else ""
        click.echo(f"{rank:>3}. [{row['id']}] {row['score']:.3f}  {row.get('title') or '(untitled)'}"
                   f"  {attrs}  {price}{more}{matched}")
        for reason in row.get("reasons", []):
            click.echo(f"       - {reason['text']}")


@click.command()
@click.option("--text", "-t", default=None, help="Text query, e.g. 'oval sapphire pendant'.")
@click.option("--image", "-i", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--item", default=None, help="Find items similar to this item id.")
@click.option("-k", default=10, show_default=True)
@click.option("--offset", default=0, show_default=True,
              help="Skip this many results: the page after one of k starts at offset k (offset + k at most 200).")
@click.option("--filter", "filters", multiple=True, help="key=value, e.g. category=ring, max_price=500.")
@click.option("--text-weight", default=0.5, show_default=True, help="Weight of text when combined with an image.")
@click.option("--region", type=click.Choice(["auto", "whole", "multi"]), default="multi", show_default=True,
              help="Image queries: search with the detected piece (auto), the whole photo, or both the whole "
                   "photo and each piece found (multi; each result says which matched).")
@click.option("--rerank", type=click.Choice(["none", "aqe", "kreciprocal"]), default=None,
              help="Image and item queries: re-rank the top 100 candidates (default: the `rerank` setting).")
@click.option("--box", default=None, help="Image queries: search with this box, x0,y0,x1,y1 in pixels.")
@click.option("--no-collapse", is_flag=True, help="Text queries: list near-identical listings one by one.")
@click.option("--drop", "dropped", multiple=True, help="Text queries: ignore an understood field "
              "(category, metal, gemstone, stone_shape, style, price).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def search(obj: Context, text, image, item, k, offset, filters, text_weight, region, rerank, box, no_collapse,
           dropped, as_json):
    """Search by text, image, item id, or image + text."""
    from jewelsearch.recognize.query_region import parse_box
    from jewelsearch.search.params import parse_dropped, parse_k, parse_offset, parse_query_text
    service = obj.service
    k = parse_k(k, maximum=service.limits.max_k)
    offset = parse_offset(offset, k, window=service.limits.max_k)
    text = parse_query_text(text, service.limits.max_text_chars)
    if text is None and image is None and item is None:
        fail("give --text, --image or --item")
    image_bytes = image.read_bytes() if image else None
    payload = service.query(text=text, image_bytes=image_bytes, item_id=item, k=k,
                            filters=parse_filter_options(filters), text_weight=text_weight,
                            region=region, box=parse_box(box), collapse=not no_collapse,
                            dropped=parse_dropped(list(dropped)), rerank=rerank, offset=offset)
    if not as_json and payload.get("understood", {}).get("corrected"):
        click.echo("read as: " + ", ".join(f"{typed} -> {read}" for typed, read in payload["understood"]["corrected"].items()))
    if not as_json and payload.get("understood", {}).get("chips"):
        click.echo("understood: " + ", ".join(chip["label"] for chip in payload["understood"]["chips"]))
    if not as_json and payload.get("coverage", {}).get("note"):
        click.echo(payload["coverage"]["note"])
    if not as_json and "region" in payload:
        used = payload["region"]
        click.echo(f"query region: {used['used']} {used['box'] or ''} ({used['note']}); "
                   f"{len(used['boxes'])} piece(s) found")
    if not as_json and (payload.get("vector") == "instance" or payload.get("rerank", "none") != "none"):
        click.echo(f"ranked by the {payload['vector']} vectors; re-ranking: {payload['rerank']}")
    print_results(payload["results"], as_json, payload)
    if not as_json and payload.get("next_offset") is not None:
        click.echo(f"more: --offset {payload['next_offset']}")


@click.command()
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


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--stone", is_flag=True, help="The photo shows a loose stone: the gem specialist names it alone.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def recognize(obj: Context, image, stone, as_json):
    """Recognise category, metal, gemstone, cut and (with a style head) style: top 5, calibrated."""
    payload = obj.service.recognize(image.read_bytes(), subject="stone" if stone else "piece")
    if as_json:
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"method: {payload['method']}; looked at: {payload['region']['used']} {payload['region']['box'] or ''}")
    for attribute in ("category", "metal", "gemstone", "cut", "style"):
        if attribute not in payload:  # style: only with a style head that can read the photo's maps
            continue
        guesses = ", ".join(f"{g['label']} {g['p']:.2f}" for g in payload[attribute])
        click.echo(f"{attribute:>9}: {guesses}")
    for box in payload["region"]["boxes"]:
        click.echo(f"    piece: {box['box']} confidence {box['confidence']:.2f}")
    if payload.get("evidence"):
        e = payload["evidence"]
        click.echo(f" evidence: stone colour {e['stone_color'] or '-'}, metal tone {e['metal_tone'] or '-'}, "
                   f"about {e['stone_count_estimate']} stone(s)")


@click.command()
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
                                filters=parse_filter_options(filters),
                                text=parse_query_text(text, service.limits.max_text_chars),
                                exclude_seen=exclude_seen)
    print_results(payload["results"], as_json, payload)


@click.command()
@click.argument("text")
@click.option("--limit", default=6, show_default=True, help="At most this many (1 to 10).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def suggest(obj: Context, text, limit, as_json):
    """Completions of TEXT's last word from the words the listings use (as the search box
    offers them), with how many listings hold every word. Needs no model."""
    from jewelsearch.search.suggest import parse_limit, suggestions
    from jewelsearch.search.wiring import SettingsError, glossary_for
    try:
        glossary = glossary_for(obj.settings)
    except SettingsError as exc:
        fail(f"bad settings: {exc}")
    catalog = obj.open_catalog()
    try:
        rows = suggestions(catalog.lexical, glossary, text, parse_limit(limit))
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps({"suggestions": rows}, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no suggestions")
    for row in rows:
        more = "+" if row["listings"] >= 1000 else ""
        click.echo(f"{row['text']}  ({row['listings']}{more} listings)")


COMMANDS = (search, explain, recognize, recommend, suggest)
