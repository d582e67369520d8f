"""The lexical (FTS5) index: tokens, transactional writes, migration, ranking, safety, check."""

import json
import sqlite3

import pytest
from conftest import make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jewelsearch.embed.vocab import GEM_SPOKEN
from jewelsearch.errors import InvalidInput
from jewelsearch.ingest.pipeline import NewItem
from jewelsearch.search.consistency import check
from jewelsearch.storage import Catalog
from jewelsearch.storage.db import MIGRATIONS, SCHEMA_VERSION
from jewelsearch.storage.items import normalise_item_fields
from jewelsearch.storage.lexical import TABLE, LexicalIndex, spoken_gemstone
from jewelsearch.storage.lexical_tokens import lexical_tokens

FILLER = ["Plain silver bangle", "Chain necklace in rose gold", "Stud earrings in platinum",
          "Charm bracelet", "Signet ring", "Hoop earrings", "Cuff bracelet", "Locket necklace"]


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog.open(tmp_path / "c.db", tmp_path / "images")
    yield cat
    cat.close()


def insert(catalog, attributes=None, **fields):
    with catalog.database.write() as conn:
        return catalog.items.insert(conn, normalise_item_fields(fields), image_path="ab/x.jpg",
                                    image_sha256="ab" * 32, attributes=attributes)


def add_filler(catalog):
    """Items without the query words, so bm25's idf is positive as in a real catalog."""
    return [insert(catalog, title=title) for title in FILLER]


def ids(hits):
    return [item_id for item_id, _ in hits]


def fts_rows(catalog):
    return {r["rowid"]: r for r in catalog.database.query(f"SELECT rowid, * FROM {TABLE}")}


# ----- tokens -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Rings", ["ring"]), ("earrings", ["earring"]), ("Pendants", ["pendant"]),
    ("18K gold", ["18k", "gold"]), ("14k/18k", ["14k", "18k"]), ("rose-gold", ["rose", "gold"]),
    ("ＲＩＮＧ", ["ring"]), ("pen\u200bdant", ["pendant"]), ("brass", ["brass"]),
    ("café", ["café"]), ("💍 ring!", ["ring"]), ("", []),
    ("吊坠", ["吊", "坠", "吊坠"]), ("戒指", ["戒", "指", "戒指"]),
])
def test_lexical_tokens(text, expected):
    assert lexical_tokens(text) == expected


def test_spoken_gemstone_agrees_with_the_vocabulary():
    for label, spoken in GEM_SPOKEN.items():
        assert set(lexical_tokens(spoken_gemstone(label))) == set(lexical_tokens(spoken))


# ----- written with the item ----------------------------------------------------------------

def test_written_in_the_same_transaction(catalog):
    with pytest.raises(RuntimeError), catalog.database.write() as conn:
        catalog.items.insert(conn, {"title": "opal ring"}, image_path="a", image_sha256="b")
        raise RuntimeError("boom")
    assert fts_rows(catalog) == {} and catalog.lexical.search(["opal"]) == []
    insert(catalog, title="first", sku="S1")
    # The second insert fails: the batch leaves nothing.
    with pytest.raises(InvalidInput), catalog.database.write() as conn:
        catalog.items.insert(conn, {"title": "opal ring"}, image_path="a", image_sha256="b")
        catalog.items.insert(conn, {"title": "x", "sku": "S1"}, image_path="a", image_sha256="b")
    assert catalog.lexical.search(["opal"]) == [] and len(fts_rows(catalog)) == 1


def test_update_and_delete_follow_the_item(catalog):
    item = insert(catalog, title="Opal ring", metal="silver")
    with catalog.database.write() as conn:
        catalog.items.update(conn, item, {"title": "Garnet ring"})
    assert catalog.lexical.search(["opal"]) == []
    assert ids(catalog.lexical.search(["garnet silver"])) == [item]
    # A rolled-back update leaves the old words.
    with pytest.raises(RuntimeError), catalog.database.write() as conn:
        catalog.items.update(conn, item, {"title": "Topaz ring"})
        raise RuntimeError("boom")
    assert ids(catalog.lexical.search(["garnet"])) == [item] and catalog.lexical.search(["topaz"]) == []
    with catalog.database.write() as conn:
        catalog.items.delete(conn, item)
    assert catalog.lexical.search(["garnet"]) == [] and fts_rows(catalog) == {}


def test_old_schema_database_is_backfilled_on_open(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.executemany(
        "INSERT INTO items (title, description, gemstone, image_path, image_sha256, attributes,"
        " created_at, updated_at) VALUES (?, ?, ?, 'a', 'b', ?, 0, 0)",
        [("Oval pendant", "", "sapphire blue", "{}"), ("蓝宝石吊坠", "", None, "not json"),
         ("Gold ring", "with a tiny opal", None, json.dumps({"predicted": {}}))])
    conn.commit()
    conn.close()
    catalog = Catalog.open(path, tmp_path / "images")
    try:
        assert catalog.database.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert ids(catalog.lexical.search(["blue sapphire pendant"]))[0] == 1
        assert ids(catalog.lexical.search(["吊坠"])) == [2]
        assert ids(catalog.lexical.search(["opal"])) == [3]
        assert catalog.lexical.audit().ok and catalog.lexical.count() == 3
    finally:
        catalog.close()


# ----- ranking ------------------------------------------------------------------------------

def test_all_words_first_then_any(catalog):
    add_filler(catalog)
    only_oval = insert(catalog, title="Oval locket")
    both = insert(catalog, title="Oval sapphire pendant")
    only_sapphire = insert(catalog, title="Sapphire tennis bracelet")
    hits = ids(catalog.lexical.search(["oval sapphire"]))
    assert hits[0] == both and set(hits[1:]) == {only_oval, only_sapphire}
    assert ids(catalog.lexical.search(["oval sapphire"], limit=1)) == [both]
    assert ids(catalog.lexical.search(["oval", "sapphire"], limit=2))[0] == both
    scores = [score for _, score in catalog.lexical.search(["oval sapphire"])]
    assert all(score > 0 for score in scores)


def test_title_outranks_attributes_outranks_description(catalog):
    add_filler(catalog)
    in_description = insert(catalog, title="Drop pendant", description="Set with an opal.")
    in_title = insert(catalog, title="Opal drop", description="A pendant.")
    in_attribute = insert(catalog, title="Drop pendant", gemstone="opal")
    assert ids(catalog.lexical.search(["opal"])) == [in_title, in_attribute, in_description]


def test_predicted_attributes_are_searchable_and_rank_lower(catalog):
    add_filler(catalog)
    guessed = insert(catalog, title="Drop", category="pendant",
                     attributes={"predicted": {"category": {"label": "pendant", "p": 0.8}}})
    given_ = insert(catalog, title="Drop", category="pendant")
    not_filled = insert(catalog, title="Drop",
                        attributes={"predicted": {"gemstone": {"label": "opal", "p": 0.3,
                                                               "filled": False}}})
    rows = fts_rows(catalog)
    assert rows[guessed]["predicted"] == "pendant" and rows[guessed]["attributes"] == ""
    assert rows[given_]["attributes"] == "pendant" and rows[given_]["predicted"] == ""
    assert ids(catalog.lexical.search(["pendants"])) == [given_, guessed]
    assert catalog.lexical.search(["opal"]) == [] and not_filled in ids(catalog.lexical.search(["drop"]))
    with catalog.database.write() as conn:  # a shop that corrects the guess makes it given
        catalog.items.update(conn, guessed, {"category": "necklace"})
    assert fts_rows(catalog)[guessed]["attributes"] == "necklace"


def test_chinese_words_match_inside_a_title(catalog):
    add_filler(catalog)
    pendant = insert(catalog, title="蓝宝石吊坠")
    ring = insert(catalog, title="红宝石戒指")
    assert ids(catalog.lexical.search(["吊坠"])) == [pendant]
    assert ids(catalog.lexical.search(["蓝宝石"]))[0] == pendant
    assert ids(catalog.lexical.search(["戒指"])) == [ring]
    assert set(ids(catalog.lexical.search(["宝"]))) == {pendant, ring}


def test_allowed_ids_restrict_the_results(catalog):
    items = [insert(catalog, title=f"Opal ring {i}") for i in range(12)]
    assert set(ids(catalog.lexical.search(["opal"], allowed_ids=items[:3]))) == set(items[:3])
    many = set(items[5:]) | set(range(10_000, 10_600))  # past the SQL IN-list size: streamed
    assert set(ids(catalog.lexical.search(["opal ring"], allowed_ids=many))) == set(items[5:])
    assert catalog.lexical.search(["opal"], allowed_ids=[]) == []
    assert catalog.lexical.search([]) == [] and catalog.lexical.search(["!!! 💍"]) == []


def test_a_word_most_items_share_ranks_the_newest_matches(catalog):
    items = [insert(catalog, title=f"Gold ring {i}") for i in range(12)]
    capped = LexicalIndex(catalog.database, candidates=2)
    assert set(ids(capped.search(["gold"], limit=1))) <= set(items[-4:])  # 4 x limit ranked
    assert len(catalog.lexical.search(["gold"], limit=50)) == 12


def two_passes(database, tokens, limit, allowed, candidates):
    """The word index's ranking as two statements per query, as it was first written (the
    reference the one-statement path must equal): the newest ``max(candidates, 4 x limit)``
    items holding every token, scored and cut to ``limit``; then, when fewer came back, the
    newest of those holding any token (as many more as the first pass found), minus the first
    pass's, scored and cut to what is left."""
    from jewelsearch.storage.lexical import _WEIGHT_ARGS, fts_string

    def ranked(match, size, exclude):
        sql = (f"SELECT rowid, bm25({TABLE}, {_WEIGHT_ARGS}) FROM {TABLE} WHERE {TABLE} MATCH ?"
               + (f" AND +rowid IN ({', '.join('?' * len(allowed))})" if allowed is not None else "")
               + " ORDER BY rowid DESC LIMIT ?")
        rows = database.conn.execute(sql, [match, *(allowed or ()), max(candidates, 4 * size) + len(exclude)]).fetchall()
        scored = sorted(((-float(rank), int(item)) for item, rank in rows if item not in exclude), reverse=True)
        return [(item, score) for score, item in scored[:size]]

    quoted = [fts_string(t) for t in tokens]
    hits = ranked(" AND ".join(quoted), limit, set())
    if len(hits) < limit and len(tokens) > 1:
        hits += ranked(" OR ".join(quoted), limit - len(hits), {item for item, _ in hits})
    return hits


WORDS = ["gold", "ring", "oval", "sapphire", "pendant", "pearl", "silver", "hoop"]


def test_an_item_holding_every_word_older_than_the_or_candidates_still_comes_first(catalog):
    oldest = insert(catalog, title="Gold ring")
    newer = [insert(catalog, title=f"Gold chain {i}") for i in range(10)]
    index = LexicalIndex(catalog.database, candidates=1)  # the OR pass ranks the newest 5
    hits = index.search(["gold", "ring"], limit=2)
    assert ids(hits) == [oldest, newer[-1]]
    assert hits == two_passes(catalog.database, ["gold", "ring"], 2, None, 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(titles=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join), min_size=1, max_size=40),
       query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4, unique=True),
       limit=st.integers(1, 6), candidates=st.integers(1, 8), filtered=st.booleans(), data=st.data())
def test_one_scored_statement_ranks_as_the_two_passes(tmp_path_factory, titles, query, limit, candidates,
                                                      filtered, data):
    # Small candidate caps make items holding every word fall outside the OR pass's newest
    # candidates, where the index must go back to the two passes.
    catalog = Catalog.open(tmp_path_factory.mktemp("c") / "c.db", tmp_path_factory.mktemp("i"))
    try:
        items = [insert(catalog, title=title) for title in titles]
        allowed = set(data.draw(st.lists(st.sampled_from(items), min_size=1))) if filtered else None
        index = LexicalIndex(catalog.database, candidates=candidates)
        assert index.search(query, limit=limit, allowed_ids=allowed) == \
            two_passes(catalog.database, query, limit, allowed, candidates)
    finally:
        catalog.close()


# ----- never raises on any text ---------------------------------------------------------------

SYNTAX = ['"', '""', "'", "*", "NEAR", "NEAR(", "AND", "OR", "NOT", "(", ")", "-", "^", "+",
          "title:", "predicted:", "{title description}:", ":", "\u200b", "\ufeff", "💍", "蓝宝石",
          "吊坠", "ring", "ö", "\x00", "\\", "%", "_", ";", "--", "/*"]
query_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(SYNTAX), max_size=12).map(" ".join),
    st.lists(st.sampled_from(SYNTAX), max_size=12).map("".join),
    st.text(alphabet=st.sampled_from("ab\"*^-():吊坠 \u200b😀NEAR"), min_size=400, max_size=500),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(terms=st.lists(query_text, max_size=4), limit=st.integers(1, 50))
def test_search_never_raises(catalog, terms, limit):
    if not catalog.items.count():
        add_filler(catalog)
        for title in ["蓝宝石吊坠 ring", 'A "quoted" NEAR title', "Opal ring ö"]:
            insert(catalog, title=title, description="* ^ - AND OR NOT ( ) title:")
    existing = set(catalog.items.all_ids())
    hits = catalog.lexical.search(terms, limit=limit)
    assert len(hits) <= limit and set(ids(hits)) <= existing
    assert len(set(ids(hits))) == len(hits)
    # Reading typos as the catalog's words never raises either, whatever the words hold.
    respelled_hits, read_as = catalog.lexical.search_respelling(terms, limit=limit, may_respell=lambda word: True)
    assert len(respelled_hits) <= limit and set(ids(respelled_hits)) <= existing
    assert not read_as or respelled_hits


# ----- jewelsearch check and index rebuild ----------------------------------------------------

def test_check_reports_and_repairs_the_lexical_index(service):
    added = service.add_items([NewItem(make_image(seed=i), {"title": f"Opal ring {i}"}) for i in range(3)])
    items = [r.item_id for r in added]
    assert check(service).ok
    catalog = service.catalog
    with catalog.database.write() as conn:
        conn.execute(f"DELETE FROM {TABLE} WHERE rowid = ?", (items[0],))
        conn.execute(f"INSERT INTO {TABLE}(rowid, title) VALUES (999, 'ghost')")
        conn.execute("UPDATE items SET title = 'Garnet ring' WHERE id = ?", (items[1],))
    report = check(service)
    assert not report.ok
    assert report.lexical_missing == [items[0]] and report.lexical_orphans == [999]
    assert report.lexical_stale == [items[1]] and report.as_dict()["lexical_missing"] == [items[0]]
    repaired = check(service, repair=True)
    assert "rebuilt the lexical index" in repaired.repaired
    assert check(service).ok
    assert ids(catalog.lexical.search(["garnet"])) == [items[1]]
    assert set(ids(catalog.lexical.search(["opal"]))) == {items[0], items[2]}


def test_index_rebuild_rebuilds_the_lexical_index(service):
    item = service.add_items([NewItem(make_image(seed=1), {"title": "Opal ring"})])[0].item_id
    with service.catalog.database.write() as conn:
        conn.execute(f"DELETE FROM {TABLE}")
    service.rebuild_index(reembed=False)
    assert ids(service.catalog.lexical.search(["opal"])) == [item]
