//! Indexes: create, describe (with build progress), state, progress, drop.

use ferrovus_proto::common::Status;
use ferrovus_proto::milvus::*;
use ferrovus_proto::status;

use super::Proxy;
use crate::convert::*;
use crate::error::ApiResult;

pub(super) async fn create_index(p: &Proxy, r: CreateIndexRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    let params = index_params(&r.extra_params)?;
    p.backend
        .create_index(&r.collection_name, &r.field_name, &r.index_name, params)
        .await?;
    Ok(status::success())
}

pub(super) async fn describe_index(
    p: &Proxy,
    r: DescribeIndexRequest,
) -> ApiResult<DescribeIndexResponse> {
    check_db(&r.db_name)?;
    let name = index_name_or_field(&r.index_name, &r.field_name);
    let list = p.backend.describe_indexes(&r.collection_name, name).await?;
    Ok(DescribeIndexResponse {
        status: Some(status::success()),
        index_descriptions: list.into_iter().map(index_description).collect(),
    })
}

pub(super) async fn get_index_state(
    p: &Proxy,
    r: GetIndexStateRequest,
) -> ApiResult<GetIndexStateResponse> {
    check_db(&r.db_name)?;
    let name = index_name_or_field(&r.index_name, &r.field_name);
    let list = p.backend.describe_indexes(&r.collection_name, name).await?;
    Ok(GetIndexStateResponse {
        status: Some(status::success()),
        state: index_state(list.iter().all(|i| i.finished())),
        fail_reason: String::new(),
    })
}

pub(super) async fn get_index_build_progress(
    p: &Proxy,
    r: GetIndexBuildProgressRequest,
) -> ApiResult<GetIndexBuildProgressResponse> {
    check_db(&r.db_name)?;
    let name = index_name_or_field(&r.index_name, &r.field_name);
    let list = p.backend.describe_indexes(&r.collection_name, name).await?;
    let (indexed_rows, total_rows) = index_progress(&list);
    Ok(GetIndexBuildProgressResponse {
        status: Some(status::success()),
        indexed_rows,
        total_rows,
    })
}

pub(super) async fn drop_index(p: &Proxy, r: DropIndexRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend
        .drop_index(&r.collection_name, &r.field_name, &r.index_name)
        .await?;
    Ok(status::success())
}
