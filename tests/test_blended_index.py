"""The blended index (``search/blended_space.py``): one index over ``(1 − a)·image + a·text``
(``image`` for items without words) that text queries search instead of the image and item
text indexes apart. Same scores and ranking as the two-index way; kept in step by add, update,
delete and the pipelined ingest; rebuilt when ``text_field_weight`` changes; ``check`` finds a
missing, extra or stale blended vector; ``index rebuild`` remakes it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import make_image

from jewelsearch.index.persist import read_manifest
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search import blended_space
from jewelsearch.search.blended_space import blended_index_dir, blended_key
from jewelsearch.search.consistency import check
from jewelsearch.search.item_text_space import blended_semantic
from jewelsearch.search.options import HybridSettings
from jewelsearch.search.service import SearchService

WORDS = [{"title": "Oval blue sapphire pendant", "category": "pendant", "gemstone": "sapphire blue"},
         {"title": "Round diamond solitaire ring", "category": "ring", "metal": "platinum"},
         {"title": "Pearl drop earrings", "category": "earrings", "gemstone": "pearl"},
         {"title": "Rose gold hoop earrings", "category": "earrings", "metal": "rose gold"},
         {"title": "Emerald tennis bracelet", "category": "bracelet", "gemstone": "emerald"}]
QUERIES = ["oval sapphire pendant", "pearl earrings", "gold ring", "green bracelet", "velvet moonlight brooch"]


def _catalog(service, n_worded=5, n_photos=4, seed=0):
    items = [NewItem(make_image(seed=seed + i), dict(WORDS[i % len(WORDS)])) for i in range(n_worded)]
    items += [NewItem(make_image(seed=seed + 100 + i)) for i in range(n_photos)]
    return [r.item_id for r in service.add_items(items)]


def _expected_blend(service, item_id, weight):
    image = service.catalog.embeddings.get(item_id, service.encoder.model_id)
    text = service.catalog.embeddings.get(item_id, service.item_text.key)
    return image if text is None else (1 - weight) * image + weight * text


def _assert_in_step(service):
    space = service.blended
    stored = service.catalog.embeddings.ids_for(service.encoder.model_id)
    assert set(space.index.ids().tolist()) == stored
    for item in stored:
        np.testing.assert_allclose(space.index.vectors_for([item])[0], _expected_blend(service, item, space.weight),
                                   atol=1e-5)
    report = check(service)
    assert not (report.blended_index_only or report.blended_store_only or report.blended_stale)


def _answers(service, query):
    return [(card["id"], card["score"]) for card in service.query(text=query, k=20, collapse=False)["results"]]


def test_the_blended_index_is_made_beside_the_others_and_text_queries_use_it(service):
    _catalog(service)
    assert service.blended is not None and blended_space.uses_blended(service.state)
    assert service.stats()["blended"]["text_queries_use_it"] is True
    _assert_in_step(service)


def test_same_scores_and_ranking_as_the_two_index_way(service):
    ids = _catalog(service)
    state = service.state
    weight = state.hybrid.text_field_weight
    for query in QUERIES:
        vector = service.encoder.encode_texts([query])[0]
        one = blended_space.semantic_scores(vector, service.blended, 200, None, extra=ids[:2])
        (image_ids, image_sims), = service.index.search(vector, 200)
        two = blended_semantic(vector, service.index, service.item_text.index,
                               dict(zip(image_ids.tolist(), image_sims.tolist())), 50, weight, None)
        assert one.keys() == two.keys() == set(ids)
        for item in ids:
            assert one[item] == pytest.approx(two[item], abs=1e-5)
        # The whole answer, blended index against the two indexes (the same catalog, opened without it).
        blended_answer = _answers(service, query)
        blended = service.state.blended
        service.state.blended = None
        try:
            two_index_answer = _answers(service, query)
        finally:
            service.state.blended = blended
        assert [item for item, _ in blended_answer] == [item for item, _ in two_index_answer]
        np.testing.assert_allclose([s for _, s in blended_answer], [s for _, s in two_index_answer], atol=1e-5)


def test_add_update_and_delete_keep_it_in_step(service):
    ids = _catalog(service)
    service.update_item(ids[-1], {"title": "Heart opal brooch"})  # a photo-only item gains words
    service.update_item(ids[0], {"title": "Pear ruby pendant"})  # words change
    service.update_item(ids[1], {}, image_bytes=make_image(seed=999))  # the photo changes
    service.update_item(ids[2], {"title": None, "category": None, "gemstone": None})  # words go
    service.delete_item(ids[3])
    _assert_in_step(service)
    assert ids[3] not in service.blended.index


def test_pipelined_ingest_keeps_it_in_step(service):
    batches = [[NewItem(make_image(seed=200 + b * 10 + i), dict(WORDS[i]) if i % 2 else {}) for i in range(4)]
               for b in range(3)]
    results = [r for _, batch in service.ingest_batches(batches, decode_workers=2) for r in batch]
    assert all(r.status == "added" for r in results)
    _assert_in_step(service)
    # Re-ingesting one batch with changed words refreshes what changed.
    changed = [NewItem(item.image_bytes, dict(WORDS[(i + 1) % len(WORDS)])) for i, item in enumerate(batches[0])]
    list(service.ingest_batches([changed]))
    _assert_in_step(service)


def test_a_changed_weight_rebuilds_it_when_the_service_opens(settings, service, tiny_encoder):
    _catalog(service)
    service.save(force=True)
    saved = read_manifest(blended_index_dir(settings.index_dir))
    assert saved.model_id == blended_key(tiny_encoder.model_id, service.item_text.key, 0.75)
    same = SearchService(service.catalog, tiny_encoder, settings.index_dir)
    assert same.blended.manifest.created_at == saved.created_at  # loaded, not rebuilt
    half = SearchService(service.catalog, tiny_encoder, settings.index_dir,
                         hybrid=HybridSettings(text_field_weight=0.5))
    assert half.blended.weight == 0.5 and half.blended.manifest.created_at != saved.created_at
    assert read_manifest(blended_index_dir(settings.index_dir)).model_id.endswith("|0.5)")
    _assert_in_step(half)


def test_a_weight_changed_while_serving_falls_back_to_the_two_indexes(service):
    _catalog(service)
    service.hybrid = HybridSettings(text_field_weight=0.5)
    assert not blended_space.uses_blended(service.state)
    assert service.query(text="pearl earrings", k=3)["results"]


@pytest.mark.parametrize("options", [dict(hybrid=HybridSettings(text_field_weight=0.0)),
                                     dict(item_text_vectors=False), dict(blended_index=False)])
def test_no_blended_index_without_a_blend_to_make(settings, service, tiny_encoder, options):
    _catalog(service)
    other = SearchService(service.catalog, tiny_encoder, settings.index_dir, **options)
    assert other.blended is None and other.stats()["blended"] is None
    assert other.query(text="pearl earrings", k=3)["results"]
    assert check(other).ok


def test_check_finds_missing_and_stale_blended_vectors_and_repair_remakes_them(service):
    ids = _catalog(service)
    index = service.blended.index
    index.remove([ids[0]])
    index.add([ids[1]], np.ones((1, service.encoder.dim), np.float32))
    index.add([987654], np.ones((1, service.encoder.dim), np.float32))
    report = check(service)
    assert report.blended_store_only == [ids[0]] and report.blended_stale == [ids[1]]
    assert report.blended_index_only == [987654]
    assert report.vectors_need_rebuild and not report.ok
    check(service, repair=True)
    _assert_in_step(service)
    assert check(service).ok


def test_index_rebuild_remakes_it_from_the_stored_vectors(settings, service, tiny_encoder):
    ids = _catalog(service)
    service.blended.index.remove(ids)
    service.rebuild_index()
    _assert_in_step(service)
    assert read_manifest(blended_index_dir(settings.index_dir)).count == len(ids)


def test_a_home_from_before_the_blended_index_gets_one_when_it_opens(settings, service, tiny_encoder):
    before = SearchService(service.catalog, tiny_encoder, settings.index_dir, blended_index=False)
    ids = _catalog(before)
    before.save(force=True)
    # The fixture's service made an empty one before any item; a home from before has none at all.
    shutil.rmtree(blended_index_dir(settings.index_dir))
    assert read_manifest(blended_index_dir(settings.index_dir)) is None
    after = SearchService(service.catalog, tiny_encoder, settings.index_dir)
    assert len(after.blended.index) == len(ids)
    assert read_manifest(blended_index_dir(settings.index_dir)).count == len(ids)
    _assert_in_step(after)
