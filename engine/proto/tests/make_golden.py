#!/usr/bin/env python3
"""Write tests/golden/*.hex: protobuf bytes produced by the real pymilvus.

The Rust test `tests/wire.rs` decodes them with our generated types and
checks that re-encoding gives the same bytes.  Requests are built with
pymilvus' own request builders (`pymilvus.client.prepare.Prepare`), i.e. the
exact bytes `MilvusClient` sends.  Regenerate after a pymilvus bump:

    python3 engine/proto/tests/make_golden.py
"""

from pathlib import Path

from pymilvus import DataType, MilvusClient
from pymilvus.client.abstract import CollectionSchema as RawSchema
from pymilvus.client.prepare import Prepare
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

OUT = Path(__file__).resolve().parent / "golden"
V1 = [0.5, -1.0, 2.0, 0.25]
V2 = [1.0, 0.0, -0.5, 3.0]


def write(name: str, msg) -> None:
    (OUT / f"{name}.hex").write_text(msg.SerializeToString(deterministic=True).hex() + "\n")


def main() -> None:
    OUT.mkdir(exist_ok=True)

    # MilvusClient.create_collection(schema=...) with an int64 pk and a 4-dim vector.
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
    create = Prepare.create_collection_request("docs", schema, consistency_level="Bounded")
    write("create_collection_request", create)

    # MilvusClient.insert(): rows -> columns, the extra key goes to the $meta JSON column.
    described = milvus_pb2.DescribeCollectionResponse(
        schema=schema_pb2.CollectionSchema.FromString(create.schema), collection_name="docs"
    )
    fields = RawSchema(raw=described).dict()["fields"]
    rows = [{"id": 1, "vector": V1, "tag": "a"}, {"id": 2, "vector": V2}]
    write("insert_request", Prepare.row_insert_param("docs", rows, "", fields, [], enable_dynamic=True))

    # MilvusClient.search(): two query vectors, COSINE, limit 3, a filter and output fields.
    search = Prepare.search_requests_with_expr(
        "docs",
        "vector",
        {"metric_type": "COSINE", "params": {}},
        3,
        data=[V1, V2],
        expr="id > 1",
        output_fields=["id"],
        use_default_consistency=True,
    )
    write("search_request", search)

    # What Milvus answers for a missing collection (merr.Status of ErrCollectionNotFound).
    reason = "collection not found[database=default][collection=c1]"
    status = common_pb2.Status(
        error_code=common_pb2.CollectionNotExists,
        reason=reason,
        code=100,
        detail=reason,
        extra_info={"is_input_error": "true"},
    )
    write("status_collection_not_found", status)


if __name__ == "__main__":
    main()
