"""Photo augmentations that keep a gem's identity.

Geometry, blur, noise, JPEG and bounded brightness/contrast vary the way shop
and shopper photos vary.  Hue is never touched: a hue shift turns a ruby into a
pink sapphire and would teach the model the wrong thing.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def augment(image: Image.Image, rng: random.Random) -> Image.Image:
    image = image.convert("RGB")
    width, height = image.size
    # Random resized crop keeping at least 60 % of the area and a sane aspect ratio.
    scale = rng.uniform(0.6, 1.0)
    aspect = rng.uniform(0.8, 1.25)
    crop_w = min(width, max(8, int(round(width * (scale * aspect) ** 0.5))))
    crop_h = min(height, max(8, int(round(height * (scale / aspect) ** 0.5))))
    left = rng.randint(0, width - crop_w)
    top = rng.randint(0, height - crop_h)
    image = image.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        image = image.rotate(rng.uniform(-12, 12), resample=Image.BILINEAR, expand=False,
                             fillcolor=(255, 255, 255))
    if rng.random() < 0.8:
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.75, 1.25))
        image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.75, 1.25))
    if rng.random() < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    if rng.random() < 0.2:
        array = np.asarray(image, dtype=np.float32)
        noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(3, 12), array.shape)
        image = Image.fromarray(np.clip(array + noise, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=rng.randint(25, 90))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


def quality_augment(image: Image.Image, rng: random.Random) -> Image.Image:
    """``augment`` plus the photo-quality losses a shopper's upload brings, at random strengths:
    heavier blur and sensor noise, a small original scaled down and back up, harsh JPEG and
    under- or over-exposure. Still never hue. For heads that read fine texture and colour
    statistics (the gem specialist), which clean training photos leave brittle."""
    image = augment(image, rng)
    choice = rng.random()
    if choice < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 3.0)))
    elif choice < 0.4:
        array = np.asarray(image, dtype=np.float32)
        noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(8, 22), array.shape)
        image = Image.fromarray(np.clip(array + noise, 0, 255).astype(np.uint8))
    elif choice < 0.6:
        side = rng.randint(40, 128)
        small = image.copy()
        small.thumbnail((side, side), Image.BILINEAR)
        image = small
    elif choice < 0.8:
        image = ImageEnhance.Brightness(image).enhance(rng.choice([rng.uniform(0.4, 0.7), rng.uniform(1.3, 1.8)]))
    if rng.random() < 0.3:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=rng.randint(12, 40))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


def copy_augmentation(copy: int):
    """The change for a photo's ``copy``-th embedded copy: none for the original (0), then
    alternately ``augment`` and ``quality_augment``, so half the copies carry a photo-quality loss."""
    return None if copy == 0 else quality_augment if copy % 2 == 0 else augment


def exposure_augment(image: Image.Image, rng: random.Random) -> Image.Image:
    """``augment`` plus a strong exposure error (×0.45–0.7 or ×1.3–1.9 brightness), for heads
    whose colour and sparkle cues wash out in a badly exposed photo."""
    image = augment(image, rng)
    factor = rng.uniform(0.45, 0.7) if rng.random() < 0.5 else rng.uniform(1.3, 1.9)
    return ImageEnhance.Brightness(image).enhance(factor)


# Degradations for the robustness evaluation (each applied alone).
def degrade(image: Image.Image, kind: str) -> Image.Image:
    image = image.convert("RGB")
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(2.0))
    if kind == "noise":
        array = np.asarray(image, dtype=np.float32)
        noise = np.random.default_rng(0).normal(0, 15, array.shape)
        return Image.fromarray(np.clip(array + noise, 0, 255).astype(np.uint8))
    if kind == "downscale64":
        small = image.copy()
        small.thumbnail((64, 64), Image.BILINEAR)
        return small
    if kind == "jpeg20":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=20)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if kind == "underexposed":
        return ImageEnhance.Brightness(image).enhance(0.5)
    if kind == "overexposed":
        return ImageEnhance.Brightness(image).enhance(1.6)
    raise ValueError(f"unknown degradation {kind!r}")


DEGRADATIONS = ("blur", "noise", "downscale64", "jpeg20", "underexposed", "overexposed")


def photometric_loss(image: Image.Image, rng: random.Random) -> tuple[Image.Image, str]:
    """One photo-quality loss at a random strength, and its name; the geometry is kept, so the
    result lines up pixel for pixel with the original once both are resized (self-distillation
    compares their feature maps place by place). The strengths bracket, rather than equal, the
    robustness evaluation's ``degrade``: blur σ 0.8–3, noise σ 6–24, a 40–128 px original,
    JPEG quality 10–40, exposure ×0.4–0.7 or ×1.3–1.9. Never hue."""
    image = image.convert("RGB")
    kind = rng.choice(("blur", "noise", "small", "jpeg", "exposure"))
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 3.0))), kind
    if kind == "noise":
        array = np.asarray(image, dtype=np.float32)
        noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(6, 24), array.shape)
        return Image.fromarray(np.clip(array + noise, 0, 255).astype(np.uint8)), kind
    if kind == "small":
        side = rng.randint(40, 128)
        small = image.copy()
        small.thumbnail((side, side), Image.BILINEAR)
        return small.resize(image.size, Image.BILINEAR), kind
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=rng.randint(10, 40))
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), kind
    factor = rng.uniform(0.4, 0.7) if rng.random() < 0.5 else rng.uniform(1.3, 1.9)
    return ImageEnhance.Brightness(image).enhance(factor), kind


PHOTOMETRIC_LOSSES = ("blur", "noise", "small", "jpeg", "exposure")
