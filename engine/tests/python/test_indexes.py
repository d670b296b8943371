"""Indexes: create (HNSW with M/efConstruction, FLAT, AUTOINDEX; metrics L2/IP/COSINE),
describe, list, drop; load/release, load state, loading progress."""

import pytest
from pymilvus import Collection, DataType, MilvusClient, MilvusException, utility

from helpers import (
    index_finished,
    load_and_wait,
    load_state_name,
    rand_vectors,
    rows,
    wait_until,
)


def bare_collection(client, name, dim=8, extra=()):
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    for args in extra:
        schema.add_field(*args[:2], **(args[2] if len(args) > 2 else {}))
    client.create_collection(name, schema=schema, consistency_level="Strong")


INDEXES = [
    ("HNSW", {"M": 16, "efConstruction": 64}),
    ("FLAT", {}),
    ("AUTOINDEX", {}),
]


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
@pytest.mark.parametrize("index_type,params", INDEXES, ids=[i[0] for i in INDEXES])
def test_create_describe_list_drop_index(client, collection_name, index_type, params, metric):
    bare_collection(client, collection_name)
    assert client.list_indexes(collection_name) == []
    client.insert(collection_name, rows(rand_vectors(50, 8)))

    ip = client.prepare_index_params()
    ip.add_index(field_name="vector", index_type=index_type, metric_type=metric, params=params)
    client.create_index(collection_name, ip)
    wait_until(lambda: index_finished(client, collection_name, "vector"), what="index Finished")

    # the default index name is the field name
    assert client.list_indexes(collection_name) == ["vector"]
    assert client.list_indexes(collection_name, field_name="vector") == ["vector"]
    d = client.describe_index(collection_name, "vector")
    assert d["index_type"] == index_type
    assert d["metric_type"] == metric
    assert d["field_name"] == "vector"
    assert d["index_name"] == "vector"

    load_and_wait(client, collection_name)
    res = client.search(collection_name, rand_vectors(1, 8, 9).tolist(), limit=5,
                        anns_field="vector")
    assert len(res[0]) == 5

    # Milvus refuses to drop the index of a loaded collection: release first.
    client.release_collection(collection_name)
    client.drop_index(collection_name, "vector")
    assert client.list_indexes(collection_name) == []


def test_custom_index_name(client, collection_name, xfail_on):
    xfail_on("milvus-lite", "ignores CreateIndexRequest.index_name (names every index after its field)")
    bare_collection(client, collection_name)
    ip = client.prepare_index_params()
    ip.add_index(field_name="vector", index_name="vidx", index_type="FLAT", metric_type="L2")
    client.create_index(collection_name, ip)
    assert client.list_indexes(collection_name) == ["vidx"]
    d = client.describe_index(collection_name, "vidx")
    assert d["index_name"] == "vidx" and d["field_name"] == "vector"
    client.drop_index(collection_name, "vidx")
    assert client.list_indexes(collection_name) == []


def test_release_and_reload(client, collection_name):
    bare_collection(client, collection_name)
    client.insert(collection_name, rows(rand_vectors(20, 8)))
    ip = client.prepare_index_params()
    ip.add_index(field_name="vector", index_type="HNSW", metric_type="L2",
                 params={"M": 8, "efConstruction": 32})
    client.create_index(collection_name, ip)
    load_and_wait(client, collection_name)
    assert load_state_name(client, collection_name) == "Loaded"
    client.release_collection(collection_name)
    wait_until(lambda: load_state_name(client, collection_name) == "NotLoad", what="NotLoad")
    # searching a released collection is an error (collection not loaded)
    with pytest.raises(MilvusException) as ei:
        client.search(collection_name, rand_vectors(1, 8).tolist(), limit=3)
    assert "load" in str(ei.value).lower()
    load_and_wait(client, collection_name)
    assert len(client.search(collection_name, rand_vectors(1, 8).tolist(), limit=3)[0]) == 3


def test_describe_replica_of_loaded_collection(client, collection_name, xfail_on):
    xfail_on("milvus-lite", "GetReplicas is not implemented")
    # pymilvus sends GetReplicas with the collection's id only (no name)
    bare_collection(client, collection_name)
    ip = client.prepare_index_params()
    ip.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
    client.create_index(collection_name, ip)
    load_and_wait(client, collection_name)
    replicas = client.describe_replica(collection_name)
    assert len(replicas) == 1, replicas
    assert len(replicas[0].group_nodes) >= 1, replicas


def test_collection_without_index_is_not_loaded_and_cannot_load(client, collection_name, xfail_on):
    xfail_on("milvus-lite", "a collection without a vector index reports Loaded (even after "
                            "release) and loads/searches without an index")
    bare_collection(client, collection_name)
    assert load_state_name(client, collection_name) == "NotLoad"
    # Milvus refuses to load a collection whose vector field has no index.
    with pytest.raises(MilvusException) as ei:
        client.load_collection(collection_name)
    assert "index" in str(ei.value).lower()


def test_describe_index_reports_build_params(client, collection_name, xfail_on):
    xfail_on("milvus-lite", "describe_index drops the user's index params (M, efConstruction)")
    bare_collection(client, collection_name)
    ip = client.prepare_index_params()
    ip.add_index(field_name="vector", index_type="HNSW", metric_type="COSINE",
                 params={"M": 12, "efConstruction": 48})
    client.create_index(collection_name, ip)
    d = client.describe_index(collection_name, "vector")
    # Milvus flattens the "params" JSON of CreateIndex into key/value pairs; a server
    # that hands back the "params" JSON instead is understood by pymilvus too.
    p = dict(d, **(d.get("params") or {})) if isinstance(d.get("params"), dict) else d
    assert str(p.get("M")) == "12" and str(p.get("efConstruction")) == "48", d


def test_load_state_of_unknown_collection_is_not_exist(client, collection_name, orm):
    # Milvus answers GetLoadState for a missing collection with success + LoadStateNotExist
    assert load_state_name(client, collection_name + "_missing") == "NotExist"
    # while GetLoadingProgress reports an error
    with pytest.raises(MilvusException) as ei:
        utility.loading_progress(collection_name + "_missing", using=orm)
    assert collection_name + "_missing" in str(ei.value) or "not" in str(ei.value).lower()


def test_orm_index_load_and_loading_progress(client, collection_name, orm):
    bare_collection(client, collection_name)
    coll = Collection(collection_name, using=orm)
    coll.create_index("vector", {"index_type": "HNSW", "metric_type": "IP",
                                 "params": {"M": 8, "efConstruction": 40}})
    assert coll.has_index()
    idx = coll.index()
    assert idx.params["index_type"] == "HNSW"
    assert idx.params["metric_type"] == "IP"
    coll.load()
    prog = utility.loading_progress(collection_name, using=orm)
    assert prog["loading_progress"] == "100%"
    state = utility.load_state(collection_name, using=orm)
    assert state.name == "Loaded"
    utility.wait_for_loading_complete(collection_name, using=orm, timeout=30)
    coll.release()
    assert utility.load_state(collection_name, using=orm).name == "NotLoad"
    coll.drop_index()
    assert not coll.has_index()
