"""The item text vector beside the image vector: its recipe, its storage in the item's
transaction under ``model_id#text-<recipe>``, refresh on update, removal on delete, the
migration of an existing catalog by ``index rebuild``, ``check``, and text search ranking by
``(1 - a) * image_sim + a * text_field_sim``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import make_image

from jewelsearch.embed.item_text import item_text, text_space_id
from jewelsearch.errors import InvalidInput
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.consistency import check
from jewelsearch.search.item_text_space import item_text_key
from jewelsearch.search.options import HybridSettings
from jewelsearch.search.service import SearchService
from jewelsearch.storage import Catalog
from jewelsearch.storage.embeddings import space_key

TITLED = {"title": "Oval blue sapphire pendant", "category": "pendant", "metal": "silver",
          "gemstone": "sapphire blue", "stone_shape": "oval"}


def _text_vector(service, item_id):
    return service.catalog.embeddings.get(item_id, service.item_text.key)


def _expected(service, text):
    return service.encoder.encode_texts([text])[0]


def test_recipe_reads_title_and_given_attributes_not_predictions_nor_description():
    row = dict(TITLED, description="A long description", attributes={
        "predicted": {"metal": {"label": "silver", "p": 0.9}}})
    assert item_text(row) == "Oval blue sapphire pendant. pendant, blue sapphire, oval cut"
    assert item_text({"gemstone": "none", "title": "  "}) == ""
    assert text_space_id().startswith("text-") and len(text_space_id()) == len("text-") + 12


def test_text_vector_is_stored_with_the_item_under_the_model_space(service):
    titled, bare = service.add_items([NewItem(make_image(seed=1), TITLED), NewItem(make_image(seed=2))])
    key = service.item_text.key
    assert key == space_key(service.encoder.model_id, text_space_id()) == item_text_key(service.encoder.model_id)
    row = service.catalog.items.get(titled.item_id)
    np.testing.assert_allclose(_text_vector(service, titled.item_id), _expected(service, item_text(row)), atol=1e-5)
    # A photo with no words of the shop's has no text vector (recognition's guesses are not words).
    assert _text_vector(service, bare.item_id) is None
    assert titled.item_id in service.item_text.index and bare.item_id not in service.item_text.index
    # Text vectors are one of the model's spaces, not another model's embeddings.
    assert service.encoder.model_id in service.catalog.embeddings.model_ids()
    assert key not in service.catalog.embeddings.model_ids()
    assert not service.stats()["other_models"]


def test_a_failed_text_embedding_writes_nothing(service, monkeypatch):
    monkeypatch.setattr(service.encoder, "encode_texts",
                        lambda texts: np.full((len(texts), service.encoder.dim), np.nan, np.float32))
    with pytest.raises(InvalidInput):
        service.add_items([NewItem(make_image(seed=3), TITLED)])
    assert service.catalog.items.count() == 0 and len(service.index) == 0 and len(service.item_text.index) == 0


def test_updating_words_refreshes_the_text_vector_and_clearing_them_drops_it(service):
    (added,) = service.add_items([NewItem(make_image(seed=4), TITLED)])
    item_id = added.item_id
    before = _text_vector(service, item_id)
    service.update_item(item_id, {"title": "Round ruby ring", "category": "ring", "gemstone": "ruby",
                                  "stone_shape": "round"})
    after = _text_vector(service, item_id)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _expected(service, "Round ruby ring. ring, silver, ruby, round cut"), atol=1e-5)
    np.testing.assert_allclose(service.item_text.index.vectors_for([item_id])[0], after, atol=1e-6)
    # A new photo keeps the words' vector in step too.
    service.update_item(item_id, {"title": "Round ruby band"}, image_bytes=make_image(seed=5))
    np.testing.assert_allclose(_text_vector(service, item_id),
                               _expected(service, "Round ruby band. ring, silver, ruby, round cut"), atol=1e-5)


def test_clearing_the_only_words_drops_the_text_vector(service):
    (added,) = service.add_items([NewItem(make_image(seed=8), {"title": "Plain band"})])
    assert added.item_id in service.item_text.index
    service.update_item(added.item_id, {"title": ""})  # attribute values cannot be cleared, a title can
    assert _text_vector(service, added.item_id) is None and added.item_id not in service.item_text.index


def test_deleting_an_item_removes_its_text_vector(service):
    (added,) = service.add_items([NewItem(make_image(seed=6), TITLED)])
    service.delete_item(added.item_id)
    assert _text_vector(service, added.item_id) is None
    assert added.item_id not in service.item_text.index
    assert service.catalog.embeddings.count(service.item_text.key) == 0


def test_reingesting_changed_fields_refreshes_the_text_vector(service):
    image = make_image(seed=7)
    (first,) = service.add_items([NewItem(image, TITLED, source_path="a.png")])
    (again,) = service.add_items([NewItem(image, dict(TITLED, title="Pear blue sapphire pendant"),
                                          source_path="a.png")])
    assert again.status == "updated" and again.item_id == first.item_id
    row = service.catalog.items.get(first.item_id)
    np.testing.assert_allclose(_text_vector(service, first.item_id), _expected(service, item_text(row)), atol=1e-5)


def test_index_rebuild_fills_missing_text_vectors_and_drops_earlier_recipes(settings, service, tiny_encoder):
    added = service.add_items([NewItem(make_image(seed=10 + i), dict(TITLED, title=f"Pendant {i}"))
                               for i in range(3)] + [NewItem(make_image(seed=20))])
    service.save(force=True)
    # A catalog from before text vectors: none stored; one from an earlier recipe lingers.
    catalog = service.catalog
    old_key = space_key(tiny_encoder.model_id, "text-000000000000")
    with catalog.database.write() as conn:
        catalog.embeddings.delete_space(conn, service.item_text.key)
        catalog.embeddings.put(conn, added[0].item_id, old_key, np.ones(tiny_encoder.dim, np.float32))
    reopened = SearchService(catalog, tiny_encoder, settings.index_dir)
    assert len(reopened.item_text.index) == 0
    report = check(reopened)
    assert report.missing_item_text_vectors == [r.item_id for r in added[:3]]
    assert report.vectors_need_rebuild and not report.ok
    reopened.rebuild_index()
    assert catalog.embeddings.count(reopened.item_text.key) == 3 and len(reopened.item_text.index) == 3
    assert catalog.embeddings.count(old_key) == 0
    assert check(reopened).ok
    assert reopened.stats()["item_text"]["stored"] == reopened.stats()["item_text"]["indexed"] == 3


def test_check_repair_embeds_missing_text_vectors(service):
    service.add_items([NewItem(make_image(seed=30), TITLED)])
    with service.catalog.database.write() as conn:
        service.catalog.embeddings.delete_space(conn, service.item_text.key)
    assert check(service).missing_item_text_vectors
    report = check(service, repair=True)
    assert report.repaired and check(service).ok


def test_ranking_uses_the_text_field_similarity_when_its_weight_is_above_zero(service):
    results = service.add_items([NewItem(make_image(seed=40 + i)) for i in range(12)])
    ids = [r.item_id for r in results]
    query = "velvet moonlight brooch"
    service.hybrid = HybridSettings(weights={"semantic": 1.0}, text_field_weight=0.0)
    image_order = [card["id"] for card in service.query(text=query, k=12)["results"]]
    # The photo that says least about the words gets the words as its title.
    target = image_order[-1]
    service.update_item(target, {"title": query})
    assert [card["id"] for card in service.query(text=query, k=12)["results"]] == image_order
    service.hybrid = dataclasses.replace(service.hybrid, text_field_weight=0.5)
    assert service.query(text=query, k=12)["results"][0]["id"] == target
    # Items without words keep their image similarity: their order among themselves is unchanged.
    rest = [card["id"] for card in service.query(text=query, k=12)["results"] if card["id"] != target]
    assert rest == [item for item in image_order if item != target] and set(rest) <= set(ids)


def test_text_field_weight_finds_worded_items_outside_the_image_pool(service):
    service.add_items([NewItem(make_image(seed=60 + i)) for i in range(6)])
    (worded,) = service.add_items([NewItem(make_image(seed=70), {"title": "celestial opal cuff"})])
    service.hybrid = HybridSettings(weights={"semantic": 1.0}, text_field_weight=1.0, pool=1)
    assert service.query(text="celestial opal cuff", k=1)["results"][0]["id"] == worded.item_id


def test_a_catalog_without_text_vectors_still_searches(settings, service, tiny_encoder):
    service.add_items([NewItem(make_image(seed=80), TITLED)])
    with service.catalog.database.write() as conn:
        service.catalog.embeddings.delete_space(conn, service.item_text.key)
    reopened = SearchService(Catalog.open(settings.db_path, settings.images_dir), tiny_encoder, settings.index_dir)
    reopened.hybrid = HybridSettings(text_field_weight=0.5)
    assert reopened.query(text="oval sapphire pendant", k=5)["results"]


def test_switched_off_no_text_vectors_are_made_and_none_goes_stale(settings, service, tiny_encoder):
    (kept,) = service.add_items([NewItem(make_image(seed=91), TITLED)])
    service.save(force=True)
    catalog = service.catalog
    off = SearchService(catalog, tiny_encoder, settings.index_dir, item_text_vectors=False,
                        hybrid=HybridSettings(text_field_weight=0.5))
    (added,) = off.add_items([NewItem(make_image(seed=90), TITLED)])
    off.update_item(kept.item_id, {"title": "Round ruby ring"})  # its old text vector would be stale
    key = item_text_key(tiny_encoder.model_id)
    assert off.item_text is None and catalog.embeddings.count(key) == 0
    assert off.query(text="round ruby ring", k=3)["results"]
    assert check(off).ok and off.stats()["item_text"] is None
    # Switched on again, a rebuild embeds both items' current words.
    on = SearchService(catalog, tiny_encoder, settings.index_dir)
    assert check(on).missing_item_text_vectors == sorted([kept.item_id, added.item_id])
    on.rebuild_index()
    np.testing.assert_allclose(catalog.embeddings.get(kept.item_id, key),
                               _expected(on, item_text(catalog.items.get(kept.item_id))), atol=1e-5)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_settings_refuse_a_text_field_weight_outside_0_1(settings, weight):
    from jewelsearch.search.wiring import SettingsError, open_service
    with pytest.raises(SettingsError, match="text_field_weight"):
        open_service(dataclasses.replace(settings, text_field_weight=weight))


def test_text_field_matches_respect_the_filters(service):
    from jewelsearch.search.params import Filters
    (pendant,) = service.add_items([NewItem(make_image(seed=100), {"title": "celestial opal cuff",
                                                                    "category": "pendant"})])
    rings = service.add_items([NewItem(make_image(seed=101 + i), {"category": "ring"}) for i in range(3)])
    service.hybrid = HybridSettings(text_field_weight=1.0)
    found = [card["id"] for card in service.query(text="celestial opal cuff", k=10,
                                                  filters=Filters(category="ring"))["results"]]
    assert pendant.item_id not in found and set(found) <= {r.item_id for r in rings}
