import numpy as np
import pytest

from jewelsearch.evaluate.recommend import ndcg, split
from jewelsearch.evaluate.simulate import SimulationConfig, simulate
from jewelsearch.index import IndexChoice, VectorIndex
from jewelsearch.recommend import BlendWeights, CollaborativeSignals, Recommender, build_history
from jewelsearch.recommend.blend import mmr
from jewelsearch.recommend.history import decay
from jewelsearch.recommend.interests import interests_of, ward_clusters

NOW = 1_790_000_000.0
STRONG = {"EASE": 50.0, "ALS (implicit)": 0.1, "BPR (implicit)": 16, "VBPR (cornac, image embeddings)": 0.01}
OURS_NAME = "blended (jewelsearch)"


def planted(n_per=20, dim=32, groups=3, seed=0):
    """Items in tight groups: group g lives around its own random direction."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim))
    vectors, group_of = {}, {}
    item = 1
    for g in range(groups):
        for _ in range(n_per):
            v = centres[g] + 0.15 * rng.normal(size=dim)
            vectors[item] = (v / np.linalg.norm(v)).astype(np.float32)
            group_of[item] = g
            item += 1
    return vectors, group_of


@pytest.fixture
def catalog():
    vectors, group_of = planted()
    ids = np.array(sorted(vectors))
    index = VectorIndex.build(ids, np.stack([vectors[i] for i in ids]), IndexChoice("flat"))
    lookup = lambda wanted: {i: vectors[i] for i in wanted if i in vectors}  # noqa: E731
    return index, vectors, group_of, lookup


def event(user, item, kind="view", ts=NOW - 3600, weight=None):
    weights = {"view": 1.0, "click": 2.0, "like": 4.0, "add_to_cart": 6.0, "purchase": 10.0}
    return {"user_id": user, "item_id": item, "kind": kind, "ts": ts, "weight": weight or weights[kind]}


def test_ward_recovers_planted_interests():
    vectors, group_of = planted(n_per=8)
    ids = [1, 2, 3, 4, 9, 10, 11, 17, 18]
    clusters = ward_clusters(np.stack([vectors[i] for i in ids]))
    found = sorted(sorted({group_of[ids[r]] for r in c}) for c in clusters)
    assert found == [[0], [1], [2]]


def test_interest_importance_and_medoid_are_real_items():
    vectors, group_of = planted(n_per=8)
    ids = [1, 2, 3, 9]
    weights = np.array([5.0, 5.0, 5.0, 1.0])
    interests = interests_of(ids, np.stack([vectors[i] for i in ids]), weights)
    assert len(interests) == 2
    assert interests[0].importance == 15.0 and interests[0].medoid in (1, 2, 3)
    assert interests[1].members == [9]


def test_decay_and_weights():
    assert decay(0, 30) == 1.0
    assert decay(30 * 86400, 30) == pytest.approx(0.5)
    history = build_history("u", [event("u", 1, "view", NOW - 60 * 86400), event("u", 2, "like", NOW)],
                            half_life_days=30, now=NOW)
    assert history.weights[1] == pytest.approx(0.25)
    assert history.weights[2] == pytest.approx(4.0)


def test_two_tastes_get_both_not_the_midpoint(catalog):
    index, vectors, group_of, lookup = catalog
    history = build_history("u", [event("u", i, "like") for i in (1, 2, 3, 41, 42, 43)], now=NOW)
    recs = Recommender(index, lookup, CollaborativeSignals(), BlendWeights(diversity=0.0)).recommend(history, 10)
    groups = {group_of[r.item_id] for r in recs}
    assert groups == {0, 2}
    # A single mean embedding lands between the two and mixes in the unrelated group less cleanly.
    assert all(r.reasons and r.reasons[0]["type"] in ("similar", "engaged") for r in recs)
    assert any(r.reasons[0]["type"] == "similar" for r in recs)


def test_purchased_items_are_excluded_and_filters_honoured(catalog):
    index, vectors, group_of, lookup = catalog
    history = build_history("u", [event("u", 1, "purchase"), event("u", 2, "view")], now=NOW)
    rec = Recommender(index, lookup, CollaborativeSignals())
    ids = [r.item_id for r in rec.recommend(history, 15)]
    assert 1 not in ids and len(ids) == 15
    allowed = list(range(41, 61))
    filtered = [r.item_id for r in rec.recommend(history, 5, allowed_ids=allowed)]
    assert set(filtered) <= set(allowed) and len(filtered) == 5


def test_deleted_items_are_skipped(catalog):
    index, vectors, group_of, lookup = catalog
    index.remove([2, 3, 4])
    history = build_history("u", [event("u", 1, "like")], now=NOW)
    ids = [r.item_id for r in Recommender(index, lookup, CollaborativeSignals()).recommend(history, 10)]
    assert not {2, 3, 4} & set(ids)


def test_cold_start_is_popular_and_diverse(catalog):
    index, vectors, group_of, lookup = catalog
    events = [event(f"u{n}", item, "purchase") for n in range(5) for item in (1, 2, 3, 4, 5)]
    events += [event("x", 41, "view")]
    signals = CollaborativeSignals.build(events, now=NOW)
    # The default weights (tuned diversity 0 for shoppers with a history) still spread a cold start.
    recs = Recommender(index, lookup, signals, BlendWeights(diversity=0.0)).recommend(
        build_history("new", [], now=NOW), 4)
    ids = [r.item_id for r in recs]
    assert len(ids) == 4 and ids[0] in (1, 2, 3, 4, 5)
    assert 41 in ids  # diversity pulls in the other popular group
    assert recs[0].reasons[0]["type"] == "popular"


def test_text_preference_steers_cold_start(catalog):
    index, vectors, group_of, lookup = catalog
    recs = Recommender(index, lookup, CollaborativeSignals(), BlendWeights(diversity=0.0)).recommend(
        build_history("new", [], now=NOW), 5, text_vector=vectors[45])
    assert {group_of[r.item_id] for r in recs} == {2}
    assert recs[0].reasons[0]["type"] == "preference"


def test_co_engagement_reason_points_at_history(catalog):
    index, vectors, group_of, lookup = catalog
    events = [event(f"buyer{n}", 1, "purchase") for n in range(6)] + \
             [event(f"buyer{n}", 50, "purchase") for n in range(6)]
    signals = CollaborativeSignals.build(events, now=NOW)
    history = build_history("u", [event("u", 1, "like")], now=NOW)
    recs = Recommender(index, lookup, signals, BlendWeights(similarity=0.1, co_engagement=2.0, history=0.0)).recommend(history, 5)
    top = recs[0]
    assert top.item_id == 50
    assert any(r["type"] == "co_engaged" and r["item_id"] == 1 for r in top.reasons)


def test_mmr_prefers_variety():
    a, b, c = np.array([1, 0], np.float32), np.array([0.99, 0.14], np.float32), np.array([0, 1], np.float32)
    order = mmr([1, 2, 3], {1: 1.0, 2: 0.95, 3: 0.6}, {1: a, 2: b, 3: c}, 2, trade_off=0.5)
    assert order == [1, 3]
    assert mmr([1, 2, 3], {1: 1.0, 2: 0.95, 3: 0.6}, {1: a, 2: b, 3: c}, 2, trade_off=0.0) == [1, 2]


def test_simulator_is_deterministic_and_split_is_time_ordered():
    items = [{"id": i, "category": ["ring", "pendant"][i % 2], "metal": ["gold", "silver"][i % 3 % 2],
              "gemstone": "ruby", "stone_shape": "oval", "price": float(i)} for i in range(1, 61)]
    a = simulate(items, SimulationConfig(users=30), seed=3)
    b = simulate(items, SimulationConfig(users=30), seed=3)
    assert [u.events for u in a] == [u.events for u in b]
    assert {len(u.tastes) for u in a} <= {1, 2, 3}
    train, cases = split(a, holdout=3)
    for user, past, targets in cases:
        assert max(e["ts"] for e in past) <= min(e["ts"] for e in user.events[-3:])


def test_ndcg():
    assert ndcg([5, 1, 2], {5}) == 1.0
    assert ndcg([1, 5], {5}) == pytest.approx(1 / np.log2(3))
    assert ndcg([1, 2], {5}) == 0.0


def test_history_from_rows_matches_event_by_event_definition():
    rng = np.random.default_rng(3)
    kinds = ["view", "click", "like", "add_to_cart", "purchase"]
    rank = {k: i for i, k in enumerate(kinds)}
    events = [event("u", int(rng.integers(1, 30)), kinds[int(rng.integers(0, 5))],
                    NOW - float(rng.uniform(0, 90 * 86400))) for _ in range(400)]
    history = build_history("u", events, half_life_days=30, now=NOW, kind_rank=rank)
    for item in {e["item_id"] for e in events}:
        mine = [e for e in events if e["item_id"] == item]
        expected = sum(e["weight"] * decay(NOW - e["ts"], 30) for e in mine)
        assert history.weights[item] == pytest.approx(expected)
        strongest = max(mine, key=lambda e: rank[e["kind"]])["kind"]
        assert history.strongest_kind[item] == strongest
        assert history.last_seen[item] == max(e["ts"] for e in mine)
    assert history.purchased == {e["item_id"] for e in events if e["kind"] == "purchase"}


def test_co_engagement_scores_and_contributors_match_a_plain_loop():
    rng = np.random.default_rng(5)
    events = [event(f"u{int(rng.integers(0, 80))}", int(rng.integers(1, 120)), "view",
                    NOW - float(rng.uniform(0, 86400))) for _ in range(3000)]
    signals = CollaborativeSignals.build(events, now=NOW)
    weights = {int(i): float(rng.uniform(0.1, 5)) for i in rng.integers(1, 120, 40)}
    got = signals.co_engaged(weights, 30)
    totals, best = {}, {}
    for item, weight in weights.items():
        for other, score in signals.neighbours.get(item, ()):
            totals[other] = totals.get(other, 0.0) + weight * score
            if other not in best or weight * score > best[other][0]:
                best[other] = (weight * score, item)
    top = sorted(totals, key=lambda i: -totals[i])[:30]
    assert set(got) == set(top)
    for item in top:
        assert got[item][0] == pytest.approx(totals[item]) and got[item][1] == best[item][1]


def attribute_rows():
    rows = []
    for i in range(1, 41):
        gold_ring = i <= 20
        rows.append({"id": i, "category": "ring" if gold_ring else "earrings",
                     "metal": "yellow gold" if gold_ring else "silver",
                     "gemstone": None if gold_ring else "pearl", "stone_shape": None,
                     "price": 900.0 if gold_ring else 120.0})
    return rows


def test_taste_keeps_two_tastes_apart_and_names_what_is_shared():
    from jewelsearch.recommend import AttributeTable
    table = AttributeTable.from_rows(attribute_rows())
    history = {1: 4.0, 21: 4.0}  # a gold ring and pearl earrings
    scores = table.affinity([2, 22], history)
    # Each matches one of the two items completely, so both score the same, and each
    # points at the item it resembles rather than at a blend of the two.
    assert scores[2][0] == pytest.approx(scores[22][0]) and scores[2][0] > 0.4
    assert scores[2][1] == 1 and scores[22][1] == 21
    assert table.shared(2, 1) == ["category", "metal", "price range"]
    assert table.shared(2, 22) == []
    assert table.affinity([999], history) == {} and table.affinity([2], {}) == {}


def test_taste_lifts_items_that_share_the_shoppers_attributes(catalog):
    from jewelsearch.recommend import AttributeTable
    index, vectors, group_of, lookup = catalog
    rows = [{"id": i, "category": "ring", "metal": "gold" if i % 2 else "silver", "gemstone": None,
             "stone_shape": None, "price": 100.0} for i in vectors]
    table = AttributeTable.from_rows(rows)
    history = build_history("u", [event("u", i, "like") for i in (1, 3, 5)], now=NOW)
    plain = Recommender(index, lookup, CollaborativeSignals(), BlendWeights(diversity=0.0)).recommend(history, 8)
    tasteful = Recommender(index, lookup, CollaborativeSignals(), BlendWeights(diversity=0.0, taste=0.9),
                           attributes=table).recommend(history, 8)
    odd = lambda recs: sum(r.item_id % 2 for r in recs)  # noqa: E731
    assert odd(tasteful) > odd(plain)
    assert all(r.item_id % 2 for r in tasteful if r.reasons[0]["type"] == "taste")


def test_seen_items_come_back_with_their_reason(catalog):
    index, vectors, group_of, lookup = catalog
    history = build_history("u", [event("u", 30, "add_to_cart"), event("u", 2, "view")], now=NOW)
    recs = Recommender(index, lookup, CollaborativeSignals(), BlendWeights(history=2.0)).recommend(history, 5)
    cart = next(r for r in recs if r.item_id == 30)
    assert cart.reasons[0] == {"type": "engaged", "item_id": 30, "kind": "add_to_cart",
                               "text": "you added this to your cart"}
    excluded = Recommender(index, lookup, CollaborativeSignals(), BlendWeights(history=2.0)).recommend(
        history, 5, exclude=[30, 2])
    assert not {30, 2} & {r.item_id for r in excluded}


def test_current_visit_leads_when_recency_is_set(catalog):
    index, vectors, group_of, lookup = catalog
    weeks_ago = [event("u", i, "like", NOW - 20 * 86400 - i) for i in (1, 2, 3, 4)]
    tonight = [event("u", i, "view", NOW - 600 - i) for i in (41, 42)]
    history = build_history("u", weeks_ago + tonight, now=NOW)
    profile = history.profile(0.7)
    assert sum(profile.values()) == pytest.approx(1.0)
    assert profile[41] > profile[1]  # tonight's views outweigh old likes
    assert history.profile(0.0)[1] > history.profile(0.0)[41]
    first = lambda recency: Recommender(  # noqa: E731
        index, lookup, CollaborativeSignals(), BlendWeights(recency=recency, diversity=0.0)).recommend(history, 3)
    assert group_of[first(0.8)[0].item_id] == 2
    assert group_of[first(0.0)[0].item_id] == 0


def test_scores_never_increase_down_the_list(catalog):
    index, vectors, group_of, lookup = catalog
    events = [event(f"u{n}", item, "purchase") for n in range(4) for item in (1, 2, 3)]
    signals = CollaborativeSignals.build(events, now=NOW)
    history = build_history("u", [event("u", i, "like") for i in (1, 21, 45)], now=NOW)
    recs = Recommender(index, lookup, signals, BlendWeights(explore=0.5)).recommend(history, 10)
    scores = [r.score for r in recs]
    assert len(recs) == 10 and scores == sorted(scores, reverse=True)
    assert len({r.item_id for r in recs}) == 10


def test_offline_evaluation_reports_baselines_ablations_and_replicates(tmp_path, catalog):
    from jewelsearch.evaluate.recommend import run
    from jewelsearch.evaluate.recommend_report import write_recommend_report
    index, vectors, group_of, lookup = catalog
    metals = ["yellow gold", "silver", "rose gold"]
    items = [{"id": i, "category": ["ring", "earrings", "necklace"][group_of[i]], "metal": metals[i % 3],
              "gemstone": None, "stone_shape": None, "price": float(100 + 37 * i)} for i in vectors]
    report = run(index, vectors, items, users=40, do_tune=False, replicate_seeds=(2,), strong=STRONG)
    names = set(report["results"])
    assert {"random", "popularity", "item-kNN CF", "content (mean embedding)", "blended (jewelsearch)",
            "blended, no current-visit weighting", "blended, no attribute taste",
            "blended, no exploration slots", *STRONG} | (
                {"blended, no ALS source"} if BlendWeights().factors > 0 else set()) == names
    assert report["strong_baselines"] == STRONG
    for values in report["results"].values():
        assert 0 <= values["next_in_visit_ndcg@10"] <= values["next_in_visit_hr@10"] <= 1
    assert report["pooled_next_in_visit"]["users"] > report["results"][OURS_NAME]["next_in_visit_users"] > 0
    assert report["best_baseline"] in names and not report["best_baseline"].startswith("blended")
    for values in report["results"].values():
        assert 0 <= values["ndcg@10"] <= values["hr@10"] <= 1 and 0 < values["coverage"] <= 1
    assert [r["seed"] for r in report["replicates"]] == [2]
    page = write_recommend_report(report, tmp_path).read_text()
    assert "| blended (jewelsearch) |" in page and "The reported population and 1 more" in page
    assert "**Pooled** over all 2 populations" in page
    assert "none in this run (`--no-tune`)" in page and "random search" not in page  # untuned: no claim of a search
    assert (tmp_path / "recommend.png").stat().st_size > 1000
    assert (tmp_path / "recommend-pooled.png").stat().st_size > 1000
    assert "| EASE |" in page and "**Next item in this visit**, pooled" in page


def test_gain_interval_brackets_the_gain_and_narrows_with_more_shoppers():
    from jewelsearch.evaluate.recommend import gain_interval
    rng = np.random.default_rng(0)
    base = rng.random(400)
    ours = base * 1.2 + rng.normal(0, 0.05, 400)
    gain = ours.mean() / base.mean() - 1
    low, high = gain_interval([(ours, base)])
    assert low < gain < high and high - low < 0.1
    small_low, small_high = gain_interval([(ours[:40], base[:40])])
    assert small_high - small_low > high - low
    # Identical methods: no gain and no spread; two populations pool into one interval.
    assert gain_interval([(base, base), (base[:50], base[:50])]) == (0.0, 0.0)


def test_tuning_searches_the_space_on_two_populations(catalog):
    from jewelsearch.evaluate.recommend import SEARCH_SPACE, tune
    from jewelsearch.evaluate.simulate import SimulationConfig
    index, vectors, group_of, lookup = catalog
    items = [{"id": i, "category": ["ring", "earrings", "necklace"][group_of[i]], "metal": "silver",
              "gemstone": None, "stone_shape": None, "price": float(100 + 37 * i)} for i in vectors]
    best, log = tune(index, vectors, items, SimulationConfig(users=30), 1001, BlendWeights(), trials=3)
    assert 1 <= len(log) <= 3 and all(len(row["coverage"]) == 2 for row in log)
    chosen = {name: getattr(best, name) for name in SEARCH_SPACE}
    assert any(all(row[name] == value for name, value in chosen.items()) for row in log)
    assert all(value in SEARCH_SPACE[name] for name, value in chosen.items())
    # The chosen setting cleared the largest coverage margin any setting cleared.
    best_row = next(row for row in log if all(row[name] == value for name, value in chosen.items()))
    margins = [-1.0 if row["cleared_margin"] is None else row["cleared_margin"] for row in log]
    assert (-1.0 if best_row["cleared_margin"] is None else best_row["cleared_margin"]) == max(margins)


def test_coverage_margin_falls_back_to_the_next_one_then_to_none():
    from jewelsearch.evaluate.recommend import COVERAGE_MARGINS, cleared_margin
    assert COVERAGE_MARGINS[0] == 0.05 and COVERAGE_MARGINS[-1] == 0.0
    assert cleared_margin([0.96, 0.97], [0.90, 0.91]) == 0.05
    assert cleared_margin([0.93, 0.97], [0.90, 0.91]) == 0.025  # the worse population decides
    assert cleared_margin([0.90, 0.92], [0.90, 0.91]) == 0.0
    assert cleared_margin([0.89, 0.99], [0.90, 0.91]) is None


def test_shoppers_drawn_from_given_attributes_ignore_what_recognition_filled(catalog, tmp_path):
    from jewelsearch.evaluate.recommend import run
    from jewelsearch.evaluate.simulate import given_attributes
    index, vectors, group_of, lookup = catalog
    metals = ["yellow gold", "silver", "rose gold"]
    given = [{"id": i, "category": ["ring", "earrings", "necklace"][group_of[i]],
              "metal": metals[i % 3] if i % 4 else None, "gemstone": None, "stone_shape": None,
              "price": float(100 + 37 * i), "attributes": {}} for i in vectors]
    # Two models' ingests: the same items, a few missing metals filled in differently.
    def filled(guess):
        out = []
        for item in given:
            row = dict(item)
            if item["metal"] is None:
                label = guess(item["id"])
                row["metal"] = label
                row["attributes"] = {"predicted": {"metal": {"label": label, "p": 0.7},
                                                   "gemstone": {"label": "ruby", "p": 0.2, "filled": False}}}
            out.append(row)
        return out
    first, second = filled(lambda i: "silver"), filled(lambda i: metals[i % 3])
    fields = lambda rows: [{k: v for k, v in r.items() if k != "attributes"} for r in rows]  # noqa: E731
    assert fields(given_attributes(first)) == fields(given_attributes(second)) == fields(given)
    assert [r["metal"] for r in given_attributes(first)] == [r["metal"] for r in given]
    assert given_attributes(first)[0]["attributes"] == first[0]["attributes"]  # only the filled fields go
    # From the catalog as served, the fills redraw the shoppers; from the given fields, they do not.
    served = [run(index, vectors, rows, users=40, do_tune=False, replicate_seeds=(), strong={})
              for rows in (first, second)]
    paired = [run(index, vectors, rows, users=40, do_tune=False, replicate_seeds=(), shoppers_from="given", strong={})
              for rows in (first, second)]
    quality = lambda report: {k: v for k, v in report["results"]["popularity"].items()  # noqa: E731
                              if k != "ms_per_user"}  # popularity reads nothing but the shoppers' events
    assert quality(served[0]) != quality(served[1])
    assert quality(paired[0]) == quality(paired[1])
    assert paired[0]["shoppers_from"] == "given attributes" and served[0]["shoppers_from"] == "catalog"
    from jewelsearch.evaluate.recommend_report import write_recommend_report
    assert "so another model meets the same shoppers" in write_recommend_report(paired[0], tmp_path).read_text()
    assert "redraws the shoppers" in write_recommend_report(served[0], tmp_path / "served").read_text()
