"""Render one spec: the photo (JPEG), its masks (PNG) and its label row."""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from jewelsearch.studio import pieces
from jewelsearch.studio.backend import choose_backend
from jewelsearch.studio.spec import JewelSpec, description, price, title

log = logging.getLogger(__name__)
MASK_VALUES = {"background": 0, "metal": 1, "gem": 2}


def choose_variant() -> str:
    """Select the Mitsuba variant this process renders with (see ``studio.backend``)."""
    backend = choose_backend()
    backend.apply()
    return backend.variant


def _role_render(scene_dict: dict, roles: dict[str, str]) -> np.ndarray:
    """An id render: every part glows in its role's colour (metal green, gem blue), no lights.

    One sample per pixel with a box filter and depth-1 paths gives each pixel the
    role of the first surface the camera ray hits.
    """
    import mitsuba as mi
    glow = {"metal": [0.0, 1.0, 0.0], "gem": [0.0, 0.0, 1.0]}
    flat: dict = {"type": "scene", "integrator": {"type": "path", "max_depth": 1},
                  "sensor": dict(scene_dict["sensor"])}
    flat["sensor"]["film"] = dict(scene_dict["sensor"]["film"], rfilter={"type": "box"})
    flat["sensor"]["sampler"] = {"type": "independent", "sample_count": 1}
    for key, role in roles.items():
        shape = {k: v for k, v in scene_dict[key].items() if k not in ("bsdf", "emitter")}
        shape["bsdf"] = {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.0}}
        if role in glow:
            shape["emitter"] = {"type": "area", "radiance": {"type": "rgb", "value": glow[role]}}
        flat[key] = shape
    return np.array(mi.render(mi.load_dict(flat), spp=1))


def build_piece(spec: JewelSpec) -> pieces.Piece:
    if spec.gemstone == "pearl" and spec.style != "pearls":
        spec = replace(spec, cut="pearl")  # the builders set a pearl on a peg where a cut stone would sit
    if spec.category == "ring":
        style = "solitaire" if spec.style == "halo" else spec.style
        return pieces.ring(spec.cut or "round", spec.carat, spec.setting or "prong", style, spec.finish)
    if spec.category == "pendant":
        return pieces.pendant(spec.cut, spec.carat, spec.setting or "prong")
    if spec.category == "earrings":
        return pieces.earrings(spec.style, spec.cut or "round", spec.carat, spec.setting or "prong")
    if spec.category == "bracelet":
        return pieces.bracelet(spec.style, spec.cut or "round", spec.carat if spec.gemstone else 0.0)
    return pieces.necklace(spec.style, spec.gemstone or "", spec.carat)


def render_spec(spec: JewelSpec, *, size: int = 384, spp: int = 128) -> tuple[bytes, bytes, dict]:
    """(jpeg bytes, mask png bytes, label dict) for one spec; deterministic for its seed."""
    import mitsuba as mi

    from jewelsearch.studio.scene import build_scene

    piece = build_piece(spec)
    work = Path(tempfile.mkdtemp(prefix="jewel-"))
    try:
        scene_dict, roles = build_scene(spec, piece, work, size=size, spp=spp)
        scene = mi.load_dict(scene_dict)
        image = mi.render(scene, spp=spp, seed=spec.render_seed)
        bitmap = mi.Bitmap(image).convert(mi.Bitmap.PixelFormat.RGB, mi.Struct.Type.UInt8, srgb_gamma=True)
        photo = Image.fromarray(np.array(bitmap))
        ids = _role_render(scene_dict, roles)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mask = np.zeros(ids.shape[:2], np.uint8)
    mask[ids[..., 1] > 0.5] = MASK_VALUES["metal"]
    mask[ids[..., 2] > 0.5] = MASK_VALUES["gem"]
    jpeg = io.BytesIO()
    photo.save(jpeg, format="JPEG", quality=90, optimize=True)
    png = io.BytesIO()
    Image.fromarray(mask * 120).save(png, format="PNG", optimize=True)
    rows, cols = np.nonzero(mask)
    bbox = [int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())] if len(rows) else None
    label = dict(spec.labels, title=title(spec), description=description(spec), price=price(spec),
                 currency="USD", bbox=bbox, size=size, spp=spp,
                 gem_pixels=int((mask == 2).sum()), metal_pixels=int((mask == 1).sum()))
    return jpeg.getvalue(), png.getvalue(), label
