//! Loading: load and release collections or partitions, load state and progress.

use ferrovus_core::CoreError;
use ferrovus_proto::common::Status;
use ferrovus_proto::milvus::*;
use ferrovus_proto::status;

use super::Proxy;
use crate::convert::*;
use crate::error::{ApiError, ApiResult};

pub(super) async fn load_collection(p: &Proxy, r: LoadCollectionRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend
        .load_collection(&r.collection_name, replica_count(r.replica_number))
        .await?;
    Ok(status::success())
}

pub(super) async fn load_partitions(p: &Proxy, r: LoadPartitionsRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend
        .load_partitions(&r.collection_name, &r.partition_names)
        .await?;
    Ok(status::success())
}

pub(super) async fn release_collection(
    p: &Proxy,
    r: ReleaseCollectionRequest,
) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend.release_collection(&r.collection_name).await?;
    Ok(status::success())
}

pub(super) async fn release_partitions(
    p: &Proxy,
    r: ReleasePartitionsRequest,
) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend
        .release_partitions(&r.collection_name, &r.partition_names)
        .await?;
    Ok(status::success())
}

pub(super) async fn get_loading_progress(
    p: &Proxy,
    r: GetLoadingProgressRequest,
) -> ApiResult<GetLoadingProgressResponse> {
    check_db(&r.db_name)?;
    let progress = i64::from(p.backend.loading_progress(&r.collection_name).await?);
    Ok(GetLoadingProgressResponse {
        status: Some(status::success()),
        progress,
        refresh_progress: progress,
    })
}

pub(super) async fn get_load_state(
    p: &Proxy,
    r: GetLoadStateRequest,
) -> ApiResult<GetLoadStateResponse> {
    check_db(&r.db_name)?;
    let state = match p.backend.load_state(&r.collection_name).await {
        Ok(s) => Some(s),
        Err(ApiError::Core(CoreError::CollectionNotFound(_))) => None,
        Err(e) => return Err(e),
    };
    Ok(GetLoadStateResponse {
        status: Some(status::success()),
        state: load_state_to_proto(state) as i32,
    })
}
