"""What a replica on another node starts from: a snapshot the writer packs into one blob."""

from __future__ import annotations

import pytest

from conftest import make_image
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.backup_manifest import BackupError
from jewelsearch.search.replica_snapshot import Snapshot, pack_snapshot, unpack_snapshot
from jewelsearch.search.service import SearchService
from jewelsearch.storage import Catalog


def test_a_replica_opens_the_shipped_snapshot_and_answers_as_the_writer(service, settings, tiny_encoder, tmp_path):
    service.add_items([NewItem(make_image(seed=n), {"title": f"gold ring {n}"}) for n in range(6)])
    service.save()
    snapshot = pack_snapshot(settings.db_path, settings.images_dir, settings.index_dir)
    assert (snapshot.items, snapshot.catalog_version) == (6, service.catalog.database.catalog_version())

    home = unpack_snapshot(snapshot, tmp_path / "node-2" / "home")
    catalog = Catalog.open(home / "catalog.db", home / "images")
    try:
        replica = SearchService(catalog, tiny_encoder, home / "index")
        assert not replica.rebuilt_on_open  # the shipped index version matches the shipped store
        want = [r["id"] for r in service.query(text="gold ring", k=5)["results"]]
        assert [r["id"] for r in replica.query(text="gold ring", k=5)["results"]] == want
        assert replica.image_file(want[0]).read_bytes() == service.image_file(want[0]).read_bytes()
    finally:
        catalog.close()


def test_a_damaged_or_mislabelled_snapshot_leaves_no_home(service, settings, tmp_path):
    service.add_items([NewItem(make_image(seed=1), {"title": "ring"})])
    snapshot = pack_snapshot(settings.db_path, settings.images_dir, settings.index_dir)
    damaged = Snapshot(snapshot.catalog_version, snapshot.items, snapshot.blob[:len(snapshot.blob) // 2])
    with pytest.raises(BackupError):
        unpack_snapshot(damaged, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    mislabelled = Snapshot(snapshot.catalog_version + 1, snapshot.items, snapshot.blob)
    with pytest.raises(BackupError):
        unpack_snapshot(mislabelled, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    with pytest.raises(BackupError):
        unpack_snapshot(snapshot, tmp_path)  # an existing folder is never overwritten
