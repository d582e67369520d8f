"""The query-text vector cache (``embed.text_cache``)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from jewelsearch.embed.text_cache import TextVectorCache


class CountingEncoder:
    def __init__(self):
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def encode_texts(self, texts):
        with self.lock:
            self.calls.extend(texts)
        # A distinct, deterministic vector per text.
        rows = [np.random.default_rng(sum(map(ord, t)) + len(t)).normal(size=8) for t in texts]
        return np.stack([r / np.linalg.norm(r) for r in rows]).astype(np.float32)


def test_a_repeated_text_is_encoded_once_and_gets_the_same_vector():
    encoder = CountingEncoder()
    cache = TextVectorCache(encoder.encode_texts, size=10)
    first = cache.vector("oval sapphire pendant")
    again = cache.vector("oval sapphire pendant")
    assert encoder.calls == ["oval sapphire pendant"]
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, encoder.encode_texts(["oval sapphire pendant"])[0])
    assert (cache.hits, cache.misses) == (1, 1)


def test_cached_vectors_cannot_be_changed_by_a_caller():
    cache = TextVectorCache(CountingEncoder().encode_texts, size=10)
    vector = cache.vector("gold ring")
    with pytest.raises(ValueError):
        vector *= 2


def test_the_least_recently_asked_text_is_dropped_first():
    encoder = CountingEncoder()
    cache = TextVectorCache(encoder.encode_texts, size=2)
    cache.vector("a")
    cache.vector("b")
    cache.vector("a")  # "b" is now the oldest
    cache.vector("c")
    assert len(cache) == 2
    cache.vector("a")
    cache.vector("b")
    assert encoder.calls == ["a", "b", "c", "b"]


def test_size_zero_keeps_nothing():
    encoder = CountingEncoder()
    cache = TextVectorCache(encoder.encode_texts, size=0)
    cache.vector("x")
    cache.vector("x")
    assert len(cache) == 0 and encoder.calls == ["x", "x"]


def test_a_negative_size_is_refused():
    with pytest.raises(ValueError):
        TextVectorCache(CountingEncoder().encode_texts, size=-1)


def test_threads_sharing_the_cache_get_the_encoders_vectors_and_it_stays_bounded():
    encoder = CountingEncoder()
    cache = TextVectorCache(encoder.encode_texts, size=16)
    texts = [f"query {i % 40}" for i in range(400)]
    wrong = []

    def ask(chunk):
        for text in chunk:
            if not np.array_equal(cache.vector(text), encoder.encode_texts([text])[0]):
                wrong.append(text)

    threads = [threading.Thread(target=ask, args=(texts[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong and len(cache) <= 16


def test_a_search_repeated_with_another_filter_reuses_the_text_vector(service):
    from conftest import make_image

    from jewelsearch.ingest.pipeline import NewItem
    from jewelsearch.search.params import parse_filters
    service.add_items([NewItem(make_image(seed=i), {"title": f"item {i}", "category": "ring" if i % 2 else "necklace"})
                       for i in range(6)])
    calls = []
    encode = service.encoder.encode_texts
    service.text_vectors._encode_texts = lambda texts: calls.append(list(texts)) or encode(texts)
    everything = service.query(text="rose gold ring", k=6)["results"]
    rings = service.query(text="rose gold ring", k=6, filters=parse_filters({"category": "ring"}))["results"]
    again = service.query(text="rose gold ring", k=6)["results"]
    assert calls == [["rose gold ring"]]
    assert again == everything
    assert [r["id"] for r in rings] == [r["id"] for r in everything if r["category"] == "ring"]


def test_a_negative_cache_size_is_a_settings_error(settings):
    import dataclasses

    from jewelsearch.search.wiring import SettingsError, open_service
    with pytest.raises(SettingsError, match="text_cache_size"):
        open_service(dataclasses.replace(settings, text_cache_size=-1))


def test_keys_are_cut_where_the_encoder_cuts_so_long_texts_cannot_grow_the_cache():
    encoder = CountingEncoder()
    cache = TextVectorCache(encoder.encode_texts, size=4, max_chars=5)
    cache.vector("abcde" + "x" * 10_000)
    cache.vector("abcde" + "y" * 10_000)
    assert encoder.calls == ["abcde"] and len(cache) == 1


def test_recommendations_and_explanations_steered_by_a_cached_text_work_twice(service):
    # The cached vector is read-only: a second request with the same words must not trip on it.
    from conftest import make_image

    from jewelsearch.ingest.pipeline import NewItem
    ids = [r.item_id for r in service.add_items([NewItem(make_image(seed=i), {"title": f"item {i}"})
                                                  for i in range(8)])]
    service.record_event({"user_id": "u", "item_id": ids[0], "kind": "like"})
    first = service.recommend("u", k=5, text="gold hoops")["results"]
    second = service.recommend("u", k=5, text="gold hoops")["results"]
    assert [r["id"] for r in first] == [r["id"] for r in second] and first
    assert service.text_vectors.hits >= 1
    one = service.explain(ids[1], text="gold hoops")
    two = service.explain(ids[1], text="gold hoops")
    assert one["similarity"] == two["similarity"]
    assert np.array_equal(one["heatmap"], two["heatmap"])
