//! Collections: create, drop, has, describe, show, statistics, alter, rename.

use ferrovus_proto::common::Status;
use ferrovus_proto::milvus::*;
use ferrovus_proto::status;

use super::Proxy;
use crate::convert::*;
use crate::error::ApiResult;

pub(super) async fn create_collection(p: &Proxy, r: CreateCollectionRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    let c = parse_create_collection(&r)?;
    p.backend
        .create_collection(c.schema, c.num_shards, c.consistency, c.properties)
        .await?;
    Ok(status::success())
}

pub(super) async fn drop_collection(p: &Proxy, r: DropCollectionRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    check_name("collection_name", &r.collection_name)?;
    p.backend.drop_collection(&r.collection_name).await?;
    Ok(status::success())
}

pub(super) async fn has_collection(p: &Proxy, r: HasCollectionRequest) -> ApiResult<BoolResponse> {
    check_db(&r.db_name)?;
    Ok(BoolResponse {
        status: Some(status::success()),
        value: p.backend.has_collection(&r.collection_name).await?,
    })
}

pub(super) async fn describe_collection(
    p: &Proxy,
    r: DescribeCollectionRequest,
) -> ApiResult<DescribeCollectionResponse> {
    check_db(&r.db_name)?;
    check_name("collection_name", &r.collection_name)?;
    let c = p.backend.describe_collection(&r.collection_name).await?;
    Ok(describe_collection_reply(c))
}

pub(super) async fn show_collections(
    p: &Proxy,
    r: ShowCollectionsRequest,
) -> ApiResult<ShowCollectionsResponse> {
    check_db(&r.db_name)?;
    let all = p.backend.list_collections().await?;
    Ok(show_collections_reply(all, &r.collection_names))
}

pub(super) async fn get_collection_statistics(
    p: &Proxy,
    r: GetCollectionStatisticsRequest,
) -> ApiResult<GetCollectionStatisticsResponse> {
    check_db(&r.db_name)?;
    let rows = p.backend.row_count(&r.collection_name, None).await?;
    Ok(GetCollectionStatisticsResponse {
        status: Some(status::success()),
        stats: row_count_stats(rows),
    })
}

pub(super) async fn alter_collection(p: &Proxy, r: AlterCollectionRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend
        .alter_properties(&r.collection_name, kv_map(&r.properties))
        .await?;
    Ok(status::success())
}

pub(super) async fn rename_collection(p: &Proxy, r: RenameCollectionRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    check_db(&r.new_db_name)?;
    p.backend
        .rename_collection(&r.old_name, &r.new_name)
        .await?;
    Ok(status::success())
}
