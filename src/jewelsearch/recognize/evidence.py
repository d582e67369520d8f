"""What the masks say about a piece: stone colour, metal tone, a stone count estimate.

Read from the photo's own pixels under the localiser's stone and metal masks, so the
numbers point at something a person can check on the image.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

from jewelsearch.recognize.localizer import Localization
from jewelsearch.recognize.mask_regions import label_regions


def colour_name(rgb) -> str:
    r, g, b = (float(c) / 255 for c in rgb)
    hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
    hue *= 360
    if lightness < 0.15:
        return "black"
    if saturation < 0.18 or (lightness > 0.85 and saturation < 0.5):
        return "colourless" if lightness > 0.6 else "grey"
    if hue < 15 or hue >= 340:
        return "pink" if lightness > 0.65 else "red"
    if hue < 40:
        return "brown" if lightness < 0.35 else "orange"
    if hue < 70:
        return "yellow"
    if hue < 165:
        return "green"
    if hue < 195:
        return "teal"
    if hue < 255:
        return "blue"
    if hue < 290:
        return "purple"
    return "pink"


def metal_tone(rgb) -> str:
    r, g, b = (float(c) / 255 for c in rgb)
    hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
    hue *= 360
    if saturation < 0.15 or lightness < 0.12:
        return "white"  # silver, white gold, platinum, steel all read as neutral
    if hue < 25 or hue >= 330:
        return "rose"
    return "yellow" if hue < 70 else "white"


# Fewer stone pixels than this (at the localiser's map scale) is read as no stone seen.
MIN_STONE_PIXELS = 4


def stone_seen(found: Localization) -> bool:
    """Whether the localiser's maps show a stone on a piece: the test that gives ``evidence``
    its stone colour, also used by ingest before it fills in a gemstone or a cut."""
    return int((found.masks() == 2).sum()) >= MIN_STONE_PIXELS


def evidence(image: Image.Image, found: Localization) -> dict:
    """Colour, tone and count from the pixels under the masks; empty fields when no piece is seen."""
    labels = found.masks()
    height, width = labels.shape
    pixels = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR))
    out: dict = {"stone_color": None, "stone_rgb": None, "metal_tone": None, "metal_rgb": None,
                 "stone_count_estimate": 0, "piece_fraction": round(float((labels > 0).mean()), 4)}
    stone = labels == 2
    metal = labels == 1
    if stone.sum() >= MIN_STONE_PIXELS:
        rgb = np.median(pixels[stone], axis=0)
        out.update(stone_color=colour_name(rgb), stone_rgb=[int(c) for c in rgb])
        # Separate stones touch in a pavé; the count is a lower bound, reported as an estimate.
        _, regions = label_regions(stone)
        out["stone_count_estimate"] = len(regions)
    if metal.sum() >= 4:
        rgb = np.median(pixels[metal], axis=0)
        out.update(metal_tone=metal_tone(rgb), metal_rgb=[int(c) for c in rgb])
    return out
