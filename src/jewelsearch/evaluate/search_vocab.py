"""The words a shopper types for each jewelry attribute, in English and Chinese.

Written for the search evaluation only, independently of the engine's own glossaries
(``jewelsearch.query``), so the measure asks the way a shopper would rather than the way the
engine was built to listen. Chinese follows how shoppers on Chinese jewelry shops phrase
searches: 18K金 / 玫瑰金 / 铂金 for metals, 耳钉 for studs, 排钻 for eternity bands,
prices in 美元 because the catalogs are priced in dollars.
"""

from __future__ import annotations

CATEGORY = {
    "ring": ("ring", "戒指"), "pendant": ("pendant", "吊坠"), "earrings": ("earrings", "耳环"),
    "bracelet": ("bracelet", "手链"), "necklace": ("necklace", "项链"),
}
METAL = {
    "yellow gold": ("yellow gold", "18K黄金"), "rose gold": ("rose gold", "玫瑰金"),
    "white gold": ("white gold", "18K白金"), "platinum": ("platinum", "铂金"),
    "silver": ("sterling silver", "925银"),
}
# Catalog gemstone value -> (English, Chinese).
GEMSTONE = {
    "diamond": ("diamond", "钻石"), "ruby": ("ruby", "红宝石"), "sapphire blue": ("blue sapphire", "蓝宝石"),
    "sapphire pink": ("pink sapphire", "粉色蓝宝石"), "emerald": ("emerald", "祖母绿"),
    "aquamarine": ("aquamarine", "海蓝宝"), "amethyst": ("amethyst", "紫水晶"),
    "citrine": ("citrine", "黄水晶"), "topaz": ("topaz", "托帕石"), "garnet": ("garnet", "石榴石"),
    "peridot": ("peridot", "橄榄石"), "tanzanite": ("tanzanite", "坦桑石"),
    "morganite": ("morganite", "摩根石"), "pearl": ("pearl", "珍珠"), "turquoise": ("turquoise", "绿松石"),
    "onyx black": ("black onyx", "黑玛瑙"), "lapis lazuli": ("lapis lazuli", "青金石"), "opal": ("opal", "欧泊"),
    "sapphire": ("sapphire", "蓝宝石"),
}
SHAPE = {
    "round": ("round", "圆形"), "oval": ("oval", "椭圆形"), "pear": ("pear-shaped", "水滴形"),
    "marquise": ("marquise", "马眼形"), "princess": ("princess-cut", "公主方"),
    "emerald": ("emerald-cut", "祖母绿切割"), "cushion": ("cushion-cut", "枕形"), "heart": ("heart-shaped", "心形"),
}
# Stone colours a shopper asks for; truth is the item's ``color`` field containing the word.
COLOUR = {
    "blue": ("blue", "蓝色"), "red": ("red", "红色"), "pink": ("pink", "粉色"), "green": ("green", "绿色"),
    "purple": ("purple", "紫色"), "yellow": ("yellow", "黄色"), "black": ("black", "黑色"),
}
# Style word as it appears in a title -> (what an English shopper types, Chinese).
STYLE = {
    "solitaire": ("solitaire", "单钻"), "halo": ("halo", "光环群镶"), "eternity": ("eternity band", "排钻"),
    "three-stone": ("three stone", "三石"), "stud": ("studs", "耳钉"), "hoop": ("hoops", "耳圈"),
    "drop": ("drop earrings", "耳坠"), "tennis": ("tennis bracelet", "网球手链"), "bangle": ("bangle", "手镯"),
    "chain": ("chain", "链条"), "strand": ("pearl strand", "珍珠项链"),
}
# A style word already names its piece in these phrasings, so the category is not said again.
STYLE_NAMES_PIECE = {"stud", "hoop", "drop", "tennis", "bangle", "strand"}
