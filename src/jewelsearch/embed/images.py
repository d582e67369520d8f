"""Robust image decoding for uploads and files.

Real shop photos arrive with malformed EXIF, palettes with transparency, CMYK,
16-bit and grayscale modes.  Everything becomes RGB on a white background (a
transparent product cut-out must look like a white-sweep catalog shot, not a
black one).  Size is checked before decoding so a decompression bomb costs
nothing.
"""

from __future__ import annotations

import io
import math
import logging
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jewelsearch.errors import BadImage, ImageTooLarge

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO")
# Formats we re-encode to JPEG for storage instead of keeping the original bytes.
STORED_AS_IS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MAX_SIDE = 20_000
# File suffixes read as photos when a folder is walked (ingest, training and evaluation sets).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


@dataclass
class LoadedImage:
    image: Image.Image  # RGB, upright
    format: str
    data: bytes  # the bytes to store
    ext: str


def load_image(data: bytes, *, max_bytes: int = 16 * 1024 * 1024,
               max_pixels: int = 40_000_000, draft_side: int = 0) -> LoadedImage:
    """Decode bytes into an upright RGB image, or raise BadImage/ImageTooLarge.

    ``draft_side`` > 0 lets a JPEG decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling,
    PIL ``Image.draft``) as long as its long side stays at least ``draft_side``: a 2,000 px shop
    photo embedded at 224 px need not be decoded in full. The stored bytes stay the original's."""
    if not isinstance(data, (bytes, bytearray)) or len(data) == 0:
        raise BadImage("the image is empty")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image is {len(data)} bytes; the limit is {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            fmt = probe.format or ""
            width, height = probe.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageTooLarge("the image has too many pixels")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, TypeError) as exc:
        raise BadImage(f"not a readable image ({type(exc).__name__})")
    if fmt not in ACCEPTED_FORMATS:
        raise BadImage(f"unsupported image format {fmt or 'unknown'!r}")
    if width <= 0 or height <= 0 or width > MAX_SIDE or height > MAX_SIDE \
            or width * height > max_pixels:
        raise ImageTooLarge(f"the image is {width}x{height}; the limit is {max_pixels} pixels")
    try:
        image = Image.open(io.BytesIO(data))
        if draft_side > 0 and fmt == "JPEG" and max(width, height) >= 2 * draft_side:
            scale = draft_side / max(width, height)
            image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        image.load()  # truncated files raise here: a half image would embed as garbage
    except (OSError, ValueError, SyntaxError, TypeError, Image.DecompressionBombError,
            EOFError, MemoryError) as exc:
        raise BadImage(f"the image is corrupt or truncated ({type(exc).__name__})")
    image = _upright(image)
    try:
        rgb = to_rgb(image)
    except (OSError, ValueError) as exc:
        raise BadImage(f"cannot convert the image to RGB ({type(exc).__name__})")
    if fmt in STORED_AS_IS and getattr(image, "n_frames", 1) == 1:
        return LoadedImage(rgb, fmt, bytes(data), STORED_AS_IS[fmt])
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=92)
    return LoadedImage(rgb, fmt, buffer.getvalue(), "jpg")


def load_image_file(path, **limits) -> LoadedImage:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limits.get("max_bytes", 16 * 1024 * 1024) + 1)
    except OSError as exc:
        raise BadImage(f"cannot read {path}: {exc.strerror}")
    return load_image(data, **limits)


def _upright(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation; keep the pixels as they are if the EXIF is broken."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # malformed EXIF raises many kinds of error inside PIL
        log.debug("ignoring malformed EXIF: %s", exc)
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB; transparency is composited on white."""
    if image.mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max() if array.size else 1.0
        scale = 255.0 / (65535.0 if top > 255 else max(top, 1.0))
        image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8))
    if image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        lo, hi = float(array.min()), float(array.max())
        array = (array - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(array)
        image = Image.fromarray(array.astype(np.uint8))
    if image.mode in ("LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image
