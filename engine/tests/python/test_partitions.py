"""Partitions: create/has/list/drop, insert into a partition, search and query
restricted to partitions."""

from helpers import hit_ids, load_and_wait, quick_collection, rand_vectors, rows


def test_partition_lifecycle(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    assert client.list_partitions(collection_name) == ["_default"]
    assert client.has_partition(collection_name, "_default")
    assert not client.has_partition(collection_name, "p1")

    client.create_partition(collection_name, "p1")
    client.create_partition(collection_name, "p2")
    assert client.has_partition(collection_name, "p1")
    assert sorted(client.list_partitions(collection_name)) == ["_default", "p1", "p2"]

    # Milvus requires a partition to be released before it is dropped.
    client.release_collection(collection_name)
    client.drop_partition(collection_name, "p1")
    assert not client.has_partition(collection_name, "p1")
    assert sorted(client.list_partitions(collection_name)) == ["_default", "p2"]


def test_insert_search_query_restricted_to_partitions(client, collection_name):
    dim = 8
    quick_collection(client, collection_name, dim=dim, metric="L2")
    client.create_partition(collection_name, "pa")
    client.create_partition(collection_name, "pb")
    # the partitions are created after load; make sure they are loaded too
    load_and_wait(client, collection_name)
    va, vb, vd = rand_vectors(30, dim, 1), rand_vectors(30, dim, 2), rand_vectors(30, dim, 3)
    client.insert(collection_name, rows(va, 0, part=lambda i: "pa"), partition_name="pa")
    client.insert(collection_name, rows(vb, 100, part=lambda i: "pb"), partition_name="pb")
    client.insert(collection_name, rows(vd, 200, part=lambda i: "_default"))

    q = va[:1]
    # whole collection: the exact vector of id 0 is the nearest
    res = client.search(collection_name, q.tolist(), limit=5, output_fields=["part"])
    assert res[0][0]["id"] == 0

    # restricted to pb: only ids 100..129
    res = client.search(collection_name, q.tolist(), limit=10, partition_names=["pb"],
                        output_fields=["part"])
    assert len(res[0]) == 10
    assert all(100 <= i < 130 for i in hit_ids(res[0])), hit_ids(res[0])
    assert {h["entity"]["part"] for h in res[0]} == {"pb"}

    # two partitions
    res = client.search(collection_name, q.tolist(), limit=60, partition_names=["pb", "_default"])
    ids = hit_ids(res[0])
    assert len(ids) == 60 and all(i >= 100 for i in ids)

    cnt = client.query(collection_name, filter="id >= 0", output_fields=["count(*)"],
                       partition_names=["pa"])
    assert cnt[0]["count(*)"] == 30
    got = client.query(collection_name, filter="id < 1000", output_fields=["id"],
                       partition_names=["pa", "pb"], limit=100)
    assert sorted(r["id"] for r in got) == list(range(30)) + list(range(100, 130))

    # get by ids scoped to a partition only sees that partition's rows
    got = client.get(collection_name, ids=[0, 100, 200], partition_names=["pb"])
    assert [r["id"] for r in got] == [100]


def test_partition_stats_and_drop_removes_rows(client, collection_name):
    quick_collection(client, collection_name, dim=4)
    client.create_partition(collection_name, "px")
    load_and_wait(client, collection_name)
    client.insert(collection_name, rows(rand_vectors(7, 4)), partition_name="px")
    client.insert(collection_name, rows(rand_vectors(5, 4), 50))
    client.flush(collection_name)
    assert int(client.get_partition_stats(collection_name, "px")["row_count"]) == 7
    client.release_collection(collection_name)
    client.drop_partition(collection_name, "px")
    load_and_wait(client, collection_name)
    cnt = client.query(collection_name, filter="", output_fields=["count(*)"])
    assert cnt[0]["count(*)"] == 5


def test_count_star_without_filter_restricted_to_partition(client, collection_name, xfail_on):
    xfail_on("milvus-lite", "count(*) with an empty filter ignores partition_names "
                            "(returns the whole collection's count)")
    quick_collection(client, collection_name, dim=4)
    client.create_partition(collection_name, "pa")
    load_and_wait(client, collection_name)
    client.insert(collection_name, rows(rand_vectors(3, 4)), partition_name="pa")
    client.insert(collection_name, rows(rand_vectors(4, 4), 10))
    cnt = client.query(collection_name, filter="", output_fields=["count(*)"],
                       partition_names=["pa"])
    assert cnt[0]["count(*)"] == 3
