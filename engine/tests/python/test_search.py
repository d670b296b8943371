"""Search: correctness against a numpy brute-force top-k, Milvus score conventions,
batched queries, filter, output_fields, search_params (ef, metric), limit, offset,
consistency levels."""

import numpy as np
import pytest
from pymilvus import DataType

from helpers import (
    assert_sorted,
    brute_force,
    hit_ids,
    hit_scores,
    indexed_collection,
    insert_batched,
    quick_collection,
    rand_vectors,
    recall,
    rows,
    wait_until,
)

N, DIM, NQ, K = 2000, 32, 20, 10
BASE = rand_vectors(N, DIM, seed=11)
QUERIES = rand_vectors(NQ, DIM, seed=12)

CASES = [
    # index, build params, search params, minimum recall@K
    ("FLAT", {}, {}, 1.0),
    ("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 64}, 0.9),
    ("AUTOINDEX", {}, {}, 0.9),
]


def load_dataset(client, name, metric, index_type, params):
    indexed_collection(client, name, DIM, metric, index_type, params,
                       extra_fields=[("bucket", DataType.INT64, {})])
    data = rows(BASE, bucket=lambda i: i % 10)
    # most rows flushed (sealed, indexed), the rest still growing
    insert_batched(client, name, data[:1500])
    client.flush(name)
    insert_batched(client, name, data[1500:])


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
@pytest.mark.parametrize("index_type,params,sparams,min_recall", CASES,
                         ids=[c[0] for c in CASES])
def test_search_matches_brute_force(client, collection_name, metric, index_type, params,
                                    sparams, min_recall):
    load_dataset(client, collection_name, metric, index_type, params)
    res = client.search(collection_name, QUERIES.tolist(), limit=K, anns_field="vector",
                        search_params={"metric_type": metric, "params": sparams},
                        consistency_level="Strong")
    assert len(res) == NQ
    truth_ids, truth_scores = brute_force(BASE, QUERIES, K, metric)
    got = []
    for q, hits in enumerate(res):
        assert len(hits) == K
        ids = hit_ids(hits)
        assert len(set(ids)) == K, "no duplicate hits"
        assert_sorted(hit_scores(hits), metric)
        got.append(ids)
        if index_type == "FLAT":
            # exact search: same ids and Milvus' score convention (squared L2, raw IP,
            # cosine similarity)
            np.testing.assert_allclose(hit_scores(hits), truth_scores[q], rtol=1e-3, atol=1e-3)
    r = recall(got, truth_ids)
    assert r >= min_recall, f"recall@{K} {r:.3f} < {min_recall} for {index_type}/{metric}"
    if index_type != "FLAT":
        # whatever ids are returned, their scores must be the true scores of those rows
        for q, hits in enumerate(res[:3]):
            for h in hits:
                v = BASE[h["id"]]
                exp = brute_force(v[None, :], QUERIES[q:q + 1], 1, metric)[1][0, 0]
                assert h["distance"] == pytest.approx(exp, rel=1e-3, abs=1e-3)


def test_batched_search_filter_output_fields_offset(client, collection_name):
    load_dataset(client, collection_name, "L2", "FLAT", {})
    qs = QUERIES[:5]
    # filter: only bucket 3 rows
    res = client.search(collection_name, qs.tolist(), limit=K, filter="bucket == 3",
                        output_fields=["bucket"])
    mask = np.arange(N) % 10 == 3
    truth_ids, _ = brute_force(BASE[mask], qs, K, "L2", ids=np.arange(N)[mask])
    for q, hits in enumerate(res):
        assert hit_ids(hits) == [int(x) for x in truth_ids[q]]
        for h in hits:
            assert h["entity"] == {"bucket": 3}
    # offset: page 2 of the same search is hits 5..9 of a limit-10 search
    full = client.search(collection_name, qs.tolist(), limit=10)
    page = client.search(collection_name, qs.tolist(), limit=5, offset=5)
    for f, p in zip(full, page):
        assert hit_ids(p) == hit_ids(f)[5:10]
    # search_params offset is the same as the offset argument
    page2 = client.search(collection_name, qs.tolist(), limit=5,
                          search_params={"metric_type": "L2", "offset": 5})
    for f, p in zip(full, page2):
        assert hit_ids(p) == hit_ids(f)[5:10]


def test_search_limit_larger_than_rows_returns_all_rows(client, collection_name):
    indexed_collection(client, collection_name, 8, "L2", "FLAT")
    client.insert(collection_name, rows(rand_vectors(7, 8)))
    hits = client.search(collection_name, rand_vectors(1, 8, 3).tolist(), limit=50)[0]
    assert sorted(hit_ids(hits)) == list(range(7))


def test_search_empty_collection(client, collection_name):
    indexed_collection(client, collection_name, 8, "L2", "HNSW", {"M": 8, "efConstruction": 32})
    res = client.search(collection_name, rand_vectors(2, 8).tolist(), limit=5)
    assert len(res) == 2 and all(len(h) == 0 for h in res)


def test_search_filter_excludes_everything(client, collection_name):
    quick_collection(client, collection_name, dim=8)
    client.insert(collection_name, rows(rand_vectors(20, 8), g=lambda i: 1))
    res = client.search(collection_name, rand_vectors(1, 8).tolist(), limit=5, filter="g == 2")
    assert len(res[0]) == 0


def test_filtered_search_returns_k_even_when_filter_is_selective(client, collection_name):
    # the filter must be applied inside the search, not on a short candidate list
    indexed_collection(client, collection_name, 16, "L2", "HNSW",
                       {"M": 8, "efConstruction": 64}, dynamic=True)
    vecs = rand_vectors(3000, 16, 5)
    insert_batched(client, collection_name, rows(vecs, rare=lambda i: i % 100 == 0))
    client.flush(collection_name)
    res = client.search(collection_name, rand_vectors(3, 16, 6).tolist(), limit=20,
                        filter="rare == true", output_fields=["rare"])
    for hits in res:
        assert len(hits) == 20
        assert all(h["id"] % 100 == 0 for h in hits)


@pytest.mark.parametrize("ef", [16, 64, 256])
def test_hnsw_ef_search_param(client, collection_name, ef):
    load_dataset(client, collection_name, "COSINE", "HNSW", {"M": 8, "efConstruction": 64})
    res = client.search(collection_name, QUERIES.tolist(), limit=K,
                        search_params={"metric_type": "COSINE", "params": {"ef": ef}})
    truth_ids, _ = brute_force(BASE, QUERIES, K, "COSINE")
    r = recall([hit_ids(h) for h in res], truth_ids)
    assert r >= (0.6 if ef == 16 else 0.9), f"recall {r} with ef={ef}"


def test_consistency_levels(client, collection_name):
    quick_collection(client, collection_name, dim=8, metric="L2")
    vecs = rand_vectors(50, 8, 21)
    client.insert(collection_name, rows(vecs))
    # Strong: every acknowledged write is visible right away
    hits = client.search(collection_name, [vecs[10].tolist()], limit=1,
                         consistency_level="Strong")[0]
    assert hit_ids(hits) == [10]
    cnt = client.query(collection_name, filter="", output_fields=["count(*)"],
                       consistency_level="Strong")
    assert cnt[0]["count(*)"] == 50
    # Bounded / Eventually / Session: accepted, and the data shows up within seconds
    for level in ("Bounded", "Eventually", "Session"):
        wait_until(lambda: hit_ids(client.search(collection_name, [vecs[20].tolist()], limit=1,
                                                  consistency_level=level)[0]) == [20],
                   timeout=15, what=f"{level} search to see the insert")
        res = client.query(collection_name, filter="id == 30", output_fields=["id"],
                           consistency_level=level)
        assert [r["id"] for r in res] in ([30], [])


def test_search_with_orm_collection(orm, client, collection_name):
    from pymilvus import Collection

    indexed_collection(client, collection_name, DIM, "IP", "HNSW",
                       {"M": 16, "efConstruction": 100})
    client.insert(collection_name, rows(BASE[:500]))
    coll = Collection(collection_name, using=orm)
    res = coll.search(QUERIES[:3].tolist(), "vector", {"metric_type": "IP", "params": {"ef": 100}},
                      limit=5, expr="id < 250", output_fields=["id"],
                      consistency_level="Strong")
    truth, _ = brute_force(BASE[:250], QUERIES[:3], 5, "IP")
    assert recall([list(h.ids) for h in res], truth) >= 0.9
    for hits in res:
        assert all(i < 250 for i in hits.ids)
        d = list(hits.distances)
        assert d == sorted(d, reverse=True)
