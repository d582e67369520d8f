"""The item text vector's recipe: which of an item's words the text tower embeds, and the
storage key that names the recipe.

An item's text is its title, then the attribute values the shop gave, phrased as shoppers say
them ("blue sapphire", "oval cut"): the words a query is compared with, in the caption style
the towers were fine-tuned on. Two things are left out on purpose:

- the description: the text tower reads 64 tokens, which a long description fills with
  setting and finish words; the word index (``storage/lexical.py``) already reads it;
- values recognition filled in: the image vector already says what the photo shows, so
  embedding its guesses again would count the photo twice. A photos-only item therefore has
  no text and no text vector; its semantic score is its image similarity alone.

The recipe is hashed into the space key (``text_space_id``), so changing it starts a new
vector space that ``jewelsearch index rebuild`` fills, never a mix of two recipes.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from jewelsearch.embed.vocab import GEM_SPOKEN
from jewelsearch.errors import InvalidInput
from jewelsearch.storage.lexical import recognition_filled

# (item column, how its value is phrased), in the order they are written after the title.
ATTRIBUTE_PHRASES = (("category", "{}"), ("metal", "{}"), ("gemstone", "{}"), ("stone_shape", "{} cut"))
RECIPE = "title|" + "|".join(f"{name}:{phrase}" for name, phrase in ATTRIBUTE_PHRASES) + "|given-only|v1"
NO_VALUE = ("", "none")


def text_space_id() -> str:
    """The item text vectors' space id (``storage.embeddings.space_key``), from the recipe.

    >>> text_space_id().startswith("text-")
    True
    """
    return "text-" + hashlib.sha256(RECIPE.encode()).hexdigest()[:12]


def item_text(row: Mapping[str, Any]) -> str:
    """The words an item's text vector embeds; "" where the shop gave none (no vector then).
    ``row`` is an item row or the fields of a new one; its ``attributes`` (a dict) says which
    values recognition filled in.

    >>> item_text({"title": "Oval pendant", "gemstone": "sapphire blue", "stone_shape": "oval",
    ...            "metal": "silver", "attributes": {"predicted": {"metal": {"label": "silver", "p": 0.9}}}})
    'Oval pendant. blue sapphire, oval cut'
    >>> item_text({"category": "ring", "attributes": {"predicted": {"category": {"label": "ring", "p": 0.8}}}})
    ''
    """
    attributes = row.get("attributes")
    predicted = attributes.get("predicted") if isinstance(attributes, Mapping) else None
    predicted = predicted if isinstance(predicted, Mapping) else {}
    words = []
    for name, phrase in ATTRIBUTE_PHRASES:
        value = str(row.get(name) or "").strip().lower()
        if value in NO_VALUE or recognition_filled(predicted.get(name), value):
            continue
        words.append(phrase.format(GEM_SPOKEN.get(value, value) if name == "gemstone" else value))
    title = " ".join(str(row.get("title") or "").split())
    return ". ".join(part for part in (title, ", ".join(words)) if part)


def encode_item_texts(encode_texts: Callable[[Sequence[str]], np.ndarray],
                      texts: Iterable[str]) -> dict[str, np.ndarray]:
    """Text vectors by text, each distinct non-empty text embedded once (a shop's variants
    share a title), in one batch."""
    unique = [text for text in dict.fromkeys(texts) if text]
    if not unique:
        return {}
    vectors = np.asarray(encode_texts(unique), dtype=np.float32)
    if not np.all(np.isfinite(vectors)):
        raise InvalidInput("the model produced a non-finite text vector for this item's words")
    return dict(zip(unique, vectors))
