"""Telling a pendant from a necklace by its style.

The category heads learned pendants as necklaces, because shop photos file them so
(``embed/vocab.CATEGORY_EQUIVALENT``), so a photos-only pendant was filled in as a necklace
and never found by a "pendant" query. The style head, trained on renders with exact styles,
names a "pendant" style; where the category heads read a necklace and the style head says
pendant with probability at least ``PENDANT_STYLE_THRESHOLD``, the piece is a pendant. The
threshold was chosen on tuning renders and checked on two held-out render catalogs
(``docs/experiments/2026-12-07-pendant-from-style.md``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

PENDANT_STYLE_THRESHOLD = 0.9


def pendant_or_category(best: Mapping[str, Any], styles: Sequence[Mapping[str, Any]] | None,
                        threshold: float | None = PENDANT_STYLE_THRESHOLD) -> dict[str, Any]:
    """The category guess ``best`` (``{"label", "p"}``), turned into a pendant where the style
    guesses (top first, as ``Recognizer.recognize_embeddings`` gives them) say so. The
    probability stays the category heads' (that the piece is a necklace or pendant); the style's
    is kept beside it as ``style_p``.

    >>> pendant_or_category({"label": "necklace", "p": 0.9}, [{"label": "pendant", "p": 0.7}], 0.5)
    {'label': 'pendant', 'p': 0.9, 'style_p': 0.7}
    >>> pendant_or_category({"label": "necklace", "p": 0.9}, [{"label": "chain", "p": 0.6}, {"label": "pendant", "p": 0.3}], 0.5)
    {'label': 'necklace', 'p': 0.9}
    >>> pendant_or_category({"label": "ring", "p": 0.9}, [{"label": "pendant", "p": 0.9}], 0.5)
    {'label': 'ring', 'p': 0.9}
    """
    guess = {"label": best["label"], "p": best["p"]}
    if threshold is None or guess["label"] != "necklace" or not styles:
        return guess
    pendant = next((s["p"] for s in styles if s["label"] == "pendant"), None)
    if pendant is not None and pendant >= threshold:
        return {"label": "pendant", "p": guess["p"], "style_p": pendant}
    return guess
