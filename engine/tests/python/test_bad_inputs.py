"""Bad inputs through the real client: each raises MilvusException whose message names
the offending field/value, changes nothing, and leaves the server serving.

Some checks happen inside pymilvus before any request is sent (wrong Python type,
missing or unexpected field, limit 0, empty query list); they are kept because they are
what a user sees, and test_bad_inputs_raw.py sends the same mistakes straight to the
server over gRPC."""

import math

import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from helpers import assert_serves, expect_error, load_and_wait

DIM = 4


@pytest.fixture
def coll(client, collection_name):
    """Non-dynamic collection: id Int64 pk, vector(4) FLAT/L2, title VarChar(8), num Int32,
    one row; loaded."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=8)
    schema.add_field("num", DataType.INT32)
    ip = client.prepare_index_params()
    ip.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_collection(collection_name, schema=schema, index_params=ip,
                             consistency_level="Strong")
    load_and_wait(client, collection_name)
    client.insert(collection_name, [{"id": 1, "vector": [1, 2, 3, 4], "title": "ok", "num": 1}])
    return collection_name


def row(**over):
    r = {"id": 2, "vector": [0.5, 0.5, 0.5, 0.5], "title": "a", "num": 2}
    r.update(over)
    return r


def test_wrong_dimension_insert(client, coll):
    expect_error(lambda: client.insert(coll, [row(vector=[1.0, 2.0, 3.0])]), "vector", "dim")
    assert_serves(client, coll, 1)


def test_wrong_dimension_search(client, coll, xfail_on):
    xfail_on("milvus-lite", "a query vector of the wrong dimension fails inside numpy "
                            "('operands could not be broadcast'), naming neither field nor dim")
    expect_error(lambda: client.search(coll, [[1.0, 2.0, 3.0]], limit=1), "dim")
    assert_serves(client, coll, 1)


def test_wrong_field_type(client, coll):
    expect_error(lambda: client.insert(coll, [row(num="not-an-int")]), "num")
    expect_error(lambda: client.insert(coll, [row(title=12345)]), "title")
    expect_error(lambda: client.insert(coll, [row(id="abc")]), "id")
    assert_serves(client, coll, 1)


def test_missing_field(client, coll):
    r = row()
    del r["num"]
    expect_error(lambda: client.insert(coll, [r]), "num")
    assert_serves(client, coll, 1)


def test_unexpected_field_without_dynamic_schema(client, coll):
    expect_error(lambda: client.insert(coll, [row(zzz_extra=1)]), "zzz_extra")
    assert_serves(client, coll, 1)


def test_unknown_collection(client, coll):
    missing = coll + "_missing"
    e = expect_error(lambda: client.describe_collection(missing), missing)
    assert e.code == 100, "collection not found is status code 100"
    e = expect_error(lambda: client.search(missing, [[1, 2, 3, 4]], limit=1), missing)
    assert e.code == 100
    e = expect_error(lambda: client.query(missing, filter="id > 0"), missing)
    assert e.code == 100
    expect_error(lambda: client.insert(missing, [row()]), missing)
    expect_error(lambda: client.delete(missing, filter="id > 0"), missing)
    assert client.has_collection(missing) is False
    # dropping a collection that does not exist is not an error in Milvus
    client.drop_collection(missing)
    assert_serves(client, coll, 1)


def test_unknown_partition_insert(client, coll):
    expect_error(lambda: client.insert(coll, [row()], partition_name="nopart_x"), "nopart_x")
    expect_error(lambda: client.drop_partition(coll, "nopart_x"), "nopart_x")
    assert client.has_partition(coll, "nopart_x") is False
    assert_serves(client, coll, 1)


def test_unknown_partition_search_and_query(client, coll, xfail_on):
    xfail_on("milvus-lite", "search/query with an unknown partition name return empty results "
                            "instead of an error")
    expect_error(lambda: client.search(coll, [[1, 2, 3, 4]], limit=1,
                                       partition_names=["nopart_y"]), "nopart_y")
    expect_error(lambda: client.query(coll, filter="id > 0", partition_names=["nopart_y"]),
                 "nopart_y")
    assert_serves(client, coll, 1)


def test_unknown_output_field(client, coll, xfail_on):
    xfail_on("milvus-lite", "silently ignores unknown output_fields on a non-dynamic collection")
    expect_error(lambda: client.query(coll, filter="id > 0", output_fields=["no_such_field"]),
                 "no_such_field")
    expect_error(lambda: client.search(coll, [[1, 2, 3, 4]], limit=1,
                                       output_fields=["no_such_field"]), "no_such_field")
    assert_serves(client, coll, 1)


def test_unknown_field_in_filter(client, coll):
    expect_error(lambda: client.query(coll, filter="no_such_field > 1"), "no_such_field")
    assert_serves(client, coll, 1)


@pytest.mark.parametrize("expr", ["num >", "num == = 3", "(num > 1", "num > 1 and", "title like",
                                  "num in [1, 2", "@@@"])
def test_bad_filter_syntax(client, coll, expr):
    # the message quotes the expression (Milvus: "cannot parse expression: <expr>, error: ...")
    expect_error(lambda: client.query(coll, filter=expr), expr)
    expect_error(lambda: client.search(coll, [[1, 2, 3, 4]], limit=1, filter=expr), expr)
    expect_error(lambda: client.delete(coll, filter=expr), expr)
    assert_serves(client, coll, 1)


def test_varchar_over_max_length(client, coll):
    e = expect_error(lambda: client.insert(coll, [row(title="x" * 20)]), "title")
    assert "length" in str(e).lower()
    # exactly max_length is fine
    client.insert(coll, [row(id=3, title="y" * 8)])
    assert_serves(client, coll, 2)
    # a rejected batch writes nothing, not even its valid rows
    expect_error(lambda: client.insert(coll, [row(id=10), row(id=11, title="z" * 9)]), "title")
    assert_serves(client, coll, 2)


def test_duplicate_create_with_different_schema(client, coll):
    other = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    other.add_field("id", DataType.INT64, is_primary=True)
    other.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM * 2)
    e = expect_error(lambda: client.create_collection(coll, schema=other), coll)
    msg = str(e).lower()
    assert any(w in msg for w in ("exist", "duplicate")), msg
    expect_error(lambda: client.create_collection(coll, dimension=DIM * 2), coll)
    # the original schema is untouched
    f = {x["name"]: x for x in client.describe_collection(coll)["fields"]}
    assert int(f["vector"]["params"]["dim"]) == DIM
    assert_serves(client, coll, 1)


def test_limit_too_large(client, coll, xfail_on):
    xfail_on("milvus-lite", "accepts limit (topk) above 16384")
    e = expect_error(lambda: client.search(coll, [[1, 2, 3, 4]], limit=16385))
    msg = str(e).lower()
    assert "16384" in msg or "16385" in msg, msg
    assert "topk" in msg or "limit" in msg, msg
    assert_serves(client, coll, 1)


def test_limit_at_maximum_is_fine(client, coll):
    assert len(client.search(coll, [[1, 2, 3, 4]], limit=16384)[0]) == 1


def test_limit_zero(client, coll):
    expect_error(lambda: client.search(coll, [[1, 2, 3, 4]], limit=0), "limit")
    assert_serves(client, coll, 1)


def test_negative_offset(client, coll, xfail_on):
    xfail_on("milvus-lite", "accepts a negative offset (returns no hits)")
    expect_error(lambda: client.search(coll, [[1, 2, 3, 4]], limit=1, offset=-1), "offset")
    assert_serves(client, coll, 1)


def test_empty_vectors_list(client, coll):
    # pymilvus fails while packing the placeholder group and wraps it as MilvusException;
    # test_bad_inputs_raw.py sends nq=0 to the server itself.
    with pytest.raises(MilvusException):
        client.search(coll, [], limit=1)
    assert_serves(client, coll, 1)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_or_inf_in_vector_rejected(client, coll, bad, xfail_on):
    # Real Milvus validates inserted float vectors (typeutil.VerifyFloats32):
    # "value 'NaN' is not a number or infinity".
    xfail_on("milvus-lite", "accepts NaN/Inf inside float vectors (insert succeeds and search "
                            "then returns nan/inf distances)")
    e = expect_error(lambda: client.insert(coll, [row(vector=[1.0, bad, 3.0, 4.0])]))
    msg = str(e).lower()
    assert "nan" in msg or "inf" in msg, msg
    assert_serves(client, coll, 1)


def test_metric_mismatch_in_search_params(client, coll, xfail_on):
    xfail_on("milvus-lite", "ignores a search metric_type that differs from the index metric")
    expect_error(lambda: client.search(coll, [[1, 2, 3, 4]], limit=1,
                                       search_params={"metric_type": "IP"}), "metric")
    assert_serves(client, coll, 1)


def test_unknown_anns_field(client, coll):
    expect_error(lambda: client.search(coll, [[1, 2, 3, 4]], limit=1, anns_field="novec_x"),
                 "novec_x")
    assert_serves(client, coll, 1)


def test_drop_default_partition(client, coll):
    expect_error(lambda: client.drop_partition(coll, "_default"), "default")
    assert client.has_partition(coll, "_default")
    assert_serves(client, coll, 1)


def test_unknown_index_type(client, coll, xfail_on):
    xfail_on("milvus-lite", "accepts an unknown index_type at CreateIndex (fails only later, "
                            "when the index is built)")
    client.release_collection(coll)
    client.drop_index(coll, "vector")
    ip = client.prepare_index_params()
    ip.add_index("vector", index_type="NO_SUCH_INDEX", metric_type="L2")
    expect_error(lambda: client.create_index(coll, ip), "NO_SUCH_INDEX")
    ip = client.prepare_index_params()
    ip.add_index("vector", index_type="FLAT", metric_type="L2")
    client.create_index(coll, ip)
    load_and_wait(client, coll)
    assert_serves(client, coll, 1)


def test_rename_onto_existing_collection(client, coll, make_name):
    other = make_name("_other")
    client.create_collection(other, dimension=DIM)
    expect_error(lambda: client.rename_collection(coll, other), other)
    assert client.has_collection(coll)
    assert_serves(client, coll, 1)
