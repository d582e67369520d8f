"""The instance head's projection reads at serving what its trainer fitted it on (the unit
descriptor), and catalogs embedded while serving read the unnormalised blocks move to a new
space that ``index rebuild`` fills (docs/experiments/2026-12-07-instance-head-input-scale.md)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_instance_vectors import dense, dense_model_dir, decoded, open_service, photo  # noqa: F401

from jewelsearch.embed.dense_features import tower_pass
from jewelsearch.embed.instance import InstanceHead, instance_vectors
from jewelsearch.embed.model_folder import resolve_model_folder
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.consistency import check
from jewelsearch.storage.embeddings import space_key
from jewelsearch.train.instance_head import InstanceRecipe, InstanceViews, fit_projection, raw_head, save_head

BLOCKS = (("last", 1.0), ("tap32", 0.5), ("tap8", 0.3))  # norm of the weighted blocks: sqrt(1.34)
# The space id the bundled head's vectors were stored under while serving read the unnormalised
# blocks (reports/retrieval/retrieval.md names it).
BUNDLED_SPACE_BEFORE = "instance-0a4de34164bd"


def space_id_before(head: InstanceHead) -> str:
    """The space id as it was computed while the projection read the unnormalised blocks."""
    described = {"format": 1, "blocks": head.blocks, "p": head.p}
    if head.aligned_weight:
        described["aligned_weight"] = head.aligned_weight
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode())
    if head.projection is not None:
        digest.update(head.mean.numpy().tobytes())
        digest.update(head.projection.numpy().tobytes())
    return "instance-" + digest.hexdigest()[:12]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, dense_model_dir, dense):  # noqa: F811
    """A head fitted by the trainer on the raw head's descriptors of a few photos, saved into a
    copy of the model folder and loaded back as serving loads it."""
    import shutil
    folder = tmp_path_factory.mktemp("fitted") / "model"
    shutil.copytree(dense_model_dir, folder)
    recipe = InstanceRecipe(dim=8, epochs=2, batch=8, worn_batch=0, worn_weight=0.0, blocks=BLOCKS,
                            aligned_weight=0.0)
    raw = raw_head(recipe)
    images = [decoded(photo(n)) for n in range(12)]
    rows = instance_vectors(dense, raw, images)
    views = InstanceViews(clean=rows[:6], augmented=rows[:6], pasted=rows[6:], pasted_photo=np.arange(6),
                          worn_crop=np.zeros((0, rows.shape[1]), np.float32),
                          worn_whole=np.zeros((0, rows.shape[1]), np.float32), worn_product=np.array([], dtype=str))
    mean, projection = fit_projection(views, recipe)
    save_head(folder, mean, projection, recipe, {"trained": "test"})
    head = InstanceHead.load(folder, dense.model.visual)
    return head, raw, images, rows, mean, projection


def test_served_vectors_are_the_projection_of_the_descriptors_it_was_fitted_on(dense, fitted):  # noqa: F811
    head, raw, images, rows, mean, projection = fitted
    served = instance_vectors(dense, head, images)
    trained_space = F.normalize((torch.from_numpy(rows) - torch.from_numpy(mean)) @ torch.from_numpy(projection),
                                dim=1).numpy()
    np.testing.assert_allclose(served, trained_space, atol=1e-5)
    # The projection's input is the unit descriptor, the raw head's own vector.
    with torch.inference_mode():
        result = tower_pass(dense.model.visual, torch.stack([dense.preprocess(im) for im in images[:3]]))
        torch.testing.assert_close(head.descriptors(result), raw.vectors(result))
        assert torch.allclose(head.descriptors(result).norm(dim=1), torch.ones(3))


def test_a_head_with_a_projection_names_a_new_space_and_one_without_keeps_its_own(fitted):
    head = fitted[0]
    assert head.space_id != space_id_before(head)
    plain = InstanceHead(BLOCKS, 3.0)
    assert plain.space_id == space_id_before(plain)  # its vectors did not change: nothing to rebuild
    assert InstanceHead.default().space_id == space_id_before(InstanceHead.default())


def test_the_bundled_head_leaves_the_space_its_catalogs_were_embedded_in():
    bundled = InstanceHead.load(resolve_model_folder("jewelclip-lite0"))  # the files only, no tower
    assert bundled.projection is not None
    assert space_id_before(bundled) == BUNDLED_SPACE_BEFORE  # the helper is the old rule...
    assert bundled.space_id != BUNDLED_SPACE_BEFORE  # ...and the served vectors moved


def test_a_catalog_embedded_before_is_noticed_and_rebuilt(tmp_path, dense, fitted, caplog):  # noqa: F811
    head = fitted[0]
    home = tmp_path / "home"
    service = open_service(home, dense, head)
    service.add_items([NewItem(photo(n), {"title": f"piece {n}"}) for n in range(5)])
    service.save()
    # As a home embedded while the projection read the unnormalised blocks has them: under the old id.
    old_key = space_key(dense.model_id, space_id_before(head))
    with service.catalog.database.write() as conn:
        conn.execute("UPDATE embeddings SET model_id = ? WHERE model_id = ?", (old_key, service.instance.key))
    service.catalog.close()

    with caplog.at_level("WARNING", logger="jewelsearch.search.instance_space"):
        reopened = open_service(home, dense, head)
    assert "5 items have no instance vector" in caplog.text and "index rebuild" in caplog.text
    assert not reopened.instance.complete and len(reopened.instance.index) == 0
    assert reopened.query(image_bytes=photo(2), k=5, region="whole")["vector"] == "aligned"
    report = check(reopened)
    assert not report.ok and len(report.missing_instance_vectors) == 5
    reopened.rebuild_index()
    assert reopened.instance.complete and check(reopened).ok
    ids, stored = reopened.catalog.embeddings.all_for_model(reopened.instance.key)
    photos = [decoded(photo(n)) for n in range(5)]
    titles = {it["id"]: it["title"] for it in reopened.catalog.items.list(10, 0)}
    order = [int(titles[i].split()[1]) for i in ids.tolist()]
    np.testing.assert_allclose(stored, instance_vectors(dense, head, [photos[n] for n in order]), atol=1e-5)
    answer = reopened.query(image_bytes=photo(2), k=5, region="whole")
    assert answer["vector"] == "instance" and answer["results"][0]["title"] == "piece 2"
    reopened.save()
    reopened.catalog.close()
    caplog.clear()
    with caplog.at_level("WARNING", logger="jewelsearch.search.instance_space"):
        again = open_service(home, dense, head)
    assert again.instance.complete and "no instance vector" not in caplog.text
    again.catalog.close()
