//! Writes: insert, upsert, delete.

use ferrovus_proto::milvus::*;
use ferrovus_proto::schema as ps;

use super::Proxy;
use crate::convert::*;
use crate::error::{ApiError, ApiResult};

pub(super) async fn insert(p: &Proxy, r: InsertRequest) -> ApiResult<MutationResult> {
    check_db(&r.db_name)?;
    p.limits
        .charge_insert(&r.collection_name, prost::Message::encoded_len(&r))?;
    write(
        p,
        &r.collection_name,
        &r.partition_name,
        r.fields_data,
        r.num_rows,
        false,
    )
    .await
}

pub(super) async fn upsert(p: &Proxy, r: UpsertRequest) -> ApiResult<MutationResult> {
    check_db(&r.db_name)?;
    p.limits
        .charge_insert(&r.collection_name, prost::Message::encoded_len(&r))?;
    if r.partial_update {
        return Err(ApiError::Unimplemented("partial update"));
    }
    write(
        p,
        &r.collection_name,
        &r.partition_name,
        r.fields_data,
        r.num_rows,
        true,
    )
    .await
}

/// Insert or upsert request columns, converted with the collection's schema.
async fn write(
    p: &Proxy,
    collection: &str,
    partition: &str,
    fields: Vec<ps::FieldData>,
    num_rows: u32,
    upsert: bool,
) -> ApiResult<MutationResult> {
    let c = p.backend.describe_collection(collection).await?;
    let rows = rows_from_request(fields, num_rows, &c.schema)?;
    let res = if upsert {
        p.backend.upsert(collection, partition, rows).await?
    } else {
        p.backend.insert(collection, partition, rows).await?
    };
    p.metrics.rows_inserted(res.insert_count);
    Ok(write_reply(&res))
}

pub(super) async fn delete(p: &Proxy, r: DeleteRequest) -> ApiResult<MutationResult> {
    check_db(&r.db_name)?;
    let params = template_values(&r.expr_template_values);
    let res = p
        .backend
        .delete(&r.collection_name, &r.partition_name, &r.expr, &params)
        .await?;
    Ok(delete_reply(&res))
}
