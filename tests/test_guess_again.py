"""Recognition run again over stored items (``jewelsearch items guess-again``): it guesses as
ingest would now, keeps what the shop gave, and says what it skipped."""

import json

import pytest
from click.testing import CliRunner
from conftest import make_image
from test_recognition import _certain_heads

from jewelsearch.cli import main
from jewelsearch.errors import InvalidInput
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.search.service import SearchService


@pytest.fixture
def recognising(service, tiny_encoder, tmp_path):
    (tmp_path / "rose").mkdir()
    heads = _certain_heads(tiny_encoder.dim, tmp_path / "rose", {"category": "ring", "metal": "rose gold"})
    return SearchService(service.catalog, service.encoder, service.index_dir,
                         recognizer=Recognizer(service.encoder, heads))


def stored(svc, item_id):
    return svc.catalog.items.get(item_id)


def test_guessing_again_with_the_same_model_gives_what_ingest_gave_and_restores_runners_up(recognising):
    bare, titled = recognising.add_items([NewItem(make_image(seed=11), {}),
                                          NewItem(make_image(seed=12), {"title": "Band", "metal": "platinum"})])
    ingested = {item: stored(recognising, item) for item in (bare.item_id, titled.item_id)}
    # As an ingest before runners-up were kept would have left it.
    older = json.loads(json.dumps(ingested[bare.item_id]["attributes"]))
    for guess in older["predicted"].values():
        guess.pop("runners_up", None)
    with recognising.catalog.database.write() as conn:
        recognising.catalog.items.update(conn, bare.item_id, {}, attributes=older)
    version = recognising.catalog.items.version()

    report = recognising.guess_again()
    assert report.changed == [bare.item_id] and report.unchanged == [titled.item_id] and not report.skipped
    again = stored(recognising, bare.item_id)
    assert again["attributes"] == ingested[bare.item_id]["attributes"]
    assert {k: again[k] for k in ("category", "metal", "gemstone", "stone_shape")} == \
        {k: ingested[bare.item_id][k] for k in ("category", "metal", "gemstone", "stone_shape")}
    assert recognising.catalog.items.version() > version  # the ranking columns re-read it
    assert stored(recognising, titled.item_id)["metal"] == "platinum"  # the shop's value stays
    # Nothing moved the second time.
    second = recognising.guess_again()
    assert second.changed == [] and sorted(second.unchanged) == sorted([bare.item_id, titled.item_id])


def test_a_new_model_replaces_the_guesses_but_never_the_shops_values(recognising, tiny_encoder, tmp_path):
    guessed, corrected, given = recognising.add_items([
        NewItem(make_image(seed=21), {}), NewItem(make_image(seed=22), {}),
        NewItem(make_image(seed=23), {"category": "ring", "metal": "yellow gold", "gemstone": "ruby",
                                      "stone_shape": "oval", "title": "Ruby ring"})])
    assert stored(recognising, guessed.item_id)["metal"] == "rose gold"
    recognising.update_item(corrected.item_id, {"metal": "white gold"})  # the shop corrects a guess

    (tmp_path / "silver").mkdir()
    upgraded = _certain_heads(tiny_encoder.dim, tmp_path / "silver", {"category": "necklace", "metal": "silver"})
    recognising.state.ingestor.recognizer = Recognizer(recognising.encoder, upgraded)
    report = recognising.guess_again([guessed.item_id, corrected.item_id, given.item_id])

    assert report.skipped == {given.item_id: "the shop gave every field"}
    row = stored(recognising, guessed.item_id)
    assert (row["category"], row["metal"]) == ("necklace", "silver")
    assert row["attributes"]["predicted"]["metal"]["label"] == "silver"
    kept = stored(recognising, corrected.item_id)
    assert kept["metal"] == "white gold" and kept["category"] == "necklace"
    assert "metal" not in kept["attributes"]["predicted"]  # no stale guess beside the shop's value
    assert recognising.catalog.items.filter_ids({"metal": "silver"}) == [guessed.item_id]
    # The word index follows: the new guess is found, the old one no longer is.
    found = {item for item, _ in recognising.catalog.lexical.search(["silver"])}
    assert guessed.item_id in found
    assert guessed.item_id not in {item for item, _ in recognising.catalog.lexical.search(["rose"])}


def test_a_missing_photo_is_skipped_with_its_reason_and_the_rest_go_on(recognising):
    lost, kept = recognising.add_items([NewItem(make_image(seed=31), {}), NewItem(make_image(seed=32), {})])
    recognising.catalog.images.path_for(stored(recognising, lost.item_id)["image_path"]).unlink()
    report = recognising.guess_again([lost.item_id, kept.item_id, 999_999])
    assert report.skipped[lost.item_id].startswith("its photo could not be read")
    assert report.skipped[999_999] == "no such item"
    assert report.unchanged == [kept.item_id]


def test_a_model_without_recognition_says_so(service):
    service.add_items([NewItem(make_image(seed=41), {})])
    with pytest.raises(InvalidInput, match="recognises nothing"):
        service.guess_again()


def test_the_command_refuses_an_unknown_id_and_needs_ids_or_all(settings, service, tiny_model_dir):
    service.add_items([NewItem(make_image(seed=51), {})])
    runner = CliRunner()
    base = ["--home", str(settings.home), "--model", str(tiny_model_dir), "items", "guess-again"]
    unknown = runner.invoke(main, [*base, "424242"])
    assert unknown.exit_code != 0 and "424242" in unknown.output
    for wrong in ([], ["1", "--all"]):
        refused = runner.invoke(main, [*base, *wrong])
        assert refused.exit_code != 0 and "item ids or --all" in refused.output


def test_items_show_names_the_runners_up(settings, recognising, tiny_model_dir):
    item = recognising.add_items([NewItem(make_image(seed=61), {})])[0].item_id
    runners = stored(recognising, item)["attributes"]["predicted"]["metal"]["runners_up"]
    shown = CliRunner().invoke(main, ["--home", str(settings.home), "--model", str(tiny_model_dir),
                                      "items", "show", str(item)])
    assert shown.exit_code == 0, shown.output
    metal_line = next(line for line in shown.output.splitlines() if line.startswith("metal: "))
    assert f"; then {runners[0][0]} {runners[0][1]:.2f}, {runners[1][0]}" in metal_line


def test_the_examples_in_the_guess_modules_hold():
    import doctest

    from jewelsearch.ingest import guess_again, pipeline
    from jewelsearch.search import attribute_match
    from jewelsearch.storage import items
    for module in (guess_again, pipeline, attribute_match, items):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_an_item_written_elsewhere_while_it_was_being_guessed_is_left_as_written(recognising, monkeypatch):
    from jewelsearch.ingest import guess_again as module
    item = recognising.add_items([NewItem(make_image(seed=71), {})])[0].item_id
    embed = recognising.state.ingestor.embed_photos

    def shop_edits_meanwhile(prepared, inputs):
        out = embed(prepared, inputs)
        with recognising.catalog.database.write() as conn:  # as another process would, mid-batch
            recognising.catalog.items.update(conn, item, {"metal": "platinum"})
        return out

    monkeypatch.setattr(recognising.state.ingestor, "embed_photos", shop_edits_meanwhile)
    report = module.guess_batch(recognising.state.ingestor, [item])
    assert report.skipped == {item: "changed while it was being guessed; run again"}
    assert stored(recognising, item)["metal"] == "platinum"
