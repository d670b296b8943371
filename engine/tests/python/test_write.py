"""Writes: insert, upsert (replaces), delete by ids and by filter, flush; get by ids."""

import pytest

from helpers import quick_collection, rand_vectors, rows


def count(client, name):
    return client.query(name, filter="", output_fields=["count(*)"],
                        consistency_level="Strong")[0]["count(*)"]


def test_insert_returns_ids_and_is_visible(client, collection_name):
    quick_collection(client, collection_name, dim=8)
    res = client.insert(collection_name, rows(rand_vectors(100, 8), tag=lambda i: i % 3))
    assert res["insert_count"] == 100
    assert list(res["ids"]) == list(range(100))
    assert count(client, collection_name) == 100
    res = client.insert(collection_name, rows(rand_vectors(5, 8, 1), 100))
    assert res["insert_count"] == 5 and list(res["ids"]) == [100, 101, 102, 103, 104]
    assert count(client, collection_name) == 105


def test_insert_single_row_dict(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    res = client.insert(collection_name, {"id": 7, "vector": [0.0, 0.1, 0.2, 0.3], "k": "v"})
    assert res["insert_count"] == 1 and list(res["ids"]) == [7]
    assert client.get(collection_name, ids=7, output_fields=["k"])[0]["k"] == "v"


def test_get_by_ids(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    vecs = rand_vectors(10, 4)
    client.insert(collection_name, rows(vecs, tag=lambda i: f"t{i}"))
    got = client.get(collection_name, ids=[3, 5, 999], output_fields=["tag", "vector"])
    got = {r["id"]: r for r in got}
    assert set(got) == {3, 5}, "missing ids are simply absent"
    assert got[3]["tag"] == "t3"
    assert got[5]["vector"] == pytest.approx(vecs[5].tolist(), rel=1e-6)


def test_upsert_replaces(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    client.insert(collection_name, rows(rand_vectors(10, 4), val=lambda i: i))
    new_vecs = rand_vectors(3, 4, seed=42)
    res = client.upsert(collection_name, [
        {"id": i, "vector": new_vecs[j].tolist(), "val": 1000 + i} for j, i in enumerate((2, 4, 6))
    ])
    assert res["upsert_count"] == 3
    assert count(client, collection_name) == 10, "upsert of existing keys must not add rows"
    got = {r["id"]: r for r in client.get(collection_name, ids=[2, 4, 6, 7],
                                          output_fields=["val", "vector"])}
    assert got[2]["val"] == 1002 and got[4]["val"] == 1004 and got[6]["val"] == 1006
    assert got[7]["val"] == 7
    assert got[4]["vector"] == pytest.approx(new_vecs[1].tolist(), rel=1e-6)
    # exactly one row per key
    assert len(client.query(collection_name, filter="id == 4", output_fields=["val"])) == 1
    # the new vector is what search sees
    hits = client.search(collection_name, [new_vecs[1].tolist()], limit=1)[0]
    assert hits[0]["id"] == 4
    # upsert of a new key inserts it
    client.upsert(collection_name, [{"id": 50, "vector": [1, 1, 1, 1], "val": 50}])
    assert count(client, collection_name) == 11


def test_upsert_duplicate_keys_in_one_batch_rejected(client, collection_name, xfail_on):
    # Milvus 2.5+ (proxy upsertTask, CheckDuplicatePkExist): code 1100 "duplicate primary
    # keys are not allowed in the same batch".
    xfail_on("milvus-lite", "accepts duplicate keys in one upsert batch (last one wins)")
    from helpers import assert_serves, expect_error
    quick_collection(client, collection_name, dim=4)
    client.insert(collection_name, [{"id": 1, "vector": [1, 0, 0, 0], "val": "orig"}])
    expect_error(lambda: client.upsert(collection_name, [
        {"id": 1, "vector": [1, 0, 0, 0], "val": "first"},
        {"id": 1, "vector": [0, 1, 0, 0], "val": "second"},
    ]), "duplicate")
    got = client.query(collection_name, filter="id == 1", output_fields=["val"])
    assert [r["val"] for r in got] == ["orig"], "a rejected upsert must change nothing"
    assert_serves(client, collection_name, 1)


def test_insert_duplicate_pk_latest_wins_in_get(client, collection_name):
    # Milvus does not deduplicate inserts, but the latest write of a key wins on read
    # (issue 3: "Duplicate primary keys never become visible twice").
    quick_collection(client, collection_name, dim=4)
    client.insert(collection_name, [{"id": 1, "vector": [1, 0, 0, 0], "val": "a"}])
    client.upsert(collection_name, [{"id": 1, "vector": [1, 0, 0, 0], "val": "b"}])
    got = client.get(collection_name, ids=[1], output_fields=["val"])
    assert [r["val"] for r in got] == ["b"]


def test_delete_by_ids(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    client.insert(collection_name, rows(rand_vectors(20, 4)))
    client.delete(collection_name, ids=[0, 1, 2, 999])
    assert count(client, collection_name) == 17
    assert client.get(collection_name, ids=[0, 1, 2, 3]) and \
        [r["id"] for r in client.get(collection_name, ids=[0, 1, 2, 3])] == [3]
    hits = client.search(collection_name, rand_vectors(1, 4, 5).tolist(), limit=20)[0]
    assert not {0, 1, 2} & {h["id"] for h in hits}
    assert len(hits) == 17


def test_delete_reports_delete_count(client, collection_name, xfail_on):
    # Since Milvus 2.3.2 a delete answers MutationResult.delete_cnt and no primary keys;
    # pymilvus then returns {"delete_count": n}.  (It returns the list of keys only
    # when the server sends IDs, the pre-2.3.2 behaviour.)
    xfail_on("milvus-lite", "fills MutationResult.IDs on delete, so pymilvus returns a list "
                            "of keys instead of {'delete_count': n}")
    quick_collection(client, collection_name, dim=4)
    client.insert(collection_name, rows(rand_vectors(30, 4), grp=lambda i: i % 3))
    res = client.delete(collection_name, ids=[0, 1, 2])
    assert isinstance(res, dict) and res["delete_count"] == 3
    # grp == 1 holds ids 1, 4, ..., 28 (10 rows); id 1 is already deleted, so 9 are live.
    res = client.delete(collection_name, filter="grp == 1")
    assert isinstance(res, dict) and res["delete_count"] == 9


def test_delete_by_filter(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    client.insert(collection_name, rows(rand_vectors(30, 4), grp=lambda i: i % 3))
    client.delete(collection_name, filter="grp == 1")
    assert count(client, collection_name) == 20
    left = client.query(collection_name, filter="grp == 1", output_fields=["id"])
    assert left == []
    client.delete(collection_name, filter="id >= 27")
    assert count(client, collection_name) == 18


def test_delete_then_reinsert_same_key(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    client.insert(collection_name, [{"id": 5, "vector": [1, 0, 0, 0], "v": 1}])
    client.delete(collection_name, ids=[5])
    assert client.get(collection_name, ids=[5]) == []
    client.insert(collection_name, [{"id": 5, "vector": [0, 1, 0, 0], "v": 2}])
    got = client.get(collection_name, ids=[5], output_fields=["v"])
    assert [r["v"] for r in got] == [2]


def test_flush_persists_and_counts(client, collection_name):
    quick_collection(client, collection_name, dim=8)
    client.insert(collection_name, rows(rand_vectors(500, 8)))
    client.flush(collection_name)
    client.insert(collection_name, rows(rand_vectors(50, 8, 1), 500))
    client.flush(collection_name)
    assert int(client.get_collection_stats(collection_name)["row_count"]) == 550
    assert count(client, collection_name) == 550
    # flushed and freshly inserted data are both searched: an exact copy of a row is
    # its own nearest neighbour
    for seed, pk in ((0, 17), (1, 517)):
        q = rand_vectors(500 if seed == 0 else 50, 8, seed)[pk % 500]
        hits = client.search(collection_name, [q.tolist()], limit=3)[0]
        assert hits[0]["id"] == pk


def test_orm_insert_upsert_delete_flush(orm, client, collection_name):
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema

    schema = CollectionSchema([
        FieldSchema("pk", DataType.VARCHAR, is_primary=True, max_length=16),
        FieldSchema("n", DataType.INT32),
        FieldSchema("emb", DataType.FLOAT_VECTOR, dim=4),
    ], description="orm")
    coll = Collection(collection_name, schema, using=orm, consistency_level="Strong")
    vecs = rand_vectors(6, 4)
    # column-based insert
    mr = coll.insert([[f"k{i}" for i in range(6)], list(range(6)), vecs.tolist()])
    assert mr.insert_count == 6 and list(mr.primary_keys) == [f"k{i}" for i in range(6)]
    coll.flush()
    assert coll.num_entities == 6
    coll.create_index("emb", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    coll.load()
    # row-based upsert
    coll.upsert([{"pk": "k1", "n": 100, "emb": [0, 0, 0, 1]}])
    res = coll.query('pk == "k1"', output_fields=["n"])
    assert [r["n"] for r in res] == [100]
    coll.delete('pk in ["k2", "k3"]')
    res = coll.query('pk != ""', output_fields=["count(*)"])
    assert res[0]["count(*)"] == 4
    hits = coll.search([vecs[0].tolist()], "emb", {"metric_type": "L2", "params": {}}, limit=2,
                       output_fields=["n"])
    assert hits[0][0].id == "k0" and hits[0][0].entity.get("n") == 0
    coll.release()
    coll.drop()
