"""Physically based materials: metals as conductors, gems as dielectrics.

Colour in a transparent stone comes from its specular transmittance (light
loses some of each colour at every pass), so a deeper stone looks darker, as
real ones do.  Opaque stones and pearls are rough plastics.
"""

from __future__ import annotations

from dataclasses import dataclass

# metal label -> (conductor data, reflectance tint, base roughness)
METALS = {
    "yellow gold": ("Au", (1.0, 1.0, 1.0), 0.06),
    "rose gold": ("Cu", (1.0, 0.86, 0.8), 0.07),
    "white gold": ("Rh", (1.0, 0.99, 0.96), 0.06),
    "platinum": ("Ir", (0.95, 0.95, 0.96), 0.1),
    "silver": ("Ag", (0.97, 0.97, 0.97), 0.08),
}


@dataclass(frozen=True)
class Gem:
    name: str  # the vocabulary label (see embed.vocab)
    colour_word: str  # how a title says its colour
    ior: float | None  # None: opaque
    tint: tuple[float, float, float]
    price_per_carat: float


GEMS = {g.name: g for g in (
    Gem("diamond", "white", 2.42, (1.0, 1.0, 1.0), 3500),
    Gem("ruby", "red", 1.77, (0.92, 0.12, 0.2), 1800),
    Gem("sapphire blue", "blue", 1.77, (0.16, 0.3, 0.95), 1200),
    Gem("sapphire pink", "pink", 1.77, (1.0, 0.45, 0.66), 900),
    Gem("emerald", "green", 1.58, (0.15, 0.78, 0.38), 1100),
    Gem("aquamarine", "light blue", 1.58, (0.6, 0.88, 0.98), 300),
    Gem("amethyst", "purple", 1.54, (0.62, 0.32, 0.9), 60),
    Gem("citrine", "yellow", 1.54, (1.0, 0.72, 0.22), 50),
    Gem("topaz", "blue", 1.62, (0.45, 0.75, 1.0), 80),
    Gem("garnet", "deep red", 1.76, (0.62, 0.06, 0.1), 120),
    Gem("peridot", "green", 1.65, (0.62, 0.88, 0.22), 150),
    Gem("tanzanite", "violet blue", 1.69, (0.4, 0.35, 0.92), 600),
    Gem("morganite", "peach pink", 1.58, (1.0, 0.74, 0.7), 250),
    Gem("pearl", "white", None, (0.78, 0.74, 0.68), 400),
    Gem("turquoise", "turquoise", None, (0.22, 0.72, 0.68), 40),
    Gem("onyx black", "black", None, (0.02, 0.02, 0.02), 30),
    Gem("lapis lazuli", "blue", None, (0.1, 0.16, 0.55), 40),
    Gem("opal", "white", None, (0.86, 0.88, 0.92), 300),
)}
TRANSPARENT = tuple(name for name, g in GEMS.items() if g.ior is not None)
OPAQUE = tuple(name for name, g in GEMS.items() if g.ior is None)


def metal_bsdf(metal: str, finish: float = 1.0) -> dict:
    data, tint, alpha = METALS[metal]
    return {"type": "roughconductor", "material": data, "alpha": alpha * finish,
            "specular_reflectance": {"type": "rgb", "value": list(tint)}}


def gem_bsdf(gem: str) -> dict:
    g = GEMS[gem]
    if g.ior is None:
        if gem == "pearl":
            return {"type": "roughplastic", "alpha": 0.12, "int_ior": 1.53,
                    "diffuse_reflectance": {"type": "rgb", "value": list(g.tint)}}
        return {"type": "roughplastic", "alpha": 0.08, "int_ior": 1.5,
                "diffuse_reflectance": {"type": "rgb", "value": list(g.tint)}}
    return {"type": "dielectric", "int_ior": g.ior, "ext_ior": 1.0,
            "specular_transmittance": {"type": "rgb", "value": list(g.tint)}}
