"""Ingest on a local Ray cluster (2 CPUs, the 2-core case of the pool-sizing pitfall) against
the local ingest: the same items, attributes and vectors; bad files skipped; a re-run resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_image
from jewelsearch.config import Settings
from jewelsearch.ingest.manifest import read_inputs
from jewelsearch.ingest.pipeline import NewItem

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # starts a Ray cluster and model actors (about 20 s)


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 << 20, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for n in range(10):
        (folder / f"p{n:02d}.png").write_bytes(make_image(seed=n, size=(64 + n, 48)))
    rows = [{"path": f"p{n:02d}.png", "title": f"gold ring {n}", "category": "ring"} for n in range(0, 10, 2)]
    (folder.parent / "meta.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return folder


def _settings(tmp_path, name, tiny_model_dir) -> Settings:
    return Settings(home=tmp_path / name, model=str(tiny_model_dir), rate_limits=False)


def _catalog_view(settings):
    from jewelsearch.search.wiring import open_catalog
    catalog = open_catalog(settings)
    try:
        rows = catalog.database.query("SELECT * FROM items ORDER BY source_path")
        keys = [r["model_id"] for r in catalog.database.query("SELECT DISTINCT model_id FROM embeddings")]
        view = {}
        for row in rows:
            item = catalog.items.get(row["id"])
            vectors = {key: catalog.embeddings.get(row["id"], key) for key in keys}
            fields = {k: item[k] for k in ("title", "category", "metal", "gemstone", "stone_shape", "image_sha256",
                                           "image_path")}
            view[item["source_path"]] = (fields, item["attributes"], {k: v for k, v in vectors.items() if v is not None})
        return view
    finally:
        catalog.close()


def _assert_same_catalog(local, distributed):
    want, got = _catalog_view(local), _catalog_view(distributed)
    assert sorted(got) == sorted(want)
    for path, (fields, attributes, vectors) in want.items():
        got_fields, got_attributes, got_vectors = got[path]
        assert got_fields == fields and got_attributes == attributes
        assert sorted(got_vectors) == sorted(vectors) and len(vectors) == (2 if fields["title"] else 1)
        for key, vector in vectors.items():
            np.testing.assert_allclose(got_vectors[key], vector, atol=1e-5)


def test_pool_leaves_room_for_reading_on_two_cores():
    from jewelsearch.search.ray_ingest import READ_CPUS, plan_pool
    plan = plan_pool(2)
    assert plan.actors == 2 and plan.torch_threads == 1
    assert plan.actors * plan.cpus_per_actor + 2 * READ_CPUS <= 2
    assert plan_pool(2, workers=4).cpus_per_actor < 0.5
    with pytest.raises(ValueError):
        plan_pool(0.25)


def test_ray_ingest_equals_local_skips_bad_files_and_resumes(ray_cluster, photos, tmp_path, tiny_model_dir):
    from jewelsearch.search.ray_ingest import ray_ingest
    from jewelsearch.search.wiring import open_service

    meta = photos.parent / "meta.jsonl"
    inputs = read_inputs([str(photos)], meta)
    local = _settings(tmp_path, "local", tiny_model_dir)
    service = open_service(local)

    def ingest_locally():
        service.add_items([NewItem(open(p.path, "rb").read(), p.fields, source_path=p.path) for p in inputs])
        service.save()

    ingest_locally()

    bad = photos.parent / "broken" / "bad.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not a photo at all")
    distributed = _settings(tmp_path, "ray", tiny_model_dir)
    failures = []
    report = ray_ingest(distributed, read_inputs([str(photos), str(bad)], meta), workers=2, batch_size=4,
                        report_failure=lambda path, why: failures.append(path))
    assert (report.added, report.failed, report.skipped) == (10, 1, 0)
    assert failures == [str(bad.resolve())]

    _assert_same_catalog(local, distributed)

    # A new photo at a known path takes the update path: the item keeps the fields it had and
    # this run does not give (its category here), and its text vector is made from both.
    (photos / "p02.png").write_bytes(make_image(seed=99, size=(80, 60)))
    fewer = photos.parent / "fewer.jsonl"
    fewer.write_text(json.dumps({"path": "p02.png", "title": "gold ring 2"}))
    inputs = read_inputs([str(photos)], fewer)
    ingest_locally()
    changed = ray_ingest(distributed, read_inputs([str(photos)], fewer), workers=2, batch_size=4)
    assert (changed.added, changed.updated, changed.skipped, changed.failed) == (0, 1, 9, 0)
    _assert_same_catalog(local, distributed)

    # The saved indexes agree with the store: a service opens them without rebuilding, and searches.
    reopened = open_service(distributed)
    assert not reopened.rebuilt_on_open and reopened.stats()["items"] == 10
    reopened.catalog.close()
    service.catalog.close()

    # A re-run from the command line (joining the cluster this process runs) embeds nothing.
    from click.testing import CliRunner
    from jewelsearch.cli import main
    result = CliRunner().invoke(main, ["--home", str(distributed.home), "--model", str(tiny_model_dir), "ingest",
                                       "--engine", "ray", "--workers", "2", "--metadata", str(meta), str(photos)])
    assert result.exit_code == 0, result.output
    assert "added=0 updated=0 unchanged=10 failed=0" in result.output
