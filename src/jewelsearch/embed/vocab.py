"""Attribute vocabularies and the mapping of raw dataset labels onto them.

Labels are lowercase words separated by spaces ("sapphire blue", "rose gold").
The gemstone list holds the 68 classes of the real gemstone photo set plus the
jewelry gems a shop sells; metals and cuts follow common catalog wording.
"""

from __future__ import annotations

CATEGORIES = ("ring", "necklace", "pendant", "earrings", "bracelet", "watch")
METALS = ("yellow gold", "rose gold", "white gold", "platinum", "silver", "steel")
CUTS = ("round", "oval", "pear", "marquise", "princess", "emerald", "cushion", "heart", "square",
        "none")
NO_STONE = "none"  # a plain piece: a real answer for gemstone and cut, never filled into a catalog

GEMSTONE_PHOTO_CLASSES = (
    "alexandrite", "almandine", "amazonite", "amber", "amethyst", "ametrine", "andradite",
    "aquamarine", "aventurine green", "aventurine yellow", "benitoite", "beryl golden", "bixbite",
    "bloodstone", "blue lace agate", "carnelian", "chalcedony", "chalcedony blue",
    "chrome diopside", "chrysoberyl", "chrysocolla", "chrysoprase", "citrine", "coral", "diamond",
    "diaspore", "dumortierite", "emerald", "fluorite", "hessonite", "iolite", "jasper", "kunzite",
    "kyanite", "lapis lazuli", "malachite", "onyx black", "onyx green", "onyx red", "peridot",
    "prehnite", "pyrite", "pyrope", "quartz beer", "quartz lemon", "quartz rutilated",
    "quartz smoky", "rhodochrosite", "rhodolite", "rhodonite", "ruby", "sapphire blue",
    "sapphire pink", "sapphire purple", "sapphire yellow", "serpentine", "sodalite", "spessartite",
    "sphene", "sunstone", "tanzanite", "tigers eye", "topaz", "tourmaline", "tsavorite",
    "turquoise", "zircon", "zoisite")
GEMSTONES = GEMSTONE_PHOTO_CLASSES + ("pearl", "garnet", "opal", "morganite", "cubic zirconia", "none")

# How a gem class reads in a caption a shopper would type.
GEM_SPOKEN = {
    "sapphire blue": "blue sapphire", "sapphire pink": "pink sapphire",
    "sapphire purple": "purple sapphire", "sapphire yellow": "yellow sapphire",
    "onyx black": "black onyx", "onyx green": "green onyx", "onyx red": "red onyx",
    "quartz beer": "beer quartz", "quartz lemon": "lemon quartz",
    "quartz rutilated": "rutilated quartz", "quartz smoky": "smoky quartz",
    "aventurine green": "green aventurine", "aventurine yellow": "yellow aventurine",
    "chalcedony blue": "blue chalcedony", "beryl golden": "golden beryl", "tigers eye": "tiger's eye",
}


def label_from_folder(name: str) -> str:
    """Dataset folder names to vocabulary labels.

    >>> label_from_folder("sapphire_blue")
    'sapphire blue'
    """
    return " ".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


def metal_from_product(material: str, color: str) -> str | None:
    """Product-sheet material + colour to a metal label (None when unknown).

    >>> metal_from_product("gold", "white")
    'white gold'
    """
    material, color = (material or "").strip().lower(), (color or "").strip().lower()
    if material in ("", "unknown", "none"):
        return None
    if material == "gold":
        return {"white": "white gold", "pink": "rose gold"}.get(color, "yellow gold")
    if material in ("rose gold", "white gold", "yellow gold", "platinum", "silver", "steel"):
        return material
    return None


def gemstone_from_product(stone: str, color: str) -> str | None:
    stone, color = (stone or "").strip().lower(), (color or "").strip().lower()
    if stone == "none":
        return NO_STONE
    if stone in ("", "unknown"):
        return None
    if stone == "sapphire":
        return {"pink": "sapphire pink", "yellow": "sapphire yellow", "purple": "sapphire purple"}.get(
            color, "sapphire blue")
    return stone if stone in GEMSTONES else None


def cut_from_product(shape: str) -> str | None:
    shape = (shape or "").strip().lower()
    return shape if shape in CUTS else None

# Worn photos and renders say "pendant"; product photos file a pendant under necklace.
CATEGORY_EQUIVALENT = {"pendant": "necklace"}


def gem_family(label: str | None) -> str | None:
    """The family a gemstone label belongs to: its first word where the rest names a colour
    or variety of the same mineral, else the label itself.

    >>> gem_family("sapphire pink"), gem_family("onyx black"), gem_family("lapis lazuli")
    ('sapphire', 'onyx', 'lapis lazuli')
    """
    if not label:
        return None
    head = label.split(" ", 1)[0]
    return head if head in GEM_FAMILIES else label


# Gem labels of the form "<mineral> <colour/variety>" (``GEMSTONES``): the mineral is a family.
# A head shared by two labels, or a label of its own ("chalcedony" beside "chalcedony blue").
GEM_FAMILIES = frozenset(g.split(" ", 1)[0] for g in GEMSTONE_PHOTO_CLASSES
                      if " " in g and (g.split(" ", 1)[0] in GEMSTONE_PHOTO_CLASSES
                                       or sum(h.startswith(g.split(" ", 1)[0] + " ") for h in GEMSTONE_PHOTO_CLASSES) > 1))


def gem_family_members(family: str) -> tuple[str, ...]:
    """Every gemstone label of a family (the label alone where it has none).

    >>> gem_family_members("sapphire")
    ('sapphire blue', 'sapphire pink', 'sapphire purple', 'sapphire yellow')
    """
    return tuple(g for g in GEMSTONES if gem_family(g) == family) or (family,)
