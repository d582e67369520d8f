"""Ingest with its decoding and model work in forked worker processes (``ingest/processes.py``)
against the in-process paths: the same items and attributes, vectors within 1e-5 (one torch
thread against two changes only float rounding), bad photos reported, a file named twice
written once, and the CLI's ``--processes``."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_image
from jewelsearch.config import Settings
from jewelsearch.ingest.demo import demo_dir, demo_items
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.ingest.processes import in_processes
from jewelsearch.search.wiring import open_service

DROPS = (("gemstone", "stone_shape"), ("category", "metal", "gemstone", "stone_shape"), ())


def _snapshot(service) -> tuple[list[dict], dict[tuple[int, str], np.ndarray]]:
    rows = [{k: v for k, v in row.items() if k not in ("created_at", "updated_at")}
            for row in service.catalog.items.list(10_000, 0)]
    vectors = {(item_id, model): np.frombuffer(blob, np.float32) for item_id, model, blob in
               service.catalog.database.conn.execute("SELECT item_id, model_id, vector FROM embeddings")}
    return rows, vectors


@pytest.mark.slow
def test_ingest_in_worker_processes_equals_the_in_process_pipeline(tmp_path):
    """The bundled model, where recognition, the localiser, the instance head and the item text
    vectors all take part; photos with the stone fields, every recognised field or nothing left out."""
    items = [NewItem(item.image_bytes, {k: v for k, v in item.fields.items() if k not in DROPS[n % 3]},
                     source_path=f"/shop/{n}.jpg") for n, item in enumerate(demo_items(demo_dir())[:21])]
    batches = [items[i:i + 8] for i in range(0, len(items), 8)]
    piped, forked = (open_service(Settings(home=tmp_path / name)) for name in ("piped", "forked"))
    list(piped.ingest_batches(batches))
    seen = list(forked.ingest_batches(batches, processes=2))
    assert [b for b, _ in seen] == batches and all(len(b) == len(r) for b, r in seen)
    rows, vectors = _snapshot(piped)
    rows_forked, vectors_forked = _snapshot(forked)
    assert len(rows) == 21 and rows_forked == rows  # items and attributes, the predicted ones included
    assert any(row["attributes"].get("predicted") for row in rows)
    assert vectors_forked.keys() == vectors.keys() and len({model for _, model in vectors}) >= 3
    assert max(float(np.abs(vectors[k] - vectors_forked[k]).max()) for k in vectors) <= 1e-5
    assert forked.state.index.ntotal == 21
    # The same folder again changes nothing, and the parent's database still answers.
    again = [r.status for _, results in forked.ingest_batches(batches, processes=2) for r in results]
    assert again == ["unchanged"] * 21 and forked.catalog.items.count() == 21
    for service in (piped, forked):
        service.catalog.close()


def test_worker_processes_on_the_tiny_model_equal_batch_by_batch(service, tmp_path, tiny_encoder):
    from jewelsearch.search.service import SearchService
    from jewelsearch.storage import Catalog
    items = [NewItem(make_image(seed=n), {"title": f"Piece {n}", "category": "ring"}, source_path=f"/s/{n}.png")
             for n in range(9)]
    batches = [items[:3], items[3:6], items[6:8], items[8:]]
    statuses = [r.status for _, results in service.ingest_batches(batches, processes=2) for r in results]
    assert statuses == ["added"] * 9
    catalog = Catalog.open(tmp_path / "other.db", tmp_path / "other-images")
    other = SearchService(catalog, tiny_encoder, tmp_path / "other-index")
    for batch in batches:
        other.add_items(batch)
    rows, vectors = _snapshot(service)
    rows_other, vectors_other = _snapshot(other)
    assert [{k: v for k, v in r.items() if k != "image_path"} for r in rows] == \
        [{k: v for k, v in r.items() if k != "image_path"} for r in rows_other]
    assert vectors.keys() == vectors_other.keys()
    assert max(float(np.abs(vectors[k] - vectors_other[k]).max()) for k in vectors) <= 1e-5
    assert all(service.catalog.images.path_for(r["image_path"]).is_file() for r in rows)
    catalog.close()


def test_a_bad_photo_in_a_worker_is_reported_and_the_rest_written(service):
    batch = [NewItem(make_image(seed=n), {"title": f"Piece {n}"}) for n in range(3)]
    batch.insert(1, NewItem(b"\xff\xd8\xff not a jpeg", {"title": "Broken"}))
    later = [NewItem(b"", {"title": "Empty"}), NewItem(make_image(seed=7), {"title": "Seven"})]
    seen = list(service.ingest_batches([batch, later], processes=2))
    assert [[r.status for r in results] for _, results in seen] == \
        [["added", "failed", "added", "added"], ["failed", "added"]]
    assert "empty" in seen[1][1][0].error
    assert service.catalog.items.count() == 4 and service.state.index.ntotal == 4


def test_batches_naming_the_same_file_in_flight_wait_for_the_earlier_write(service):
    first = [NewItem(make_image(seed=1), {"title": "One"}, source_path="/s/a.png")]
    other = [NewItem(make_image(seed=3), {"title": "Other"}, source_path="/s/b.png")]
    again = [NewItem(make_image(seed=2), {"title": "One, new photo"}, source_path="/s/a.png")]
    statuses = [r.status for _, results in service.ingest_batches([first, other, again], processes=2)
                for r in results]
    assert statuses == ["added", "added", "updated"] and service.catalog.items.count() == 2


def test_processes_must_be_positive(service):
    with pytest.raises(ValueError, match="processes"):
        list(in_processes([[NewItem(b"x")]], ingestor=service.state.ingestor, write=None, processes=0))


def test_cli_ingest_in_worker_processes(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from jewelsearch.cli import main
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(5):
        (folder / f"p{n}.png").write_bytes(make_image(seed=n))
    (folder / "p2b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    home = ["--home", str(tmp_path / "home"), "--model", str(tiny_model_dir), "ingest", str(folder)]
    result = CliRunner().invoke(main, [*home, "--batch-size", "2", "--processes", "2"], catch_exceptions=False)
    assert result.exit_code == 0 and "added=5" in result.output and "failed=1" in result.output
    assert "p2b.jpg" in result.output
    rerun = CliRunner().invoke(main, [*home, "--batch-size", "2", "--processes", "3"], catch_exceptions=False)
    assert rerun.exit_code == 0 and "unchanged=5" in rerun.output
    bad = CliRunner().invoke(main, [*home, "--processes", "0"])
    assert bad.exit_code != 0 and "processes" in bad.output
