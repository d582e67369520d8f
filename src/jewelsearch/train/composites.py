"""Training scenes for the localiser: real and rendered pieces pasted onto worn-photo-like backgrounds.

A shopper's photo is a small piece on skin, fabric or hair. We have exact masks for studio
renders (metal and gem separately) and can cut real product photos out of their white
sweep; pasting either at a random size and place onto procedural skin / fabric / hair /
outdoor backgrounds gives a scene whose piece mask is known exactly. Real photos used as
scenery bring their own jewelry: where it is boxed by hand (``BoxedPhoto``) it is labelled
too, with the box's ellipse as an approximate mask.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from jewelsearch.train.photo_boxes import BoxedPhoto, ellipse_mask

SKIN_TONES = np.array([(241, 212, 192), (233, 196, 170), (224, 172, 140), (198, 144, 110),
                       (160, 110, 80), (120, 82, 60), (90, 60, 45)], dtype=np.float32)
HAIR_TONES = np.array([(30, 22, 18), (70, 48, 30), (120, 85, 50), (180, 140, 90), (215, 190, 140)],
                      dtype=np.float32)


@dataclass
class Cutout:
    """A piece with its alpha; ``gem`` is the gem share of the alpha, None where unknown."""
    rgb: np.ndarray             # H×W×3 uint8
    alpha: np.ndarray           # H×W float32 in [0, 1]
    gem: np.ndarray | None      # H×W float32 in [0, 1] or None
    category: str | None = None
    metal: str | None = None


@dataclass
class Scene:
    image: Image.Image
    piece: np.ndarray           # H×W float32: how much of each pixel is jewelry
    gem: np.ndarray             # H×W float32: gem share; meaningless where gem_known is False
    gem_known: bool
    boxes: list[tuple[int, int, int, int]]
    categories: list[str | None] = field(default_factory=list)  # one per box
    metals: list[str | None] = field(default_factory=list)  # one per box


# ----- foreground pieces -------------------------------------------------------------

def render_cutouts(render_dir: Path, keep=lambda index: True) -> list[Cutout]:
    """Studio renders with their id masks (0 background, 120 metal, 240 gem)."""
    out = []
    with open(Path(render_dir) / "labels.jsonl") as fh:
        for line in fh:
            label = json.loads(line)
            if not keep(label["index"]):
                continue
            rgb = np.asarray(Image.open(Path(render_dir) / label["image"]).convert("RGB"))
            mask = np.asarray(Image.open(Path(render_dir) / label["mask"]))
            x0, y0, x1, y1 = label["bbox"]
            alpha = (mask > 0).astype(np.float32)[y0:y1, x0:x1]
            gem = (mask >= 200).astype(np.float32)[y0:y1, x0:x1]
            out.append(Cutout(rgb[y0:y1, x0:x1].copy(), alpha, gem, label["category"], label.get("metal")))
    return out


def cut_from_white(image: Image.Image, max_side: int = 384, category: str | None = None) -> Cutout | None:
    """A product photo on a plain light sweep → the piece and a soft alpha; None if the sweep is busy."""
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side))
    rgb = np.asarray(image).astype(np.float32)
    border = np.concatenate([rgb[:4].reshape(-1, 3), rgb[-4:].reshape(-1, 3),
                             rgb[:, :4].reshape(-1, 3), rgb[:, -4:].reshape(-1, 3)])
    sweep = np.median(border, axis=0)
    if sweep.min() < 200 or np.abs(border - sweep).mean() > 8:
        return None
    distance = np.abs(rgb - sweep).max(axis=2)
    alpha = np.clip((distance - 12) / 30, 0, 1)
    alpha = np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.MedianFilter(3)),
                       dtype=np.float32) / 255
    ys, xs = np.nonzero(alpha > 0.5)
    if len(ys) < 50:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return Cutout(np.asarray(image)[y0:y1, x0:x1].copy(), alpha[y0:y1, x0:x1], None, category)


# ----- backgrounds ---------------------------------------------------------------------

def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    small = rng.random((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC),
                      dtype=np.float32) / 255


def _skin(rng, h, w):
    tone = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.85, 1.1)
    shade = 0.75 + 0.4 * _smooth_noise(rng, h, w, int(rng.integers(2, 5)))
    return tone[None, None, :] * shade[..., None] + rng.normal(0, 3, (h, w, 1))


def _fabric(rng, h, w):
    palette = rng.uniform(20, 245, (int(rng.integers(2, 5)), 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    style = rng.integers(3)
    if style == 0:  # stripes at an angle
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 60)
        index = ((xx * np.cos(angle) + yy * np.sin(angle)) // period).astype(int)
    elif style == 1:  # checks
        period = rng.uniform(8, 50)
        index = ((xx // period) + (yy // period)).astype(int)
    else:  # floral-ish blobs
        index = (_smooth_noise(rng, h, w, int(rng.integers(6, 20))) * len(palette) * 1.5).astype(int)
    out = palette[index % len(palette)]
    folds = 0.8 + 0.3 * _smooth_noise(rng, h, w, 3)
    return out * folds[..., None] + rng.normal(0, 4, (h, w, 1))


def _hair(rng, h, w):
    tone = HAIR_TONES[rng.integers(len(HAIR_TONES))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    waves = np.sin((xx + 25 * np.sin(yy / rng.uniform(15, 60))) / rng.uniform(1.5, 4))
    return tone[None, None, :] * (0.7 + 0.35 * waves[..., None]) + rng.normal(0, 5, (h, w, 1))


def _outdoor(rng, h, w):
    top, bottom = rng.uniform(60, 240, 3), rng.uniform(30, 200, 3)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    out = top * (1 - t) + bottom * t + np.zeros((h, w, 3), np.float32)
    pixels = np.clip(out, 0, 255).astype(np.uint8).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(3, 12))):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, 40)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        pixels[inside] = pixels[inside] * 0.5 + rng.uniform(80, 255, 3) * 0.5
    return np.asarray(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(2, 6))), dtype=np.float32)


def _studio(rng, h, w):
    level = rng.choice([rng.uniform(225, 255), rng.uniform(10, 50), rng.uniform(90, 200)])
    return np.full((h, w, 3), level, np.float32) * (0.9 + 0.15 * _smooth_noise(rng, h, w, 2))[..., None]


BACKGROUNDS = {"skin": _skin, "fabric": _fabric, "hair": _hair, "outdoor": _outdoor, "studio": _studio}


@dataclass
class Scenery:
    """A scene's base layer, and the jewelry it already shows where that is known (hand boxes)."""
    pixels: np.ndarray                  # H×W×3 float32
    piece: np.ndarray | None = None     # H×W float32 piece mask of the scenery's own jewelry
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)


def photo_background(rng: np.random.Generator, photo: Image.Image | BoxedPhoto, height: int, width: int) -> Scenery:
    """A random crop of a real photo (skin, hair, fabric, faces, hands), flipped and resized.
    A ``BoxedPhoto`` brings its boxed pieces along, moved with the crop, as labelled jewelry."""
    boxed = photo if isinstance(photo, BoxedPhoto) else None
    image = boxed.image if boxed else photo
    scale = rng.uniform(0.5, 1.0)
    cw, ch = max(8, int(image.width * scale)), max(8, int(image.height * scale))
    x, y = int(rng.integers(0, image.width - cw + 1)), int(rng.integers(0, image.height - ch + 1))
    region = image.crop((x, y, x + cw, y + ch)).resize((width, height), Image.BILINEAR)
    flip = rng.random() < 0.5
    if flip:
        region = region.transpose(Image.FLIP_LEFT_RIGHT)
    scenery = Scenery(np.asarray(region, dtype=np.float32))
    if boxed is None:
        return scenery
    sx, sy = width / cw, height / ch
    moved = []
    for x0, y0, x1, y1 in boxed.boxes:
        left, right = (x0 - x) * sx, (x1 - x) * sx
        if flip:
            left, right = width - right, width - left
        moved.append((left, (y0 - y) * sy, right, (y1 - y) * sy))
    # The whole ellipse is drawn and then clipped, so a piece the crop cuts keeps its true shape.
    scenery.piece = ellipse_mask(height, width, [tuple(int(round(v)) for v in box) for box in moved])
    for x0, y0, x1, y1 in moved:
        clipped = (max(0, int(round(x0))), max(0, int(round(y0))),
                   min(width, int(round(x1))), min(height, int(round(y1))))
        area = (x1 - x0) * (y1 - y0)
        # A piece mostly outside the crop still marks its pixels, but is no box to find.
        if clipped[0] < clipped[2] and clipped[1] < clipped[3] \
                and (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) >= 0.5 * area:
            scenery.boxes.append(clipped)
    return scenery


def background(rng: np.random.Generator, height: int, width: int,
               photos: list[Image.Image | BoxedPhoto] | None = None, photo_share: float = 0.6) -> Scenery:
    """A real photo's scenery, or a procedural base layer plus up to two soft-edged regions
    (an arm, a neck, a sleeve) of other kinds."""
    if photos and rng.random() < photo_share:
        return photo_background(rng, photos[int(rng.integers(len(photos)))], height, width)
    kinds = list(BACKGROUNDS)
    out = BACKGROUNDS[kinds[rng.integers(len(kinds))]](rng, height, width)
    for _ in range(int(rng.integers(0, 3))):
        layer = BACKGROUNDS[["skin", "skin", "fabric", "hair"][rng.integers(4)]](rng, height, width)
        region = _smooth_noise(rng, height, width, int(rng.integers(2, 4)))
        cut = rng.uniform(0.35, 0.65)
        weight = np.clip((region - cut) * 12, 0, 1)[..., None]
        out = out * (1 - weight) + layer * weight
    return Scenery(np.clip(out, 0, 255))


# ----- scenes --------------------------------------------------------------------------

def _place(canvas, piece, gem, cutout: Cutout, rng, scale_px: float, box_list) -> None:
    h, w = canvas.shape[:2]
    ch, cw = cutout.alpha.shape
    factor = scale_px / max(ch, cw)
    size = (max(2, int(cw * factor)), max(2, int(ch * factor)))
    angle = float(rng.uniform(-30, 30))
    rgb = Image.fromarray(cutout.rgb).resize(size, Image.BILINEAR).rotate(angle, expand=True)
    alpha = Image.fromarray((cutout.alpha * 255).astype(np.uint8)).resize(size, Image.BILINEAR).rotate(
        angle, expand=True)
    # A slight feather: hard cut-out edges would be a cue real photos never show.
    a = np.asarray(alpha.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.float32) / 255
    g = None
    if cutout.gem is not None:
        g = np.asarray(Image.fromarray((cutout.gem * 255).astype(np.uint8)).resize(size, Image.BILINEAR).rotate(
            angle, expand=True), dtype=np.float32) / 255
    ph, pw = a.shape
    if ph >= h or pw >= w:
        return
    y, x = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
    light = rng.uniform(0.7, 1.15)
    region = canvas[y:y + ph, x:x + pw]
    region[:] = region * (1 - a[..., None]) + np.asarray(rgb, np.float32) * light * a[..., None]
    piece[y:y + ph, x:x + pw] = np.maximum(piece[y:y + ph, x:x + pw], a)
    if g is not None:
        gem[y:y + ph, x:x + pw] = np.maximum(gem[y:y + ph, x:x + pw], g)
    ys, xs = np.nonzero(a > 0.5)
    if len(ys):
        box_list.append((x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1))


def make_scene(rng: np.random.Generator, cutouts: list[Cutout],
               photos: list[Image.Image | BoxedPhoto] | None = None, photo_share: float = 0.6) -> Scene:
    """One scene: 0–2 pieces (a pair for earrings-like layouts), sized from tiny to frame-filling.

    A real photo given as a plain image may hold jewelry of its own that the scene's mask calls
    background. A ``BoxedPhoto`` has every visible piece boxed by hand: those pieces join the
    scene's mask and boxes (category unknown, stone share unknown).
    """
    width = int(rng.choice([384, 432, 512]))
    height = int(rng.choice([384, 512, 512]))
    scenery = background(rng, height, width, photos, photo_share)
    canvas = scenery.pixels
    piece = np.zeros((height, width), np.float32) if scenery.piece is None else scenery.piece
    gem = np.zeros((height, width), np.float32)
    boxes: list[tuple[int, int, int, int]] = list(scenery.boxes)
    categories: list[str | None] = [None] * len(boxes)
    metals: list[str | None] = [None] * len(boxes)
    count = int(rng.choice([0, 1, 1, 1, 1, 1, 2, 2]))
    chosen = cutouts[int(rng.integers(len(cutouts)))]
    # The stones of hand-boxed pieces are not marked, so their scene teaches no stone mask.
    gem_known = scenery.piece is None or not scenery.piece.any()
    for n in range(count):
        cutout = chosen if (n and rng.random() < 0.6) else cutouts[int(rng.integers(len(cutouts)))]
        gem_known &= cutout.gem is not None
        # Log-uniform size: most worn pieces are small, some fill the frame.
        scale = float(np.exp(rng.uniform(np.log(0.07), np.log(0.75)))) * min(width, height)
        placed = len(boxes)
        _place(canvas, piece, gem, cutout, rng, scale, boxes)
        if len(boxes) > placed:
            categories.append(cutout.category)
            metals.append(cutout.metal)
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(35, 95)))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return Scene(image, piece, gem, gem_known, boxes, categories, metals)


def paste_piece(rng: np.random.Generator, cutout: Cutout, scenery: Image.Image,
                size: tuple[float, float] = (0.1, 0.3)) -> Scene | None:
    """One known piece pasted onto a crop of a real photo, its long side a log-uniform share
    (``size``) of the scene's short side; None when it did not fit. A shopper's photo with a
    known answer: the scenery keeps whatever jewelry it had, as a real one would."""
    width, height = int(rng.choice([384, 432, 512])), int(rng.choice([384, 512]))
    canvas = photo_background(rng, scenery, height, width).pixels
    piece = np.zeros((height, width), np.float32)
    boxes: list[tuple[int, int, int, int]] = []
    scale = float(np.exp(rng.uniform(np.log(size[0]), np.log(size[1])))) * min(width, height)
    _place(canvas, piece, np.zeros_like(piece), cutout, rng, scale, boxes)
    if not boxes:
        return None
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    return Scene(image, piece, np.zeros_like(piece), False, boxes, [cutout.category], [cutout.metal])
