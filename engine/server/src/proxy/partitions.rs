//! Partitions: create, drop, has, show, statistics.

use ferrovus_proto::common::Status;
use ferrovus_proto::milvus::*;
use ferrovus_proto::status;

use super::Proxy;
use crate::convert::*;
use crate::error::ApiResult;

pub(super) async fn create_partition(p: &Proxy, r: CreatePartitionRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend
        .create_partition(&r.collection_name, &r.partition_name)
        .await?;
    Ok(status::success())
}

pub(super) async fn drop_partition(p: &Proxy, r: DropPartitionRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend
        .drop_partition(&r.collection_name, &r.partition_name)
        .await?;
    Ok(status::success())
}

pub(super) async fn has_partition(p: &Proxy, r: HasPartitionRequest) -> ApiResult<BoolResponse> {
    check_db(&r.db_name)?;
    let c = p.backend.describe_collection(&r.collection_name).await?;
    Ok(BoolResponse {
        status: Some(status::success()),
        value: c.partitions.iter().any(|x| x.name == r.partition_name),
    })
}

pub(super) async fn show_partitions(
    p: &Proxy,
    r: ShowPartitionsRequest,
) -> ApiResult<ShowPartitionsResponse> {
    check_db(&r.db_name)?;
    let c = p.backend.describe_collection(&r.collection_name).await?;
    Ok(show_partitions_reply(c, &r.partition_names))
}

pub(super) async fn get_partition_statistics(
    p: &Proxy,
    r: GetPartitionStatisticsRequest,
) -> ApiResult<GetPartitionStatisticsResponse> {
    check_db(&r.db_name)?;
    let rows = p
        .backend
        .row_count(&r.collection_name, Some(&r.partition_name))
        .await?;
    Ok(GetPartitionStatisticsResponse {
        status: Some(status::success()),
        stats: row_count_stats(rows),
    })
}
