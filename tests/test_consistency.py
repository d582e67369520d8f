import http.client
import os
import signal
import time
import urllib.request

import pytest
from conftest import make_image
from served import post_item, start_server

from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.consistency import check
from jewelsearch.search.service import SearchService


def test_check_clean_catalog(service):
    service.add_items([NewItem(make_image(seed=i), {"title": str(i)}) for i in range(3)])
    assert check(service).ok


def test_check_finds_and_repairs(service):
    ids = [r.item_id for r in service.add_items([NewItem(make_image(seed=i), {}) for i in range(4)])]
    with service.catalog.database.write() as conn:
        conn.execute("DELETE FROM embeddings WHERE item_id = ?", (ids[0],))
    service.index.remove([ids[1]])
    (service.catalog.images.root / "ab").mkdir(exist_ok=True)
    orphan = service.catalog.images.root / "ab" / ("ab" * 32 + ".jpg")
    orphan.write_bytes(b"left behind by a crash")
    report = check(service)
    assert report.missing_embeddings == [ids[0]] and ids[1] in report.store_only
    assert report.orphan_files and not report.ok
    check(service, repair=True)
    after = check(service)
    assert after.ok and not orphan.exists() and len(service.index) == 4


def test_check_reports_missing_image(service):
    item = service.add_items([NewItem(make_image(seed=1), {})])[0].item_id
    service.image_file(item).unlink()
    assert check(service, repair=True).missing_images == [item]


# ----- crash safety: SIGKILL the real server mid-ingest, many times -----------

@pytest.mark.slow
def test_sigkill_during_ingest_loses_nothing_acknowledged(tmp_path, tiny_model_dir, tiny_encoder):
    import json
    import random
    import threading
    home = tmp_path / "home"
    key = "crash-test-key"
    env = dict(os.environ, JEWELSEARCH_HOME=str(home), JEWELSEARCH_API_KEY=key, JEWELSEARCH_MODEL=str(tiny_model_dir))
    acknowledged: dict[str, int] = {}
    rng = random.Random(0)
    seed = 0
    for round_number in range(20):
        server, url = start_server(env)
        stop = threading.Event()

        def stream():
            nonlocal seed
            while not stop.is_set():
                seed += 1
                title = f"item-{seed}"
                try:
                    status, body = post_item(url, make_image(seed=seed), title, key)
                except (OSError, http.client.HTTPException):  # killed mid-request or mid-reply
                    return
                if status == 201:
                    acknowledged[title] = json.loads(body)["id"]
        writer = threading.Thread(target=stream)
        writer.start()
        time.sleep(rng.uniform(0.2, 1.5))
        server.send_signal(signal.SIGKILL)
        server.wait()
        stop.set()
        writer.join()
    # Restart once more and check everything acknowledged is there, whole and searchable.
    from jewelsearch.storage import Catalog
    catalog = Catalog.open(home / "catalog.db", home / "images")
    service = SearchService(catalog, tiny_encoder, home / "index")
    print(f"crash test: 20 SIGKILLs, {len(acknowledged)} acknowledged items, all checked")
    assert len(acknowledged) > 20
    for title, item_id in acknowledged.items():
        row = service.get_item(item_id)
        assert row["title"] == title
        assert service.image_file(item_id).is_file()
        assert catalog.embeddings.get(item_id, tiny_encoder.model_id) is not None
        assert item_id in service.index
    report = check(service)
    assert not report.missing_embeddings and not report.index_only and not report.store_only
    assert not report.missing_images
    assert len(service.index) == catalog.items.count()


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests(tmp_path, tiny_model_dir):
    import threading
    home = tmp_path / "home"
    env = dict(os.environ, JEWELSEARCH_HOME=str(home), JEWELSEARCH_API_KEY="k", JEWELSEARCH_MODEL=str(tiny_model_dir))
    server, url = start_server(env)
    results = []

    def upload(n):
        try:
            results.append(post_item(url, make_image(seed=n, size=(1500, 1500)), f"t{n}", "k", timeout=60)[0])
        except OSError as exc:
            results.append(repr(exc))
    threads = [threading.Thread(target=upload, args=(n,)) for n in range(6)]
    [t.start() for t in threads]
    time.sleep(0.3)
    server.send_signal(signal.SIGTERM)
    [t.join() for t in threads]
    assert server.wait(timeout=60) == 0
    # Requests that reached the server before the signal were answered in full.
    assert results.count(201) >= 1 and all(r == 201 or "Connection refused" in str(r) for r in results), results
    from jewelsearch.storage import Catalog
    catalog = Catalog.open(home / "catalog.db", home / "images")
    assert catalog.items.count() == results.count(201)
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/api/health", timeout=2)
