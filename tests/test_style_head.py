"""The style head: recognised styles reach photos-only items (filled only when sure and within
the piece's category, never over the shop's words), and the word index and attribute matching
find them ("halo ring", "光环戒指"). A model folder without the head recognises as before."""

import numpy as np
import pytest
import torch
from conftest import make_image

from jewelsearch.embed.vocab import CATEGORIES, CUTS, GEMSTONES, METALS
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.recognize.heads import AttributeHeads
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.recognize.style_head import StyleHead
from jewelsearch.search.service import SearchService
from jewelsearch.train.style_head import StylePhoto, fit_style_head

STYLES = ["solitaire", "halo", "stud", "hoop"]
CATEGORY_STYLES = {"ring": ["halo", "solitaire"], "earrings": ["hoop", "stud"]}


def _style_head(dim: int, pooled: int = 4, threshold: float = 0.6) -> StyleHead:
    rng = np.random.default_rng(0)
    return StyleHead(STYLES, np.zeros(dim + pooled, np.float32), np.ones(dim + pooled, np.float32),
                     rng.normal(size=(dim + pooled, len(STYLES))).astype(np.float32),
                     np.zeros(len(STYLES), np.float32), dim, 1.5, CATEGORY_STYLES, threshold)


def test_a_style_head_saves_loads_and_answers_the_same(tmp_path):
    head = _style_head(8)
    head.save(tmp_path)
    loaded = StyleHead.load(tmp_path)
    rng = np.random.default_rng(1)
    embeddings, pooled = rng.normal(size=(3, 8)), rng.normal(size=(3, 6))  # wider pooled: cut off
    np.testing.assert_allclose(loaded.probabilities(embeddings, pooled), head.probabilities(embeddings, pooled),
                               rtol=1e-5)
    assert loaded.category_styles == CATEGORY_STYLES and loaded.fill_threshold == 0.6
    assert not loaded.reads(None) and not loaded.reads(pooled[:, :3]) and loaded.reads(pooled)
    assert StyleHead.load(tmp_path / "nothing-here") is None


def test_a_style_is_filled_only_when_sure_and_within_the_category():
    head = _style_head(8)
    assert head.fill({"label": "halo", "p": 0.9}, "ring") == "halo"
    assert head.fill({"label": "halo", "p": 0.55}, "ring") is None      # unsure
    assert head.fill({"label": "hoop", "p": 0.99}, "ring") is None      # not a ring's style
    assert head.fill({"label": "halo", "p": 0.99}, "bracelet") is None  # a category it never saw
    assert head.fill({"label": "halo", "p": 0.99}, None) is None


def test_a_tower_without_pooled_maps_and_a_folder_without_the_head_recognise_as_before(tiny_encoder, tmp_path):
    # The tiny test tower (a ViT) exposes no maps: the head could never read its features.
    recognizer = Recognizer(tiny_encoder, style_head=_style_head(tiny_encoder.dim))
    assert recognizer.style_head is None
    assert "style" not in recognizer.probabilities(tiny_encoder.encode_texts(["x"]))
    assert load_recognizer(tiny_encoder).style_head is None  # no style_head.json in its folder


class StyledRecognizer(Recognizer):
    """Certain heads (ring, rose gold, no stone) plus a fixed style answer per photo recognised,
    in the order they are recognised (the tiny tower has no maps for a real head to read)."""

    def __init__(self, encoder, heads, style_head, styles: dict[int, tuple[str, float]]):
        super().__init__(encoder, heads)
        self.style_head = style_head
        self.styles = styles  # the order photos are recognised in -> (style, p)
        self.seen = 0

    def probabilities(self, embeddings, pooled=None, subject="piece", attributes=None):
        out = super().probabilities(embeddings, pooled, subject, attributes)
        rows = []
        for _ in range(len(embeddings)):
            label, p = self.styles[self.seen]
            self.seen += 1
            row = np.full(len(STYLES), (1 - p) / (len(STYLES) - 1), np.float32)
            row[STYLES.index(label)] = p
            rows.append(row)
        out["style"] = np.stack(rows)
        return out


def _certain_heads(dim: int, folder) -> AttributeHeads:
    vocabularies = {"category": list(CATEGORIES), "metal": list(METALS), "gemstone": list(GEMSTONES),
                    "cut": list(CUTS)}
    torch.manual_seed(0)
    heads = AttributeHeads(dim, vocabularies)
    with torch.no_grad():
        for attribute, label in {"category": "ring", "metal": "rose gold", "gemstone": "none",
                                 "cut": "none"}.items():
            heads.heads[attribute].bias[vocabularies[attribute].index(label)] = 50
    heads.save(folder)
    return AttributeHeads.load(folder)


@pytest.fixture
def styled(service, tmp_path):
    heads = _certain_heads(service.encoder.dim, tmp_path)
    answers = {0: ("halo", 0.9), 1: ("solitaire", 0.95), 2: ("halo", 0.5), 3: ("hoop", 0.99), 4: ("halo", 0.99),
               **{later: ("hoop", 0.6) for later in range(5, 10)}}  # photos recognised after ingest
    recognizer = StyledRecognizer(service.encoder, heads, _style_head(service.encoder.dim), answers)
    svc = SearchService(service.catalog, service.encoder, service.index_dir, recognizer=recognizer)
    results = svc.add_items([NewItem(make_image(seed=40 + i), fields) for i, fields in enumerate(
        [{}, {}, {}, {}, {"title": "Pearl strand necklace", "category": "necklace"}])])
    return svc, [r.item_id for r in results]


def test_ingest_fills_a_sure_style_in_the_category_as_predicted(styled):
    svc, ids = styled
    guesses = [svc.get_item(i)["attributes"]["predicted"].get("style") for i in ids]
    assert guesses[0] == {"label": "halo", "p": 0.9}
    assert guesses[1] == {"label": "solitaire", "p": 0.95}
    assert guesses[2]["filled"] is False  # below the head's threshold
    assert guesses[3]["filled"] is False  # a hoop is not a ring's style (the piece was read as a ring)
    assert guesses[4] is None             # the shop's title says the style: nothing guessed
    assert svc.catalog.items.ranking_rows([ids[0]])[ids[0]]["style"] == "halo"
    assert "style" not in svc.catalog.items.ranking_rows([ids[2]])[ids[2]]


@pytest.mark.parametrize("text", ["halo ring", "光环戒指"])
def test_a_photos_only_halo_ring_is_found_by_its_style(styled, text):
    svc, ids = styled
    found = [row["id"] for row in svc.query(text=text, k=5)["results"]]
    assert found[0] == ids[0]
    assert svc.catalog.lexical.search(["halo"], limit=5) and \
        [i for i, _ in svc.catalog.lexical.search(["halo"], limit=5)] == [ids[0]]


def test_what_is_this_piece_names_only_styles_of_the_piece_s_category(styled):
    svc, _ = styled
    answer = svc.recognize(make_image(seed=90))
    assert answer["category"][0]["label"] == "ring"
    # The head's top guess is a hoop (an earring style); a ring is shown a ring's styles only.
    assert answer["style"] and {guess["label"] for guess in answer["style"]} <= {"halo", "solitaire"}
    # A style too unlikely to say anything is not listed.
    svc.recognizer.styles.update({later: ("hoop", 0.97) for later in range(svc.recognizer.seen, svc.recognizer.seen + 5)})
    assert svc.recognize(make_image(seed=91))["style"] == []


def test_a_predicted_style_never_speaks_over_words_added_later(styled):
    svc, ids = styled
    svc.update_item(ids[0], {"title": "Pear peridot ring"})
    assert "style" not in svc.catalog.items.ranking_rows([ids[0]])[ids[0]]
    assert [i for i, _ in svc.catalog.lexical.search(["halo"], limit=5)] == []


def test_the_trainer_separates_styles_and_chooses_a_threshold_on_the_tuning_part():
    rng = np.random.default_rng(0)
    styles = ["solitaire", "halo", "hoop", "stud"] * 30
    categories = {"solitaire": "ring", "halo": "ring", "hoop": "earrings", "stud": "earrings"}
    photos = [StylePhoto(None, f"demo/images/{i:05d}.jpg", categories[s], s) for i, s in enumerate(styles)]
    centres = rng.normal(size=(4, 12)) * 3
    features = np.stack([centres[["solitaire", "halo", "hoop", "stud"].index(s)] + rng.normal(size=12)
                         for s in styles]).astype(np.float32)
    head = fit_style_head(features[:, :6], features[:, 6:], photos, [p.category for p in photos])
    assert head.category_styles == {"earrings": ["hoop", "stud"], "ring": ["halo", "solitaire"]}
    assert head.summary["tuning_accuracy"] >= 0.9
    assert head.fill_threshold in {s["threshold"] for s in head.summary["threshold_sweep"]}
    chosen = next(s for s in head.summary["threshold_sweep"] if s["threshold"] == head.fill_threshold)
    assert chosen["precision"] >= 0.9


@pytest.mark.slow
def test_the_default_model_names_styles_of_photos_only_demo_pieces(tmp_path):
    """The shipped head through the real ingest: four demo photos from the style head's tuning
    fifth (never fitted on), loaded without words."""
    from jewelsearch.config import Settings
    from jewelsearch.ingest.demo import demo_dir
    from jewelsearch.search.wiring import open_service
    service = open_service(Settings(home=tmp_path / "home"))
    try:
        photos = {"halo": "00123", "solitaire": "00072", "hoop": "00067", "tennis": "00188"}
        results = service.add_items([NewItem((demo_dir() / "images" / f"{name}.jpg").read_bytes(), {})
                                     for name in photos.values()])
        ids = dict(zip(photos, (r.item_id for r in results)))
        for style, item_id in ids.items():
            assert service.get_item(item_id)["attributes"]["predicted"]["style"]["label"] == style
        for text in ("halo ring", "光环戒指"):
            assert service.query(text=text, k=4)["results"][0]["id"] == ids["halo"]
        assert service.query(text="tennis bracelet", k=4)["results"][0]["id"] == ids["tennis"]
    finally:
        service.catalog.close()
