"""The OpenAPI 3 description of the JSON API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

_FILTERS = [{"name": n, "in": "query", "required": False, "schema": {"type": "string", "maxLength": 100}}
            for n in ("category", "metal", "gemstone", "stone_shape")] + \
           [{"name": n, "in": "query", "required": False, "schema": {"type": "number", "minimum": 0}}
            for n in ("min_price", "max_price")]
# Text queries: fold identical listings (default) and ignore understood fields by name.
_TEXT_OPTIONS = [{"name": "collapse", "in": "query", "required": False, "schema": {"type": "boolean"}},
                 {"name": "drop", "in": "query", "required": False,
                  "schema": {"type": "string", "maxLength": 100,
                             "description": "comma-separated: category, metal, gemstone, stone_shape, style, price"}}]
# Image and item queries: re-rank the top 100 candidates (the server's default when absent).
_RERANK = {"name": "rerank", "in": "query", "required": False,
           "schema": {"type": "string", "enum": ["none", "aqe", "kreciprocal"]}}
_K = {"name": "k", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 200}}
# A page's first result (from 0); offset + k may not pass max_k (200).
_OFFSET = {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0, "maximum": 199},
           "description": "results to skip: the previous answer's next_offset (offset + k at most 200)"}
_ID = {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_RESULTS = {"description": "results", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Results"}}}}
_WRITE = [{"apiKey": []}]
_USER = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 200}}
_EVENT = {"type": "object", "required": ["user_id", "item_id", "kind"],
          "properties": {"user_id": {"type": "string"}, "item_id": {"type": "integer"},
                         "kind": {"type": "string", "enum": ["view", "click", "like", "add_to_cart", "purchase"]},
                         "ts": {"type": "number"}, "weight": {"type": "number"}}}
_ERASED = {"description": "erased", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"events_removed": {"type": "integer"},
                                     "factors_dropped": {"type": "boolean",
                                                         "description": "fitted ALS factors were deleted"},
                                     "reference": {"type": "string", "description": "keyed hash of the id, as logged"},
                                     "file_scrubbed": {"type": "boolean"}}}}}}
_RECOMMEND_PARAMS = [_K, {"name": "q", "in": "query", "schema": {"type": "string"}},
                     {"name": "seed", "in": "query", "schema": {"type": "string"}},
                     {"name": "exclude_seen", "in": "query", "schema": {"type": "boolean"},
                      "description": "leave out items the shopper engaged with recently"},
                     *_FILTERS]


def _op(summary: str, *, params=(), body=None, ok=None, secured=False, errors=(400, 404)) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": list(params),
                          "responses": {"200": ok or {"description": "ok"}, **{str(e): _ERROR for e in errors}}}
    if body:
        op["requestBody"] = body
    if secured:
        op["security"] = _WRITE
        op["responses"].update({"401": _ERROR, "403": _ERROR})
    return op


def _multipart(fields: dict[str, Any], required: list[str]) -> dict:
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": fields, "required": required}}}}


ITEM_FIELDS = {k: {"type": "string", "maxLength": 300} for k in
               ("sku", "title", "category", "metal", "gemstone", "stone_shape", "color", "currency")}
ITEM_FIELDS.update(description={"type": "string", "maxLength": 5000}, url={"type": "string", "maxLength": 2000},
                   price={"type": "number", "minimum": 0})


# Operations counted against a rate limit (server/rate_limits.py); they may answer 429.
_RATE_LIMITED = {("/api/search", "get"), ("/api/search", "post"), ("/api/recognize", "post"),
                 ("/api/explain", "get"), ("/api/explain", "post"), ("/api/items", "post"),
                 ("/api/items/{item_id}", "patch"), ("/api/items/{item_id}", "delete"),
                 ("/api/items/{item_id}/similar", "get"), ("/api/events", "post"),
                 ("/api/users/{user_id}/recommendations", "get")}
_TOO_MANY = {"description": "over this client's rate limit for the endpoint's class; retry after the "
                            "Retry-After header's seconds",
             "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_METRICS = {"get": {"summary": "Prometheus metrics (text format): requests and latency per route and "
                               "status, index size and kind, model id, events recorded, rate-limit refusals; "
                               "needs the key unless metrics_public is set",
                    "security": [{"apiKey": []}, {}],
                    "responses": {"200": {"description": "Prometheus text exposition format",
                                          "content": {"text/plain": {"schema": {"type": "string"}}}},
                                  "401": _ERROR, "403": _ERROR}}}


def openapi_document() -> dict[str, Any]:
    document = _api_document()
    document["paths"]["/metrics"] = _METRICS
    for path, method in _RATE_LIMITED:
        document["paths"][path][method]["responses"]["429"] = _TOO_MANY
    return document


def _api_document() -> dict[str, Any]:
    image = {"type": "string", "format": "binary"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "jewelsearch", "version": "0.1.0",
                 "description": "Visual similarity search and recommendations for jewelry."},
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "schemas": {
                "CatalogPage": {"type": "object", "required": ["items", "total", "limit", "offset", "sort", "next_offset"],
                                "properties": {
                    "items": {"type": "array", "items": {"type": "object"}},
                    "total": {"type": "integer", "description": "how many items the filters allow"},
                    "limit": {"type": "integer"}, "offset": {"type": "integer"},
                    "sort": {"type": "string", "enum": ["oldest", "newest", "price_asc", "price_desc"]},
                    "next_offset": {"type": "integer", "nullable": True,
                                    "description": "the offset of the next page; null after the last"},
                    "facets": {"type": "object", "description": "with facets=true: counts per category, metal, "
                                                                 "gemstone family, stone_shape, price band over "
                                                                 "every allowed item"}}},
                "Error": {"type": "object", "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
                "Results": {"type": "object", "properties": {
                    "results": {"type": "array", "items": {"type": "object"}}, "took_ms": {"type": "number"},
                    "offset": {"type": "integer", "description": "results skipped before this page"},
                    "next_offset": {"type": "integer", "nullable": True,
                                    "description": "the offset of the next page; null after the last"},
                    "understood": {"type": "object", "description": "text queries: what the words were read as"},
                    "facets": {"type": "object", "description": "text queries: counts per category, metal, "
                                                                 "gemstone family, stone_shape, price band"},
                    "coverage": {"type": "object", "description": "text queries: all_understood, how many candidates "
                                                                   "have every understood attribute (0: the page holds "
                                                                   "near misses only; null: none understood); words, "
                                                                   "how many listings the word index matched"},
                    "vector": {"type": "string", "enum": ["instance", "aligned"],
                               "description": "image and item queries: the vectors that ranked them"},
                    "rerank": {"type": "string", "description": "image and item queries: the re-ranking applied"},
                    "region": {"type": "object", "description": "image queries: the part(s) of the photo searched"}}},
            },
        },
        "paths": {
            "/api/health": {"get": _op("liveness", errors=())},
            "/api/ready": {"get": _op("model and index loaded", errors=())},
            "/api/stats": {"get": _op("catalog statistics", errors=())},
            "/api/search": {
                "get": _op("text search", params=[{"name": "q", "in": "query", "required": True,
                                                   "schema": {"type": "string", "maxLength": 500}}, _K, _OFFSET, *_FILTERS,
                                   *_TEXT_OPTIONS],
                           ok=_RESULTS, errors=(400, 409)),
                "post": _op("image and/or text search", params=[_K, _OFFSET, *_FILTERS, *_TEXT_OPTIONS, _RERANK], ok=_RESULTS,
                            errors=(400, 409, 413),
                            body=_multipart({"image": image, "q": {"type": "string"},
                                             "region": {"type": "string", "enum": ["auto", "whole", "multi"],
                                                        "default": "multi",
                                                        "description": "multi (default): the whole photo and each "
                                                                       "piece found, each result says which "
                                                                       "matched; auto: the most confident piece"},
                                             "box": {"type": "string", "pattern": r"^\d+,\d+,\d+,\d+$"}}, [])),
            },
            "/api/suggest": {"get": _op("completions of the word being typed, from the words the listings use, "
                                        "each with how many listings hold every word (counted to 1000)",
                                        params=[{"name": "q", "in": "query", "required": True,
                                                 "schema": {"type": "string", "maxLength": 100}},
                                                {"name": "limit", "in": "query",
                                                 "schema": {"type": "integer", "minimum": 1, "maximum": 10,
                                                            "default": 6}}],
                                        errors=(400,))},
            "/api/recognize": {"post": _op("category, metal, gemstone, cut (top 5)", errors=(400, 413),
                                           body=_multipart({"image": image, "subject": {
                                               "type": "string", "enum": ["piece", "stone"],
                                               "description": "stone: the photo shows a loose stone"}},
                                               ["image"]))},
            "/api/explain": {"get": _op(
                "why an item matched a query item or text: heatmap overlay and shared attributes",
                params=[{"name": "item", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 1}},
                        {"name": "query_item", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 500}},
                        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "png"]}}],
                errors=(400, 404, 409)),
                "post": _op("why an item matched a query photo (multipart image, optional box or region)",
                            params=[{"name": "item", "in": "query", "required": True,
                                     "schema": {"type": "integer", "minimum": 1}},
                                    {"name": "format", "in": "query",
                                     "schema": {"type": "string", "enum": ["json", "png"]}}],
                            errors=(400, 404, 409, 413),
                            body=_multipart({"image": image, "region": {"type": "string", "enum": ["auto", "whole"]},
                                             "box": {"type": "string"}}, ["image"]))},
            "/api/items": {
                "get": _op("a page of the catalog: the items the filters allow, in sort order, with how many "
                           "there are (total), the next page's offset (next_offset, null after the last) and, "
                           "with facets=true, counts per category, metal, gemstone family, cut and price band",
                           params=[{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                                "maximum": 500}},
                                   {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                                   {"name": "sort", "in": "query",
                                    "schema": {"type": "string", "enum": ["oldest", "newest", "price_asc",
                                                                          "price_desc"]},
                                    "description": "oldest first (default); by price, unpriced items last"},
                                   {"name": "facets", "in": "query", "schema": {"type": "boolean"}}, *_FILTERS],
                           ok={"description": "a page of the catalog", "content": {"application/json": {"schema": {
                               "$ref": "#/components/schemas/CatalogPage"}}}}),
                "post": _op("add an item", secured=True, errors=(400, 413),
                            body=_multipart({"image": image, **ITEM_FIELDS}, ["image"])),
            },
            "/api/items/{item_id}": {
                "get": _op("one item", params=[_ID]),
                "patch": _op("update fields", params=[_ID], secured=True, body={"content": {"application/json": {
                    "schema": {"type": "object", "properties": ITEM_FIELDS}}}}),
                "delete": _op("delete an item", params=[_ID], secured=True),
            },
            "/api/items/{item_id}/similar": {"get": _op("similar items", params=[_ID, _K, _OFFSET, *_FILTERS, _RERANK], ok=_RESULTS)},
            "/api/items/{item_id}/image": {"get": _op("the item's photo", params=[_ID],
                                                      ok={"description": "image bytes"})},
            "/api/events": {"post": _op(
                "record an event: with the API key for any user_id; from the web page's session "
                "(cookie + X-CSRF-Token) for its own shopper, user_id left out", secured=True,
                body={"required": True, "content": {"application/json": {"schema": _EVENT}}})},
            "/api/users/{user_id}/recommendations": {"get": _op(
                "a shopper's recommendations with reasons (they name what the shopper engaged with): "
                "the API key, or that shopper's own page session", ok=_RESULTS, secured=True,
                params=[_USER, *_RECOMMEND_PARAMS])},
            "/api/me/recommendations": {"get": _op(
                "the web page's own shopper's recommendations: the page's session cookie and its "
                "X-CSRF-Token header; a new session gets popular pieces", ok=_RESULTS,
                params=_RECOMMEND_PARAMS, errors=(400, 401))},
            "/api/me": {"delete": _op(
                "the web page's \"Forget my history\": erase its own shopper (session cookie + X-CSRF-Token), "
                "then draw a new anonymous id", ok=_ERASED, errors=(401,))},
            "/api/users/{user_id}": {"delete": _op(
                "erase a shopper: their events, co-engagement and popularity built from them; an unknown "
                "shopper answers 200 with events_removed 0", params=[_USER], secured=True, errors=(400,),
                ok=_ERASED)},
        },
    }
