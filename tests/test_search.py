import numpy as np
import pytest
from conftest import make_image

from jewelsearch.errors import BadImage, InvalidInput, ItemNotFound, ModelMismatch
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.consistency import check
from jewelsearch.search.params import parse_filters
from jewelsearch.search.service import SearchService


def add(service, n=6, **fields):
    items = [NewItem(make_image(seed=i), dict({"title": f"item {i}", "price": 10 * i}, **fields))
             for i in range(n)]
    return [r.item_id for r in service.add_items(items)]


def test_add_stores_row_image_embedding_and_index(service):
    ids = add(service, 3, category="ring")
    assert service.catalog.items.count() == 3
    assert len(service.index) == 3
    for item_id in ids:
        row = service.catalog.items.get(item_id)
        assert service.catalog.images.path_for(row["image_path"]).is_file()
        assert service.catalog.embeddings.get(item_id, service.encoder.model_id) is not None


def test_bad_image_in_a_batch_writes_nothing(service):
    items = [NewItem(make_image(seed=1), {"title": "ok"}), NewItem(b"junk", {"title": "bad"})]
    with pytest.raises(BadImage):
        service.add_items(items)
    assert service.catalog.items.count() == 0 and len(service.index) == 0


def test_same_image_is_embedded_once(service, monkeypatch):
    add(service, 1)
    calls = []
    original = service.encoder.encode_images
    monkeypatch.setattr(service.encoder, "encode_images", lambda ims: calls.append(1) or original(ims))
    service.add_items([NewItem(make_image(seed=0), {"title": "same photo, new item"})])
    assert calls == [] and service.catalog.items.count() == 2


def test_query_by_item_excludes_itself_and_ranks_by_score(service):
    ids = add(service, 6)
    result = service.query(item_id=ids[0], k=5)["results"]
    assert ids[0] not in [r["id"] for r in result]
    scores = [r["score"] for r in result]
    assert scores == sorted(scores, reverse=True) and len(result) == 5


def test_query_by_image_finds_the_same_image_first(service):
    ids = add(service, 6)
    top = service.query(image_bytes=make_image(seed=3), k=1)["results"][0]
    assert top["id"] == ids[3] and top["score"] == pytest.approx(1.0, abs=1e-4)


def test_image_plus_text_is_a_weighted_sum(service):
    add(service, 6)
    image = make_image(seed=2)
    both = service.query(image_bytes=image, text="rose gold", k=6, text_weight=0.5)["results"]
    img_vec = service.encoder.encode_images([service.ingestor.decode(image).image])[0]
    txt_vec = service.encoder.encode_texts(["rose gold"])[0]
    query = 0.5 * img_vec + 0.5 * txt_vec
    query /= np.linalg.norm(query)
    vectors = {r["id"]: service.catalog.embeddings.get(r["id"], service.encoder.model_id) for r in both}
    for row in both:
        assert row["score"] == pytest.approx(float(vectors[row["id"]] @ query), abs=1e-4)


def test_filters_apply(service):
    add(service, 4, category="ring", metal="gold")
    add(service, 4, category="necklace", metal="silver")
    results = service.query(text="x", k=10, filters=parse_filters({"category": "necklace"}))["results"]
    assert len(results) == 4 and {r["category"] for r in results} == {"necklace"}
    cheap = service.query(text="x", k=10, filters=parse_filters({"max_price": "15"}))["results"]
    assert all(r["price"] <= 15 for r in cheap) and len(cheap) == 4


def test_query_needs_something(service):
    with pytest.raises(InvalidInput):
        service.query(k=3)


def test_unknown_item(service):
    with pytest.raises(ItemNotFound):
        service.query(item_id=999, k=3)


def test_delete_removes_everywhere(service):
    ids = add(service, 3)
    path = service.catalog.images.path_for(service.catalog.items.get(ids[0])["image_path"])
    service.delete_item(ids[0])
    assert ids[0] not in service.index
    assert not path.exists()
    with pytest.raises(ItemNotFound):
        service.get_item(ids[0])


def test_update_image_reembeds(service):
    ids = add(service, 3)
    before = service.catalog.embeddings.get(ids[0], service.encoder.model_id)
    service.update_item(ids[0], {"title": "new"}, make_image(seed=99))
    after = service.catalog.embeddings.get(ids[0], service.encoder.model_id)
    assert not np.allclose(before, after)
    assert service.query(image_bytes=make_image(seed=99), k=1)["results"][0]["id"] == ids[0]
    assert service.get_item(ids[0])["title"] == "new"


def test_update_image_removes_the_old_file_only_when_no_item_shows_it(service):
    ids = add(service, 2)
    shared = service.add_items([NewItem(make_image(seed=1), {"title": "same photo as item 1"})])[0].item_id
    first, second = (service.catalog.items.get(i)["image_path"] for i in ids)
    service.update_item(ids[0], {"title": "new photo"}, make_image(seed=98))
    service.update_item(ids[1], {"title": "new photo too"}, make_image(seed=97))
    assert not service.catalog.images.path_for(first).exists()
    assert service.catalog.images.path_for(second).exists()  # the third item still shows it
    assert service.catalog.items.get(shared)["image_path"] == second
    assert check(service).ok


def test_reopen_uses_saved_index_when_in_agreement(service):
    add(service, 4)
    service.save()
    again = SearchService(service.catalog, service.encoder, service.index_dir)
    assert not again.rebuilt_on_open and len(again.index) == 4


def test_index_missing_a_write_is_rebuilt_from_store_without_encoding(service, monkeypatch):
    add(service, 4)
    service.save()
    add(service, 2)  # committed to the store, index not saved: like a crash before the save
    monkeypatch.setattr(service.encoder, "encode_images",
                        lambda images: pytest.fail("rebuild must not re-encode"))
    again = SearchService(service.catalog, service.encoder, service.index_dir)
    assert again.rebuilt_on_open and len(again.index) == 6


def test_other_model_catalog_says_so_until_rebuilt(service, tiny_encoder):
    add(service, 3)
    with service.catalog.database.write() as conn:
        # Every vector the catalog holds, each further space's included ("model#space"), as
        # another model would have written them.
        conn.execute("UPDATE embeddings SET model_id = 'some-other-model' || substr(model_id, instr(model_id, '#')) "
                     "WHERE instr(model_id, '#') > 0")
        conn.execute("UPDATE embeddings SET model_id = 'some-other-model' WHERE instr(model_id, '#') = 0")
        service.catalog.database.bump_version(conn)
    again = SearchService(service.catalog, service.encoder, service.index_dir)
    with pytest.raises(ModelMismatch, match="index rebuild"):
        again.query(text="ring", k=3)
    again.rebuild_index()
    assert len(again.index) == 3
    assert len(again.query(text="ring", k=3)["results"]) == 3


def test_events_and_recommendations(service):
    ids = add(service, 8)
    service.record_event({"user_id": "ann", "item_id": ids[0], "kind": "purchase"})
    service.record_event({"user_id": "ann", "item_id": ids[1], "kind": "view"})
    recs = service.recommend("ann", 5)["results"]
    assert ids[0] not in [r["id"] for r in recs]
    assert len(recs) == 5
    assert all(r["reasons"] and r["reasons"][0]["item_id"] in ids[:2] for r in recs)


def test_cold_start_gets_popular_items(service):
    ids = add(service, 5)
    for user in ("a", "b", "c"):
        service.record_event({"user_id": user, "item_id": ids[4], "kind": "purchase"})
    recs = service.recommend("newcomer", 3)["results"]
    assert recs[0]["id"] == ids[4] and recs[0]["reasons"][0]["type"] == "popular"
    assert len(recs) == 3


def test_event_for_unknown_item_is_not_stored(service):
    with pytest.raises(ItemNotFound):
        service.record_event({"user_id": "u", "item_id": 12345, "kind": "view"})
    assert service.catalog.events.count() == 0


def test_grouped_settings_keep_the_configured_defaults():
    from jewelsearch.config import Settings
    from jewelsearch.recommend import BlendWeights
    from jewelsearch.search.options import IndexSettings, Limits, RecommendationSettings
    defaults = Settings()
    assert Limits() == Limits(max_upload_bytes=defaults.max_upload_bytes, max_image_pixels=defaults.max_image_pixels,
                              max_text_chars=defaults.max_text_chars, max_k=defaults.max_k)
    assert IndexSettings() == IndexSettings(kind=defaults.index_kind,
                                            memory_budget_bytes=defaults.index_memory_budget_mb << 20)
    assert RecommendationSettings() == RecommendationSettings(
        blend_weights=BlendWeights(), half_life_days=defaults.half_life_days,
        popularity_half_life_days=defaults.popularity_half_life_days,
        recently_seen_days=defaults.recently_seen_days, visit_half_life_hours=defaults.visit_half_life_hours)


def test_grouped_settings_reach_the_service(service):
    from jewelsearch.search.options import IndexSettings, RecommendationSettings
    add(service, 3)
    again = SearchService(service.catalog, service.encoder, service.index_dir,
                          index_settings=IndexSettings(kind="hnsw"),
                          recommendation=RecommendationSettings(recently_seen_days=3, half_life_days=2))
    assert again.rebuilt_on_open and again.index.kind == "hnsw"  # the saved flat index is not that kind
    assert again.recently_seen_days == 3 and again.half_life_days == 2 and again.visit_half_life_hours == 4


def test_swapping_a_collaborator_on_the_service_reaches_every_request(service):
    from jewelsearch.recognize.recognizer import Recognizer
    with pytest.raises(InvalidInput, match="not available"):
        service.recognize(make_image(seed=1))
    service.recognizer = Recognizer(service.encoder)  # zero-shot: the tiny test model has no heads
    assert service.state.recognizer is service.recognizer
    assert service.recognize(make_image(seed=1))["method"] == service.recognizer.method
    add(service, 2)
    service.index = service.index.compacted()
    assert service.state.index is service.index and len(service.index) == 2
