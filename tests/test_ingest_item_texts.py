"""Item text vectors during ingest (``ingest/item_texts.py``): each distinct text embedded once
across batches, the same vectors as embedding each batch on its own."""

from __future__ import annotations

import numpy as np
import pytest

from jewelsearch.embed.item_text import encode_item_texts
from jewelsearch.ingest.item_texts import ItemTextVectors


class CountingTower:
    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return np.stack([np.full(4, float(len(t)), np.float32) + np.arange(4, dtype=np.float32) for t in texts])


def test_a_text_seen_in_an_earlier_batch_is_not_embedded_again():
    tower = CountingTower()
    cache = ItemTextVectors(tower)
    first = cache.vectors(["Gold ring", "", "Silver hoop", "Gold ring"])
    second = cache.vectors(["Silver hoop", "Opal pendant", ""])
    assert tower.calls == [["Gold ring", "Silver hoop"], ["Opal pendant"]] and cache.encoded == 3
    assert list(first) == ["Gold ring", "Silver hoop"] and list(second) == ["Silver hoop", "Opal pendant"]
    for text, vector in {**first, **second}.items():
        np.testing.assert_array_equal(vector, encode_item_texts(CountingTower(), [text])[text])
    assert cache.vectors(["", ""]) == {} and len(tower.calls) == 2


def test_the_cache_keeps_only_the_most_recent_texts():
    tower = CountingTower()
    cache = ItemTextVectors(tower, size=2)
    cache.vectors(["a", "bb"])
    cache.vectors(["a"])  # "a" is now the most recent
    cache.vectors(["ccc"])  # evicts "bb"
    cache.vectors(["a", "bb"])
    assert tower.calls == [["a", "bb"], ["ccc"], ["bb"]]
    assert ItemTextVectors(tower, size=0).vectors(["a"])["a"].shape == (4,)
    with pytest.raises(ValueError):
        ItemTextVectors(tower, size=-1)


def test_a_non_finite_text_vector_is_refused_and_not_kept():
    from jewelsearch.errors import InvalidInput
    cache = ItemTextVectors(lambda texts: np.full((len(texts), 4), np.nan, np.float32))
    with pytest.raises(InvalidInput):
        cache.vectors(["Broken"])
    assert cache.encoded == 0 and len(cache._vectors) == 0


def test_ingest_embeds_a_shared_title_once_and_stores_the_same_vector(service):
    from conftest import make_image
    from jewelsearch.embed.item_text import text_space_id
    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.storage.embeddings import space_key
    ingestor = service.state.ingestor
    sizes = ["Gold band ring", "Gold band ring", "Pearl drop earrings"]
    batches = [[NewItem(make_image(seed=n), {"title": title})] for n, title in enumerate(sizes)]
    list(service.ingest_batches(batches))
    assert ingestor.item_texts.encoded == 2  # the second band ring reused the first one's vector
    key = space_key(ingestor.encoder.model_id, text_space_id())
    stored = [np.frombuffer(blob, np.float32) for (blob,) in service.catalog.database.conn.execute(
        "SELECT vector FROM embeddings WHERE model_id = ? ORDER BY item_id", (key,))]
    alone = encode_item_texts(ingestor.encoder.encode_texts, sizes)
    assert len(stored) == 3
    for vector, title in zip(stored, sizes):
        assert float(np.abs(vector - alone[title]).max()) <= 1e-5


def test_a_reingest_that_leaves_the_words_as_they_were_reuses_the_stored_vector(service):
    from conftest import make_image
    from jewelsearch.embed.item_text import text_space_id
    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.storage.embeddings import space_key
    ingestor = service.state.ingestor
    key = space_key(ingestor.encoder.model_id, text_space_id())
    first = [NewItem(make_image(seed=1), {"title": "Gold band ring", "price": 100}, source_path="/s/band.png"),
             NewItem(make_image(seed=2), {"title": "Pearl studs", "price": 50}, source_path="/s/studs.png")]
    list(service.ingest_batches([first]))
    before = {i: service.catalog.embeddings.get(i, key) for i in (1, 2)}
    ingestor.item_texts = type(ingestor.item_texts)(ingestor.encoder.encode_texts)  # as a new run starts
    again = [NewItem(make_image(seed=1), {"title": "Gold band ring", "price": 90}, source_path="/s/band.png"),
             NewItem(make_image(seed=3), {"title": "Pearl studs", "price": 50}, source_path="/s/studs.png"),
             NewItem(make_image(seed=4), {"title": "Silver cuff"}, source_path="/s/cuff.png")]
    statuses = [r.status for _, results in service.ingest_batches([again]) for r in results]
    assert statuses == ["updated", "updated", "added"]
    assert ingestor.item_texts.encoded == 1  # only the new item's words went through the text tower
    for item_id in (1, 2):
        np.testing.assert_array_equal(service.catalog.embeddings.get(item_id, key), before[item_id])
    changed = [NewItem(make_image(seed=1), {"title": "Gold band ring, brushed"}, source_path="/s/band.png")]
    list(service.ingest_batches([changed]))
    assert ingestor.item_texts.encoded == 2
    fresh = encode_item_texts(ingestor.encoder.encode_texts, ["Gold band ring, brushed"])["Gold band ring, brushed"]
    assert float(np.abs(service.catalog.embeddings.get(1, key) - fresh).max()) <= 1e-5
