"""A shop's own glossary folder (``glossary_dir``): its synonyms or a language of its own, read
with the packaged glossaries; a file that cannot be used stops the start with its name."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_image

from jewelsearch.cli import main as cli
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.query import GlossaryError, load_glossary, understand
from jewelsearch.search.service import SearchService
from jewelsearch.search.wiring import SettingsError, glossary_for, open_service
from jewelsearch.storage import Catalog

SPANISH = {
    "language": "es",
    "about": "A shop's Spanish words, as a test.",
    "entries": {
        "categories": [{"phrases": ["anillo", "anillos", "sortija"], "category": ["ring"]},
                       {"phrases": ["pendientes", "aretes"], "category": ["earrings"]}],
        "metals": [{"phrases": ["oro rosa"], "metal": ["rose gold"]}, {"phrases": ["plata"], "metal": ["silver"]}],
        "gemstones": [{"phrases": ["zafiro"], "family": "sapphire"}],
    },
    "filler": ["de", "con", "en"],
}


def write(folder, name, document):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return folder


def test_a_shops_language_is_read_with_the_packaged_ones(tmp_path):
    glossary = load_glossary(extra=write(tmp_path / "words", "es.json", SPANISH))
    reading = understand("anillo de oro rosa con zafiro", glossary)
    assert reading.attributes["category"] == ("ring",) and reading.attributes["metal"] == ("rose gold",)
    assert "sapphire blue" in reading.attributes["gemstone"]
    assert reading.language == "es"
    assert understand("oval sapphire pendant", glossary).attributes["stone_shape"] == ("oval",)  # English kept
    assert understand("椭圆蓝宝石吊坠", glossary).attributes["category"] == ("pendant",)  # Chinese kept


@pytest.mark.parametrize("name, document, message", [
    ("clash.json", {"language": "xx", "entries": {"c": [{"phrases": ["ring"], "category": ["necklace"]}]}},
     r"clash\.json: c entry 0 \('ring'\).*ring.*already means something else"),
    ("bad.json", {"language": "es", "entries": {"c": [{"phrases": ["anillo"], "category": ["spaceship"]}]}},
     r"bad\.json.*spaceship"),
    ("broken.json", None, r"broken\.json: cannot read glossary"),
])
def test_a_file_that_cannot_be_used_is_named(tmp_path, name, document, message):
    folder = tmp_path / "words"
    if document is None:
        folder.mkdir()
        (folder / name).write_text("{not json", encoding="utf-8")
    else:
        write(folder, name, document)
    with pytest.raises(GlossaryError, match=message):
        load_glossary(extra=folder)


def test_a_missing_or_empty_folder_is_refused(tmp_path):
    with pytest.raises(GlossaryError, match="does not exist"):
        load_glossary(extra=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GlossaryError, match="no glossary files"):
        load_glossary(extra=tmp_path / "empty")


def test_the_service_reads_queries_with_the_shops_words(settings, tiny_encoder, tmp_path):
    settings = dataclasses.replace(settings, glossary_dir=str(write(tmp_path / "words", "es.json", SPANISH)))
    settings.home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.open(settings.db_path, settings.images_dir)
    try:
        service = SearchService(catalog, tiny_encoder, settings.index_dir, glossary=glossary_for(settings))
        service.add_items([NewItem(make_image(seed=500 + i), row) for i, row in enumerate([
            {"title": "Rose gold sapphire ring", "category": "ring", "metal": "rose gold", "gemstone": "sapphire blue"},
            {"title": "Silver hoop earrings", "category": "earrings", "metal": "silver"}])])
        payload = service.query(text="anillo de oro rosa", k=2)
        assert payload["understood"]["attributes"] == {"category": ["ring"], "metal": ["rose gold"]}
        assert payload["results"][0]["title"] == "Rose gold sapphire ring"
    finally:
        catalog.close()


def test_a_bad_folder_stops_the_service_and_the_cli_before_the_model_loads(settings, tmp_path, monkeypatch):
    broken = write(tmp_path / "words", "es.json", {"language": "es", "entries": {"c": "not a list"}})
    bad = dataclasses.replace(settings, glossary_dir=str(broken))
    with pytest.raises(SettingsError, match=r"glossary_dir: .*es\.json"):
        open_service(bad)
    monkeypatch.setenv("JEWELSEARCH_GLOSSARY_DIR", str(tmp_path / "nowhere"))
    Catalog.open(settings.db_path, settings.images_dir).close()
    result = CliRunner().invoke(cli, ["--home", str(settings.home), "suggest", "ri"])
    assert result.exit_code == 1 and "glossary_dir" in result.output and "does not exist" in result.output


EXAMPLE = Path(__file__).parents[1] / "docs" / "examples" / "glossary"


@pytest.mark.parametrize("text, attributes, max_price", [
    ("anillo de oro rosa con zafiro", {"category": ("ring",), "metal": ("rose gold",)}, None),
    ("pendientes de perlas en plata", {"category": ("earrings",), "metal": ("silver",), "gemstone": ("pearl",)}, None),
    ("colgante corazón rubí menos de 500 €", {"category": ("pendant",), "gemstone": ("ruby",),
                                             "stone_shape": ("heart",)}, 500.0),
    ("collar de oro blanco", {"category": ("necklace",), "metal": ("white gold",)}, None),
])
def test_the_example_spanish_glossary_reads_spanish(text, attributes, max_price):
    reading = understand(text, load_glossary(extra=EXAMPLE))
    assert reading.language == "es" and reading.max_price == max_price
    assert all(reading.attributes.get(field) == values for field, values in attributes.items())


def test_the_example_leaves_english_and_chinese_readings_as_they_were():
    plain, with_spanish = load_glossary(), load_glossary(extra=EXAMPLE)
    for text in ["oval sapphire pendant", "pearl earrings", "rose gold ring under $500", "white gold hoops",
                 "椭圆蓝宝石吊坠", "珍珠耳环", "900美元以下的钻石戒指", "blue stone pendant", "eternity band"]:
        a, b = understand(text, plain), understand(text, with_spanish)
        assert (a.attributes, a.styles, a.terms, a.max_price) == (b.attributes, b.styles, b.terms, b.max_price), text
