import json

import pytest
from click.testing import CliRunner
from conftest import make_image

from jewelsearch.cli import main


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        (folder / f"p{i}.png").write_bytes(make_image(seed=i))
    (folder / "notes.txt").write_text("not an image")
    (tmp_path / "meta.csv").write_text(
        "path,title,category,metal,price\n"
        + "".join(f"p{i}.png,Piece {i},{'ring' if i % 2 else 'necklace'},gold,{100 + i}\n" for i in range(5)))
    return folder


def run(home, model, *args):
    result = CliRunner().invoke(main, ["--home", str(home), "--model", str(model), *args],
                                catch_exceptions=False)
    return result


def test_ingest_twice_second_is_noop(tmp_path, tiny_model_dir, photos):
    home = tmp_path / "home"
    first = run(home, tiny_model_dir, "ingest", str(photos), "--metadata", str(tmp_path / "meta.csv"))
    assert first.exit_code == 0, first.output
    assert "added=5" in first.output
    second = run(home, tiny_model_dir, "ingest", str(photos), "--metadata", str(tmp_path / "meta.csv"))
    assert second.exit_code == 0 and "added=0" in second.output and "unchanged=5" in second.output


def test_ingest_skips_bad_files_and_keeps_good(tmp_path, tiny_model_dir, photos):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = run(tmp_path / "home", tiny_model_dir, "ingest", str(photos))
    assert result.exit_code == 0 and "added=5" in result.output and "failed=1" in result.output


def test_search_json_and_filters(tmp_path, tiny_model_dir, photos):
    home = tmp_path / "home"
    run(home, tiny_model_dir, "ingest", str(photos), "--metadata", str(tmp_path / "meta.csv"))
    result = run(home, tiny_model_dir, "search", "--text", "gold ring", "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert len(payload["results"]) == 3 and {"id", "score", "title"} <= set(payload["results"][0])
    result = run(home, tiny_model_dir, "search", "--image", str(photos / "p2.png"), "--filter",
                 "category=necklace", "--json")
    rows = json.loads(result.output)["results"]
    assert rows[0]["title"] == "Piece 2" and {r["category"] for r in rows} == {"necklace"}
    result = run(home, tiny_model_dir, "search", "--item", "1", "-k", "2")
    assert result.exit_code == 0 and result.output.count("\n") == 3
    assert result.output.splitlines()[-1] == "more: --offset 2"
    # The next page starts at rank 3 and is the rest of the same ranking.
    whole = json.loads(run(home, tiny_model_dir, "search", "--item", "1", "-k", "4", "--json").output)
    rest = run(home, tiny_model_dir, "search", "--item", "1", "-k", "2", "--offset", "2").output.splitlines()
    assert [line.split("]")[0] for line in rest] == [f"  {n}. [{row['id']}" for n, row in
                                                     zip((3, 4), whole["results"][2:])]
    assert whole["next_offset"] is None  # 4 other photos: nothing after them
    result = run(home, tiny_model_dir, "search", "--item", "1", "--offset", "195")
    assert result.exit_code == 2 and "offset + k must be at most 200" in result.output
    # Every piece is gold: a platinum ring is a near miss, and the command says so first.
    result = run(home, tiny_model_dir, "search", "--text", "platinum ring", "-k", "2")
    lines = result.output.splitlines()
    assert lines[0] == "understood: platinum, ring"
    assert lines[1] == "No piece here has all of: platinum, ring. The closest follow." and len(lines) == 5
    assert lines[-1] == "more: --offset 2"


def test_cli_errors_are_one_clear_line(tmp_path, tiny_model_dir, photos):
    home = tmp_path / "home"
    run(home, tiny_model_dir, "ingest", str(photos))
    result = run(home, tiny_model_dir, "search", "--item", "999")
    assert result.exit_code == 2 and "item 999 not found" in result.output
    result = run(home, tiny_model_dir, "search", "--text", "x", "--filter", "colour=red")
    assert result.exit_code == 1 and "unknown filter" in result.output
    result = run(home, tiny_model_dir, "search")
    assert result.exit_code == 1 and "--text" in result.output
    result = run(home, tiny_model_dir, "ingest", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "no such file" in result.output


def test_index_info_and_rebuild(tmp_path, tiny_model_dir, photos):
    home = tmp_path / "home"
    run(home, tiny_model_dir, "ingest", str(photos))
    info = json.loads(run(home, tiny_model_dir, "index", "info", "--json").output)
    assert info["items"] == 5 and info["index_kind"] == "flat" and info["missing_embeddings"] == 0
    result = run(home, tiny_model_dir, "index", "rebuild")
    assert result.exit_code == 0 and "5 items" in result.output
    assert "blended index: flat, 5 items, text_field_weight 0.75" in result.output
    assert (home / "index" / "blended").is_dir()
    report = json.loads(run(home, tiny_model_dir, "check", "--json").output)
    assert report["ok"] and report["blended_store_only"] == report["blended_stale"] == []


def test_recommend_cli(tmp_path, tiny_model_dir, photos):
    home = tmp_path / "home"
    run(home, tiny_model_dir, "ingest", str(photos))
    result = run(home, tiny_model_dir, "recommend", "nobody", "-k", "2", "--json")
    assert result.exit_code == 0 and len(json.loads(result.output)["results"]) == 2


@pytest.mark.parametrize("toml, message", [
    ("[blend]\nbogus = 1\n", "unknown blend setting(s): bogus"),
    ("[blend]\nexplore = 3\n", "must be between 0 and 1"),
    ("[event_weights]\nglance = 1\n", "unknown event kind(s) in event_weights: glance"),
    ("[event_weights]\nview = -2\n", "event_weights.view must be a number"),
    ("half_life_days = -1\n", "must be a non-negative number"),
    ("blend = 3\n", "must be a table"),
])
def test_bad_recommendation_settings_are_one_clear_line(tmp_path, tiny_model_dir, toml, message):
    home = tmp_path / "home"
    home.mkdir()
    (home / "jewelsearch.toml").write_text(toml)
    result = CliRunner().invoke(main, ["--home", str(home), "--model", str(tiny_model_dir),
                                       "recommend", "u", "--json"])
    assert result.exit_code == 1 and "bad settings" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_recommendation_settings_reach_the_service(tmp_path, tiny_model_dir, photos):
    home = tmp_path / "home"
    home.mkdir()
    (home / "jewelsearch.toml").write_text(
        "visit_half_life_hours = 2\nrecently_seen_days = 3\n[event_weights]\nview = 3\n"
        "[blend]\nexplore = 0.2\nmax_interests = 2\n")
    run(home, tiny_model_dir, "ingest", str(photos))
    from jewelsearch.config import load_settings
    from jewelsearch.recommend import BlendWeights
    from jewelsearch.search.wiring import open_service
    service = open_service(load_settings(home, env={}, overrides={"model": str(tiny_model_dir)}))
    assert service.blend_weights.explore == 0.2 and service.blend_weights.max_interests == 2
    assert service.blend_weights.taste == BlendWeights().taste  # unset keys keep the tuned defaults
    assert service.visit_half_life_hours == 2 and service.recently_seen_days == 3
    assert service.catalog.events.validate({"user_id": "u", "item_id": 1, "kind": "view"})["weight"] == 3
    service.catalog.close()


def test_demo_if_missing_leaves_existing_catalog(tmp_path, tiny_model_dir, photos):
    home = tmp_path / "home"
    run(home, tiny_model_dir, "ingest", str(photos))
    result = run(home, tiny_model_dir, "demo", "--if-missing")
    assert result.exit_code == 0 and "already has items" in result.output


def test_eval_recommend_no_tune_judges_the_homes_configured_blend(tmp_path, tiny_model_dir):
    home = tmp_path / "home"
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(50):
        (photos / f"p{i}.png").write_bytes(make_image(seed=i))
    assert run(home, tiny_model_dir, "ingest", str(photos)).exit_code == 0
    (home / "jewelsearch.toml").write_text("[blend]\nsimilarity = 0.3\npopularity = 0.8\n")
    out = tmp_path / "report"
    result = run(home, tiny_model_dir, "eval", "recommend", "--no-tune", "--users", "20", "--out", str(out))
    assert result.exit_code == 0, result.output
    weights = json.loads((out / "recommend.json").read_text())["weights"]
    assert weights["similarity"] == 0.3 and weights["popularity"] == 0.8
    assert "`[blend]` in the home's `jewelsearch.toml`" in (out / "recommend.md").read_text()


def test_train_group_lists_its_steps_in_the_order_they_run():
    import click

    from jewelsearch.cli.train import train
    order = ["encoder", "localizer", "stone-branch", "robust-top", "context-heads", "stone-heads", "gem-specialist",
             "instance-head", "style-head", "render-heads", "one-vector"]
    assert train.list_commands(click.Context(train)) == order
    listing = CliRunner().invoke(main, ["train", "--help"]).output.split("Commands:")[1]
    assert [line.split()[0] for line in listing.strip().splitlines()] == order


@pytest.mark.parametrize("old, new", [("train-localizer", "localizer"), ("train-stone-channel", "stone-branch"),
                                      ("tune-robust", "robust-top"), ("train-context-head", "context-heads"),
                                      ("train-stone-heads", "stone-heads"), ("train-gem-head", "gem-specialist")])
def test_old_step_names_are_hidden_aliases(old, new):
    top = CliRunner().invoke(main, ["--help"]).output
    assert old not in top and "train" in top
    alias, step = (CliRunner().invoke(main, [*args, "--help"]) for args in ([old], ["train", new]))
    assert alias.exit_code == 0 and step.exit_code == 0
    assert alias.output.split("\n", 1)[1] == step.output.split("\n", 1)[1]  # the same options and help


def test_a_hidden_alias_runs_the_step(tmp_path, tiny_model_dir):
    (tmp_path / "gems").mkdir()
    alias = run(tmp_path / "home", tiny_model_dir, "train-gem-head", "--gemstones", str(tmp_path / "gems"))
    step = run(tmp_path / "home", tiny_model_dir, "train", "gem-specialist", "--gemstones", str(tmp_path / "gems"))
    assert alias.exit_code == step.exit_code == 1
    assert alias.output == step.output and alias.output.startswith("error: ")


@pytest.fixture
def restore_log_levels():
    import logging
    loggers = [logging.getLogger(), logging.getLogger("jewelsearch")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


@pytest.mark.parametrize("flag, jewelsearch_level, root_level", [(["-v"], "DEBUG", "INFO"), ([], "WARNING", "WARNING")])
def test_verbose_sets_the_log_levels(tmp_path, restore_log_levels, flag, jewelsearch_level, root_level):
    import logging
    result = CliRunner().invoke(main, [*flag, "--home", str(tmp_path / "home"), "index", "--help"])
    assert result.exit_code == 0, result.output
    assert logging.getLevelName(logging.getLogger("jewelsearch").getEffectiveLevel()) == jewelsearch_level
    assert logging.getLogger("jewelsearch").isEnabledFor(logging.DEBUG) == bool(flag)
    assert logging.getLevelName(logging.getLogger().level) == root_level


def test_file_readers_are_public_in_ingest_sources(tmp_path):
    from jewelsearch.ingest.sources import SourceError, find_images, read_event_rows, read_metadata
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.tiff").write_bytes(b"x")
    (tmp_path / "c.txt").write_text("x")
    assert [p.name for p in find_images([str(tmp_path)])] == ["a.jpg", "b.tiff"]
    with pytest.raises(SourceError, match="no such file"):
        find_images([str(tmp_path / "missing")])
    (tmp_path / "m.csv").write_text("path,title\nphotos/a.jpg,Ring\n")
    meta = read_metadata(tmp_path / "m.csv")
    assert meta["photos/a.jpg"] is meta["a.jpg"] and meta["a.jpg"]["title"] == "Ring"
    (tmp_path / "bad.csv").write_text("title\nRing\n")
    with pytest.raises(SourceError, match="needs a path"):
        read_metadata(tmp_path / "bad.csv")
    (tmp_path / "e.jsonl").write_text('{"user_id": "u", "item_id": 1, "kind": "view"}\n[1]\nnot json\n')
    rows = list(read_event_rows(tmp_path / "e.jsonl"))
    assert rows[0]["kind"] == "view" and rows[1] == {"_error": "line 2 is not an object"}
    assert rows[2] == {"_error": "line 3 is not JSON"}


@pytest.mark.parametrize("args, message", [(["--search", "nope"], "unknown blend weight(s) for --search: nope"),
                                           (["--search", "factors", "--no-tune"], "cannot go with --no-tune"),
                                           (["--shoppers-from", "moods"], "Invalid value for '--shoppers-from'")])
def test_eval_recommend_refuses_bad_options(tmp_path, tiny_model_dir, args, message):
    result = run(tmp_path / "home", tiny_model_dir, "eval", "recommend", *args)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
