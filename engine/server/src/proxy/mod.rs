//! The Milvus front door: `milvus.proto.milvus.MilvusService` over a [`Backend`].
//!
//! Every handler runs through `Proxy::run`, which times and counts it, turns an
//! [`ApiError`] into the response's Milvus `Status` (the one place errors are mapped), and
//! catches a panic in a handler so it is logged and answered as an internal error instead of
//! tearing down the connection.
//!
//! The handlers live in one module per family and read as: check the database name, parse
//! the request ([`crate::convert`]), call the backend, build the reply ([`crate::convert`]).
//! The service implementation below only routes each RPC to its handler; [`serve_milvus`] runs
//! it as a gRPC server (standalone and the cluster's proxy role).

mod admin;
mod aliases;
mod collections;
mod dml;
mod indexes;
mod loading;
mod partitions;
mod read;
mod server;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use ferrovus_proto::common::Status;
use ferrovus_proto::milvus::*;
use futures::FutureExt;
use tonic::{Request, Response};

use crate::backend::Backend;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;

pub use admin::PROTOCOL_VERSION;
pub use server::{bind_milvus, serve_milvus};

#[derive(Clone)]
pub struct Proxy {
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    started: u64,
}

/// A Milvus response: every one carries a `Status` (or is one).
trait Reply: Default {
    fn set_status(&mut self, s: Status);
}

impl Reply for Status {
    fn set_status(&mut self, s: Status) {
        *self = s;
    }
}

macro_rules! replies {
    ($($t:ty),* $(,)?) => { $(impl Reply for $t { fn set_status(&mut self, s: Status) { self.status = Some(s); } })* };
}

replies!(
    BoolResponse,
    DescribeCollectionResponse,
    GetCollectionStatisticsResponse,
    ShowCollectionsResponse,
    GetPartitionStatisticsResponse,
    ShowPartitionsResponse,
    GetLoadingProgressResponse,
    GetLoadStateResponse,
    DescribeAliasResponse,
    ListAliasesResponse,
    DescribeIndexResponse,
    GetIndexStateResponse,
    GetIndexBuildProgressResponse,
    MutationResult,
    SearchResults,
    FlushResponse,
    QueryResults,
    GetFlushStateResponse,
    GetPersistentSegmentInfoResponse,
    GetQuerySegmentInfoResponse,
    GetReplicasResponse,
    GetMetricsResponse,
    ComponentStates,
    GetVersionResponse,
    CheckHealthResponse,
    ConnectResponse,
    AllocTimestampResponse,
    ListDatabasesResponse,
    DescribeDatabaseResponse,
);

impl Proxy {
    pub fn new(backend: Arc<dyn Backend>, metrics: Arc<Metrics>) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Proxy {
            backend,
            metrics,
            started,
        }
    }

    async fn run<T: Reply>(
        &self,
        method: &'static str,
        f: impl Future<Output = ApiResult<T>>,
    ) -> Result<Response<T>, tonic::Status> {
        let start = Instant::now();
        let span = tracing::debug_span!("rpc", method);
        let (reply, code) = match tracing::Instrument::instrument(
            AssertUnwindSafe(f).catch_unwind(),
            span,
        )
        .await
        {
            Ok(Ok(r)) => (r, 0),
            Ok(Err(e)) => {
                let st = e.to_status();
                tracing::debug!(method, code = st.code, reason = %st.reason, "request failed");
                let code = st.code;
                let mut r = T::default();
                r.set_status(st);
                (r, code)
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(method, panic = %msg, "handler panicked; answered as an internal error");
                let err = ApiError::Internal(format!("{method} failed unexpectedly: {msg}"));
                let st = err.to_status();
                let code = st.code;
                let mut r = T::default();
                r.set_status(st);
                (r, code)
            }
        };
        self.metrics.observe(method, code, start.elapsed());
        Ok(Response::new(reply))
    }
}

/// `rpc(Request) -> Response = "MetricName" => family;` routes the RPC `rpc` to the handler
/// `family::rpc(&Proxy, Request) -> ApiResult<Response>`, run under [`Proxy::run`].
macro_rules! milvus_service {
    ($($rpc:ident($req:ty) -> $resp:ty = $name:literal => $family:ident;)*) => {
        #[tonic::async_trait]
        impl milvus_service_server::MilvusService for Proxy {
            $(
                async fn $rpc(
                    &self,
                    request: Request<$req>,
                ) -> Result<Response<$resp>, tonic::Status> {
                    self.run($name, $family::$rpc(self, request.into_inner())).await
                }
            )*
        }
    };
}

milvus_service! {
    connect(ConnectRequest) -> ConnectResponse = "Connect" => admin;
    get_version(GetVersionRequest) -> GetVersionResponse = "GetVersion" => admin;
    check_health(CheckHealthRequest) -> CheckHealthResponse = "CheckHealth" => admin;
    get_component_states(GetComponentStatesRequest) -> ComponentStates = "GetComponentStates" => admin;
    alloc_timestamp(AllocTimestampRequest) -> AllocTimestampResponse = "AllocTimestamp" => admin;
    list_databases(ListDatabasesRequest) -> ListDatabasesResponse = "ListDatabases" => admin;
    describe_database(DescribeDatabaseRequest) -> DescribeDatabaseResponse = "DescribeDatabase" => admin;
    create_database(CreateDatabaseRequest) -> Status = "CreateDatabase" => admin;
    drop_database(DropDatabaseRequest) -> Status = "DropDatabase" => admin;
    flush(FlushRequest) -> FlushResponse = "Flush" => admin;
    get_flush_state(GetFlushStateRequest) -> GetFlushStateResponse = "GetFlushState" => admin;
    get_persistent_segment_info(GetPersistentSegmentInfoRequest) -> GetPersistentSegmentInfoResponse = "GetPersistentSegmentInfo" => admin;
    get_query_segment_info(GetQuerySegmentInfoRequest) -> GetQuerySegmentInfoResponse = "GetQuerySegmentInfo" => admin;
    get_replicas(GetReplicasRequest) -> GetReplicasResponse = "GetReplicas" => admin;
    get_metrics(GetMetricsRequest) -> GetMetricsResponse = "GetMetrics" => admin;

    create_collection(CreateCollectionRequest) -> Status = "CreateCollection" => collections;
    drop_collection(DropCollectionRequest) -> Status = "DropCollection" => collections;
    has_collection(HasCollectionRequest) -> BoolResponse = "HasCollection" => collections;
    describe_collection(DescribeCollectionRequest) -> DescribeCollectionResponse = "DescribeCollection" => collections;
    show_collections(ShowCollectionsRequest) -> ShowCollectionsResponse = "ShowCollections" => collections;
    get_collection_statistics(GetCollectionStatisticsRequest) -> GetCollectionStatisticsResponse = "GetCollectionStatistics" => collections;
    alter_collection(AlterCollectionRequest) -> Status = "AlterCollection" => collections;
    rename_collection(RenameCollectionRequest) -> Status = "RenameCollection" => collections;

    create_partition(CreatePartitionRequest) -> Status = "CreatePartition" => partitions;
    drop_partition(DropPartitionRequest) -> Status = "DropPartition" => partitions;
    has_partition(HasPartitionRequest) -> BoolResponse = "HasPartition" => partitions;
    show_partitions(ShowPartitionsRequest) -> ShowPartitionsResponse = "ShowPartitions" => partitions;
    get_partition_statistics(GetPartitionStatisticsRequest) -> GetPartitionStatisticsResponse = "GetPartitionStatistics" => partitions;

    load_collection(LoadCollectionRequest) -> Status = "LoadCollection" => loading;
    load_partitions(LoadPartitionsRequest) -> Status = "LoadPartitions" => loading;
    release_collection(ReleaseCollectionRequest) -> Status = "ReleaseCollection" => loading;
    release_partitions(ReleasePartitionsRequest) -> Status = "ReleasePartitions" => loading;
    get_loading_progress(GetLoadingProgressRequest) -> GetLoadingProgressResponse = "GetLoadingProgress" => loading;
    get_load_state(GetLoadStateRequest) -> GetLoadStateResponse = "GetLoadState" => loading;

    create_alias(CreateAliasRequest) -> Status = "CreateAlias" => aliases;
    drop_alias(DropAliasRequest) -> Status = "DropAlias" => aliases;
    alter_alias(AlterAliasRequest) -> Status = "AlterAlias" => aliases;
    describe_alias(DescribeAliasRequest) -> DescribeAliasResponse = "DescribeAlias" => aliases;
    list_aliases(ListAliasesRequest) -> ListAliasesResponse = "ListAliases" => aliases;

    create_index(CreateIndexRequest) -> Status = "CreateIndex" => indexes;
    describe_index(DescribeIndexRequest) -> DescribeIndexResponse = "DescribeIndex" => indexes;
    get_index_state(GetIndexStateRequest) -> GetIndexStateResponse = "GetIndexState" => indexes;
    get_index_build_progress(GetIndexBuildProgressRequest) -> GetIndexBuildProgressResponse = "GetIndexBuildProgress" => indexes;
    drop_index(DropIndexRequest) -> Status = "DropIndex" => indexes;

    insert(InsertRequest) -> MutationResult = "Insert" => dml;
    upsert(UpsertRequest) -> MutationResult = "Upsert" => dml;
    delete(DeleteRequest) -> MutationResult = "Delete" => dml;

    search(SearchRequest) -> SearchResults = "Search" => read;
    hybrid_search(HybridSearchRequest) -> SearchResults = "HybridSearch" => read;
    query(QueryRequest) -> QueryResults = "Query" => read;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standalone::Engine;
    use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
    use ferrovus_proto::{common, status};
    use milvus_service_server::MilvusService;

    /// A proxy over the standalone engine on in-memory stores (the engine runs while it lives).
    async fn proxy() -> (Proxy, Engine) {
        let metrics = Arc::new(Metrics::new());
        let engine = Engine::start(
            &crate::config::Config::default(),
            Arc::new(MemoryMetaStore::default()),
            Arc::new(MemoryObjectStore::default()),
            &metrics,
        )
        .await
        .unwrap();
        (Proxy::new(engine.backend().clone(), metrics), engine)
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_an_internal_error_and_is_counted() {
        let (p, _engine) = proxy().await;
        let resp = p
            .run("Boom", async {
                if p.started > 0 {
                    panic!("boom at the wire");
                }
                Ok(BoolResponse::default())
            })
            .await
            .unwrap()
            .into_inner();
        let st = resp.status.unwrap();
        assert_eq!(st.code, ferrovus_proto::codes::UNEXPECTED);
        assert!(
            st.reason.contains("Boom") && st.reason.contains("boom at the wire"),
            "{}",
            st.reason
        );
        let text = p.metrics.render();
        assert!(text.contains("method=\"Boom\""), "{text}");
        // The service still answers afterwards.
        let ok = p
            .run("Ok", async {
                Ok(BoolResponse {
                    status: Some(status::success()),
                    value: true,
                })
            })
            .await
            .unwrap()
            .into_inner();
        assert!(ok.value);
    }

    #[tokio::test]
    async fn errors_travel_in_the_milvus_status_not_as_grpc_errors() {
        let (p, _engine) = proxy().await;
        let resp = p
            .describe_collection(Request::new(DescribeCollectionRequest {
                collection_name: "nope".into(),
                ..Default::default()
            }))
            .await
            .expect("a Milvus error is a successful gRPC response")
            .into_inner();
        let st = resp.status.unwrap();
        assert_eq!(st.code, ferrovus_proto::codes::COLLECTION_NOT_FOUND);
        assert!(st.reason.contains("nope"));
        let resp = p
            .get_load_state(Request::new(GetLoadStateRequest {
                collection_name: "nope".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.state, common::LoadState::NotExist as i32);
        let text = p.metrics.render();
        assert!(
            text.contains("method=\"DescribeCollection\",code=\"100\""),
            "{text}"
        );
    }

    #[tokio::test]
    async fn unknown_databases_and_unimplemented_rpcs_are_statuses() {
        let (p, _engine) = proxy().await;
        let st = p
            .drop_collection(Request::new(DropCollectionRequest {
                db_name: "other".into(),
                collection_name: "c".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(st.code, ferrovus_proto::codes::DATABASE_NOT_FOUND);
        assert_eq!(st.reason, "database not found[database=other]");
        let resp = p
            .hybrid_search(Request::new(HybridSearchRequest::default()))
            .await
            .unwrap()
            .into_inner();
        let st = resp.status.unwrap();
        assert_eq!(st.code, ferrovus_proto::codes::UNIMPLEMENTED);
        assert_eq!(st.reason, "HybridSearch is not implemented by Ferrovus yet");
    }
}
