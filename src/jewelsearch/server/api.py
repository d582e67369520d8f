"""The JSON API blueprint (``/api/...``)."""

from __future__ import annotations

import base64
import json

from flask import Blueprint, Response, current_app, jsonify, request, send_file, url_for

from jewelsearch.errors import InvalidInput
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.recognize.query_region import SEARCH_DEFAULT_REGION, SEARCH_REGION_MODES, parse_box, parse_region, parse_subject
from jewelsearch.search.params import (parse_collapse, parse_dropped, parse_filters, parse_flag, parse_k,
                                      parse_offset, parse_query_text, parse_rerank)
from jewelsearch.search.browse import parse_sort
from jewelsearch.search.service import SearchService
from jewelsearch.search.suggest import parse_limit
from jewelsearch.server.auth import requires_write_key
from jewelsearch.server.shopper import (event_for_caller, new_page_shopper, require_page_shopper,
                                        require_shopper_access)
from jewelsearch.storage.events import validate_user_id
from jewelsearch.storage.items import ITEM_FIELDS, parse_item_id

api = Blueprint("api", __name__)


def service() -> SearchService:
    return current_app.config["JEWELSEARCH_SERVICE"]


def with_image_urls(payload: dict) -> dict:
    for row in payload.get("results", []):
        row["image_url"] = url_for("api.item_image", item_id=row["id"])
    return payload


def _args() -> dict:
    """Query-string and form values together (form wins for POST)."""
    values = dict(request.args.items())
    if request.method == "POST" and request.mimetype == "multipart/form-data":
        values.update(request.form.items())
    elif request.method == "POST" and request.is_json:
        body = json_object()
        values.update({k: v for k, v in body.items() if isinstance(v, (str, int, float)) or v is None})
    return values


def json_object() -> dict:
    if not request.is_json:
        raise InvalidInput("the request body must be JSON (Content-Type: application/json)")
    try:
        body = json.loads(request.get_data(cache=True) or b"null")
    except (ValueError, RecursionError):  # deeply nested arrays exhaust the parser's stack
        raise InvalidInput("the request body is not valid JSON")
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object (Content-Type: application/json)")
    return body


def _text_weight(values: dict) -> float:
    raw = values.get("text_weight")
    if raw in (None, ""):
        return 0.5
    try:
        weight = float(raw)
    except (TypeError, ValueError):
        raise InvalidInput("text_weight must be a number between 0 and 1")
    if not 0.0 <= weight <= 1.0:
        raise InvalidInput("text_weight must be a number between 0 and 1")
    return weight


def _uploaded_image(required: bool) -> bytes | None:
    upload = request.files.get("image")
    if upload is None:
        if required:
            raise InvalidInput("a multipart file field named 'image' is required")
        return None
    data = upload.read(service().limits.max_upload_bytes + 1)
    if not data:
        raise InvalidInput("the uploaded image is empty")
    return data


@api.get("/health")
def health():
    return jsonify(status="ok")


@api.get("/ready")
def ready():
    svc = service()
    return jsonify(status="ready", model_id=svc.encoder.model_id, indexed=len(svc.index))


@api.get("/stats")
def stats():
    return jsonify(service().stats())


@api.route("/search", methods=["GET", "POST"])
def search():
    svc = service()
    values = _args()
    text = parse_query_text(values.get("q"), svc.limits.max_text_chars)
    k = parse_k(values.get("k"), maximum=svc.limits.max_k)
    offset = parse_offset(values.get("offset"), k, window=svc.limits.max_k)
    filters = parse_filters(values)
    image = _uploaded_image(required=False) if request.method == "POST" else None
    item_id = values.get("item_id")
    if text is None and image is None and item_id in (None, ""):
        raise InvalidInput("give a text query (q), an image file (image), or an item_id")
    result = svc.query(text=text, image_bytes=image, item_id=item_id or None, k=k,
                       filters=filters, text_weight=_text_weight(values),
                       region=parse_region(values.get("region"), SEARCH_REGION_MODES, SEARCH_DEFAULT_REGION),
                       box=parse_box(values.get("box")), collapse=parse_collapse(values.get("collapse")),
                       dropped=parse_dropped(values.get("drop")), rerank=parse_rerank(values.get("rerank")),
                       offset=offset)
    return jsonify(with_image_urls(result))


@api.get("/suggest")
def suggest():
    """Completions of the word being typed, for the search box (``search/suggest.py``)."""
    values = request.args
    if "q" not in values:
        raise InvalidInput("give the text being typed (q)")
    return jsonify(service().suggest(values["q"], parse_limit(values.get("limit"))))


@api.post("/recognize")
def recognize():
    subject = parse_subject(_args().get("subject"))
    return jsonify(service().recognize(_uploaded_image(required=True), subject=subject))


@api.route("/explain", methods=["GET", "POST"])
def explain():
    """Why an item matched: ``item=ID`` with ``query_item=ID``, ``q=TEXT`` or (POST) an ``image``
    upload with optional ``box``/``region``; ``format=png`` returns just the overlay."""
    svc = service()
    args = _args()
    if not args.get("item"):
        raise InvalidInput("give the result item (item=ID) and a query (query_item=ID, q=TEXT or an image)")
    text = parse_query_text(args.get("q"), svc.limits.max_text_chars)
    output = args.get("format") or "json"
    if output not in ("json", "png"):
        raise InvalidInput("format must be json or png")
    image = _uploaded_image(required=False) if request.method == "POST" else None
    answer = svc.explain(args["item"], query_item=args.get("query_item") or None, text=text, image_bytes=image,
                         region=parse_region(args.get("region")), box=parse_box(args.get("box")))
    if output == "png":
        return Response(answer["overlay_png"], mimetype="image/png")
    heat = answer.pop("heatmap")
    png = answer.pop("overlay_png")
    answer["item"]["image_url"] = url_for("api.item_image", item_id=answer["item"]["id"])
    # A coarse copy of the map for clients that draw their own overlay (rows of 0–1 values).
    step = max(1, max(heat.shape) // 32)
    answer["heatmap"] = {"shape": list(heat.shape), "grid": [[round(float(v), 3) for v in row]
                                                              for row in heat[::step, ::step]]}
    answer["overlay"] = "data:image/png;base64," + base64.b64encode(png).decode()
    return jsonify(answer)


@api.get("/items")
def list_items():
    """A page of the catalog: the items the filters allow, oldest first or in ``sort`` order,
    with facet counts over all of them where ``facets=true`` (``search/browse.py``)."""
    args = request.args
    limit = parse_k(args.get("limit"), default=50, maximum=500, name="limit")
    offset = parse_offset(args.get("offset"), 0, window=10**9)
    page = service().browse(parse_filters(args), sort=parse_sort(args.get("sort")), limit=limit, offset=offset,
                            facets=parse_flag(args.get("facets"), "facets"))
    page["items"] = [dict(row, image_url=url_for("api.item_image", item_id=row["id"])) for row in page["items"]]
    return jsonify(page)


@api.get("/items/<item_id>")
def get_item(item_id):
    row = service().get_item(item_id)
    row["image_url"] = url_for("api.item_image", item_id=row["id"])
    return jsonify(row)


@api.get("/items/<item_id>/similar")
def similar(item_id):
    svc = service()
    k = parse_k(request.args.get("k"), maximum=svc.limits.max_k)
    offset = parse_offset(request.args.get("offset"), k, window=svc.limits.max_k)
    result = svc.similar(item_id, k=k, filters=parse_filters(request.args),
                         rerank=parse_rerank(request.args.get("rerank")), offset=offset)
    return jsonify(with_image_urls(result))


@api.get("/items/<item_id>/image")
def item_image(item_id):
    path = service().image_file(item_id)
    response = send_file(path, max_age=86400, conditional=True)
    response.headers["Cache-Control"] = "public, max-age=86400, immutable"
    return response


@api.post("/items")
@requires_write_key
def add_item():
    svc = service()
    image = _uploaded_image(required=True)
    fields = {k: request.form[k] for k in ITEM_FIELDS if k in request.form}
    result, = svc.add_items([NewItem(image, fields)])
    row = svc.get_item(result.item_id)
    row["image_url"] = url_for("api.item_image", item_id=row["id"])
    return jsonify(id=result.item_id, status=result.status, item=row), 201


@api.route("/items/<item_id>", methods=["PATCH", "PUT"])
@requires_write_key
def update_item(item_id):
    svc = service()
    item_id = parse_item_id(item_id)
    if request.mimetype == "multipart/form-data":
        fields = {k: request.form[k] for k in ITEM_FIELDS if k in request.form}
        image = _uploaded_image(required=False)
    else:
        body = json_object()
        unknown = sorted(set(body) - set(ITEM_FIELDS))
        if unknown:
            raise InvalidInput(f"unknown field(s): {', '.join(unknown)[:200]}")
        fields, image = body, None
    row = svc.update_item(item_id, fields, image)
    row["image_url"] = url_for("api.item_image", item_id=row["id"])
    return jsonify(row)


@api.delete("/items/<item_id>")
@requires_write_key
def delete_item(item_id):
    service().delete_item(item_id)
    return jsonify(deleted=parse_item_id(item_id))


@api.post("/events")
def add_event():
    """The backend (key) records events for any shopper; the page (session) for its own."""
    event_id = service().record_event(event_for_caller(json_object()))
    return jsonify(id=event_id), 201


@api.get("/users/<user_id>/recommendations")
def recommendations(user_id):
    """A shopper's recommendations: their reasons name what the shopper engaged with, so this
    needs the API key or that shopper's own page session."""
    user_id = validate_user_id(user_id)
    require_shopper_access(user_id)
    return _recommendations_for(user_id)


@api.get("/me/recommendations")
def my_recommendations():
    """The page's "For you": recommendations for the shopper of this page session (a new
    session gets popular pieces)."""
    return _recommendations_for(require_page_shopper())


@api.delete("/me")
def forget_me():
    """The page's "Forget my history": erase this session's shopper (nobody else knows the
    anonymous id to ask for it), then give the page a fresh one."""
    answer = service().forget_user(require_page_shopper())
    new_page_shopper()
    return jsonify(answer)


@api.delete("/users/<user_id>")
@requires_write_key
def forget_user(user_id):
    """Erase a shopper: their events and every signal built from them. An unknown shopper
    answers 200 with nothing removed, so a retried erasure is not an error."""
    return jsonify(service().forget_user(validate_user_id(user_id)))


def _recommendations_for(user_id: str):
    svc = service()
    k = parse_k(request.args.get("k"), maximum=svc.limits.max_k)
    text = parse_query_text(request.args.get("q"), svc.limits.max_text_chars)
    seeds = [s for s in (request.args.get("seed") or "").split(",") if s.strip()][:20]
    result = svc.recommend(user_id, k, filters=parse_filters(request.args), text=text, seed_items=seeds,
                           exclude_seen=parse_flag(request.args.get("exclude_seen"), "exclude_seen"))
    return jsonify(with_image_urls(result))
