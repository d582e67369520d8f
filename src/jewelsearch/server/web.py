"""Server-rendered pages; the browser talks to the JSON API with one small JS file."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from jewelsearch.embed.vocab import GEM_SPOKEN, gem_family
from jewelsearch.errors import ItemNotFound
from jewelsearch.search.facets import PRICE_BANDS, band_label
from jewelsearch.server.shopper import start_page_session

# What the pages call the store's fields (filter menus, an item's attributes).
FIELD_LABELS = {"category": "Category", "metal": "Metal", "gemstone": "Gemstone", "stone_shape": "Cut",
                "color": "Color", "sku": "SKU"}
# The price menu offers the bands search answers count; choosing one fills min and max price.
PRICE_MENU = [{"value": f"{low:g}-{'' if high is None else f'{high:g}'}", "label": band_label(low, high)}
              for low, high in PRICE_BANDS]

web = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                static_url_path="/static")


@web.app_context_processor
def shopper_words():
    # Gem labels as a shopper says them ("blue sapphire", not the stored "sapphire blue"), for
    # the pages and, through base.html, the page script's cards; and the fields' names.
    return {"gem_spoken": GEM_SPOKEN, "labels": FIELD_LABELS}


@web.get("/")
def index():
    service = current_app.config["JEWELSEARCH_SERVICE"]
    facets = {field: [v for v, _ in service.catalog.items.facet_values(field, 40)]
              for field in ("category", "metal", "gemstone", "stone_shape")}
    # A shopper filters by family ("sapphire"); the filter takes every colour of it.
    facets["gemstone"] = list(dict.fromkeys(gem_family(v) for v in facets["gemstone"]))
    return render_template("index.html", stats=service.stats(), facets=facets, bands=PRICE_MENU,
                           csrf=start_page_session())


@web.get("/items/<item_id>")
def item_page(item_id):
    service = current_app.config["JEWELSEARCH_SERVICE"]
    try:
        item = service.get_item(item_id)
    except ItemNotFound as missing:
        # A shopper following an old link gets a page, not the API's JSON error.
        return render_template("missing_item.html", message=str(missing).capitalize(), stats=service.stats(),
                               csrf=start_page_session()), 404
    return render_template("item.html", item=item, stats=service.stats(), csrf=start_page_session())
