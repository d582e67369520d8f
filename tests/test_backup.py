"""``jewelsearch backup`` / ``restore``: consistent under writes, checked before use, never
half-written."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import make_image

from jewelsearch.cli import main
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.backup import create_backup
from jewelsearch.search.backup_manifest import BackupError
from jewelsearch.search.restore import restore_backup
from jewelsearch.storage import Catalog


def cli(*args, model=None):
    prefix = ["--model", str(model)] if model else []
    result = CliRunner().invoke(main, [*prefix, *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def backup_of(settings, dest, **kwargs):
    return create_backup(settings.db_path, settings.images_dir, settings.index_dir, dest, **kwargs)


def assert_check_is_clean(home, tiny_model_dir):
    result = cli("--home", home, "check", model=tiny_model_dir)
    assert result.exit_code == 0 and result.output.strip().endswith("ok"), result.output


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def filled(service):
    ids = [r.item_id for r in service.add_items([NewItem(make_image(seed=i), {"title": f"piece {i}"})
                                                 for i in range(6)])]
    for item_id in ids[:3]:
        service.record_event({"user_id": "ann", "item_id": item_id, "kind": "like"})
    service.save()
    return ids


def test_round_trip_restores_everything_and_check_is_clean(settings, service, filled, tmp_path, tiny_model_dir):
    result = cli("--home", settings.home, "backup", tmp_path / "bk")
    assert result.exit_code == 0, result.output
    assert "backed up 6 items, 3 events and 6 photos" in result.output
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    assert manifest["items"] == 6 and manifest["model_id"] == service.encoder.model_id
    assert manifest["index"]["matches_catalog"] and manifest["index"]["count"] == 6
    assert manifest["catalog_version"] == service.catalog.database.catalog_version()
    assert not (tmp_path / "bk" / "catalog.db-wal").exists()  # one self-contained database file

    home = tmp_path / "restored"
    result = cli("restore", tmp_path / "bk", "--home", home)
    assert result.exit_code == 0, result.output
    assert_check_is_clean(home, tiny_model_dir)
    restored = Catalog.open(home / "catalog.db", home / "images")
    try:
        assert {r["id"]: r["title"] for r in restored.items.list(100, 0)} == \
               {i: f"piece {n}" for n, i in enumerate(filled)}
        assert restored.events.count() == 3
        for item_id in filled:
            row = restored.items.get(item_id)
            assert restored.images.path_for(row["image_path"]).read_bytes() == \
                   service.image_file(item_id).read_bytes()
    finally:
        restored.close()
    # The saved index matched the snapshot, so the restored home opens it without a rebuild.
    info = cli("--home", home, "index", "info", "--json", model=tiny_model_dir)
    assert json.loads(info.output)["rebuilt_on_open"] is False


def test_backup_under_write_load_loses_nothing_acknowledged(settings, service, filled, tmp_path, tiny_model_dir):
    """A writer adds items and events, adds-and-deletes others (their photos go away) and saves
    the index (older versions are pruned), all through the service, while three backups run
    one after another. Each backup, restored, holds everything acknowledged before it began,
    and `jewelsearch check` is clean on it."""
    acknowledged: list[tuple[int, int]] = []  # (item id, event id), in order
    stop = threading.Event()
    failures: list[BaseException] = []

    def write():
        seed = 1000
        try:
            while not stop.is_set():
                seed += 2
                item = service.add_items([NewItem(make_image(seed=seed), {"title": f"load {seed}"})])[0].item_id
                event = service.record_event({"user_id": f"u{seed % 7}", "item_id": item, "kind": "view"})
                acknowledged.append((item, event))
                churn = service.add_items([NewItem(make_image(seed=seed + 1), {"title": "gone soon"})])[0].item_id
                service.delete_item(churn)
                service.save()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    def wait_for(count: int) -> None:
        deadline = time.time() + 60
        while len(acknowledged) < count and time.time() < deadline and not failures:
            time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    rounds = []
    try:
        for number in range(3):
            wait_for(len(acknowledged) + 10)
            before = list(acknowledged)
            snapshots = []

            def during_copy():
                # Let the writer commit more while this snapshot's photos and the index are copied.
                snapshots.append(len(acknowledged))
                wait_for(snapshots[-1] + 3)

            manifest = backup_of(settings, tmp_path / f"bk{number}", on_snapshot=during_copy)
            rounds.append((before, snapshots, manifest, len(acknowledged)))
    finally:
        stop.set()
        writer.join()
    assert not failures, failures

    for number, (before, snapshots, manifest, after) in enumerate(rounds):
        assert after >= snapshots[-1] + 3  # writes really ran during the backup
        home = tmp_path / f"restored{number}"
        restore_backup(tmp_path / f"bk{number}", home)
        assert_check_is_clean(home, tiny_model_dir)
        restored = Catalog.open(home / "catalog.db", home / "images")
        try:
            event_ids = {r["id"] for r in restored.database.query("SELECT id FROM events")}
            for item_id, event_id in before:
                row = restored.items.get(item_id)
                assert row["title"].startswith("load ")
                assert restored.images.path_for(row["image_path"]).is_file()
                assert event_id in event_ids
            assert set(filled) <= {r["id"] for r in restored.items.list(10_000, 0)}
            assert restored.items.count() == manifest.items
        finally:
            restored.close()
        print(f"backup {number} under load: {len(before)} items + events acknowledged before it began, "
              f"{after - len(before)} more during it, {len(snapshots)} snapshot(s), {manifest.items} items "
              f"backed up, index matched the snapshot: {manifest.index['matches_catalog']}")


def test_a_photo_deleted_after_the_snapshot_means_a_fresh_snapshot(settings, service, filled, tmp_path,
                                                                   tiny_model_dir):
    deleted = []

    def delete_one():
        if not deleted:  # after the first snapshot only: that snapshot still names the item
            service.delete_item(filled[0])
            deleted.append(filled[0])

    manifest = backup_of(settings, tmp_path / "bk", on_snapshot=delete_one)
    assert manifest.items == 5 and manifest.images == 5 and manifest.missing_images == []
    restore_backup(tmp_path / "bk", tmp_path / "restored")
    assert_check_is_clean(tmp_path / "restored", tiny_model_dir)


def test_a_failed_backup_leaves_nothing(settings, service, filled, tmp_path):
    current = (settings.index_dir / "CURRENT").read_text().strip()
    (settings.index_dir / current / "manifest.json").write_text("{not json")
    result = cli("--home", settings.home, "backup", tmp_path / "bk")
    assert result.exit_code == 2 and result.output.startswith("error: the backup failed")
    assert not (tmp_path / "bk").exists() and leftovers(tmp_path) == []


def test_backup_refuses_an_existing_destination_and_a_missing_catalog(settings, filled, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    result = cli("--home", settings.home, "backup", tmp_path / "taken")
    assert result.exit_code == 2 and "already exists" in result.output
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    result = cli("--home", tmp_path / "nothing-here", "backup", tmp_path / "bk")
    assert result.exit_code == 2 and "no catalog" in result.output and not (tmp_path / "bk").exists()


def _damage_photo(backup):
    photo = next((backup / "images").rglob("*.png"))
    photo.write_bytes(photo.read_bytes()[:-1] + b"\x00")


def _truncate_database(backup):
    data = (backup / "catalog.db").read_bytes()
    (backup / "catalog.db").write_bytes(data[: len(data) // 2])


def _edit_checksums(backup):
    path = backup / "SHA256SUMS"
    path.write_text(path.read_text().replace("images/", "images/x", 1))


def _drop_index_file(backup):
    next((backup / "index").rglob("index.faiss")).unlink()


@pytest.mark.parametrize("damage, message", [
    (lambda b: (b / "manifest.json").unlink(), "not a jewelsearch backup"),
    (lambda b: (b / "manifest.json").write_text("[1, 2"), "unreadable"),
    (_damage_photo, "does not match its checksum"),
    (_truncate_database, "does not match its checksum"),
    (_edit_checksums, "does not match the manifest"),
    (_drop_index_file, "is missing"),
    (lambda b: __import__("shutil").rmtree(b), "is not a folder"),
])
def test_a_damaged_or_missing_backup_is_a_clear_error_and_changes_nothing(settings, filled, tmp_path, damage,
                                                                          message):
    assert cli("--home", settings.home, "backup", tmp_path / "bk").exit_code == 0
    damage(tmp_path / "bk")
    result = cli("restore", tmp_path / "bk", "--home", tmp_path / "restored")
    assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output, result.output
    assert not (tmp_path / "restored").exists() and leftovers(tmp_path) == []


def test_a_backup_whose_database_is_not_a_catalog_is_refused(settings, filled, tmp_path):
    backup = tmp_path / "bk"
    backup_of(settings, backup)
    # A well-formed backup of the wrong database: checksums agree, the content does not.
    (backup / "catalog.db").unlink()
    with sqlite3.connect(backup / "catalog.db") as conn:
        conn.execute("CREATE TABLE unrelated (x)")
    from jewelsearch.search.backup_manifest import sha256_file, write_checksums
    sums = dict(line.split("  ")[::-1] for line in (backup / "SHA256SUMS").read_text().splitlines())
    sums["catalog.db"] = sha256_file(backup / "catalog.db")
    manifest = json.loads((backup / "manifest.json").read_text())
    manifest["checksums_sha256"] = write_checksums(backup, sums)
    (backup / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="not a jewelsearch catalog"):
        restore_backup(backup, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_restore_keeps_a_home_with_a_catalog_unless_forced(settings, service, filled, tmp_path, tiny_model_dir):
    backup_of(settings, tmp_path / "bk")
    home = tmp_path / "other"
    home.mkdir()
    (home / "jewelsearch.toml").write_text('metrics_public = true\n')
    (home / "catalog.db").write_bytes(b"an earlier catalog")
    result = cli("restore", tmp_path / "bk", "--home", home)
    assert result.exit_code == 2 and "not empty" in result.output and "--force" in result.output
    assert (home / "catalog.db").read_bytes() == b"an earlier catalog"

    result = cli("restore", tmp_path / "bk", "--home", home, "--force")
    assert result.exit_code == 0 and "replaced" in result.output, result.output
    assert (home / "jewelsearch.toml").read_text() == 'metrics_public = true\n'  # settings are kept
    assert leftovers(tmp_path) == []
    assert_check_is_clean(home, tiny_model_dir)
    # A home holding only its settings file counts as empty.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "jewelsearch.toml").write_text("")
    assert cli("restore", tmp_path / "bk", "--home", fresh).exit_code == 0


@pytest.mark.slow
def test_backup_from_another_process_while_the_server_takes_writes(tmp_path, tiny_model_dir):
    """The real arrangement: `jewelsearch serve` takes item uploads and events over HTTP while
    `jewelsearch backup` runs as its own process, twice; the server's autosave writes and prunes
    index versions meanwhile."""
    import os
    import subprocess
    import sys
    import urllib.request

    from served import post_item, start_server
    home, key = tmp_path / "home", "backup-test-key"
    env = dict(os.environ, JEWELSEARCH_HOME=str(home), JEWELSEARCH_API_KEY=key, JEWELSEARCH_MODEL=str(tiny_model_dir))
    server, url = start_server(env)
    acknowledged: list[tuple[int, int]] = []
    stop = threading.Event()

    def write():
        seed = 0
        while not stop.is_set():
            seed += 1
            status, body = post_item(url, make_image(seed=seed), f"http {seed}", key)
            item = json.loads(body)["id"]
            request = urllib.request.Request(url + "/api/events", method="POST", data=json.dumps(
                {"user_id": "ann", "item_id": item, "kind": "like"}).encode(),
                headers={"Content-Type": "application/json", "X-API-Key": key})
            with urllib.request.urlopen(request, timeout=10) as response:
                acknowledged.append((item, json.loads(response.read())["id"]))

    writer = threading.Thread(target=write)
    writer.start()
    rounds = []
    try:
        for number in range(2):
            while len(acknowledged) < 10 * (number + 1):
                time.sleep(0.05)
            before = list(acknowledged)
            done = subprocess.run([sys.executable, "-m", "jewelsearch.cli", "backup", str(tmp_path / f"bk{number}")],
                                  env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            rounds.append((before, len(acknowledged)))
    finally:
        stop.set()
        writer.join()
        server.terminate()
        server.wait(timeout=60)
    for number, (before, after) in enumerate(rounds):
        restored_home = tmp_path / f"restored{number}"
        assert cli("restore", tmp_path / f"bk{number}", "--home", restored_home).exit_code == 0
        assert_check_is_clean(restored_home, tiny_model_dir)
        restored = Catalog.open(restored_home / "catalog.db", restored_home / "images")
        try:
            event_ids = {r["id"] for r in restored.database.query("SELECT id FROM events")}
            assert all(restored.items.get(item)["title"].startswith("http ") and event in event_ids
                       for item, event in before)
        finally:
            restored.close()
        print(f"backup {number} beside a serving process: {len(before)} uploads + events acknowledged before "
              f"it began, {after - len(before)} more while it ran")
