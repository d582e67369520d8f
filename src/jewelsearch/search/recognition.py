"""What a photo shows and why an item matches: recognition, per-piece labels, explanations.

``recognize`` names a photo's category, metal, gemstone and cut (and each detected piece's
category); ``explain`` draws where an item's photo matches a query (Grad-CAM style heatmap)
and lists the attributes the two share.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jewelsearch.errors import InvalidInput, ModelMismatch
from jewelsearch.recognize import explain as explaining
from jewelsearch.recognize.evidence import evidence
from jewelsearch.recognize.localizer import crop
from jewelsearch.recognize.query_region import can_locate, choose_region
from jewelsearch.recognize.pendant_style import pendant_or_category
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.search.items import image_file, public_item
from jewelsearch.search.maintenance import check_model
from jewelsearch.search.state import ServiceState

MIN_STYLE_SHOWN = 0.05  # a style of the piece's category less likely than this is not listed
SHARED_FIELDS = ("category", "metal", "gemstone", "stone_shape", "color")  # what explain compares


def recognize(state: ServiceState, image_bytes: bytes, subject: str = "piece") -> dict[str, Any]:
    """Top-5 calibrated guesses for category, metal, gemstone and cut; ``subject="stone"``
    says the photo shows a loose stone, which the gem specialist then names alone."""
    recognizer = state.recognizer
    if recognizer is None:
        raise InvalidInput("recognition is not available for this model")
    image = state.ingestor.decode(image_bytes).image
    # One tower pass gives the photo's embedding, its pooled maps and where its pieces are
    # (a photo too small to look in is not looked in).
    vectors, pooled, located = recognizer.embed_and_locate([image], wanted=[can_locate(image)])
    choice = choose_region(image, state.localizer, located=located[0] if located else None)
    region = choice.describe(image.size)
    boxes = region["boxes"]
    # The answer reads the whole photo: on worn photos the body part around a piece (ear,
    # neck, hand, wrist) is most of the evidence and a crop cuts it away (docs/localizer.md).
    # Each detected piece still gets its own category, from a crop around it.
    if boxes:
        crop_vectors, crop_pooled = recognizer.embed([crop(image, tuple(b["box"])) for b in boxes])
        label_boxes(recognizer, boxes, crop_vectors, crop_pooled)
    prediction = recognizer.recognize_embeddings(vectors, pooled, subject=subject)[0]
    if prediction.get("category"):
        # The same pendant-or-necklace reading ingest files (``recognize/pendant_style.py``).
        prediction["category"] = [pendant_or_category(prediction["category"][0], prediction.get("style")),
                                  *prediction["category"][1:]]
    prediction = styles_of_the_category(prediction, recognizer.style_head)
    answer = dict(prediction, method=recognizer.method, model_id=state.encoder.model_id, region=region,
                  subject=subject)
    if choice.localization is not None:
        answer["evidence"] = evidence(image, choice.localization)
    return answer


def styles_of_the_category(prediction: dict[str, Any], style_head) -> dict[str, Any]:
    """The style guesses that the top category has: a ring read as "drop 61 %" (an earring
    style) looks wrong to a shopper, and ingest would never fill it in (``StyleHead.fill``).
    The probabilities stay as the head gave them, so they need not add up to 1; a style under
    ``MIN_STYLE_SHOWN`` is left out ("pearls 1 %" says nothing), so the list may be empty.

    >>> from types import SimpleNamespace
    >>> head = SimpleNamespace(category_styles={"ring": ["halo", "solitaire"]})
    >>> styles_of_the_category({"category": [{"label": "ring", "p": 0.9}],
    ...                         "style": [{"label": "drop", "p": 0.6}, {"label": "halo", "p": 0.2}]}, head)["style"]
    [{'label': 'halo', 'p': 0.2}]
    """
    if style_head is None or not prediction.get("style") or not prediction.get("category"):
        return prediction
    styles = style_head.category_styles.get(prediction["category"][0]["label"])
    if styles is None:
        return prediction
    return dict(prediction, style=[guess for guess in prediction["style"]
                                   if guess["label"] in styles and guess["p"] >= MIN_STYLE_SHOWN])


def label_boxes(recognizer: Recognizer | None, boxes: list[dict], vectors: np.ndarray,
                pooled: np.ndarray | None = None) -> None:
    """Write each box's most likely category (and its probability) into the box."""
    if recognizer is None:
        return
    # Only the category is written, so only its head runs.
    for box, guess in zip(boxes, recognizer.recognize_embeddings(vectors, pooled, attributes=("category",))):
        if guess["category"]:
            box.update(category=guess["category"][0]["label"], category_p=guess["category"][0]["p"])


def explain(state: ServiceState, item_id: Any, *, query_item: Any = None, text: str | None = None,
            image_bytes: bytes | None = None, region: str = "auto",
            box: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
    """Why ``item_id`` matches a query item, a text or a query photo: a heatmap on its photo
    and the attributes the two share."""
    if sum(x is not None and x != "" for x in (query_item, text, image_bytes)) != 1:
        raise InvalidInput("give exactly one query: query_item, q or an image")
    check_model(state)
    catalog, encoder = state.catalog, state.encoder
    item = catalog.items.get(item_id)
    image = state.ingestor.decode(image_file(catalog, item["id"]).read_bytes()).image
    if text:
        if len(text) > state.limits.max_text_chars:
            raise InvalidInput(f"q is longer than {state.limits.max_text_chars} characters")
        query_vector = state.text_vectors.vector(text)
        shared = {}
        query_info: dict[str, Any] = {"q": text}
    elif image_bytes is not None:
        photo = state.ingestor.decode(image_bytes).image
        choice = choose_region(photo, state.localizer, region=region, box=box)
        query_vector = choice.embed(encoder)
        shared = {}
        query_info = {"image": choice.describe(photo.size)}
    else:
        query_row = catalog.items.get(query_item)
        query_vector = catalog.embeddings.get(query_row["id"], encoder.model_id)
        if query_vector is None:
            raise ModelMismatch(f"item {query_row['id']} has no embedding for {encoder.model_id}")
        shared = {f: item[f] for f in SHARED_FIELDS if item.get(f) and item.get(f) == query_row.get(f)}
        query_info = {"item": query_row["id"]}
    item_vector = catalog.embeddings.get(item["id"], encoder.model_id)
    heat, method = explaining.heatmap(encoder, image, query_vector)
    similarity = float(np.dot(item_vector, query_vector)) if item_vector is not None else None
    return {"item": public_item(item), "query": query_info,
            "similarity": round(similarity, 6) if similarity is not None else None,
            "shared_attributes": shared, "method": method, "heatmap": heat,
            "overlay_png": explaining.overlay_png(image, heat)}
