"""Typo tolerance in query understanding (``query/spelling.py``, ``query/parser.py``)."""

from __future__ import annotations

import pytest

from jewelsearch.query.glossary import default_glossary
from jewelsearch.query.parser import understand
from jewelsearch.query.spelling import Speller, edit_distance, english_words


@pytest.mark.parametrize("typed, meant", [
    ("emrald ring", "emerald ring"), ("oval saphire pendant", "oval sapphire pendant"),
    ("rose gold rign", "rose gold ring"), ("perl earrings", "pearl earrings"),
    ("aquamarin braclet", "aquamarine bracelet"), ("diamnd studs", "diamond studs"),
    ("platnum solitare", "platinum solitaire"), ("earings", "earrings"),
])
def test_a_typo_is_read_as_the_word_it_misses(typed, meant):
    read, right = understand(typed), understand(meant)
    assert (read.attributes, read.styles) == (right.attributes, right.styles) and read.attributes
    assert read.corrected_text == meant and read.corrected
    assert right.corrected == () and right.corrected_text is None


@pytest.mark.parametrize("text", [
    "good ring",        # "good" is one letter from "gold"
    "king size ring",   # "king" from "ring"
    "back pendant",     # "back" from "black"
    "cute studs",       # "cute" from "cut"
    "mom ring",         # too short to guess
    "vintage ring",     # near nothing
])
def test_english_words_and_short_words_are_left_alone(text):
    assert understand(text).corrected == ()


def test_a_word_near_two_glossary_words_is_not_guessed():
    speller = Speller(["pear", "peal"], english=["the"])
    assert speller.correct("pearx") == "pear"
    assert speller.correct("peax") is None  # pear and peal, one edit each


def test_chinese_and_price_words_are_never_corrected():
    assert understand("蓝宝石吊坠 under $500").corrected == ()
    assert understand("ruby ring undr $500").corrected == ()  # not a glossary word's typo


def test_the_chip_keeps_the_words_typed_and_shows_the_word_read():
    chip = next(c for c in understand("emrald ring").chips if c["field"] == "gemstone")
    assert (chip["text"], chip["label"]) == ("emrald", "emerald")
    assert understand("emrald ring").as_dict()["corrected"] == {"emrald": "emerald"}


def test_without_the_english_vocabulary_nothing_is_corrected():
    assert Speller(default_glossary().words, english=[]).correct("emrald") is None
    assert len(english_words()) > 10_000


def test_edit_distance_counts_a_swap_as_one():
    assert edit_distance("rign", "ring") == 1 and edit_distance("ring", "rign") == 1
    assert edit_distance("emrald", "emerald") == 1 and edit_distance("", "ab") == 2
    assert edit_distance("tanzanit", "tanzanite") == 1 and edit_distance("aquamrin", "aquamarine") == 2


def test_a_corrected_word_that_matches_no_phrase_alone_is_searched_as_corrected():
    # "lazuli" is a glossary word only inside "lapis lazuli": alone it stays a residual word,
    # but the word index looks for "lazuli", not the typo.
    read = understand("lazli ring")
    assert read.residual == "lazuli" and "lazuli" in read.terms and "lazli" not in read.terms
