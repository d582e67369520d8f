"""What to render: a random but reproducible jewelry spec, and its exact labels.

Everything a label says is a parameter of the scene, so labels cannot drift
from pixels: the title is written from the same spec the renderer builds.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from jewelsearch.studio.materials import GEMS, METALS, OPAQUE, TRANSPARENT  # noqa: F401
from jewelsearch.studio.pieces import pearl_radius

CUTS = ("round", "oval", "pear", "marquise", "princess", "emerald", "cushion", "heart")
BACKGROUNDS = ("white sweep", "black velvet", "gradient", "marble", "wood")
# (category, style) pairs the studio builds, with how often each is drawn.
STYLES = [
    ("ring", "solitaire", 5), ("ring", "three-stone", 2), ("ring", "eternity", 1), ("ring", "halo", 2),
    ("pendant", "pendant", 3), ("earrings", "stud", 2), ("earrings", "drop", 2), ("earrings", "hoop", 1),
    ("bracelet", "tennis", 1), ("bracelet", "bangle", 1), ("necklace", "chain", 1), ("necklace", "pearls", 1),
]
KARAT = {"yellow gold": "18k yellow gold", "rose gold": "14k rose gold", "white gold": "18k white gold",
         "platinum": "platinum", "silver": "sterling silver"}
METAL_PRICE = {"yellow gold": 900, "rose gold": 750, "white gold": 950, "platinum": 1300, "silver": 120}


@dataclass
class JewelSpec:
    seed: int
    category: str
    style: str
    metal: str | None
    gemstone: str | None
    cut: str | None
    carat: float
    setting: str | None
    background: str
    camera_elevation: float  # degrees above the horizon
    camera_azimuth: float  # degrees around the piece
    finish: float  # roughness multiplier: 1 polished, 3 brushed

    @property
    def labels(self) -> dict:
        return asdict(self)

    @property
    def render_seed(self) -> int:
        """The seed the renderer gets: Mitsuba takes an unsigned 32-bit one, and batch seeds
        (``seed * 1_000_003 + i``) outgrow it from ``--seed 4295`` on. Seeds that fit are
        unchanged, so renders made before stay the same."""
        return self.seed % 2**32


def sample_spec(seed: int, *, category: str | None = None, style: str | None = None,
                metal: str | None = None, gemstone: str | None = None, cut: str | None = None,
                background: str | None = None) -> JewelSpec:
    rng = random.Random(seed)
    choices = [(c, s) for c, s, w in STYLES for _ in range(w)
               if (category is None or c == category) and (style is None or s == style)]
    cat, sty = rng.choice(choices)
    met = metal or rng.choice(list(METALS))
    if sty == "pearls":
        gem, the_cut, met = "pearl", None, None
    elif sty == "chain":
        gem, the_cut = None, None
    elif sty == "hoop":
        gem, the_cut = None, None
    elif sty in ("eternity", "tennis"):
        gem, the_cut = gemstone or rng.choice(["diamond"] * 3 + ["sapphire blue", "ruby", "emerald"]), "round"
    else:
        gem = gemstone or rng.choice(list(TRANSPARENT) * 2 + [g for g in OPAQUE if g != "pearl"])
        if gem == "pearl":  # only when asked for: a pearl is a sphere on a peg, neither cut nor set
            the_cut = None
        elif GEMS[gem].ior is None:
            the_cut = "cabochon"
        else:
            the_cut = cut or rng.choice(CUTS)
    if sty == "bangle" and rng.random() < 0.5:
        gem, the_cut = None, None
    carat = round(rng.choice([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]) * (0.5 if cat == "earrings" else 1.0), 2)
    if sty == "tennis":
        carat = 0.1
    setting = None
    if gem and gem != "pearl" and sty not in ("pearls", "eternity", "tennis", "bangle"):
        setting = "halo" if sty == "halo" else rng.choice(["prong", "prong", "bezel", "basket"])
    if sty == "bangle" and gem:
        setting = "bezel"
    return JewelSpec(seed=seed, category=cat, style=sty, metal=met, gemstone=gem, cut=the_cut, carat=carat,
                     setting=setting, background=background or rng.choice(BACKGROUNDS),
                     camera_elevation=round(rng.uniform(15, 40), 1), camera_azimuth=round(rng.uniform(-35, 35), 1),
                     finish=1.0 if rng.random() < 0.8 else 3.0)


def pinned_parameters(*, style: str | None = None, metal: str | None = None,
                      gemstone: str | None = None) -> dict[str, str]:
    """Check the parameters a batch pins (as ``sample_spec`` takes them); unknown names raise
    ValueError listing the known ones. A pinned style pins its category too."""
    pinned: dict[str, str] = {}
    known_styles = [s for _, s, _ in STYLES]
    for name, value, known in (("style", style, known_styles), ("metal", metal, list(METALS)),
                               ("gemstone", gemstone, list(GEMS))):
        if value is None:
            continue
        if value not in known:
            raise ValueError(f"unknown {name} {value!r}; known: {', '.join(known)}")
        pinned[name] = value
    if style is not None:
        pinned["category"] = next(c for c, s, _ in STYLES if s == style)
    return pinned


def gem_name(gem: str) -> str:
    """How a shop writes the stone: most names carry their colour, a few need it said."""
    return {"sapphire blue": "blue sapphire", "sapphire pink": "pink sapphire",
            "onyx black": "black onyx", "topaz": "blue topaz"}.get(gem, gem)


def title(spec: JewelSpec) -> str:
    """'Oval blue sapphire solitaire ring in 18k yellow gold'."""
    metal = KARAT.get(spec.metal or "", "")
    gem = spec.gemstone
    gem_words = ""
    if gem:
        # Most gem names carry their colour; only a few need it said.
        gem_words = gem_name(gem)
        if spec.cut and spec.cut != "cabochon" and spec.style not in ("eternity", "tennis"):
            cut = "emerald-cut" if spec.cut == "emerald" else spec.cut
            gem_words = f"{cut} {gem_words}"
    noun = {"solitaire": "solitaire ring", "three-stone": "three-stone ring", "eternity": "eternity ring",
            "halo": "halo ring", "pendant": "pendant", "stud": "stud earrings", "drop": "drop earrings",
            "hoop": "hoop earrings", "tennis": "tennis bracelet", "bangle": "bangle",
            "chain": "chain necklace", "pearls": "pearl strand necklace"}[spec.style]
    if spec.style == "pearls":
        return "Pearl strand necklace"
    text = f"{gem_words} {noun}".strip() if gem_words and spec.style != "pearls" else noun
    if metal:
        text += f" in {metal}"
    return text[0].upper() + text[1:]


def pearl_diameter(carat: float) -> float:
    """Millimetres across, as the studio builds it (4.5 to 10 mm)."""
    return round(2 * pearl_radius(carat), 1)


def description(spec: JewelSpec) -> str:
    parts = [title(spec) + "."]
    if spec.gemstone == "pearl" and spec.style != "pearls":
        on = {"stud": " on a post", "drop": " below a hook"}.get(spec.style, "")
        parts.append(f"A {pearl_diameter(spec.carat):g} mm round pearl{on}.")
    elif spec.gemstone and spec.style not in ("eternity", "tennis", "pearls"):
        shape = "cabochon" if spec.cut == "cabochon" else f"{spec.cut}-cut"
        parts.append(f"A {spec.carat:g} ct {shape} {gem_name(spec.gemstone)} in a {spec.setting} setting.")
    elif spec.style in ("eternity", "tennis"):
        parts.append(f"A continuous line of round {gem_name(spec.gemstone)}s.")
    if spec.finish > 1.5:
        parts.append("Brushed metal finish.")
    else:
        parts.append("High-polish finish.")
    return " ".join(parts)


def price(spec: JewelSpec) -> float:
    """A plausible shop price from metal, stone and carat (demo data, not appraisal)."""
    base = METAL_PRICE.get(spec.metal or "", 150) * {"ring": 0.6, "pendant": 0.5, "earrings": 0.7,
                                                     "bracelet": 1.5, "necklace": 1.0}[spec.category]
    stones = 0.0
    if spec.gemstone:
        per_carat = GEMS[spec.gemstone].price_per_carat
        if spec.style in ("eternity", "tennis"):
            # Many small stones: priced by total weight at a small-stone rate.
            total = spec.carat if spec.style == "eternity" else spec.carat * 40
            stones = per_carat * 0.4 * total
        else:
            count = {"three-stone": 1.7, "halo": 1.3}.get(spec.style, 1)
            pairs = 2 if spec.category == "earrings" else 1
            stones = per_carat * spec.carat ** 1.4 * count * pairs
    return float(round(base + stones, -1) - 0.01 if base + stones > 50 else 49.99)
