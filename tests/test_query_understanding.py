"""Query understanding: glossaries (en, zh, a new language as a file), the parser's
attributes, price phrases, residual words, lexical terms and chips, and properties that hold
for any text."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jewelsearch.embed.vocab import GEM_SPOKEN, GEMSTONES, NO_STONE
from jewelsearch.query import GlossaryError, default_glossary, load_glossary, understand
from jewelsearch.query.canon import STYLES
from jewelsearch.query.glossary import DEFAULT_FOLDER
from jewelsearch.query.text_units import normalise

SAPPHIRES = ("sapphire blue", "sapphire pink", "sapphire purple", "sapphire yellow")
DEMO = Path(__file__).parents[1] / "src" / "jewelsearch" / "demo" / "items.jsonl"


# --- price phrases: (query, min_price, max_price); every one leaves no words behind ---
PRICES = [
    ("under $500", None, 500.0), ("below 500", None, 500.0), ("less than 1,000 dollars", None, 1000.0),
    ("< 500", None, 500.0), ("over $200", 200.0, None), ("above 2k", 2000.0, None),
    ("between 1k and 2k", 1000.0, 2000.0), ("$500-$1000", 500.0, 1000.0), ("500 to 1000", 500.0, 1000.0),
    ("around $800", 640.0, 960.0),  # +-20 %
    ("500美元以下", None, 500.0), ("500元以下", None, 500.0), ("低于500", None, 500.0),
    ("500以内", None, 500.0), ("1000到2000之间", 1000.0, 2000.0), ("2千以上", 2000.0, None),
    ("800左右", 640.0, 960.0), ("up to 1.5k", None, 1500.0), ("$500 or less", None, 500.0),
    ("from $300 to $600", 300.0, 600.0), ("1-2k", 1000.0, 2000.0),
]


@pytest.mark.parametrize("text,low,high", PRICES)
def test_price_phrases(text, low, high):
    u = understand(text)
    assert (u.min_price, u.max_price) == (low, high)
    assert u.attributes == {} and u.residual == "" and u.terms == ()
    assert [c["field"] for c in u.chips] == ["price"]
    assert u.chips[0]["values"] == (low, high) and u.chips[0]["text"] == text


@pytest.mark.parametrize("text", ["size 6 to 7 ring", "under 2 carats", "18kt gold", "925 silver",
                                  "50分钻石", "a 0.75 ct stone", "3 stone ring"])
def test_numbers_that_are_not_prices(text):
    u = understand(text)
    assert u.min_price is None and u.max_price is None


def test_price_inside_a_query():
    u = understand("diamond ring under $900")
    assert u.attributes == {"category": ("ring",), "gemstone": ("diamond",)}
    assert (u.min_price, u.max_price, u.residual) == (None, 900.0, "")
    assert u.terms == ("diamond", "ring")
    assert u.chips[-1] == {"field": "price", "values": (None, 900.0), "label": "under $900",
                           "text": "under $900"}
    assert understand("over 200 under 500 ring").as_dict()["min_price"] == 200.0


# --- attributes ---
def test_oval_sapphire_pendant_in_english_and_chinese_agree():
    en, zh = understand("oval sapphire pendant"), understand("椭圆蓝宝石吊坠")
    expected = {"category": ("pendant",), "gemstone": SAPPHIRES, "stone_shape": ("oval",)}
    assert en.attributes == zh.attributes == expected
    assert en.residual == zh.residual == ""
    assert (en.language, zh.language) == ("en", "zh")
    # A Chinese query yields the English words that match English titles.
    assert set(zh.terms) == set(en.terms) == {"oval", "sapphire", "pendant"}
    assert [c["text"] for c in zh.chips] == ["椭圆", "蓝宝石", "吊坠"]
    assert [c["label"] for c in zh.chips] == ["oval", "sapphire", "pendant"]


def test_pearl_earrings_in_both_languages():
    expected = {"category": ("earrings",), "gemstone": ("pearl",)}
    assert understand("pearl earrings").attributes == understand("珍珠耳环").attributes == expected


def test_blue_stone_pendant_means_the_blue_gems():
    for text in ("blue stone pendant", "蓝色宝石吊坠", "blue stones pendants"):
        u = understand(text)
        gems = u.attributes["gemstone"]
        assert {"sapphire blue", "topaz", "aquamarine", "tanzanite", "lapis lazuli", "turquoise"} <= set(gems)
        assert not {"ruby", "emerald", "diamond", "sapphire pink"} & set(gems)
        assert u.attributes["category"] == ("pendant",) and u.residual == ""
        assert "blue" in u.terms and "topaz" not in u.terms


def test_a_colour_narrows_a_named_gem():
    assert understand("sapphire ring in blue").attributes["gemstone"] == ("sapphire blue",)
    assert understand("sapphire in blue or pink").attributes["gemstone"] == ("sapphire blue", "sapphire pink")
    assert understand("white pearl").attributes["gemstone"] == ("pearl",)
    assert understand("green diamond").attributes["gemstone"] == ("diamond",)  # no green diamond class


def test_gem_families_and_coloured_names():
    assert understand("sapphire").attributes["gemstone"] == SAPPHIRES
    assert understand("蓝宝石").attributes["gemstone"] == SAPPHIRES
    for text in ("pink sapphire", "粉色蓝宝石", "粉蓝宝石"):
        assert understand(text).attributes["gemstone"] == ("sapphire pink",), text
    assert understand("onyx").attributes["gemstone"] == ("onyx black", "onyx green", "onyx red")
    assert understand("black onyx").attributes["gemstone"] == ("onyx black",)
    assert "garnet" in understand("石榴石").attributes["gemstone"]
    for text, gem in (("红宝石", "ruby"), ("祖母绿", "emerald"), ("钻石", "diamond"), ("珍珠", "pearl")):
        assert understand(text).attributes == {"gemstone": (gem,)}


def test_studs_hoops_engagement_and_eternity():
    studs = understand("studs")
    assert studs.attributes == {"category": ("earrings",)} and studs.styles == ("stud",)
    assert understand("stud earrings").attributes == studs.attributes
    assert understand("耳钉").styles == ("stud",)
    hoops = understand("hoops")
    assert hoops.attributes == {"category": ("earrings",)} and hoops.styles == ("hoop",)
    engagement = understand("engagement ring")
    assert engagement.attributes == {"category": ("ring",)}
    assert engagement.styles == ("solitaire", "halo", "three-stone")
    eternity = understand("eternity band")
    assert eternity.attributes == {"category": ("ring",)} and eternity.styles == ("eternity",)
    chain = understand("gold chain")
    assert chain.attributes == {"category": ("necklace",), "metal": ("yellow gold",)} and chain.styles == ("chain",)
    assert understand("three-stone ring").styles == understand("three stone ring").styles == ("three-stone",)


def test_white_gold_is_not_gold():
    assert understand("white gold").attributes == {"metal": ("white gold",)}
    # Decision: plain "gold" is yellow gold, as catalogs (and vocab.metal_from_product) read it.
    assert understand("gold").attributes == {"metal": ("yellow gold",)}
    assert understand("rose gold ring").attributes == {"category": ("ring",), "metal": ("rose gold",)}
    assert understand("white gold ring").chips[0] == {"field": "metal", "values": ("white gold",),
                                                      "label": "white gold", "text": "white gold"}


def test_metals_and_karat_in_both_languages():
    for text, metal in (("玫瑰金", "rose gold"), ("黄金", "yellow gold"), ("铂金", "platinum"),
                        ("银", "silver"), ("纯银", "silver"), ("sterling", "silver"), ("925", "silver"),
                        ("platinum", "platinum")):
        assert understand(text).attributes == {"metal": (metal,)}, text
    # Decision: 白金 is both (GB/T 11887 names platinum 白金; many shops mean white gold) ...
    assert understand("白金").attributes == {"metal": ("white gold", "platinum")}
    # ... and a karat settles it: only gold has karats.
    u = understand("18K白金钻戒")
    assert u.attributes == {"category": ("ring",), "metal": ("white gold",), "gemstone": ("diamond",)}
    assert u.karat == 18 and "platinum" not in u.terms
    assert understand("14k rose gold").karat == 14
    assert understand("18k gold").attributes == {"metal": ("yellow gold",)}
    assert understand("18K金").attributes == {"metal": ("yellow gold", "rose gold", "white gold")}


def test_emerald_the_cut_and_emerald_the_gem():
    assert understand("emerald cut").attributes == {"stone_shape": ("emerald",)}
    assert understand("emerald-cut").attributes == {"stone_shape": ("emerald",)}
    assert understand("emerald").attributes == {"gemstone": ("emerald",)}
    both = understand("Emerald-cut emerald ring")
    assert both.attributes == {"category": ("ring",), "gemstone": ("emerald",), "stone_shape": ("emerald",)}
    assert understand("祖母绿切割").attributes == {"stone_shape": ("emerald",)}


@pytest.mark.parametrize("text,shape", [("椭圆", "oval"), ("圆形", "round"), ("心形", "heart"),
                                        ("公主方", "princess"), ("梨形", "pear"), ("马眼", "marquise"),
                                        ("垫形", "cushion"), ("蛋面", "cabochon"), ("pear-shaped", "pear")])
def test_shapes(text, shape):
    assert understand(text).attributes == {"stone_shape": (shape,)}


def test_plurals_case_hyphens_and_ampersand():
    assert understand("RINGS").attributes == {"category": ("ring",)}
    assert understand("pendants").attributes == {"category": ("pendant",)}
    assert understand("earrings").attributes == understand("earring").attributes == {"category": ("earrings",)}
    assert understand("watches").attributes == {"category": ("watch",)}
    amp, word = understand("ruby & diamond rings"), understand("ruby and diamond rings")
    assert amp.attributes == word.attributes == {"category": ("ring",), "gemstone": ("diamond", "ruby")}
    assert amp.residual == word.residual == ""
    assert understand("Tiger's-eye pendant").attributes == {"category": ("pendant",), "gemstone": ("tigers eye",)}


def test_residual_keeps_the_words_not_understood():
    u = understand("Vintage oval sapphire pendant for Mom")
    assert u.residual == "Vintage Mom"
    assert u.terms == ("vintage", "oval", "sapphire", "pendant", "mom")
    zh = understand("好看的椭圆蓝宝石吊坠")
    assert zh.residual == "好看" and zh.terms[0] == "好看"


def test_language():
    assert understand("oval ring").language == "en"
    assert understand("戒指").language == "zh"
    assert understand("18K白金 oval ring").language == "mixed"
    assert understand("").language == "en"
    assert understand("").as_dict() == {"language": "en", "attributes": {}, "styles": [], "karat": None,
                                        "min_price": None, "max_price": None, "residual": "", "terms": [],
                                        "chips": [], "preferred": {}, "corrected": {}}


def test_as_dict_is_json():
    answer = understand("椭圆蓝宝石吊坠 500美元以下").as_dict()
    assert json.loads(json.dumps(answer)) == answer
    assert answer["attributes"]["stone_shape"] == ["oval"] and answer["max_price"] == 500.0


def test_demo_titles_are_understood_without_contradiction():
    rows = [json.loads(line) for line in DEMO.read_text().splitlines()]
    for row in rows:
        u = understand(row["title"])
        assert u.residual == "", row["title"]
        assert u.attributes["category"] == (row["category"],)
        for field in ("metal", "gemstone", "stone_shape"):
            if field in u.attributes:
                assert row.get(field) in u.attributes[field], (row["title"], field)


# --- glossaries ---
def test_every_gemstone_has_an_english_and_a_chinese_phrase():
    glossary = default_glossary()
    for gem in GEMSTONES:
        if gem == NO_STONE:
            continue
        # The label and its spoken form name it ("chalcedony" names its family, blue included).
        for text in (gem, GEM_SPOKEN.get(gem, gem)):
            assert gem in understand(text).attributes["gemstone"], (gem, text)
        for language in ("en", "zh"):
            exact = [keys for keys, m in glossary.phrases.items()
                     if language in m.languages and dict(m.fields).get("gemstone") == (gem,)]
            assert exact, f"no {language} phrase for {gem} alone"


def test_studio_styles_are_known():
    from jewelsearch.studio.spec import STYLES as STUDIO_STYLES
    assert {style for _, style, _ in STUDIO_STYLES} <= set(STYLES)


def test_a_new_language_is_a_new_file(tmp_path):
    for path in DEFAULT_FOLDER.glob("*.json"):
        shutil.copy(path, tmp_path)
    (tmp_path / "fr.json").write_text(json.dumps({
        "language": "fr",
        "entries": {"bijoux": [{"phrases": ["bague", "bagues"], "category": ["ring"]},
                               {"phrases": ["saphir"], "family": "sapphire"},
                               {"phrases": ["or blanc"], "metal": ["white gold"]}]},
        "filler": ["en"],
        "price": {"max_before": ["moins de"], "currency": ["€", "euros"]},
    }), encoding="utf-8")
    glossary = load_glossary(tmp_path)
    u = understand("bague saphir en or blanc moins de 500 €", glossary)
    assert u.attributes == {"category": ("ring",), "metal": ("white gold",), "gemstone": SAPPHIRES}
    assert (u.max_price, u.residual, u.language) == (500.0, "", "fr")
    assert set(u.terms) == {"ring", "sapphire", "white", "gold"}
    assert understand("bague saphir").attributes == {}  # the packaged glossaries know no French


@pytest.mark.parametrize("document,message", [
    ({"language": "xx", "entries": {"s": [{"phrases": ["saphire"], "gemstone": ["saphire"]}]}},
     r"bad\.json: s entry 0 \('saphire'\): gemstone value\(s\) \['saphire'\] not in the vocabulary"),
    ({"language": "xx", "entries": {"s": [{"phrases": ["x"], "colour": "mauve"}]}},
     r"bad\.json: s entry 0 \('x'\): colour 'mauve' is not defined"),
    ({"language": "xx", "entries": {"s": [{"phrases": ["ring"], "metal": ["silver"]}]}},
     r"en\.json: categories entry 0 \('ring'\): phrase 'ring' already means something else in bad\.json"),
    ({"language": "xx", "entries": {"s": [{"phrases": ["x"], "shape": ["oval"]}]}},
     r"bad\.json: s entry 0 \('x'\): unknown keys \['shape'\]"),
    ({"language": "xx", "entries": {"s": [{"phrases": ["x"]}]}}, r"bad\.json: s entry 0 \('x'\): says nothing"),
    ({"language": "xx", "entries": {"s": [{"phrases": ["x"], "karat": 19}]}}, r"karat must be one of"),
    ({"entries": {}}, r"bad\.json: 'language'"),
    ({"language": "xx", "price": {"under": ["x"]}}, r"bad\.json: price: unknown keys \['under'\]"),
])
def test_a_bad_glossary_is_named(tmp_path, document, message):
    shutil.copy(DEFAULT_FOLDER / "en.json", tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(GlossaryError, match=message):
        load_glossary(tmp_path)


def test_unreadable_or_missing_glossaries(tmp_path):
    with pytest.raises(GlossaryError, match="no glossary files"):
        load_glossary(tmp_path)
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(GlossaryError, match=r"broken\.json: cannot read glossary"):
        load_glossary(tmp_path)


# --- properties: any text ---
NASTY = ['"', "'", "*", "NEAR", "AND", "OR", "NOT", "(", ")", "-", "^", "title:", ":", "{", "}", "+",
         "$", "500", "1,000", "2k", "under", "between", "and", "以下", "到", "之间", "18K", "白金",
         "蓝宝石", "吊坠", "ring", "rings", "emerald-cut", "&", "\u200b", "\u200d", "\ufeff", "🙂", "👩‍👩‍👧",
         "ｒｉｎｇ", "İ", "ß", "é", "\u0301", "\n", "\t", " ", "Ω", "Ж", "한국", "かな", "﷽"]
texts = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(NASTY), max_size=30).map("".join),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=5)), max_size=40).map(" ".join),
    st.text(min_size=400, max_size=520),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
@example("000:SAEP:000")  # a typo read as a glossary word ("step") that starts no phrase: left as read
def test_understand_never_raises_and_keeps_to_the_input(text):
    u = understand(text)
    seen = normalise(text)
    for chip in u.chips:
        assert chip["text"] and chip["text"] in seen
        assert chip["field"] in ("category", "metal", "gemstone", "stone_shape", "style", "karat", "price")
        assert chip["values"] and isinstance(chip["label"], str)
    read_as = {word for _, word in u.corrected}  # a typo goes on as the glossary word it was read as
    for word in u.residual.split():
        assert word in seen or word in read_as
    for term in u.terms:
        assert term and all(ch.isalnum() for ch in term), term
        assert term == term.lower() or not re.search(r"[A-Z]", term)
    assert u.language in ("en", "zh", "mixed")
    if u.min_price is not None and u.max_price is not None:
        assert u.min_price >= 0 and u.max_price >= 0
    assert json.loads(json.dumps(u.as_dict())) == u.as_dict()


def test_a_plain_family_name_prefers_its_usual_member_without_narrowing():
    plain = understand("sapphire ring")
    assert set(plain.attributes["gemstone"]) == {"sapphire blue", "sapphire pink", "sapphire purple",
                                                 "sapphire yellow"}
    assert plain.preferred == {"gemstone": ("sapphire blue",)}
    assert understand("蓝宝石戒指").preferred == plain.preferred
    assert understand("pink sapphire ring").preferred == {}  # a colour named: no family preference
    assert understand("quartz ring").preferred == {}  # no usual member declared for quartz


def test_a_usual_member_outside_its_family_is_a_clear_error(tmp_path):
    (tmp_path / "xx.json").write_text(json.dumps({
        "language": "xx", "families": {"sapphire": ["sapphire blue", "sapphire pink"]},
        "usual": {"sapphire": "ruby"}, "entries": {"gems": [{"phrases": ["saphir"], "family": "sapphire"}]}}))
    with pytest.raises(GlossaryError, match="usual"):
        load_glossary(tmp_path)


@pytest.mark.parametrize("text,attributes", [
    # "镶钻" (diamond-set) is filler, and the longest match took it out of "镶钻石", leaving "石".
    ("18K黄金镶钻石首饰", {"metal": ("yellow gold",), "gemstone": ("diamond",)}),
    ("铂金镶钻石吊坠", {"category": ("pendant",), "metal": ("platinum",), "gemstone": ("diamond",)}),
    ("镶钻红宝石戒指", {"category": ("ring",), "gemstone": ("ruby",)}),  # accents, not the stone asked for
    # A shape or style word with 钻 in it names the diamond too, as "round diamond ring" does.
    ("圆钻戒指", {"category": ("ring",), "gemstone": ("diamond",), "stone_shape": ("round",)}),
    ("公主方钻吊坠", {"category": ("pendant",), "gemstone": ("diamond",), "stone_shape": ("princess",)}),
    ("全圈钻戒", {"category": ("ring",), "gemstone": ("diamond",)}),
    ("单颗珍珠吊坠", {"category": ("pendant",), "gemstone": ("pearl",)}),
])
def test_set_with_a_diamond_reads_the_diamond_and_leaves_no_stray_character(text, attributes):
    understood = understand(text)
    assert understood.attributes == attributes and understood.residual == ""


@pytest.mark.parametrize("chinese,english", [("圆钻戒指", "round diamond ring"), ("公主方钻耳环", "princess diamond earrings")])
def test_a_diamond_word_reads_as_its_english_phrase(chinese, english):
    zh, en = understand(chinese), understand(english)
    assert (zh.attributes, zh.styles) == (en.attributes, en.styles)


def test_a_phrase_ending_in_diamond_s_first_character_never_strands_the_second():
    """钻石 is diamond, and many phrases end in its first character (黑钻, 圆钻, 镶钻, 三钻...): the
    longest match takes the phrase, and "石" would be left over as a word of its own, losing the
    diamond. Each such phrase + 石 reads as one phrase that names the stone."""
    glossary = default_glossary()
    zh = json.loads((DEFAULT_FOLDER / "zh.json").read_text(encoding="utf-8"))
    phrases = [phrase for group in zh["entries"].values() for entry in group for phrase in entry["phrases"]]
    ending = [phrase for phrase in phrases + zh["filler"] if phrase.endswith("钻") and len(phrase) > 1]
    assert len(ending) >= 10
    for phrase in ending:
        understood = understand(phrase + "石", glossary)
        assert understood.residual == "", phrase
        assert understood.attributes.get("gemstone") in (("diamond",), ("cubic zirconia",)), phrase
