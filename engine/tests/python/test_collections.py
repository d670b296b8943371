"""Collection lifecycle: create (quick setup and custom schema), describe, has, list,
drop, rename; every scalar type; VarChar and auto_id primary keys; dynamic field."""

import math

import pytest
from pymilvus import DataType, MilvusClient

from helpers import DEFAULT_DIM, load_and_wait, quick_collection, rand_vectors, rows, wait_until


def fields_by_name(desc):
    return {f["name"]: f for f in desc["fields"]}


def test_quick_setup_create_describe_has_list_drop(client, collection_name):
    assert not client.has_collection(collection_name)
    quick_collection(client, collection_name, dim=8, metric="L2")
    assert client.has_collection(collection_name)
    assert collection_name in client.list_collections()

    desc = client.describe_collection(collection_name)
    assert desc["collection_name"] == collection_name
    assert desc["enable_dynamic_field"] is True
    f = fields_by_name(desc)
    assert set(f) == {"id", "vector"}
    assert f["id"]["type"] == DataType.INT64 and f["id"].get("is_primary") is True
    assert f["vector"]["type"] == DataType.FLOAT_VECTOR
    assert int(f["vector"]["params"]["dim"]) == 8
    # quick setup indexes "vector" and loads the collection
    assert client.list_indexes(collection_name) == ["vector"]
    idx = client.describe_index(collection_name, "vector")
    assert idx["metric_type"] == "L2"

    client.drop_collection(collection_name)
    assert not client.has_collection(collection_name)
    assert collection_name not in client.list_collections()


def test_quick_setup_string_pk(client, collection_name):
    client.create_collection(collection_name, dimension=4, id_type="string", max_length=32,
                             consistency_level="Strong")
    f = fields_by_name(client.describe_collection(collection_name))
    assert f["id"]["type"] == DataType.VARCHAR
    assert int(f["id"]["params"]["max_length"]) == 32
    wait_until(lambda: str(client.get_load_state(collection_name)["state"]).endswith("Loaded"),
               what="loaded")
    res = client.insert(collection_name, [{"id": "a", "vector": [0.1, 0.2, 0.3, 0.4]},
                                          {"id": "b", "vector": [0.4, 0.3, 0.2, 0.1]}])
    assert res["insert_count"] == 2
    assert sorted(res["ids"]) == ["a", "b"]
    got = client.get(collection_name, ids=["b"], output_fields=["id"])
    assert [r["id"] for r in got] == ["b"]


@pytest.mark.parametrize("level", ["Strong", "Bounded", "Eventually", "Session"])
def test_describe_reports_consistency_level(client, collection_name, level, xfail_on):
    if level != "Strong":
        # milvus-lite ignores CreateCollectionRequest.consistency_level and always
        # describes collections as Strong; real Milvus stores and reports it.
        xfail_on("milvus-lite", "ignores consistency_level at create, always describes Strong")
    client.create_collection(collection_name, dimension=4, consistency_level=level)
    assert client.describe_collection(collection_name)["consistency_level_name"] == level


ALL_SCALARS = [
    ("b", DataType.BOOL, {}),
    ("i8", DataType.INT8, {}),
    ("i16", DataType.INT16, {}),
    ("i32", DataType.INT32, {}),
    ("i64", DataType.INT64, {}),
    ("f32", DataType.FLOAT, {}),
    ("f64", DataType.DOUBLE, {}),
    ("s", DataType.VARCHAR, {"max_length": 64}),
    ("j", DataType.JSON, {}),
]


def all_types_schema(pk_type=DataType.VARCHAR, auto_id=False, dynamic=True):
    schema = MilvusClient.create_schema(auto_id=auto_id, enable_dynamic_field=dynamic,
                                        description="every scalar type")
    if pk_type == DataType.VARCHAR:
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=36)
    else:
        schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DEFAULT_DIM)
    for name, t, kw in ALL_SCALARS:
        schema.add_field(name, t, **kw)
    return schema


def all_types_row(i, vec, with_pk=True, pk_str=True):
    r = {
        "vec": vec,
        "b": i % 2 == 0,
        "i8": (i % 250) - 125,
        "i16": -30000 + i,
        "i32": 2_000_000_000 - i,
        "i64": -(2 ** 62) + i,
        "f32": 0.5 + i,
        "f64": math.pi * i,
        "s": f"str-{i}-ü",
        "j": {"n": i, "tags": ["t", str(i)], "nested": {"x": i * 2}},
        "extra_dyn": f"dyn{i}",
    }
    if with_pk:
        r["pk"] = f"pk-{i:04d}" if pk_str else i
    return r


def index_and_load(client, name, field="vec", metric="L2"):
    ip = client.prepare_index_params()
    ip.add_index(field_name=field, index_type="FLAT", metric_type=metric)
    client.create_index(name, ip)
    load_and_wait(client, name)


def test_custom_schema_every_scalar_type_varchar_pk(client, collection_name):
    schema = all_types_schema(DataType.VARCHAR)
    client.create_collection(collection_name, schema=schema, consistency_level="Strong")
    desc = client.describe_collection(collection_name)
    f = fields_by_name(desc)
    assert desc["enable_dynamic_field"] is True
    assert f["pk"]["type"] == DataType.VARCHAR and f["pk"]["is_primary"] is True
    assert int(f["pk"]["params"]["max_length"]) == 36
    assert int(f["vec"]["params"]["dim"]) == DEFAULT_DIM
    for name, t, kw in ALL_SCALARS:
        assert f[name]["type"] == t, name
    assert int(f["s"]["params"]["max_length"]) == 64
    assert "$meta" not in f, "the dynamic field is not a user-visible field in describe"

    index_and_load(client, collection_name)
    vecs = rand_vectors(20, seed=1)
    data = [all_types_row(i, vecs[i].tolist()) for i in range(20)]
    res = client.insert(collection_name, data)
    assert res["insert_count"] == 20
    assert sorted(res["ids"]) == sorted(r["pk"] for r in data)

    names = [n for n, _, _ in ALL_SCALARS] + ["extra_dyn"]
    got = client.query(collection_name, filter='pk in ["pk-0003", "pk-0010"]',
                       output_fields=names + ["vec"])
    got = {r["pk"]: r for r in got}
    assert set(got) == {"pk-0003", "pk-0010"}
    for i in (3, 10):
        r, exp = got[f"pk-{i:04d}"], data[i]
        for n in ("b", "i8", "i16", "i32", "i64", "s", "j", "extra_dyn"):
            assert r[n] == exp[n], (n, r[n], exp[n])
        assert r["f32"] == pytest.approx(exp["f32"], rel=1e-6)
        assert r["f64"] == pytest.approx(exp["f64"], rel=1e-12)
        assert r["vec"] == pytest.approx(exp["vec"], rel=1e-6)


def test_custom_schema_auto_id_int64(client, collection_name):
    schema = all_types_schema(DataType.INT64, auto_id=True, dynamic=False)
    client.create_collection(collection_name, schema=schema, consistency_level="Strong")
    desc = client.describe_collection(collection_name)
    assert desc["auto_id"] is True
    assert desc["enable_dynamic_field"] is False
    index_and_load(client, collection_name)
    vecs = rand_vectors(10, seed=2)
    data = [all_types_row(i, vecs[i].tolist(), with_pk=False) for i in range(10)]
    for d in data:
        d.pop("extra_dyn")
    res = client.insert(collection_name, data)
    ids = list(res["ids"])
    assert res["insert_count"] == 10 and len(set(ids)) == 10
    assert all(isinstance(x, int) for x in ids)
    more = client.insert(collection_name, data[:3])["ids"]
    assert not set(more) & set(ids), "auto_id must never repeat an id"
    got = client.get(collection_name, ids=ids[:2], output_fields=["i32"])
    assert sorted(r["pk"] for r in got) == sorted(ids[:2])
    cnt = client.query(collection_name, filter="", output_fields=["count(*)"])
    assert cnt[0]["count(*)"] == 13


def test_dynamic_field_round_trip(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    client.insert(collection_name, [
        {"id": 1, "vector": [1, 0, 0, 0], "color": "red", "size": 3, "meta": {"a": {"b": 1}}},
        {"id": 2, "vector": [0, 1, 0, 0], "color": "blue"},
    ])
    got = client.query(collection_name, filter="id == 1", output_fields=["color", "size", "meta"])
    assert got[0]["color"] == "red" and got[0]["size"] == 3 and got[0]["meta"] == {"a": {"b": 1}}
    got = client.query(collection_name, filter='color == "blue"', output_fields=["id", "color"])
    assert [r["id"] for r in got] == [2]
    # all dynamic keys at once via "$meta"/"*"
    got = client.query(collection_name, filter="id == 1", output_fields=["*"])
    assert got[0]["color"] == "red" and got[0]["size"] == 3


def test_list_collections_contains_all(client, make_name):
    names = [make_name(f"_{i}") for i in range(3)]
    for n in names:
        client.create_collection(n, dimension=4)
    listed = client.list_collections()
    for n in names:
        assert n in listed


def test_rename_collection_keeps_data(client, make_name):
    old, new = make_name("_old"), make_name("_new")
    quick_collection(client, old, dim=4)
    client.insert(old, rows(rand_vectors(5, 4)))
    client.rename_collection(old, new)
    assert not client.has_collection(old)
    assert client.has_collection(new)
    assert new in client.list_collections() and old not in client.list_collections()
    assert client.describe_collection(new)["collection_name"] == new
    load_and_wait(client, new)
    cnt = client.query(new, filter="", output_fields=["count(*)"], consistency_level="Strong")
    assert cnt[0]["count(*)"] == 5


def test_drop_then_recreate_same_name_is_empty(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    client.insert(collection_name, rows(rand_vectors(5, 4)))
    client.drop_collection(collection_name)
    quick_collection(client, collection_name, dim=4)
    cnt = client.query(collection_name, filter="", output_fields=["count(*)"])
    assert cnt[0]["count(*)"] == 0


def test_describe_keeps_description(client, collection_name, xfail_on):
    xfail_on("milvus-lite", "drops CollectionSchema.description (describe returns '')")
    client.create_collection(collection_name, schema=all_types_schema())
    assert client.describe_collection(collection_name)["description"] == "every scalar type"


def test_create_identical_twice_is_idempotent(client, collection_name, xfail_on):
    # Real Milvus (rootcoord createCollectionTask) accepts re-creating a collection with
    # exactly the same schema ("make creating collection idempotent").
    xfail_on("milvus-lite", "rejects an identical re-create with 'already exists'")
    schema = all_types_schema(DataType.INT64, dynamic=False)
    client.create_collection(collection_name, schema=schema)
    client.create_collection(collection_name, schema=schema)
    assert client.has_collection(collection_name)


def test_collection_statistics_row_count(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    assert int(client.get_collection_stats(collection_name)["row_count"]) == 0
    client.insert(collection_name, rows(rand_vectors(37, 4)))
    client.flush(collection_name)
    assert int(client.get_collection_stats(collection_name)["row_count"]) == 37
