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
mod guard;
mod indexes;
mod limits;
mod loading;
mod partitions;
mod read;
mod server;
mod users;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use ferrovus_proto::common::Status;
use ferrovus_proto::milvus::*;
use futures::FutureExt;
use tonic::{Request, Response};

use crate::backend::Backend;
use crate::config::{LimitsConfig, SecurityConfig};
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::security::SecurityError;

pub use admin::PROTOCOL_VERSION;
pub use server::{bind_milvus, milvus_tls, serve_milvus};

#[derive(Clone)]
pub struct Proxy {
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    started: u64,
    guard: Arc<guard::Guard>,
    limits: Arc<limits::Limits>,
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
    ListCredUsersResponse,
    SelectRoleResponse,
    SelectUserResponse,
    SelectGrantResponse,
);

impl Proxy {
    pub fn new(
        backend: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
        security: &SecurityConfig,
    ) -> Self {
        Self::with_limits(backend, metrics, security, &LimitsConfig::default())
    }

    pub fn with_limits(
        backend: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
        security: &SecurityConfig,
        limits: &LimitsConfig,
    ) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Proxy {
            backend,
            metrics,
            started,
            guard: Arc::new(guard::Guard::new(security)),
            limits: Arc::new(limits::Limits::new(limits)),
        }
    }

    async fn run<T: Reply>(
        &self,
        method: &'static str,
        f: impl Future<Output = ApiResult<T>>,
    ) -> Result<Response<T>, tonic::Status> {
        let start = Instant::now();
        let span = tracing::debug_span!("rpc", method);
        let permit = self.limits.enter(method);
        let f = async move {
            let _permit = permit?;
            f.await
        };
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

    /// A request the guard refused: counted under its Milvus code, answered as the gRPC error
    /// Milvus answers with.
    fn refuse(&self, method: &'static str, e: &SecurityError, start: Instant) -> tonic::Status {
        tracing::debug!(method, error = %e, "request refused");
        self.metrics
            .observe(method, crate::error::security_code(e), start.elapsed());
        guard::to_grpc(e)
    }
}

/// `rpc(Request) -> Response = "MetricName" => family;` routes the RPC `rpc` to the handler
/// `family::rpc(&Proxy, Request) -> ApiResult<Response>`, run under [`Proxy::run`] as the caller
/// the guard authenticated (and only if the guard lets it through).
macro_rules! milvus_service {
    ($($rpc:ident($req:ty) -> $resp:ty = $name:literal => $family:ident;)*) => {
        #[tonic::async_trait]
        impl milvus_service_server::MilvusService for Proxy {
            $(
                async fn $rpc(
                    &self,
                    request: Request<$req>,
                ) -> Result<Response<$resp>, tonic::Status> {
                    let start = Instant::now();
                    let (meta, _, req) = request.into_parts();
                    let user = match self.authorize(&meta, &req).await {
                        Ok(user) => user,
                        Err(e) => return Err(self.refuse($name, &e, start)),
                    };
                    self.run($name, guard::as_caller(user, $family::$rpc(self, req))).await
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

    create_credential(CreateCredentialRequest) -> Status = "CreateCredential" => users;
    update_credential(UpdateCredentialRequest) -> Status = "UpdateCredential" => users;
    delete_credential(DeleteCredentialRequest) -> Status = "DeleteCredential" => users;
    list_cred_users(ListCredUsersRequest) -> ListCredUsersResponse = "ListCredUsers" => users;
    create_role(CreateRoleRequest) -> Status = "CreateRole" => users;
    drop_role(DropRoleRequest) -> Status = "DropRole" => users;
    operate_user_role(OperateUserRoleRequest) -> Status = "OperateUserRole" => users;
    select_role(SelectRoleRequest) -> SelectRoleResponse = "SelectRole" => users;
    select_user(SelectUserRequest) -> SelectUserResponse = "SelectUser" => users;
    operate_privilege(OperatePrivilegeRequest) -> Status = "OperatePrivilege" => users;
    operate_privilege_v2(OperatePrivilegeV2Request) -> Status = "OperatePrivilegeV2" => users;
    select_grant(SelectGrantRequest) -> SelectGrantResponse = "SelectGrant" => users;
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
        (
            Proxy::new(
                engine.backend().clone(),
                metrics,
                &crate::config::SecurityConfig::default(),
            ),
            engine,
        )
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

    fn login<T>(body: T, user: &str, password: &str) -> Request<T> {
        let mut r = Request::new(body);
        let token = crate::security::credentials::encode(user, password);
        r.metadata_mut()
            .insert("authorization", token.parse().unwrap());
        r
    }

    /// CreateCredential as root, with the password base64-encoded as pymilvus sends it.
    async fn create_user(p: &Proxy, name: &str, password: &str) -> Status {
        use base64::Engine as _;
        let password = base64::engine::general_purpose::STANDARD.encode(password);
        let req = CreateCredentialRequest {
            username: name.into(),
            password,
            ..Default::default()
        };
        p.create_credential(login(req, "root", "Milvus"))
            .await
            .unwrap()
            .into_inner()
    }

    #[tokio::test]
    async fn with_authorization_on_requests_need_a_login_and_a_privilege() {
        let (open, _engine) = proxy().await;
        let cfg = crate::config::SecurityConfig {
            authorization_enabled: true,
            root_password: crate::config::Secret("Milvus".into()),
            ..Default::default()
        };
        let p = Proxy::new(open.backend.clone(), open.metrics.clone(), &cfg);
        p.bootstrap_security().await.unwrap();
        p.bootstrap_security().await.unwrap(); // idempotent

        let e = p
            .show_collections(Request::new(ShowCollectionsRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
        let e = p
            .show_collections(login(ShowCollectionsRequest::default(), "root", "nope"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(e.message().contains("root"), "{}", e.message());
        let ok = p
            .show_collections(login(ShowCollectionsRequest::default(), "root", "Milvus"))
            .await
            .unwrap()
            .into_inner();
        assert!(status::is_success(ok.status.as_ref().unwrap()));

        let st = create_user(&p, "alice", "alice_pw1").await;
        assert!(status::is_success(&st), "{st:?}");
        // The stored form is a salted hash, never the password.
        let state = p.backend.security_state().await.unwrap();
        let hash = &state.users["alice"].password_hash;
        assert!(hash.starts_with("$argon2id$") && !hash.contains("alice_pw1"));

        // A plain user may describe (public) but not search, and the refusal names it all.
        let st = p
            .has_collection(login(
                HasCollectionRequest {
                    collection_name: "c".into(),
                    ..Default::default()
                },
                "alice",
                "alice_pw1",
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(status::is_success(st.status.as_ref().unwrap()));
        let e = p
            .search(login(
                SearchRequest {
                    collection_name: "c".into(),
                    ..Default::default()
                },
                "alice",
                "alice_pw1",
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let m = e.message();
        assert!(
            m.contains("alice") && m.contains("Search") && m.contains("`c`"),
            "{m}"
        );
        // A bad name is refused with the field named.
        let st = create_user(&p, "9lives", "alice_pw1").await;
        assert_eq!(st.code, ferrovus_proto::codes::PARAMETER_INVALID);
        assert!(
            st.reason.contains("username") && st.reason.contains("9lives"),
            "{}",
            st.reason
        );
        let text = p.metrics.render();
        assert!(text.contains("method=\"Search\",code=\"1401\""), "{text}");
        assert!(text.contains("code=\"1400\""), "{text}");
    }
}
