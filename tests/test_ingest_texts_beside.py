"""Ingest embeds a batch's item texts on a helper thread while the model thread runs the tower
pass (``Ingestor.texts_beside``): the same stored results as embedding them afterwards, and a
photo's error still the one reported."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from conftest import make_image
from jewelsearch.errors import BadImage
from jewelsearch.ingest.pipeline import NewItem


def _items() -> list[NewItem]:
    return [NewItem(make_image(seed=n), {"title": f"Opal ring {n % 3}", "category": "ring"},
                    source_path=f"/shop/{n}.png") for n in range(7)]


def _text_threads(encoder, monkeypatch) -> list[str]:
    """The names of the threads the text tower is called on, recorded from now on."""
    names: list[str] = []
    encode = encoder.encode_texts

    def recording(texts):
        names.append(threading.current_thread().name)
        return encode(texts)
    monkeypatch.setattr(encoder, "encode_texts", recording)
    return names


def _text_vectors(service, results) -> np.ndarray:
    key = service.state.ingestor.text_key
    return np.stack([service.catalog.embeddings.get(r.item_id, key) for r in results])


def test_the_texts_run_beside_the_tower_pass_and_store_what_they_stored_after_it(service, tiny_encoder, tmp_path,
                                                                                 monkeypatch):
    from jewelsearch.search.service import SearchService
    from jewelsearch.storage import Catalog
    names = _text_threads(tiny_encoder, monkeypatch)
    beside = service.add_items(_items())
    assert names and all(name.startswith("ingest-texts") for name in names)  # before: the calling thread
    (tmp_path / "after").mkdir()
    after_service = SearchService(Catalog.open(tmp_path / "after" / "catalog.db", tmp_path / "after" / "images"),
                                  tiny_encoder, tmp_path / "after" / "index")
    try:
        after_service.state.ingestor.texts_beside = False
        names.clear()
        after = after_service.add_items(_items())
        assert names == [threading.current_thread().name]
        assert [r.status for r in beside] == [r.status for r in after] == ["added"] * 7
        np.testing.assert_allclose(_text_vectors(service, beside), _text_vectors(after_service, after), atol=1e-6)
    finally:
        after_service.catalog.close()


def test_a_bad_photo_is_still_the_error_reported_and_a_skipped_one_writes_no_words(service):
    items = _items()
    items[3] = NewItem(b"\xff\xd8\xff not a jpeg", {"title": "Broken opal"}, source_path="/shop/broken.jpg")
    with pytest.raises(BadImage):
        service.add_items(items)
    assert service.catalog.items.count() == 0
    results = service.add_items(items, skip_bad=True)
    assert [r.status for r in results].count("failed") == 1 and results[3].status == "failed"
    written = [r for r in results if r.item_id is not None]
    assert len(_text_vectors(service, written)) == 6
