//! Connection, version, health, databases, timestamps, flush, segments, replicas, metrics.

use ferrovus_core::CoreError;
use ferrovus_proto::common::{self, Status};
use ferrovus_proto::milvus::*;
use ferrovus_proto::schema as ps;
use ferrovus_proto::status;

use super::Proxy;
use crate::backend::SegmentState;
use crate::convert::*;
use crate::error::{ApiError, ApiResult};

/// Protocol level we speak (what `GetVersion` reports); the build tag names Ferrovus.
pub const PROTOCOL_VERSION: &str = "v2.6.0";

pub(super) async fn connect(p: &Proxy, _r: ConnectRequest) -> ApiResult<ConnectResponse> {
    Ok(ConnectResponse {
        status: Some(status::success()),
        server_info: Some(common::ServerInfo {
            build_tags: format!("ferrovus-{}", env!("CARGO_PKG_VERSION")),
            deploy_mode: p.backend.identity().deploy_mode,
            ..Default::default()
        }),
        identifier: (p.started & 0x7fff_ffff) as i64,
    })
}

pub(super) async fn get_version(
    _p: &Proxy,
    _r: GetVersionRequest,
) -> ApiResult<GetVersionResponse> {
    Ok(GetVersionResponse {
        status: Some(status::success()),
        version: PROTOCOL_VERSION.into(),
    })
}

pub(super) async fn check_health(
    p: &Proxy,
    _r: CheckHealthRequest,
) -> ApiResult<CheckHealthResponse> {
    let reasons = p.backend.unhealthy_reasons().await;
    Ok(CheckHealthResponse {
        status: Some(status::success()),
        is_healthy: reasons.is_empty(),
        reasons,
        ..Default::default()
    })
}

pub(super) async fn get_component_states(
    p: &Proxy,
    _r: GetComponentStatesRequest,
) -> ApiResult<ComponentStates> {
    let me = p.backend.identity();
    let reasons = p.backend.unhealthy_reasons().await;
    let state_code = if reasons.is_empty() {
        common::StateCode::Healthy
    } else {
        common::StateCode::Abnormal
    };
    Ok(ComponentStates {
        state: Some(ComponentInfo {
            node_id: me.node_id,
            role: me.role,
            state_code: state_code as i32,
            extra_info: reasons.iter().map(|r| kv("reason", r.as_str())).collect(),
        }),
        subcomponent_states: vec![],
        status: Some(status::success()),
    })
}

pub(super) async fn alloc_timestamp(
    p: &Proxy,
    _r: AllocTimestampRequest,
) -> ApiResult<AllocTimestampResponse> {
    Ok(AllocTimestampResponse {
        status: Some(status::success()),
        timestamp: p.backend.alloc_timestamp().await?,
    })
}

pub(super) async fn list_databases(
    _p: &Proxy,
    _r: ListDatabasesRequest,
) -> ApiResult<ListDatabasesResponse> {
    Ok(ListDatabasesResponse {
        status: Some(status::success()),
        db_names: vec![DEFAULT_DB.into()],
        created_timestamp: vec![0],
        db_ids: vec![1],
    })
}

pub(super) async fn describe_database(
    _p: &Proxy,
    r: DescribeDatabaseRequest,
) -> ApiResult<DescribeDatabaseResponse> {
    check_db(&r.db_name)?;
    Ok(DescribeDatabaseResponse {
        status: Some(status::success()),
        db_name: DEFAULT_DB.into(),
        db_id: 1,
        ..Default::default()
    })
}

pub(super) async fn create_database(_p: &Proxy, _r: CreateDatabaseRequest) -> ApiResult<Status> {
    Err(ApiError::Unimplemented(
        "CreateDatabase (only the default database exists)",
    ))
}

pub(super) async fn drop_database(_p: &Proxy, _r: DropDatabaseRequest) -> ApiResult<Status> {
    Err(ApiError::Unimplemented(
        "DropDatabase (only the default database exists)",
    ))
}

/// Flush each collection, then report its sealed segments and a flush timestamp.
pub(super) async fn flush(p: &Proxy, r: FlushRequest) -> ApiResult<FlushResponse> {
    check_db(&r.db_name)?;
    let mut resp = FlushResponse {
        status: Some(status::success()),
        db_name: DEFAULT_DB.into(),
        ..Default::default()
    };
    for name in &r.collection_names {
        p.backend.flush(name).await?;
        let ids: Vec<i64> = p
            .backend
            .segments(name)
            .await?
            .into_iter()
            .filter(|s| s.state == SegmentState::Sealed)
            .map(|s| s.segment_id)
            .collect();
        resp.coll_seg_i_ds
            .insert(name.clone(), ps::LongArray { data: ids.clone() });
        resp.flush_coll_seg_i_ds
            .insert(name.clone(), ps::LongArray { data: ids });
        resp.coll_flush_ts
            .insert(name.clone(), p.backend.alloc_timestamp().await?);
    }
    Ok(resp)
}

pub(super) async fn get_flush_state(
    p: &Proxy,
    r: GetFlushStateRequest,
) -> ApiResult<GetFlushStateResponse> {
    check_db(&r.db_name)?;
    if !r.collection_name.is_empty() {
        p.backend.describe_collection(&r.collection_name).await?;
    }
    // Flush is synchronous: once Flush answered, its data is persisted.
    Ok(GetFlushStateResponse {
        status: Some(status::success()),
        flushed: true,
    })
}

pub(super) async fn get_persistent_segment_info(
    p: &Proxy,
    r: GetPersistentSegmentInfoRequest,
) -> ApiResult<GetPersistentSegmentInfoResponse> {
    check_db(&r.db_name)?;
    let segments = p.backend.segments(&r.collection_name).await?;
    Ok(GetPersistentSegmentInfoResponse {
        status: Some(status::success()),
        infos: segments.into_iter().map(persistent_segment_info).collect(),
    })
}

pub(super) async fn get_query_segment_info(
    p: &Proxy,
    r: GetQuerySegmentInfoRequest,
) -> ApiResult<GetQuerySegmentInfoResponse> {
    check_db(&r.db_name)?;
    let segments = p.backend.segments(&r.collection_name).await?;
    Ok(GetQuerySegmentInfoResponse {
        status: Some(status::success()),
        infos: segments.into_iter().map(query_segment_info).collect(),
    })
}

pub(super) async fn get_replicas(
    p: &Proxy,
    r: GetReplicasRequest,
) -> ApiResult<GetReplicasResponse> {
    check_db(&r.db_name)?;
    // pymilvus' describe_replica sends the collection's id only (from a DescribeCollection).
    let name = if r.collection_name.is_empty() && r.collection_id != 0 {
        p.backend
            .list_collections()
            .await?
            .into_iter()
            .find(|c| c.id == r.collection_id)
            .map(|c| c.name)
            .ok_or_else(|| CoreError::CollectionNotFound(r.collection_id.to_string()))?
    } else {
        r.collection_name
    };
    let replicas = p.backend.replicas(&name).await?;
    Ok(GetReplicasResponse {
        status: Some(status::success()),
        replicas: replicas.into_iter().map(replica_info).collect(),
    })
}

pub(super) async fn get_metrics(p: &Proxy, _r: GetMetricsRequest) -> ApiResult<GetMetricsResponse> {
    Ok(GetMetricsResponse {
        status: Some(status::success()),
        response: metrics_body(p.backend.totals().await?),
        component_name: p.backend.identity().role,
    })
}
