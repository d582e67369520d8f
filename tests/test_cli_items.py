"""`jewelsearch items`: the API's item reads and writes from the command line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import make_image

from jewelsearch.cli import main


@pytest.fixture
def home(tmp_path, tiny_model_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.png").write_bytes(make_image(seed=i))
    (tmp_path / "meta.csv").write_text("path,title,category,metal,price\n" + "".join(
        f"p{i}.png,Piece {i},ring,yellow gold,{100 + i}\n" for i in range(3)))
    home = tmp_path / "home"
    assert run(home, tiny_model_dir, "ingest", str(folder), "--metadata", str(tmp_path / "meta.csv")).exit_code == 0
    return home


def run(home, model, *args, stdin=None):
    return CliRunner().invoke(main, ["--home", str(home), "--model", str(model), *args], input=stdin,
                              catch_exceptions=False)


def test_list_and_show(home, tiny_model_dir):
    listed = run(home, tiny_model_dir, "items", "list", "--limit", "2")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].startswith("[1] Piece 0  ring, yellow gold") and lines[0].endswith("100.00 USD")
    assert len(lines) == 3 and lines[-1] == "2 of 3 items (offset 0); more: --offset 2"
    page = json.loads(run(home, tiny_model_dir, "items", "list", "--offset", "2", "--json").output)
    assert [row["title"] for row in page["items"]] == ["Piece 2"] and page["total"] == 3
    assert page["next_offset"] is None
    dearest = run(home, tiny_model_dir, "items", "list", "--sort", "price_desc", "--filter", "max_price=101.5")
    lines = dearest.output.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["[2]", "[1]"]  # 101 before 100; 102 is over the filter
    assert lines[0].endswith("101.00 USD") and lines[-1] == "2 of 2 items the filters allow (offset 0)"
    shown = run(home, tiny_model_dir, "items", "show", "2").output.splitlines()
    assert "title: Piece 1" in shown and "price: 101.0" in shown
    assert any(line.startswith("created_at: 20") and line.endswith("+00:00") for line in shown)
    assert json.loads(run(home, tiny_model_dir, "items", "show", "2", "--json").output)["title"] == "Piece 1"


def test_update_changes_fields_and_search_sees_them(home, tiny_model_dir):
    result = run(home, tiny_model_dir, "items", "update", "2", "--set", "title=Oval ruby ring", "--set", "price=420",
                 "--set", "gemstone=ruby")
    assert result.exit_code == 0 and result.output.strip() == "updated [2] Oval ruby ring"
    row = json.loads(run(home, tiny_model_dir, "items", "show", "2", "--json").output)
    assert (row["title"], row["price"]) == ("Oval ruby ring", 420.0)
    found = json.loads(run(home, tiny_model_dir, "search", "--text", "ruby", "-k", "1", "--json").output)
    assert found["results"][0]["id"] == 2
    # The indexes were saved with the write: the next command finds them in step with the store.
    check = run(home, tiny_model_dir, "check")
    assert check.exit_code == 0 and check.output.strip().endswith("ok")


def test_delete_asks_first_and_removes_the_item(home, tiny_model_dir):
    declined = run(home, tiny_model_dir, "items", "delete", "3", stdin="n\n")
    assert declined.exit_code != 0
    assert run(home, tiny_model_dir, "items", "show", "3").exit_code == 0
    assert run(home, tiny_model_dir, "items", "delete", "3", "--yes").output.strip() == "deleted [3]"
    assert run(home, tiny_model_dir, "items", "list").output.splitlines()[-1] == "2 of 2 items (offset 0)"
    assert run(home, tiny_model_dir, "check").exit_code == 0


@pytest.mark.parametrize("args, message", [
    (("show", "99"), "error: item 99 not found"),
    (("show", "abc"), "error: item 'abc' not found"),
    (("delete", "99", "--yes"), "error: item 99 not found"),
    (("update", "1"), "error: give --set FIELD=VALUE or --image"),
    (("update", "1", "--set", "colour=red"), "error: unknown field 'colour'"),
    (("update", "1", "--set", "title"), "error: --set takes FIELD=VALUE"),
    (("update", "1", "--set", "price=cheap"), "error: price must be a number"),
])
def test_bad_input_is_one_clear_line_and_changes_nothing(home, tiny_model_dir, args, message):
    before = run(home, tiny_model_dir, "items", "list", "--json").output
    result = run(home, tiny_model_dir, "items", *args)
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1].startswith(message)
    assert run(home, tiny_model_dir, "items", "list", "--json").output == before
