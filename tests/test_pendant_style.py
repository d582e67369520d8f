"""A piece the category heads read as a necklace is filled in as a pendant where the style head
says pendant (``recognize/pendant_style.py``); a category the shop gave is never changed."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_image

from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.recognize.pendant_style import PENDANT_STYLE_THRESHOLD
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.recognize.style_head import StyleHead
from jewelsearch.search.service import SearchService


class FixedRecognizer(Recognizer):
    """Reads every photo as a sure necklace in yellow gold with no stone, and gives the next of
    ``pendant_p`` as the style head's probability of "pendant" (the rest goes to "chain")."""

    def __init__(self, encoder, pendant_p):
        super().__init__(encoder)
        self.style_head = StyleHead(["pendant", "chain"], np.zeros(1), np.ones(1), np.zeros((1, 2)), np.zeros(2), 1,
                                    category_styles={"pendant": ["pendant"], "necklace": ["chain"]},
                                    fill_threshold=0.6)
        self.pendant_p = list(pendant_p)

    def recognize_embeddings(self, embeddings, pooled=None, subject="piece", attributes=None):
        out = []
        for _ in range(len(embeddings)):
            p = self.pendant_p.pop(0)
            styles = sorted([{"label": "pendant", "p": p}, {"label": "chain", "p": round(1 - p, 4)}],
                            key=lambda s: -s["p"])
            out.append({"category": [{"label": "necklace", "p": 0.97}], "metal": [{"label": "yellow gold", "p": 0.9}],
                        "gemstone": [{"label": "none", "p": 0.9}], "cut": [{"label": "none", "p": 0.9}],
                        "style": styles})
        return out


@pytest.fixture
def read(service):
    def ingest(pendant_p, fields=None):
        recognizer = FixedRecognizer(service.encoder, pendant_p)
        svc = SearchService(service.catalog, service.encoder, service.index_dir, recognizer=recognizer)
        results = svc.add_items([NewItem(make_image(seed=70 + i), dict(fields or {})) for i in range(len(pendant_p))])
        return svc, [svc.get_item(r.item_id) for r in results]
    return ingest


def test_a_necklace_the_style_head_calls_a_pendant_is_filled_in_as_a_pendant(read):
    sure, unsure = PENDANT_STYLE_THRESHOLD + 0.05, PENDANT_STYLE_THRESHOLD - 0.05
    svc, (pendant, necklace) = read([sure, unsure])
    assert pendant["category"] == "pendant"
    assert pendant["attributes"]["predicted"]["category"] == {"label": "pendant", "p": 0.97, "style_p": sure}
    assert necklace["category"] == "necklace"
    # The style then belongs to the category, so it is filled in where the head is sure enough.
    assert pendant["attributes"]["predicted"]["style"].get("filled", True) is (sure >= 0.6)
    # A photos-only pendant is found by a pendant query, before the necklace.
    assert [row["id"] for row in svc.query(text="pendant", k=2)["results"]][0] == pendant["id"]


def test_a_category_the_shop_gave_is_never_changed(read):
    _, (given,) = read([0.99], {"category": "necklace"})
    assert given["category"] == "necklace" and "category" not in given["attributes"].get("predicted", {})


def test_what_is_this_piece_reads_the_pendant_as_ingest_files_it(service):
    recognizer = FixedRecognizer(service.encoder, [0.95] * 5)
    svc = SearchService(service.catalog, service.encoder, service.index_dir, recognizer=recognizer)
    answer = svc.recognize(make_image(seed=80))
    assert answer["category"][0] == {"label": "pendant", "p": 0.97, "style_p": 0.95}
    assert [guess["label"] for guess in answer["style"]] == ["pendant"]
