//! The Milvus front door: `milvus.proto.milvus.MilvusService` over a [`Backend`].
//!
//! Every handler runs through [`Proxy::run`], which times and counts it, turns an
//! [`ApiError`] into the response's Milvus `Status` (the one place errors are mapped), and
//! catches a panic in a handler so it is logged and answered as an internal error instead of
//! tearing down the connection.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use ferrovus_core::database::LoadState;
use ferrovus_core::request::{QueryRequest as CoreQuery, SearchRequest as CoreSearch};
use ferrovus_core::schema::DYNAMIC_FIELD_NAME;
use ferrovus_proto::common::{self, Status};
use ferrovus_proto::milvus::*;
use ferrovus_proto::schema as ps;
use ferrovus_proto::status;
use futures::FutureExt;
use tonic::{Request, Response};

use crate::backend::{Backend, SegmentState};
use crate::convert::*;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;

/// Protocol level we speak (what `GetVersion` reports); the build tag names Ferrovus.
pub const PROTOCOL_VERSION: &str = "v2.6.0";

#[derive(Clone)]
pub struct Proxy {
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    started: u64,
}

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

fn check_db(db_name: &str) -> ApiResult<()> {
    if db_name.is_empty() || db_name == "default" {
        Ok(())
    } else {
        Err(ApiError::DatabaseNotFound(db_name.to_string()))
    }
}

fn check_name(field: &str, name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field} should not be empty"),
        ));
    }
    Ok(())
}

/// Index params from `CreateIndex.extra_params`: top-level keys plus the JSON object in
/// `params` (how pymilvus sends `M`/`efConstruction`).
fn index_params(extra: &[common::KeyValuePair]) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kv in extra {
        if kv.key == "params" {
            let v: serde_json::Value = serde_json::from_str(&kv.value).map_err(|e| {
                ApiError::invalid(
                    "params",
                    format!(
                        "index params must be a JSON object, got {:?}: {e}",
                        kv.value
                    ),
                )
            })?;
            let Some(obj) = v.as_object() else {
                return Err(ApiError::invalid(
                    "params",
                    format!("index params must be a JSON object, got {}", kv.value),
                ));
            };
            for (k, v) in obj {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.insert(k.clone(), s);
            }
        } else {
            out.insert(kv.key.clone(), kv.value.clone());
        }
    }
    Ok(out)
}

fn parse_usize(field: &str, v: &str) -> ApiResult<usize> {
    v.trim()
        .parse::<i64>()
        .ok()
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{field} must be a non-negative integer, got {v:?}"),
            )
        })
}

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

    async fn describe(&self, name: &str) -> ApiResult<DescribeCollectionResponse> {
        check_name("collection_name", name)?;
        let m = self.backend.describe_collection(name).await?;
        Ok(DescribeCollectionResponse {
            status: Some(status::success()),
            schema: Some({
                // Milvus hides the dynamic `$meta` field and reports only enable_dynamic_field.
                let mut ps = schema_to_proto(&m.schema);
                ps.fields.retain(|f| !f.is_dynamic);
                ps
            }),
            collection_id: m.id,
            virtual_channel_names: (0..m.num_shards)
                .map(|s| format!("ferrovus-dml_{s}_{}v{s}", m.id))
                .collect(),
            physical_channel_names: (0..m.num_shards)
                .map(|s| format!("ferrovus-dml_{s}"))
                .collect(),
            created_timestamp: m.created_ts,
            created_utc_timestamp: ferrovus_core::tso::physical_ms(m.created_ts),
            shards_num: m.num_shards as i32,
            aliases: m.aliases.clone(),
            consistency_level: consistency_to(m.consistency),
            collection_name: m.name.clone(),
            properties: m.properties.iter().map(|(k, v)| kv(k, v.clone())).collect(),
            db_name: "default".into(),
            num_partitions: m.partitions.len() as i64,
            ..Default::default()
        })
    }

    /// Insert or upsert request columns; the response Milvus clients expect for both.
    async fn write(
        &self,
        collection: String,
        partition: String,
        fields: Vec<ps::FieldData>,
        num_rows: u32,
        upsert: bool,
    ) -> ApiResult<MutationResult> {
        let c = self.backend.describe_collection(&collection).await?;
        let batch = field_data_to_batch(fields, &c.schema)?;
        if num_rows != 0 && num_rows as usize != batch.num_rows() {
            return Err(ApiError::invalid(
                "num_rows",
                format!(
                    "num_rows is {num_rows} but the columns have {} rows",
                    batch.num_rows()
                ),
            ));
        }
        let res = if upsert {
            self.backend.upsert(&collection, &partition, batch).await?
        } else {
            self.backend.insert(&collection, &partition, batch).await?
        };
        self.metrics.rows_inserted(res.insert_count);
        Ok(MutationResult {
            status: Some(status::success()),
            i_ds: Some(ids_to_proto(&res.ids)),
            succ_index: (0..res.insert_count as u32).collect(),
            insert_cnt: res.insert_count as i64,
            upsert_cnt: res.upsert_count as i64,
            timestamp: res.timestamp,
            ..Default::default()
        })
    }

    fn search_params(&self, req: &SearchRequest) -> ApiResult<CoreSearch> {
        let p = &req.search_params;
        let topk = kv_get(p, "topk")
            .or_else(|| kv_get(p, "limit"))
            .ok_or_else(|| ApiError::invalid("topk", "search_params has no topk"))?;
        let limit = parse_usize("topk", topk)?;
        let offset = kv_get(p, "offset")
            .map(|v| parse_usize("offset", v))
            .transpose()?
            .unwrap_or(0);
        let mut metric = kv_get(p, "metric_type")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let mut ef = None;
        let mut radius = None;
        let mut range_filter = None;
        if let Some(params) = kv_get(p, "params") {
            let v: serde_json::Value = serde_json::from_str(params).map_err(|e| {
                ApiError::invalid(
                    "params",
                    format!("search params must be JSON, got {params:?}: {e}"),
                )
            })?;
            if let Some(m) = v
                .get("metric_type")
                .and_then(|m| m.as_str())
                .filter(|s| !s.is_empty())
            {
                metric = Some(m.to_string());
            }
            if let Some(e) = v.get("ef") {
                let n = e
                    .as_u64()
                    .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| {
                        ApiError::invalid("ef", format!("ef must be a positive integer, got {e}"))
                    })?;
                if n == 0 || n > 32768 {
                    return Err(ApiError::invalid(
                        "ef",
                        format!("ef must be in [1, 32768], got {n}"),
                    ));
                }
                ef = Some(n as usize);
            }
            radius = v.get("radius").and_then(|r| r.as_f64()).map(|r| r as f32);
            range_filter = v
                .get("range_filter")
                .and_then(|r| r.as_f64())
                .map(|r| r as f32);
        }
        let metric = metric
            .map(|m| ferrovus_core::request::MetricType::parse(&m))
            .transpose()?;
        let ignore_growing =
            kv_get(p, "ignore_growing").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let anns_field = kv_get(p, "anns_field").map(str::to_string);
        let bytes = match &req.search_input {
            Some(search_request::SearchInput::PlaceholderGroup(b)) => b.as_slice(),
            Some(search_request::SearchInput::Ids(_)) => {
                return Err(ApiError::Unimplemented("search by primary keys"));
            }
            None => return Err(ApiError::invalid("data", "no query vectors in the request")),
        };
        let (vectors, nq, _dim) = parse_placeholder_group(bytes)?;
        Ok(CoreSearch {
            collection: req.collection_name.clone(),
            partitions: req.partition_names.clone(),
            anns_field,
            vectors,
            num_queries: nq,
            limit,
            offset,
            metric,
            ef,
            filter: req.dsl.clone(),
            filter_params: template_values(&req.expr_template_values),
            output_fields: req.output_fields.clone(),
            guarantee_ts: req.guarantee_timestamp,
            ignore_growing,
            radius,
            range_filter,
        })
    }
}

/// Keep only the requested dynamic keys inside `$meta` (all of them for `*` or `$meta`).
fn filter_dynamic(
    fields: &mut [ps::FieldData],
    requested: &[String],
    schema: &ferrovus_core::schema::CollectionSchema,
) {
    if requested
        .iter()
        .any(|f| f == "*" || f == DYNAMIC_FIELD_NAME)
    {
        return;
    }
    let keys: Vec<&str> = requested
        .iter()
        .map(String::as_str)
        .filter(|n| schema.field(n).is_none())
        .collect();
    for fd in fields.iter_mut().filter(|f| f.is_dynamic) {
        if let Some(ps::field_data::Field::Scalars(ps::ScalarField {
            data: Some(ps::scalar_field::Data::JsonData(a)),
        })) = &mut fd.field
        {
            for row in a.data.iter_mut() {
                if let Ok(serde_json::Value::Object(m)) =
                    serde_json::from_slice::<serde_json::Value>(row)
                {
                    let kept: serde_json::Map<String, serde_json::Value> = m
                        .into_iter()
                        .filter(|(k, _)| keys.contains(&k.as_str()))
                        .collect();
                    *row = serde_json::to_vec(&kept).unwrap_or_default();
                }
            }
        }
    }
}

#[tonic::async_trait]
impl milvus_service_server::MilvusService for Proxy {
    async fn connect(
        &self,
        _r: Request<ConnectRequest>,
    ) -> Result<Response<ConnectResponse>, tonic::Status> {
        self.run("Connect", async {
            Ok(ConnectResponse {
                status: Some(status::success()),
                server_info: Some(common::ServerInfo {
                    build_tags: format!("ferrovus-{}", env!("CARGO_PKG_VERSION")),
                    deploy_mode: "STANDALONE".into(),
                    ..Default::default()
                }),
                identifier: (self.started & 0x7fff_ffff) as i64,
            })
        })
        .await
    }

    async fn get_version(
        &self,
        _r: Request<GetVersionRequest>,
    ) -> Result<Response<GetVersionResponse>, tonic::Status> {
        self.run("GetVersion", async {
            Ok(GetVersionResponse {
                status: Some(status::success()),
                version: PROTOCOL_VERSION.into(),
            })
        })
        .await
    }

    async fn check_health(
        &self,
        _r: Request<CheckHealthRequest>,
    ) -> Result<Response<CheckHealthResponse>, tonic::Status> {
        self.run("CheckHealth", async {
            Ok(CheckHealthResponse {
                status: Some(status::success()),
                is_healthy: true,
                ..Default::default()
            })
        })
        .await
    }

    async fn get_component_states(
        &self,
        _r: Request<GetComponentStatesRequest>,
    ) -> Result<Response<ComponentStates>, tonic::Status> {
        self.run("GetComponentStates", async {
            Ok(ComponentStates {
                state: Some(ComponentInfo {
                    node_id: 1,
                    role: "standalone".into(),
                    state_code: common::StateCode::Healthy as i32,
                    extra_info: vec![],
                }),
                subcomponent_states: vec![],
                status: Some(status::success()),
            })
        })
        .await
    }

    async fn alloc_timestamp(
        &self,
        _r: Request<AllocTimestampRequest>,
    ) -> Result<Response<AllocTimestampResponse>, tonic::Status> {
        self.run("AllocTimestamp", async {
            Ok(AllocTimestampResponse {
                status: Some(status::success()),
                timestamp: self.backend.alloc_timestamp().await?,
            })
        })
        .await
    }

    async fn list_databases(
        &self,
        _r: Request<ListDatabasesRequest>,
    ) -> Result<Response<ListDatabasesResponse>, tonic::Status> {
        self.run("ListDatabases", async {
            Ok(ListDatabasesResponse {
                status: Some(status::success()),
                db_names: vec!["default".into()],
                created_timestamp: vec![0],
                db_ids: vec![1],
            })
        })
        .await
    }

    async fn describe_database(
        &self,
        r: Request<DescribeDatabaseRequest>,
    ) -> Result<Response<DescribeDatabaseResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("DescribeDatabase", async {
            check_db(&r.db_name)?;
            Ok(DescribeDatabaseResponse {
                status: Some(status::success()),
                db_name: "default".into(),
                db_id: 1,
                ..Default::default()
            })
        })
        .await
    }

    async fn create_database(
        &self,
        _r: Request<CreateDatabaseRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        self.run("CreateDatabase", async {
            Err::<Status, _>(ApiError::Unimplemented(
                "CreateDatabase (only the default database exists)",
            ))
        })
        .await
    }

    async fn drop_database(
        &self,
        _r: Request<DropDatabaseRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        self.run("DropDatabase", async {
            Err::<Status, _>(ApiError::Unimplemented(
                "DropDatabase (only the default database exists)",
            ))
        })
        .await
    }

    async fn create_collection(
        &self,
        r: Request<CreateCollectionRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("CreateCollection", async {
            check_db(&r.db_name)?;
            check_name("collection_name", &r.collection_name)?;
            let schema = schema_from_proto(&r.schema, &r.collection_name)?;
            let shards = usize::try_from(r.shards_num.max(0)).unwrap_or(1);
            let props = kv_map(&r.properties);
            self.backend
                .create_collection(schema, shards, consistency_from(r.consistency_level), props)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn drop_collection(
        &self,
        r: Request<DropCollectionRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("DropCollection", async {
            check_db(&r.db_name)?;
            check_name("collection_name", &r.collection_name)?;
            self.backend.drop_collection(&r.collection_name).await?;
            Ok(status::success())
        })
        .await
    }

    async fn has_collection(
        &self,
        r: Request<HasCollectionRequest>,
    ) -> Result<Response<BoolResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("HasCollection", async {
            check_db(&r.db_name)?;
            Ok(BoolResponse {
                status: Some(status::success()),
                value: self.backend.has_collection(&r.collection_name).await?,
            })
        })
        .await
    }

    async fn describe_collection(
        &self,
        r: Request<DescribeCollectionRequest>,
    ) -> Result<Response<DescribeCollectionResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("DescribeCollection", async {
            check_db(&r.db_name)?;
            self.describe(&r.collection_name).await
        })
        .await
    }

    async fn show_collections(
        &self,
        r: Request<ShowCollectionsRequest>,
    ) -> Result<Response<ShowCollectionsResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("ShowCollections", async {
            check_db(&r.db_name)?;
            let mut resp = ShowCollectionsResponse {
                status: Some(status::success()),
                ..Default::default()
            };
            for m in self.backend.list_collections().await? {
                let loaded = m.load_state == LoadState::Loaded;
                if !r.collection_names.is_empty() && !r.collection_names.contains(&m.name) {
                    continue;
                }
                resp.collection_names.push(m.name.clone());
                resp.collection_ids.push(m.id);
                resp.created_timestamps.push(m.created_ts);
                resp.created_utc_timestamps
                    .push(ferrovus_core::tso::physical_ms(m.created_ts));
                resp.in_memory_percentages
                    .push(if loaded { 100 } else { 0 });
                resp.query_service_available.push(loaded);
                resp.shards_num.push(m.num_shards as i32);
            }
            Ok(resp)
        })
        .await
    }

    async fn get_collection_statistics(
        &self,
        r: Request<GetCollectionStatisticsRequest>,
    ) -> Result<Response<GetCollectionStatisticsResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("GetCollectionStatistics", async {
            check_db(&r.db_name)?;
            let n = self.backend.row_count(&r.collection_name, None).await?;
            Ok(GetCollectionStatisticsResponse {
                status: Some(status::success()),
                stats: vec![kv("row_count", n.to_string())],
            })
        })
        .await
    }

    async fn alter_collection(
        &self,
        r: Request<AlterCollectionRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("AlterCollection", async {
            check_db(&r.db_name)?;
            self.backend
                .alter_properties(&r.collection_name, kv_map(&r.properties))
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn rename_collection(
        &self,
        r: Request<RenameCollectionRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("RenameCollection", async {
            check_db(&r.db_name)?;
            check_db(&r.new_db_name)?;
            self.backend
                .rename_collection(&r.old_name, &r.new_name)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn create_partition(
        &self,
        r: Request<CreatePartitionRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("CreatePartition", async {
            check_db(&r.db_name)?;
            self.backend
                .create_partition(&r.collection_name, &r.partition_name)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn drop_partition(
        &self,
        r: Request<DropPartitionRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("DropPartition", async {
            check_db(&r.db_name)?;
            self.backend
                .drop_partition(&r.collection_name, &r.partition_name)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn has_partition(
        &self,
        r: Request<HasPartitionRequest>,
    ) -> Result<Response<BoolResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("HasPartition", async {
            check_db(&r.db_name)?;
            let c = self.backend.describe_collection(&r.collection_name).await?;
            Ok(BoolResponse {
                status: Some(status::success()),
                value: c.partitions.iter().any(|p| p.name == r.partition_name),
            })
        })
        .await
    }

    async fn show_partitions(
        &self,
        r: Request<ShowPartitionsRequest>,
    ) -> Result<Response<ShowPartitionsResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("ShowPartitions", async {
            check_db(&r.db_name)?;
            let m = self.backend.describe_collection(&r.collection_name).await?;
            let loaded = m.load_state == LoadState::Loaded;
            let mut resp = ShowPartitionsResponse {
                status: Some(status::success()),
                ..Default::default()
            };
            for p in &m.partitions {
                if !r.partition_names.is_empty() && !r.partition_names.contains(&p.name) {
                    continue;
                }
                resp.partition_names.push(p.name.clone());
                resp.partition_i_ds.push(p.id);
                resp.created_timestamps.push(p.created_ts);
                resp.created_utc_timestamps
                    .push(ferrovus_core::tso::physical_ms(p.created_ts));
                resp.in_memory_percentages
                    .push(if loaded { 100 } else { 0 });
            }
            Ok(resp)
        })
        .await
    }

    async fn get_partition_statistics(
        &self,
        r: Request<GetPartitionStatisticsRequest>,
    ) -> Result<Response<GetPartitionStatisticsResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("GetPartitionStatistics", async {
            check_db(&r.db_name)?;
            let n = self
                .backend
                .row_count(&r.collection_name, Some(&r.partition_name))
                .await?;
            Ok(GetPartitionStatisticsResponse {
                status: Some(status::success()),
                stats: vec![kv("row_count", n.to_string())],
            })
        })
        .await
    }

    async fn load_collection(
        &self,
        r: Request<LoadCollectionRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("LoadCollection", async {
            check_db(&r.db_name)?;
            let replicas = usize::try_from(r.replica_number).unwrap_or(0).max(1);
            self.backend
                .load_collection(&r.collection_name, replicas)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn load_partitions(
        &self,
        r: Request<LoadPartitionsRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("LoadPartitions", async {
            check_db(&r.db_name)?;
            self.backend
                .load_partitions(&r.collection_name, &r.partition_names)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn release_collection(
        &self,
        r: Request<ReleaseCollectionRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("ReleaseCollection", async {
            check_db(&r.db_name)?;
            self.backend.release_collection(&r.collection_name).await?;
            Ok(status::success())
        })
        .await
    }

    async fn release_partitions(
        &self,
        r: Request<ReleasePartitionsRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("ReleasePartitions", async {
            check_db(&r.db_name)?;
            self.backend
                .release_partitions(&r.collection_name, &r.partition_names)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn get_loading_progress(
        &self,
        r: Request<GetLoadingProgressRequest>,
    ) -> Result<Response<GetLoadingProgressResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("GetLoadingProgress", async {
            check_db(&r.db_name)?;
            let progress = self.backend.loading_progress(&r.collection_name).await? as i64;
            Ok(GetLoadingProgressResponse {
                status: Some(status::success()),
                progress,
                refresh_progress: progress,
            })
        })
        .await
    }

    async fn get_load_state(
        &self,
        r: Request<GetLoadStateRequest>,
    ) -> Result<Response<GetLoadStateResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("GetLoadState", async {
            check_db(&r.db_name)?;
            let state = match self.backend.load_state(&r.collection_name).await {
                Err(ApiError::Core(ferrovus_core::CoreError::CollectionNotFound(_))) => {
                    common::LoadState::NotExist
                }
                Err(e) => return Err(e),
                Ok(LoadState::Loaded) => common::LoadState::Loaded,
                Ok(LoadState::Loading) => common::LoadState::Loading,
                Ok(LoadState::NotLoad) => common::LoadState::NotLoad,
            };
            Ok(GetLoadStateResponse {
                status: Some(status::success()),
                state: state as i32,
            })
        })
        .await
    }

    async fn create_alias(
        &self,
        r: Request<CreateAliasRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("CreateAlias", async {
            check_db(&r.db_name)?;
            self.backend
                .create_alias(&r.alias, &r.collection_name)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn drop_alias(
        &self,
        r: Request<DropAliasRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("DropAlias", async {
            check_db(&r.db_name)?;
            self.backend.drop_alias(&r.alias).await?;
            Ok(status::success())
        })
        .await
    }

    async fn alter_alias(
        &self,
        r: Request<AlterAliasRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("AlterAlias", async {
            check_db(&r.db_name)?;
            self.backend
                .alter_alias(&r.alias, &r.collection_name)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn describe_alias(
        &self,
        r: Request<DescribeAliasRequest>,
    ) -> Result<Response<DescribeAliasResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("DescribeAlias", async {
            check_db(&r.db_name)?;
            let target = self.backend.alias_target(&r.alias).await?.ok_or_else(|| {
                ApiError::invalid("alias", format!("alias {} not found", r.alias))
            })?;
            Ok(DescribeAliasResponse {
                status: Some(status::success()),
                db_name: "default".into(),
                alias: r.alias.clone(),
                collection: target,
            })
        })
        .await
    }

    async fn list_aliases(
        &self,
        r: Request<ListAliasesRequest>,
    ) -> Result<Response<ListAliasesResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("ListAliases", async {
            check_db(&r.db_name)?;
            let aliases = if r.collection_name.is_empty() {
                self.backend
                    .list_collections()
                    .await?
                    .into_iter()
                    .flat_map(|c| c.aliases)
                    .collect()
            } else {
                self.backend
                    .describe_collection(&r.collection_name)
                    .await?
                    .aliases
            };
            Ok(ListAliasesResponse {
                status: Some(status::success()),
                db_name: "default".into(),
                collection_name: r.collection_name.clone(),
                aliases,
            })
        })
        .await
    }

    async fn create_index(
        &self,
        r: Request<CreateIndexRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("CreateIndex", async {
            check_db(&r.db_name)?;
            let params = index_params(&r.extra_params)?;
            self.backend
                .create_index(&r.collection_name, &r.field_name, &r.index_name, params)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn describe_index(
        &self,
        r: Request<DescribeIndexRequest>,
    ) -> Result<Response<DescribeIndexResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("DescribeIndex", async {
            check_db(&r.db_name)?;
            let name = if r.index_name.is_empty() {
                r.field_name.as_str()
            } else {
                r.index_name.as_str()
            };
            let list = self
                .backend
                .describe_indexes(&r.collection_name, name)
                .await?;
            let descs = list
                .into_iter()
                .map(|i| {
                    let finished = i.finished();
                    let (s, done, total) = (i.spec, i.indexed_rows, i.total_rows);
                    let mut params = vec![
                        kv("index_type", s.index_type.as_str()),
                        kv("metric_type", s.metric.as_str()),
                    ];
                    let user: serde_json::Map<String, serde_json::Value> = s
                        .params
                        .iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "index_type" | "metric_type"))
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.parse::<i64>()
                                    .map(serde_json::Value::from)
                                    .unwrap_or(serde_json::Value::String(v.clone())),
                            )
                        })
                        .collect();
                    if !user.is_empty() {
                        params.push(kv("params", serde_json::Value::Object(user).to_string()));
                    }
                    IndexDescription {
                        index_name: s.index_name,
                        index_id: s.index_id,
                        params,
                        field_name: s.field_name,
                        indexed_rows: done as i64,
                        total_rows: total as i64,
                        state: if finished {
                            common::IndexState::Finished
                        } else {
                            common::IndexState::InProgress
                        } as i32,
                        pending_index_rows: (total - done.min(total)) as i64,
                        ..Default::default()
                    }
                })
                .collect();
            Ok(DescribeIndexResponse {
                status: Some(status::success()),
                index_descriptions: descs,
            })
        })
        .await
    }

    async fn get_index_state(
        &self,
        r: Request<GetIndexStateRequest>,
    ) -> Result<Response<GetIndexStateResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("GetIndexState", async {
            check_db(&r.db_name)?;
            let name = if r.index_name.is_empty() {
                r.field_name.as_str()
            } else {
                r.index_name.as_str()
            };
            let list = self
                .backend
                .describe_indexes(&r.collection_name, name)
                .await?;
            let finished = list.iter().all(|i| i.finished());
            Ok(GetIndexStateResponse {
                status: Some(status::success()),
                state: if finished {
                    common::IndexState::Finished
                } else {
                    common::IndexState::InProgress
                } as i32,
                fail_reason: String::new(),
            })
        })
        .await
    }

    async fn get_index_build_progress(
        &self,
        r: Request<GetIndexBuildProgressRequest>,
    ) -> Result<Response<GetIndexBuildProgressResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("GetIndexBuildProgress", async {
            check_db(&r.db_name)?;
            let name = if r.index_name.is_empty() {
                r.field_name.as_str()
            } else {
                r.index_name.as_str()
            };
            let list = self
                .backend
                .describe_indexes(&r.collection_name, name)
                .await?;
            let (d, t) = list
                .iter()
                .fold((0, 0), |(a, b), i| (a + i.indexed_rows, b + i.total_rows));
            Ok(GetIndexBuildProgressResponse {
                status: Some(status::success()),
                indexed_rows: d as i64,
                total_rows: t as i64,
            })
        })
        .await
    }

    async fn drop_index(
        &self,
        r: Request<DropIndexRequest>,
    ) -> Result<Response<Status>, tonic::Status> {
        let r = r.into_inner();
        self.run("DropIndex", async {
            check_db(&r.db_name)?;
            self.backend
                .drop_index(&r.collection_name, &r.field_name, &r.index_name)
                .await?;
            Ok(status::success())
        })
        .await
    }

    async fn insert(
        &self,
        r: Request<InsertRequest>,
    ) -> Result<Response<MutationResult>, tonic::Status> {
        let r = r.into_inner();
        self.run("Insert", async {
            check_db(&r.db_name)?;
            self.write(
                r.collection_name,
                r.partition_name,
                r.fields_data,
                r.num_rows,
                false,
            )
            .await
        })
        .await
    }

    async fn upsert(
        &self,
        r: Request<UpsertRequest>,
    ) -> Result<Response<MutationResult>, tonic::Status> {
        let r = r.into_inner();
        self.run("Upsert", async {
            check_db(&r.db_name)?;
            if r.partial_update {
                return Err(ApiError::Unimplemented("partial update"));
            }
            self.write(
                r.collection_name,
                r.partition_name,
                r.fields_data,
                r.num_rows,
                true,
            )
            .await
        })
        .await
    }

    async fn delete(
        &self,
        r: Request<DeleteRequest>,
    ) -> Result<Response<MutationResult>, tonic::Status> {
        let r = r.into_inner();
        self.run("Delete", async {
            check_db(&r.db_name)?;
            let params = template_values(&r.expr_template_values);
            // pymilvus returns a dict with delete_count only when the response carries no IDs.
            let res = self
                .backend
                .delete(&r.collection_name, &r.partition_name, &r.expr, &params)
                .await?;
            Ok(MutationResult {
                status: Some(status::success()),
                delete_cnt: res.delete_count as i64,
                timestamp: res.timestamp,
                ..Default::default()
            })
        })
        .await
    }

    async fn search(
        &self,
        r: Request<SearchRequest>,
    ) -> Result<Response<SearchResults>, tonic::Status> {
        let r = r.into_inner();
        self.run("Search", async {
            check_db(&r.db_name)?;
            let c = self.backend.describe_collection(&r.collection_name).await?;
            let req = self.search_params(&r)?;
            let round = kv_get(&r.search_params, "round_decimal")
                .and_then(|v| v.trim().parse::<i32>().ok())
                .unwrap_or(-1);
            let res = self.backend.search(req).await?;
            let mut scores: Vec<f32> = res.scores.iter().flatten().copied().collect();
            if round >= 0 {
                let f = 10f32.powi(round.min(6));
                for s in &mut scores {
                    *s = (*s * f).round() / f;
                }
            }
            let all_ids: Vec<_> = res.ids.iter().flatten().cloned().collect();
            let mut fields_data: Vec<ps::FieldData> =
                res.fields.iter().map(column_to_field_data).collect();
            filter_dynamic(&mut fields_data, &r.output_fields, &c.schema);
            Ok(SearchResults {
                status: Some(status::success()),
                results: Some(ps::SearchResultData {
                    num_queries: res.num_queries as i64,
                    top_k: res.topk as i64,
                    fields_data,
                    scores,
                    ids: Some(if all_ids.is_empty() {
                        empty_ids(&c.schema)
                    } else {
                        ids_to_proto(&all_ids)
                    }),
                    topks: res.ids.iter().map(|v| v.len() as i64).collect(),
                    output_fields: r.output_fields.clone(),
                    primary_field_name: c.schema.primary_field().name.clone(),
                    ..Default::default()
                }),
                collection_name: c.name.clone(),
                session_ts: r.guarantee_timestamp,
            })
        })
        .await
    }

    async fn hybrid_search(
        &self,
        _r: Request<HybridSearchRequest>,
    ) -> Result<Response<SearchResults>, tonic::Status> {
        self.run("HybridSearch", async {
            Err::<SearchResults, _>(ApiError::Unimplemented("HybridSearch"))
        })
        .await
    }

    async fn query(
        &self,
        r: Request<QueryRequest>,
    ) -> Result<Response<QueryResults>, tonic::Status> {
        let r = r.into_inner();
        self.run("Query", async {
            check_db(&r.db_name)?;
            let c = self.backend.describe_collection(&r.collection_name).await?;
            let limit = kv_get(&r.query_params, "limit")
                .map(|v| parse_usize("limit", v))
                .transpose()?;
            let offset = kv_get(&r.query_params, "offset")
                .map(|v| parse_usize("offset", v))
                .transpose()?
                .unwrap_or(0);
            let req = CoreQuery {
                collection: r.collection_name.clone(),
                partitions: r.partition_names.clone(),
                filter: r.expr.clone(),
                filter_params: template_values(&r.expr_template_values),
                output_fields: r.output_fields.clone(),
                limit,
                offset,
                guarantee_ts: r.guarantee_timestamp,
            };
            let res = self.backend.query(req).await?;
            if let Some(count) = res.count {
                return Ok(QueryResults {
                    status: Some(status::success()),
                    fields_data: vec![ps::FieldData {
                        r#type: ps::DataType::Int64 as i32,
                        field_name: "count(*)".into(),
                        field: Some(ps::field_data::Field::Scalars(ps::ScalarField {
                            data: Some(ps::scalar_field::Data::LongData(ps::LongArray {
                                data: vec![count as i64],
                            })),
                        })),
                        ..Default::default()
                    }],
                    collection_name: c.name.clone(),
                    output_fields: vec!["count(*)".into()],
                    primary_field_name: c.schema.primary_field().name.clone(),
                    ..Default::default()
                });
            }
            let mut fields_data: Vec<ps::FieldData> =
                res.fields.iter().map(column_to_field_data).collect();
            filter_dynamic(&mut fields_data, &r.output_fields, &c.schema);
            let output_fields = res
                .fields
                .iter()
                .filter(|f| !f.is_dynamic)
                .map(|f| f.name.clone())
                .chain(
                    r.output_fields
                        .iter()
                        .filter(|n| c.schema.field(n).is_none() && *n != "*")
                        .cloned(),
                );
            Ok(QueryResults {
                status: Some(status::success()),
                fields_data,
                collection_name: c.name.clone(),
                output_fields: output_fields.collect(),
                primary_field_name: c.schema.primary_field().name.clone(),
                ..Default::default()
            })
        })
        .await
    }

    async fn flush(
        &self,
        r: Request<FlushRequest>,
    ) -> Result<Response<FlushResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("Flush", async {
            check_db(&r.db_name)?;
            let mut resp = FlushResponse {
                status: Some(status::success()),
                db_name: "default".into(),
                ..Default::default()
            };
            for name in &r.collection_names {
                self.backend.flush(name).await?;
                let ids: Vec<i64> = self
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
                    .insert(name.clone(), self.backend.alloc_timestamp().await?);
            }
            Ok(resp)
        })
        .await
    }

    async fn get_flush_state(
        &self,
        r: Request<GetFlushStateRequest>,
    ) -> Result<Response<GetFlushStateResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("GetFlushState", async {
            check_db(&r.db_name)?;
            if !r.collection_name.is_empty() {
                self.backend.describe_collection(&r.collection_name).await?;
            }
            // Flush is synchronous: once Flush answered, its data is persisted.
            Ok(GetFlushStateResponse {
                status: Some(status::success()),
                flushed: true,
            })
        })
        .await
    }

    async fn get_persistent_segment_info(
        &self,
        r: Request<GetPersistentSegmentInfoRequest>,
    ) -> Result<Response<GetPersistentSegmentInfoResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("GetPersistentSegmentInfo", async {
            check_db(&r.db_name)?;
            let infos = self
                .backend
                .segments(&r.collection_name)
                .await?
                .into_iter()
                .map(|s| PersistentSegmentInfo {
                    segment_id: s.segment_id,
                    collection_id: s.collection_id,
                    partition_id: s.partition_id,
                    num_rows: s.num_rows as i64,
                    state: match s.state {
                        SegmentState::Sealed => common::SegmentState::Flushed,
                        SegmentState::Growing => common::SegmentState::Growing,
                    } as i32,
                    insert_channel: format!(
                        "ferrovus-dml_{}_{}v{}",
                        s.shard, s.collection_id, s.shard
                    ),
                    ..Default::default()
                })
                .collect();
            Ok(GetPersistentSegmentInfoResponse {
                status: Some(status::success()),
                infos,
            })
        })
        .await
    }

    async fn get_query_segment_info(
        &self,
        r: Request<GetQuerySegmentInfoRequest>,
    ) -> Result<Response<GetQuerySegmentInfoResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("GetQuerySegmentInfo", async {
            check_db(&r.db_name)?;
            let infos = self
                .backend
                .segments(&r.collection_name)
                .await?
                .into_iter()
                .map(|s| QuerySegmentInfo {
                    segment_id: s.segment_id,
                    collection_id: s.collection_id,
                    partition_id: s.partition_id,
                    num_rows: s.num_rows as i64,
                    node_id: s.node_ids.first().copied().unwrap_or_default(),
                    state: match s.state {
                        SegmentState::Sealed => common::SegmentState::Sealed,
                        SegmentState::Growing => common::SegmentState::Growing,
                    } as i32,
                    node_ids: s.node_ids,
                    ..Default::default()
                })
                .collect();
            Ok(GetQuerySegmentInfoResponse {
                status: Some(status::success()),
                infos,
            })
        })
        .await
    }

    async fn get_replicas(
        &self,
        r: Request<GetReplicasRequest>,
    ) -> Result<Response<GetReplicasResponse>, tonic::Status> {
        let r = r.into_inner();
        self.run("GetReplicas", async {
            check_db(&r.db_name)?;
            let replicas = self.backend.replicas(&r.collection_name).await?;
            Ok(GetReplicasResponse {
                status: Some(status::success()),
                replicas: replicas
                    .into_iter()
                    .map(|g| ReplicaInfo {
                        replica_id: g.replica_id,
                        collection_id: g.collection_id,
                        partition_ids: g.partition_ids,
                        shard_replicas: g
                            .shards
                            .into_iter()
                            .map(|s| ShardReplica {
                                leader_id: s.leader_id,
                                leader_addr: s.leader_addr,
                                dm_channel_name: format!(
                                    "ferrovus-dml_{}_{}v{}",
                                    s.shard, g.collection_id, s.shard
                                ),
                                node_ids: s.node_ids,
                            })
                            .collect(),
                        node_ids: g.node_ids,
                        resource_group_name: g.resource_group,
                        ..Default::default()
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn get_metrics(
        &self,
        _r: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, tonic::Status> {
        self.run("GetMetrics", async {
            let t = self.backend.totals().await?;
            let (collections, rows, segments, memory) =
                (t.collections, t.rows, t.segments, t.memory_bytes);
            let body = serde_json::json!({ "collections": collections, "rows": rows, "segments": segments, "memory_bytes": memory });
            Ok(GetMetricsResponse { status: Some(status::success()), response: body.to_string(), component_name: "standalone".into() })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LocalBackend;
    use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};

    async fn proxy() -> Proxy {
        let db = ferrovus_core::Database::open(
            Arc::new(MemoryMetaStore::default()),
            Arc::new(MemoryObjectStore::default()),
            ferrovus_core::CoreConfig::default(),
        )
        .await
        .unwrap();
        Proxy::new(Arc::new(LocalBackend::new(db)), Arc::new(Metrics::new()))
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_an_internal_error_and_is_counted() {
        let p = proxy().await;
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
        let text = p.metrics.render(None);
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
        use milvus_service_server::MilvusService;
        let p = proxy().await;
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
    }

    #[test]
    fn index_params_flatten_json() {
        let p = index_params(&[
            kv("index_type", "HNSW"),
            kv("metric_type", "L2"),
            kv("params", r#"{"M": 8, "efConstruction": 64}"#),
        ])
        .unwrap();
        assert_eq!(p.get("M").map(String::as_str), Some("8"));
        assert_eq!(p.get("efConstruction").map(String::as_str), Some("64"));
        assert_eq!(p.get("index_type").map(String::as_str), Some("HNSW"));
        let e = index_params(&[kv("params", "{not json")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("params"), "{e}");
    }

    #[test]
    fn db_names() {
        assert!(check_db("").is_ok() && check_db("default").is_ok());
        assert_eq!(
            check_db("other").unwrap_err().code(),
            ferrovus_proto::codes::DATABASE_NOT_FOUND
        );
    }
}
