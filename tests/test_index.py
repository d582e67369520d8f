
import numpy as np
import pytest

from jewelsearch.index import IndexChoice, VectorIndex, choose_kind, load_index, persist, save_index
from jewelsearch.index.kinds import default_params, estimated_bytes


def clustered(n, dim=64, clusters=40, noise=0.3, seed=0):
    """Unit vectors around random centres; queries are near existing points like real lookups."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + noise * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(queries, vectors, ids, k, allowed=None):
    scores = queries @ vectors.T
    if allowed is not None:
        mask = np.isin(ids, list(allowed))
        scores[:, ~mask] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [ids[row][np.isfinite(scores[i, row])] for i, row in enumerate(order)]


def held_out_queries(n, dim, seed):
    data = clustered(n + 100, dim, seed=seed)
    return data[:n], data[n:]


def build(kind, ids, vectors, source=None):
    params = {} if kind == "flat" else default_params(kind, len(ids), vectors.shape[1])
    return VectorIndex.build(ids, vectors, IndexChoice(kind, params), source)


def recall(results, truth, k):
    return np.mean([len(set(r.tolist()) & set(t.tolist())) / k for r, t in zip(results, truth)])


N = 12_000
DIM = 64


@pytest.fixture(scope="module")
def data():
    vectors, queries = held_out_queries(N, DIM, seed=1)
    ids = np.arange(1, N + 1, dtype=np.int64) * 7  # ids are not positions
    lookup = {int(i): v for i, v in zip(ids, vectors)}
    source = lambda wanted: np.stack([lookup[int(i)] for i in wanted])  # noqa: E731
    return ids, vectors, queries, source


def test_flat_is_identical_to_brute_force(data):
    ids, vectors, queries, _ = data
    index = build("flat", ids, vectors)
    got = [r[0] for r in index.search(queries, 10)]
    want = brute_force(queries, vectors, ids, 10)
    for g, w in zip(got, want):
        assert list(g) == list(w)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_kinds_reach_recall_at_defaults(data, kind):
    ids, vectors, queries, source = data
    index = build(kind, ids, vectors, source if kind == "ivfpq" else None)
    assert index.kind == kind
    got = [r[0] for r in index.search(queries, 10)]
    assert recall(got, brute_force(queries, vectors, ids, 10), 10) >= 0.95


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("fraction", [0.002, 0.05, 0.5])
def test_filters_always_return_k_matching(data, kind, fraction):
    ids, vectors, queries, _ = data
    index = build(kind, ids, vectors)
    rng = np.random.default_rng(5)
    allowed = set(rng.choice(ids, max(12, int(len(ids) * fraction)), replace=False).tolist())
    for result_ids, scores in index.search(queries[:20], 10, allowed_ids=allowed):
        assert len(result_ids) == 10
        assert set(result_ids.tolist()) <= allowed
        assert np.all(np.diff(scores) <= 1e-6)
    exact = brute_force(queries[:20], vectors, ids, 10, allowed)
    got = [r[0] for r in index.search(queries[:20], 10, allowed_ids=allowed)]
    assert recall(got, exact, 10) >= 0.95


def test_filter_smaller_than_k_returns_all_matches_and_no_minus_one(data):
    ids, vectors, queries, _ = data
    index = build("hnsw", ids, vectors)
    allowed = ids[:3].tolist() + [999_999_999]  # one id that is not indexed
    result_ids, _ = index.search(queries[0], 10, allowed_ids=allowed)[0]
    assert sorted(result_ids.tolist()) == sorted(ids[:3].tolist())
    assert -1 not in result_ids


def test_k_larger_than_catalog():
    vectors = clustered(5)
    index = build("flat", np.arange(5), vectors)
    result_ids, _ = index.search(vectors[0], 50)[0]
    assert sorted(result_ids.tolist()) == [0, 1, 2, 3, 4]


def test_empty_index_returns_nothing():
    index = VectorIndex(8, IndexChoice("flat"))
    ids, scores = index.search(np.ones(8, np.float32), 5)[0]
    assert len(ids) == 0 and len(scores) == 0


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_remove_and_update_without_rebuild(kind):
    vectors = clustered(500, seed=3)
    ids = np.arange(500)
    index = build(kind, ids, vectors)
    index.remove([0, 1, 2])
    assert len(index) == 497 and 0 not in index
    result_ids, _ = index.search(vectors[0], 5)[0]
    assert 0 not in result_ids.tolist()
    # Update item 10 to item 20's vector: it must now be found next to 20.
    index.add([10], vectors[20][None])
    assert len(index) == 497
    result_ids, _ = index.search(vectors[20], 2)[0]
    assert set(result_ids.tolist()) == {10, 20}
    compact = index.compacted()
    assert len(compact) == 497 and compact.tombstones == 0
    assert set(compact.search(vectors[20], 2)[0][0].tolist()) == {10, 20}


def test_search_params_are_per_call(data):
    ids, vectors, queries, _ = data
    index = build("hnsw", ids, vectors)
    before = index._index.hnsw.efSearch
    index.search(queries[:2], 10, ef_search=500)
    assert index._index.hnsw.efSearch == before


def test_rejects_wrong_dimension():
    index = VectorIndex(8, IndexChoice("flat"))
    with pytest.raises(ValueError):
        index.add([1], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError):
        index.search(np.ones(4, np.float32), 3)


def test_choose_kind_by_size_and_budget():
    assert choose_kind(10_000, 256, 2 << 30).kind == "flat"
    assert choose_kind(1_000_000, 256, 2 << 30).kind == "hnsw"
    assert choose_kind(1_000_000, 256, 512 << 20).kind == "ivfpq"
    assert estimated_bytes("ivfpq", 10**6, 256) < estimated_bytes("hnsw", 10**6, 256)
    with pytest.raises(ValueError):
        choose_kind(10, 8, 1 << 20, forced="lsh")


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_persistence_roundtrip(tmp_path, data, kind):
    ids, vectors, queries, source = data
    index = build(kind, ids, vectors, source)
    index.remove(ids[:5].tolist())
    manifest = save_index(index, tmp_path, model_id="m", catalog_version=7)
    loaded, read = load_index(tmp_path, source)
    assert read == manifest and read.count == len(ids) - 5 and read.kind == kind
    a = index.search(queries[:5], 10)
    b = loaded.search(queries[:5], 10)
    for (ia, sa), (ib, sb) in zip(a, b):
        assert list(ia) == list(ib)
        np.testing.assert_allclose(sa, sb, rtol=1e-5)


def test_crash_during_save_keeps_previous_index(tmp_path, monkeypatch):
    vectors = clustered(50)
    first = build("flat", np.arange(50), vectors)
    save_index(first, tmp_path, model_id="m", catalog_version=1)
    second = build("flat", np.arange(100, 150), vectors)

    real_write = persist._write_file

    def crash_on_pointer(path, data, atomic=False):
        if path.name == persist.POINTER:
            raise OSError("simulated power cut")
        real_write(path, data, atomic)
    monkeypatch.setattr(persist, "_write_file", crash_on_pointer)
    with pytest.raises(OSError):
        save_index(second, tmp_path, model_id="m", catalog_version=2)
    monkeypatch.undo()
    loaded, manifest = load_index(tmp_path)
    assert manifest.catalog_version == 1
    assert sorted(loaded.ids().tolist()) == list(range(50))


def test_damaged_index_file_loads_as_none(tmp_path):
    index = build("flat", np.arange(20), clustered(20))
    save_index(index, tmp_path, model_id="m", catalog_version=1)
    current = tmp_path / (tmp_path / "CURRENT").read_text()
    (current / "index.faiss").write_bytes(b"garbage")
    assert load_index(tmp_path) is None


def test_missing_index_loads_as_none(tmp_path):
    assert load_index(tmp_path / "nothing") is None


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_exclusions_match_brute_force(data, kind):
    ids, vectors, queries, _ = data
    index = build(kind, ids, vectors)
    truth = brute_force(queries[:10], vectors, ids, 30)
    for q, t in zip(queries[:10], truth):
        excluded = set(t[:5].tolist())
        got, _ = index.search(q, 10, exclude_ids=excluded)[0]
        assert len(got) == 10 and not excluded & set(got.tolist())
        assert len(set(got.tolist()) & set(t[5:15].tolist())) >= 9


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_search_with_vectors_is_the_search_plus_the_hits_added_vectors(data, kind):
    """What a re-ranking reads in one call: the same hits as ``search`` (with filters and
    exclusions), and each hit's vector exactly as added (IVF-PQ: from its vector source)."""
    ids, vectors, queries, source = data
    index = build(kind, ids, vectors, source)
    assert index.holds_exact_vectors
    by_id = dict(zip(ids.tolist(), vectors))
    allowed = set(ids[::3].tolist())
    for q in queries[:5]:
        for options in ({}, {"allowed_ids": allowed}, {"exclude_ids": set(ids[:40].tolist())}):
            (want_ids, want_scores), = index.search(q, 50, **options)
            got_ids, got_scores, got_vectors = index.search_with_vectors(q, 50, **options)
            np.testing.assert_array_equal(got_ids, want_ids)
            np.testing.assert_array_equal(got_scores, want_scores)
            np.testing.assert_array_equal(got_vectors, np.stack([by_id[int(i)] for i in got_ids]))
    index.remove(ids[:1000].tolist())
    got_ids, _, got_vectors = index.search_with_vectors(queries[0], 20)
    assert not set(got_ids.tolist()) & set(ids[:1000].tolist()) and got_vectors.shape == (20, DIM)
    with pytest.raises(ValueError, match="one query"):
        index.search_with_vectors(queries[:2], 5)


def test_an_ivfpq_index_without_a_vector_source_does_not_claim_exact_vectors(data):
    ids, vectors, _, _ = data
    assert not build("ivfpq", ids, vectors).holds_exact_vectors
    empty = VectorIndex(DIM, IndexChoice("flat"))
    got_ids, got_scores, got_vectors = empty.search_with_vectors(vectors[0], 5)
    assert len(got_ids) == len(got_scores) == 0 and got_vectors.shape == (0, DIM)
