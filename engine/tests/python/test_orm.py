"""The older ORM API of pymilvus (connections / Collection / FieldSchema /
CollectionSchema / Partition / utility) end to end."""

import numpy as np
import pytest
from pymilvus import (
    Collection,
    CollectionSchema,
    DataType,
    FieldSchema,
    MilvusException,
    Partition,
    utility,
)

from helpers import brute_force, rand_vectors, recall

DIM = 16


def schema(auto_id=True):
    return CollectionSchema([
        FieldSchema("pk", DataType.INT64, is_primary=True, auto_id=auto_id),
        FieldSchema("flag", DataType.BOOL),
        FieldSchema("i8", DataType.INT8),
        FieldSchema("i16", DataType.INT16),
        FieldSchema("i32", DataType.INT32),
        FieldSchema("i64", DataType.INT64),
        FieldSchema("fl", DataType.FLOAT),
        FieldSchema("db", DataType.DOUBLE),
        FieldSchema("name", DataType.VARCHAR, max_length=32),
        FieldSchema("doc", DataType.JSON),
        FieldSchema("emb", DataType.FLOAT_VECTOR, dim=DIM),
    ], description="orm e2e", enable_dynamic_field=True)


def columns(n, start=0, with_pk=False):
    idx = list(range(start, start + n))
    cols = [
        [i % 2 == 1 for i in idx],
        [i % 100 for i in idx],
        [i * 2 for i in idx],
        [i for i in idx],
        [i * 10**9 for i in idx],
        [i / 4 for i in idx],
        [i / 8 for i in idx],
        [f"name{i}" for i in idx],
        [{"k": i, "odd": i % 2 == 1} for i in idx],
        rand_vectors(n, DIM, start + 1).tolist(),
    ]
    return ([idx] + cols) if with_pk else cols


def test_orm_collection_lifecycle(orm, make_name):
    name, renamed = make_name(), make_name("_renamed")
    assert not utility.has_collection(name, using=orm)
    coll = Collection(name, schema(), using=orm, consistency_level="Strong")
    assert utility.has_collection(name, using=orm)
    assert name in utility.list_collections(using=orm)
    assert coll.schema.primary_field.name == "pk" and coll.schema.auto_id
    assert {f.name for f in coll.schema.fields} >= {"pk", "emb", "doc", "name"}
    # Collection(name) without a schema attaches to the existing collection
    again = Collection(name, using=orm)
    # (the schema description is covered by test_collections.py::test_describe_keeps_description)
    assert [f.to_dict() for f in again.schema.fields] == [f.to_dict() for f in coll.schema.fields]

    mr = coll.insert(columns(100))
    assert mr.insert_count == 100 and len(set(mr.primary_keys)) == 100
    coll.flush()
    assert coll.num_entities == 100
    coll.create_index("emb", {"index_type": "HNSW", "metric_type": "L2",
                              "params": {"M": 16, "efConstruction": 100}})
    coll.load()
    assert utility.load_state(name, using=orm).name == "Loaded"

    res = coll.query("i32 >= 95", output_fields=["i32", "name", "doc", "flag"])
    assert sorted(r["i32"] for r in res) == [95, 96, 97, 98, 99]
    r = next(r for r in res if r["i32"] == 97)
    assert r["name"] == "name97" and r["doc"] == {"k": 97, "odd": True} and r["flag"] is True
    res = coll.query("", output_fields=["count(*)"])
    assert res[0]["count(*)"] == 100
    page = coll.query("i32 >= 0", output_fields=["i32"], limit=10, offset=20)
    assert len(page) == 10

    coll.release()
    utility.rename_collection(name, renamed, using=orm)
    assert not utility.has_collection(name, using=orm)
    assert utility.has_collection(renamed, using=orm)
    utility.drop_collection(renamed, using=orm)
    assert not utility.has_collection(renamed, using=orm)


def test_orm_partitions_and_search(orm, collection_name):
    coll = Collection(collection_name, schema(auto_id=False), using=orm, consistency_level="Strong")
    p = coll.create_partition("orm_p")
    assert coll.has_partition("orm_p")
    assert sorted(x.name for x in coll.partitions) == ["_default", "orm_p"]
    assert isinstance(p, Partition)
    base_a = columns(200, 0, with_pk=True)
    base_b = columns(200, 1000, with_pk=True)
    coll.insert(base_a)
    p.insert(base_b)
    coll.create_index("emb", {"index_type": "FLAT", "metric_type": "COSINE", "params": {}})
    coll.load()
    assert p.num_entities in (0, 200)  # counts flushed rows only
    coll.flush()
    assert p.num_entities == 200

    vecs_b = np.asarray(base_b[-1], dtype=np.float32)
    q = rand_vectors(4, DIM, 99)
    res = coll.search(q.tolist(), "emb", {"metric_type": "COSINE"}, limit=5,
                      partition_names=["orm_p"], output_fields=["name"])
    truth, scores = brute_force(vecs_b, q, 5, "COSINE", ids=np.arange(1000, 1200))
    assert recall([list(h.ids) for h in res], truth) == 1.0
    for hits, s in zip(res, scores):
        assert list(hits.distances) == pytest.approx(list(s), abs=1e-4)
        assert all(h.entity.get("name").startswith("name1") for h in hits)
    # Partition.search is restricted to that partition as well
    res = p.search(q.tolist(), "emb", {"metric_type": "COSINE"}, limit=3)
    assert all(1000 <= i < 1200 for hits in res for i in hits.ids)

    coll.release()
    coll.drop_partition("orm_p")
    assert not coll.has_partition("orm_p")
    coll.load()
    assert coll.query("", output_fields=["count(*)"])[0]["count(*)"] == 200


def test_orm_errors_are_milvus_exceptions(orm, collection_name):
    with pytest.raises(MilvusException):
        Collection(collection_name + "_does_not_exist", using=orm)
    coll = Collection(collection_name, schema(auto_id=False), using=orm)
    with pytest.raises(MilvusException):
        # a different schema under the same name
        Collection(collection_name, CollectionSchema([
            FieldSchema("pk", DataType.VARCHAR, is_primary=True, max_length=8),
            FieldSchema("emb", DataType.FLOAT_VECTOR, dim=DIM),
        ]), using=orm)
    assert coll.schema.primary_field.dtype == DataType.INT64
