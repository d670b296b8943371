//! The typed configuration of every role: defaults in code, overridden by a YAML file, then by
//! `FERROVUS_*` environment variables.
//!
//! Environment overrides address any key by path: `FERROVUS_GRPC__PORT=19540` sets `grpc.port`
//! (sections separated by a double underscore; values parsed as YAML scalars). The short names
//! of the operator contract are aliases: `FERROVUS_DATA_DIR`, `FERROVUS_GRPC_PORT`,
//! `FERROVUS_HTTP_PORT`, `FERROVUS_LOG_LEVEL`, `FERROVUS_ETCD_ENDPOINTS` (comma-separated),
//! `FERROVUS_S3_ENDPOINT`, `FERROVUS_S3_BUCKET`, `FERROVUS_S3_REGION`,
//! `FERROVUS_S3_ACCESS_KEY_ID`, `FERROVUS_S3_SECRET_ACCESS_KEY`. `POD_IP` (Kubernetes downward
//! API) is the default of `cluster.advertise_host`.
//!
//! Ports of the cluster roles (`ferrovus run <role>`, see [`Config::internal_port`]): a proxy
//! serves the Milvus API on `grpc.port` (19530) and the internal RPC service on
//! `cluster.internal_port` (19531); every other role serves only the internal service, on
//! `cluster.internal_port` if set, else on `grpc.port` when that is set to anything but the Milvus
//! default (the operator sets `FERROVUS_GRPC_PORT=19531` on those roles), else on 19531.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrovus_core::CoreConfig;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::rpc::{RpcClientConfig, RpcServerConfig};
use crate::session::RoleKind;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where standalone keeps its metadata, log and segments.
    pub data_dir: PathBuf,
    pub grpc: GrpcConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub storage: StorageConfig,
    pub meta: MetaConfig,
    pub cluster: ClusterConfig,
    /// Streaming nodes (`ferrovus run streaming`, and the streaming node inside standalone).
    pub streaming: StreamingNodeConfig,
    /// Data nodes (`ferrovus run data`, and the data node inside standalone).
    pub datanode: DataNodeConfig,
    /// Query nodes (`ferrovus run query`, and the query node inside standalone).
    pub query: QueryNodeConfig,
    pub proxy: ProxyConfig,
    pub coordinator: CoordinatorConfig,
    pub core: CoreConfig,
    pub security: SecurityConfig,
    pub limits: LimitsConfig,
}

/// Milvus' gRPC port, the default of `grpc.port`.
pub const DEFAULT_GRPC_PORT: u16 = 19530;
/// The internal RPC port of the operator contract.
pub const DEFAULT_INTERNAL_PORT: u16 = 19531;

/// Settings of the cluster roles (`ferrovus run <role>`); standalone ignores them.
///
/// Timings (etcd counts lease TTLs in whole seconds: TTLs are rounded up, and etcd raises any TTL
/// below ~1.5 s to its minimum, hence the 2 s floor):
/// * `leader_ttl_ms` 3000, `keepalive_interval_ms` 1000: a coordinator that crashes is replaced
///   once its lease expires, ≤ 3 s (the standby watches the key and campaigns at once; a graceful
///   stop resigns, handing over immediately). The leader renews every second and steps down at
///   the first keep-alive that fails or is not answered within the interval, i.e. at most two
///   intervals (2 s) after its last renewal, while its lease (≥ 3 s from that renewal) is
///   certainly still alive for everyone else: the old leader has stopped before a new one can
///   exist. Hence the rule `2 × keepalive_interval_ms < leader_ttl_ms`.
/// * `session_ttl_ms` 6000: a node that dies is noticed (and its channels or segments moved)
///   within 6 s; a live node rides out up to ~5 s of failed renewals (an etcd leader election
///   takes ~1 s and re-grants leases) before it reports its session lost and exits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Host other nodes use to reach this process (put in its session). Default: `$POD_IP`,
    /// else `127.0.0.1` (see [`ClusterConfig::advertise_host`]).
    pub advertise_host: Option<String>,
    /// Port of the internal RPC server. Unset: see [`Config::internal_port`].
    pub internal_port: Option<u16>,
    pub session_ttl_ms: u64,
    pub leader_ttl_ms: u64,
    pub keepalive_interval_ms: u64,
    /// Default deadline of an internal RPC.
    pub rpc_timeout_ms: u64,
    pub rpc_connect_timeout_ms: u64,
    /// On SIGTERM: how long the role may take to hand off its work, and then how long in-flight
    /// internal RPCs may take, each (below Kubernetes' default 30 s grace period).
    pub shutdown_grace_ms: u64,
    /// Shared secret of the cluster's roles (`FERROVUS_CLUSTER__SECRET`, from a Kubernetes
    /// Secret): every internal call carries it and every internal server refuses a call without
    /// it, so a process that can reach an internal port but does not hold the secret cannot act
    /// as a coordinator, write a log or read a segment. Unset: internal calls are not
    /// authenticated (fine on a private network or in one process).
    pub secret: Option<Secret>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            advertise_host: None,
            internal_port: None,
            session_ttl_ms: 6000,
            leader_ttl_ms: 3000,
            keepalive_interval_ms: 1000,
            rpc_timeout_ms: 30_000,
            rpc_connect_timeout_ms: 3000,
            shutdown_grace_ms: 10_000,
            secret: None,
        }
    }
}

impl ClusterConfig {
    /// The advertised host: `advertise_host`, else `127.0.0.1` ([`Config::load`] fills
    /// `advertise_host` from `POD_IP` when it is not configured).
    pub fn advertise_host(&self) -> &str {
        self.advertise_host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or("127.0.0.1")
    }

    pub fn coordination(&self) -> crate::session::CoordinationConfig {
        crate::session::CoordinationConfig {
            session_ttl: Duration::from_millis(self.session_ttl_ms),
            leader_ttl: Duration::from_millis(self.leader_ttl_ms),
            keepalive_interval: Duration::from_millis(self.keepalive_interval_ms),
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// Settings of a streaming node (`streaming.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamingNodeConfig {
    /// How long one `streaming_sync` call waits at the coordinator for a new assignment (a long
    /// poll; below `cluster.rpc_timeout_ms`). Default 5000.
    pub sync_wait_ms: u64,
    /// Longest back-off between failed attempts (coordinator calls, opening a channel,
    /// committing a checkpoint). Default 2000.
    pub retry_max_ms: u64,
    /// Segment ids fetched from the coordinator at a time (checkpoints use them). Default 64.
    pub id_block: u32,
}

impl Default for StreamingNodeConfig {
    fn default() -> Self {
        StreamingNodeConfig {
            sync_wait_ms: 5000,
            retry_max_ms: 2000,
            id_block: 64,
        }
    }
}

/// Settings of the coordinator role (`ferrovus run coordinator`; standalone runs the same
/// coordinator in process with `node_loss_grace_ms` and `settle_timeout_ms` at 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// How long a streaming or query node whose session disappeared keeps its channels and
    /// segments before they move to other nodes (a restarting etcd member or a slow renewal
    /// should not cause a reshuffle). Default 2000.
    pub node_loss_grace_ms: u64,
    /// After a takeover, how long the new leader waits for every live query node to report what
    /// it holds before it publishes distributions (a distribution built from missing reports
    /// would leave segments unserved). Default 5000.
    pub settle_timeout_ms: u64,
    /// A data-node task running longer than this is cancelled and handed out again.
    /// Default 1800000 (30 min).
    pub task_timeout_ms: u64,
    /// A task that failed is not handed out again before this delay (doubling per failure, up
    /// to 16×). Default 5000.
    pub task_retry_ms: u64,
    /// How long a standby waits before listing the catalogue again after its watch broke (or,
    /// on a store that cannot be watched, between listings). Default 1000.
    pub standby_refresh_ms: u64,
    /// Upper bound of a long poll (`*_sync`, `watch_catalog`), below the RPC timeout.
    /// Default 20000.
    pub max_wait_ms: u64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            node_loss_grace_ms: 2000,
            settle_timeout_ms: 5000,
            task_timeout_ms: 30 * 60 * 1000,
            task_retry_ms: 5000,
            standby_refresh_ms: 1000,
            max_wait_ms: 20_000,
        }
    }
}

/// Settings of a data node (`datanode.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataNodeConfig {
    /// Tasks (index builds, compactions) run at the same time. Default 2.
    pub slots: u32,
    /// How long one idle `data_sync` call waits at the coordinator for a task. Default 5000.
    pub sync_wait_ms: u64,
    /// The wait while tasks run: finished tasks and progress are reported at least this often.
    /// Default 1000.
    pub busy_sync_wait_ms: u64,
    /// Longest back-off between failed coordinator calls. Default 2000.
    pub retry_max_ms: u64,
}

impl Default for DataNodeConfig {
    fn default() -> Self {
        DataNodeConfig {
            slots: 2,
            sync_wait_ms: 5000,
            busy_sync_wait_ms: 1000,
            retry_max_ms: 2000,
        }
    }
}

/// Settings of a query node (`query.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryNodeConfig {
    /// How long one `query_sync` call waits at the coordinator for a new target (a long poll;
    /// below `cluster.rpc_timeout_ms`). Default 5000.
    pub sync_wait_ms: u64,
    /// Segments (and indexes) loaded from object storage at the same time. Default 4.
    pub load_parallelism: usize,
    /// Longest back-off between failed attempts (coordinator calls, segment and index loads).
    /// Default 2000.
    pub retry_max_ms: u64,
    /// Memory the node may fill with loaded segments and indexes, in MiB (0: unlimited). A
    /// segment that does not fit is not loaded and its collection's load answers
    /// MEMORY_LIMIT_EXCEEDED. Set it below the container's memory limit.
    pub memory_budget_mb: u64,
}

impl Default for QueryNodeConfig {
    fn default() -> Self {
        QueryNodeConfig {
            sync_wait_ms: 5000,
            load_parallelism: 4,
            retry_max_ms: 2000,
            memory_budget_mb: 0,
        }
    }
}

/// Settings of the cluster's proxy role (`ferrovus run proxy`); standalone ignores them.
///
/// * `retry_deadline_ms` 10000: how long one Milvus request may keep retrying the cluster
///   conditions a hand-off causes (a channel moving to a new owner, a delegator replaced, the
///   coordinator electing a new leader) before it answers a retriable `ServiceUnavailable`.
///   Longer than a coordinator takeover (~3 s) plus a channel recovery.
/// * `catalog_watch_ms` 5000: how long one long poll for catalogue changes waits on the
///   coordinator (below `cluster.rpc_timeout_ms`); changes are seen at once either way.
/// * `id_block` 10000: auto ids fetched from the coordinator at a time.
/// * `drain_delay_ms` 0: on SIGTERM, how long the proxy keeps serving while `/readyz` already
///   answers 503 (so that a load balancer, e.g. Kubernetes endpoints, stops sending it new
///   connections) before it stops accepting and drains in-flight requests. The operator sets
///   it for its pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    pub retry_deadline_ms: u64,
    pub catalog_watch_ms: u64,
    pub id_block: u32,
    pub drain_delay_ms: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            retry_deadline_ms: 10_000,
            catalog_watch_ms: 5_000,
            id_block: 10_000,
            drain_delay_ms: 0,
        }
    }
}

/// Authentication and access control, as Milvus' `common.security.*`.
///
/// * `authorization_enabled` (`common.security.authorizationEnabled`): every Milvus request must
///   carry a user and password (pymilvus' `user`/`password` or `token="user:password"`), and
///   privileges are checked. Off by default, as in Milvus.
/// * `root_password` (`common.security.defaultRootPassword`, default `Milvus`): the root user's
///   password when the database first starts with no users; afterwards change it with
///   `update_password`. Set it from a secret (`FERROVUS_SECURITY__ROOT_PASSWORD`), never in a
///   config file that others can read; it is never logged.
/// * `tls_mode` (`common.security.tlsMode`): TLS on the Milvus gRPC port — 0 none, 1 one-way
///   (the server presents `tls.server_pem_path` + `tls.server_key_path`), 2 mutual (clients must
///   also present a certificate signed by `tls.ca_pem_path`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    pub authorization_enabled: bool,
    pub root_password: Secret,
    pub tls_mode: u8,
    pub tls: TlsPaths,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            authorization_enabled: false,
            root_password: Secret("Milvus".into()),
            tls_mode: 0,
            tls: TlsPaths::default(),
        }
    }
}

/// PEM files of the Milvus port's TLS (Milvus' `tls.serverPemPath`, `tls.serverKeyPath`,
/// `tls.caPemPath`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsPaths {
    pub server_pem_path: Option<PathBuf>,
    pub server_key_path: Option<PathBuf>,
    pub ca_pem_path: Option<PathBuf>,
}

/// What a proxy (or standalone) refuses instead of queueing without bound (per process):
/// * `max_concurrent_requests` (Milvus' `proxy.maxTaskNum`, default 1024; 0 = unlimited):
///   requests beyond it answer TOO_MANY_REQUESTS (code 4); health calls are exempt;
/// * `insert_mb_per_second` (`quotaAndLimits.dml.insertRate.collection.max`, 0 = off): inserted
///   and upserted bytes per collection; beyond it RATE_LIMIT (code 8, clients back off);
/// * `search_queries_per_second` (`quotaAndLimits.dql.searchRate.collection.max`, 0 = off):
///   searched vectors per collection; beyond it RATE_LIMIT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_concurrent_requests: usize,
    pub insert_mb_per_second: f64,
    pub search_queries_per_second: f64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_concurrent_requests: 1024,
            insert_mb_per_second: 0.0,
            search_queries_per_second: 0.0,
        }
    }
}

/// A configured secret: shown as `***` by `Debug`, so a logged config does not leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl CoordinatorConfig {
    /// The in-process coordinator of standalone: no grace (a lost node is this process's own),
    /// no settling (nothing to wait for).
    pub fn standalone() -> Self {
        CoordinatorConfig {
            node_loss_grace_ms: 0,
            settle_timeout_ms: 0,
            ..CoordinatorConfig::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    pub listen: String,
    pub port: u16,
    /// Largest request or response message (Milvus' default is 64 MiB).
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `ferrovus=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Local,
    S3,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub kind: StorageKind,
    pub s3: S3Settings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub force_path_style: bool,
    pub create_bucket: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetaKind {
    Embedded,
    Etcd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaConfig {
    pub kind: MetaKind,
    pub etcd_endpoints: Vec<String>,
    /// Key prefix in etcd (one per cluster).
    pub etcd_prefix: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("ferrovus-data"),
            grpc: GrpcConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            storage: StorageConfig::default(),
            meta: MetaConfig::default(),
            cluster: ClusterConfig::default(),
            streaming: StreamingNodeConfig::default(),
            datanode: DataNodeConfig::default(),
            query: QueryNodeConfig::default(),
            proxy: ProxyConfig::default(),
            coordinator: CoordinatorConfig::default(),
            core: CoreConfig::default(),
            security: SecurityConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: "0.0.0.0".into(),
            port: DEFAULT_GRPC_PORT,
            max_message_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0".into(),
            port: 9091,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            kind: StorageKind::Local,
            s3: S3Settings::default(),
        }
    }
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: "ferrovus".into(),
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            force_path_style: true,
            create_bucket: true,
        }
    }
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            kind: MetaKind::Embedded,
            etcd_endpoints: vec![],
            etcd_prefix: "ferrovus".into(),
        }
    }
}

const ALIASES: &[(&str, &str)] = &[
    ("FERROVUS_DATA_DIR", "data_dir"),
    ("FERROVUS_GRPC_PORT", "grpc.port"),
    ("FERROVUS_HTTP_PORT", "http.port"),
    ("FERROVUS_LOG_LEVEL", "log.level"),
    ("FERROVUS_LOG_FORMAT", "log.format"),
    ("FERROVUS_ETCD_ENDPOINTS", "meta.etcd_endpoints"),
    ("FERROVUS_S3_ENDPOINT", "storage.s3.endpoint"),
    ("FERROVUS_S3_BUCKET", "storage.s3.bucket"),
    ("FERROVUS_S3_REGION", "storage.s3.region"),
    ("FERROVUS_S3_ACCESS_KEY_ID", "storage.s3.access_key_id"),
    (
        "FERROVUS_S3_SECRET_ACCESS_KEY",
        "storage.s3.secret_access_key",
    ),
];

impl Config {
    /// Defaults ← YAML file (if given) ← environment.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = serde_yaml_ng::to_value(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let file_tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
            merge(&mut tree, file_tree);
        }
        let mut pod_ip = None;
        for (k, v) in env {
            if k == "POD_IP" {
                pod_ip = Some(v).filter(|ip| !ip.is_empty());
                continue;
            }
            let path = if let Some((_, p)) = ALIASES.iter().find(|(a, _)| *a == k) {
                p.to_string()
            } else if let Some(rest) = k.strip_prefix("FERROVUS_") {
                if !rest.contains("__") {
                    continue; // not a path override (e.g. FERROVUS_BIN used by tests)
                }
                rest.split("__")
                    .map(str::to_ascii_lowercase)
                    .collect::<Vec<_>>()
                    .join(".")
            } else {
                continue;
            };
            let value = if path == "meta.etcd_endpoints" {
                serde_yaml_ng::Value::Sequence(
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| serde_yaml_ng::Value::String(s.trim().to_string()))
                        .collect(),
                )
            } else {
                serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&v)
                    .unwrap_or(serde_yaml_ng::Value::String(v.clone()))
            };
            set_path(&mut tree, &path, value)
                .map_err(|e| ConfigError::Invalid(format!("{k}: {e}")))?;
        }
        // The error names the setting (`query.cache_mb: invalid type: …`).
        let mut cfg: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Invalid(format!("{path}: {}", e.into_inner()))
        })?;
        if cfg.cluster.advertise_host.is_none() {
            cfg.cluster.advertise_host = pod_ip;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.grpc.max_message_bytes < 1024 {
            return Err(ConfigError::Invalid(format!(
                "grpc.max_message_bytes must be at least 1024, got {}",
                self.grpc.max_message_bytes
            )));
        }
        if self.meta.kind == MetaKind::Etcd && self.meta.etcd_endpoints.is_empty() {
            return Err(ConfigError::Invalid(
                "meta.kind is etcd but meta.etcd_endpoints is empty".into(),
            ));
        }
        if self.core.seal_rows == 0 {
            return Err(ConfigError::Invalid(
                "core.seal_rows must be positive".into(),
            ));
        }
        let c = &self.cluster;
        for (name, ms) in [
            ("cluster.session_ttl_ms", c.session_ttl_ms),
            ("cluster.leader_ttl_ms", c.leader_ttl_ms),
        ] {
            if ms < 2000 {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be at least 2000 (etcd's smallest lease), got {ms}"
                )));
            }
            if c.keepalive_interval_ms.saturating_mul(2) >= ms {
                return Err(ConfigError::Invalid(format!(
                    "cluster.keepalive_interval_ms ({}) must be less than half of {name} ({ms}), \
                     so a failed renewal is noticed before the lease expires",
                    c.keepalive_interval_ms
                )));
            }
        }
        if c.keepalive_interval_ms < 100 {
            return Err(ConfigError::Invalid(format!(
                "cluster.keepalive_interval_ms must be at least 100, got {}",
                c.keepalive_interval_ms
            )));
        }
        if c.rpc_timeout_ms == 0 || c.rpc_connect_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "cluster.rpc_timeout_ms and cluster.rpc_connect_timeout_ms must be positive".into(),
            ));
        }
        let (st, dn) = (&self.streaming, &self.datanode);
        if st.retry_max_ms == 0 || st.id_block == 0 || dn.slots == 0 || dn.retry_max_ms == 0 {
            return Err(ConfigError::Invalid(
                "streaming.retry_max_ms, streaming.id_block, datanode.slots and \
                 datanode.retry_max_ms must be positive"
                    .into(),
            ));
        }
        for (name, ms) in [
            ("streaming.sync_wait_ms", st.sync_wait_ms),
            ("datanode.sync_wait_ms", dn.sync_wait_ms),
            ("datanode.busy_sync_wait_ms", dn.busy_sync_wait_ms),
        ] {
            if ms >= c.rpc_timeout_ms {
                return Err(ConfigError::Invalid(format!(
                    "{name} ({ms}) must be less than cluster.rpc_timeout_ms ({}): the long poll \
                     must answer before the call times out",
                    c.rpc_timeout_ms
                )));
            }
        }
        let q = &self.query;
        if q.load_parallelism == 0 || q.retry_max_ms == 0 {
            return Err(ConfigError::Invalid(
                "query.load_parallelism and query.retry_max_ms must be positive".into(),
            ));
        }
        if q.sync_wait_ms >= c.rpc_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "query.sync_wait_ms ({}) must be less than cluster.rpc_timeout_ms ({}): the \
                 long poll must answer before the call times out",
                q.sync_wait_ms, c.rpc_timeout_ms
            )));
        }
        let p = &self.proxy;
        if p.retry_deadline_ms == 0 || p.catalog_watch_ms == 0 || p.id_block == 0 {
            return Err(ConfigError::Invalid(
                "proxy.retry_deadline_ms, proxy.catalog_watch_ms and proxy.id_block must be positive"
                    .into(),
            ));
        }
        if p.catalog_watch_ms >= c.rpc_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "proxy.catalog_watch_ms ({}) must be less than cluster.rpc_timeout_ms ({}): the \
                 long poll would time out",
                p.catalog_watch_ms, c.rpc_timeout_ms
            )));
        }
        if self.coordinator.max_wait_ms >= c.rpc_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "coordinator.max_wait_ms ({}) must be below cluster.rpc_timeout_ms ({}), so a \
                 long poll answers before the caller gives up",
                self.coordinator.max_wait_ms, c.rpc_timeout_ms
            )));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log.format must be text or json, got {:?}",
                self.log.format
            )));
        }
        Ok(())
    }

    /// The port of `role`'s internal RPC server:
    /// 1. `cluster.internal_port` when set (`FERROVUS_CLUSTER__INTERNAL_PORT`), for every role;
    /// 2. else, on every role but the proxy, `grpc.port` when it is not the Milvus default 19530
    ///    — those roles serve no Milvus API, so their one gRPC port is the internal one (the
    ///    operator sets `FERROVUS_GRPC_PORT=19531` there);
    /// 3. else 19531 (a proxy keeps `grpc.port` for the Milvus API).
    pub fn internal_port(&self, role: RoleKind) -> u16 {
        match self.cluster.internal_port {
            Some(p) => p,
            None if role != RoleKind::Proxy && self.grpc.port != DEFAULT_GRPC_PORT => {
                self.grpc.port
            }
            None => DEFAULT_INTERNAL_PORT,
        }
    }

    pub fn rpc_server_config(&self) -> RpcServerConfig {
        RpcServerConfig {
            max_message_bytes: self.grpc.max_message_bytes,
            secret: self.cluster_secret(),
            ..RpcServerConfig::default()
        }
    }

    fn cluster_secret(&self) -> Option<std::sync::Arc<str>> {
        self.cluster
            .secret
            .as_ref()
            .filter(|s| !s.expose().is_empty())
            .map(|s| s.expose().into())
    }

    pub fn rpc_client_config(&self) -> RpcClientConfig {
        RpcClientConfig {
            timeout: Duration::from_millis(self.cluster.rpc_timeout_ms),
            connect_timeout: Duration::from_millis(self.cluster.rpc_connect_timeout_ms),
            max_message_bytes: self.grpc.max_message_bytes,
            secret: self.cluster_secret(),
        }
    }

    /// YAML with secrets redacted, for the start-up log.
    pub fn redacted_yaml(&self) -> String {
        let mut c = self.clone();
        if c.storage.s3.secret_access_key.is_some() {
            c.storage.s3.secret_access_key = Some("<redacted>".into());
        }
        c.security.root_password = Secret("<redacted>".into());
        if c.cluster.secret.is_some() {
            c.cluster.secret = Some(Secret("<redacted>".into()));
        }
        serde_yaml_ng::to_string(&c).unwrap_or_default()
    }
}

fn merge(base: &mut serde_yaml_ng::Value, over: serde_yaml_ng::Value) {
    use serde_yaml_ng::Value;
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn set_path(
    tree: &mut serde_yaml_ng::Value,
    path: &str,
    value: serde_yaml_ng::Value,
) -> Result<(), String> {
    use serde_yaml_ng::Value;
    let mut cur = tree;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        let Value::Mapping(m) = cur else {
            return Err(format!("{path}: {p} is not a section"));
        };
        let key = Value::String((*p).to_string());
        if i + 1 == parts.len() {
            if !m.contains_key(&key) {
                return Err(format!("unknown setting {path}"));
            }
            m.insert(key, value);
            return Ok(());
        }
        cur = m
            .get_mut(&key)
            .ok_or_else(|| format!("unknown section {p} in {path}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_and_env_layer() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(&f, "grpc:\n  port: 20000\ncore:\n  seal_rows: 5000\n").unwrap();
        let env = vec![
            ("FERROVUS_HTTP_PORT".to_string(), "9999".to_string()),
            (
                "FERROVUS_GRPC__MAX_MESSAGE_BYTES".to_string(),
                "2048".to_string(),
            ),
            (
                "FERROVUS_ETCD_ENDPOINTS".to_string(),
                "http://a:2379,http://b:2379".to_string(),
            ),
            ("FERROVUS_BIN".to_string(), "ignored".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let c = Config::load(Some(&f), env).unwrap();
        assert_eq!(c.grpc.port, 20000);
        assert_eq!(c.http.port, 9999);
        assert_eq!(c.grpc.max_message_bytes, 2048);
        assert_eq!(c.core.seal_rows, 5000);
        assert_eq!(
            c.meta.etcd_endpoints,
            vec!["http://a:2379", "http://b:2379"]
        );
        assert_eq!(c.data_dir, PathBuf::from("ferrovus-data"));
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let e = Config::load(
            None,
            vec![("FERROVUS_GRPC__NOPE".to_string(), "1".to_string())],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("grpc.nope"), "{e}");
        let e = Config::load(
            None,
            vec![("FERROVUS_GRPC_PORT".to_string(), "notaport".to_string())],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("grpc.port: invalid type"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        // A setting of the wrong type in the file (as the operator's ConfigMap carries
        // spec.config): the error names it.
        let f = dir.path().join("typed.yaml");
        std::fs::write(&f, "core:\n  seal_rows: lots\n").unwrap();
        let e = Config::load(Some(&f), vec![]).unwrap_err().to_string();
        assert!(
            e.contains("core.seal_rows: invalid type: string \"lots\""),
            "{e}"
        );
        let f = dir.path().join("c.yaml");
        std::fs::write(&f, "grpcx: {}\n").unwrap();
        assert!(
            Config::load(Some(&f), vec![])
                .unwrap_err()
                .to_string()
                .contains("grpcx")
        );
        let e = Config::load(Some(Path::new("/nonexistent/x.yaml")), vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.yaml"), "{e}");
    }

    #[test]
    fn cluster_settings_and_their_environment() {
        let c = Config::load(None, vec![]).unwrap();
        assert_eq!(c.cluster, ClusterConfig::default());
        assert_eq!(c.cluster.advertise_host(), "127.0.0.1");
        let coord = c.cluster.coordination();
        assert_eq!(coord.leader_ttl, Duration::from_secs(3));
        assert_eq!(coord.keepalive_interval, Duration::from_secs(1));
        assert_eq!(coord.session_ttl, Duration::from_secs(6));

        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // POD_IP is the default advertised host; an explicit setting wins.
        let c = Config::load(None, env(&[("POD_IP", "10.1.2.3")])).unwrap();
        assert_eq!(c.cluster.advertise_host(), "10.1.2.3");
        let c = Config::load(
            None,
            env(&[
                ("POD_IP", "10.1.2.3"),
                ("FERROVUS_CLUSTER__ADVERTISE_HOST", "node-7.svc"),
                ("FERROVUS_CLUSTER__LEADER_TTL_MS", "4000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.cluster.advertise_host(), "node-7.svc");
        assert_eq!(c.cluster.leader_ttl_ms, 4000);

        let e = Config::load(None, env(&[("FERROVUS_CLUSTER__LEADER_TTL_MS", "1000")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("leader_ttl_ms"), "{e}");
        let e = Config::load(
            None,
            env(&[("FERROVUS_CLUSTER__KEEPALIVE_INTERVAL_MS", "1500")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("keepalive_interval_ms"), "{e}");
    }

    #[test]
    fn query_node_settings() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let c = Config::load(None, vec![]).unwrap();
        assert_eq!(c.query, QueryNodeConfig::default());
        let c = Config::load(None, env("FERROVUS_QUERY__LOAD_PARALLELISM", "8")).unwrap();
        assert_eq!(c.query.load_parallelism, 8);
        let e = Config::load(None, env("FERROVUS_QUERY__LOAD_PARALLELISM", "0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("query.load_parallelism"), "{e}");
        let e = Config::load(None, env("FERROVUS_QUERY__SYNC_WAIT_MS", "30000"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("query.sync_wait_ms") && e.contains("rpc_timeout_ms"),
            "{e}"
        );
    }

    #[test]
    fn coordinator_settings() {
        let c = Config::load(None, vec![]).unwrap();
        assert_eq!(c.coordinator.node_loss_grace_ms, 2000);
        let standalone = CoordinatorConfig::standalone();
        assert_eq!(
            (standalone.node_loss_grace_ms, standalone.settle_timeout_ms),
            (0, 0)
        );
        let c = Config::load(
            None,
            vec![(
                "FERROVUS_COORDINATOR__NODE_LOSS_GRACE_MS".to_string(),
                "500".to_string(),
            )],
        )
        .unwrap();
        assert_eq!(c.coordinator.node_loss_grace_ms, 500);
        let e = Config::load(
            None,
            vec![(
                "FERROVUS_COORDINATOR__MAX_WAIT_MS".to_string(),
                "30000".to_string(),
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("coordinator.max_wait_ms"), "{e}");
    }

    #[test]
    fn internal_port_rule() {
        let env = |pairs: &[(&str, &str)]| -> Config {
            Config::load(
                None,
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .unwrap()
        };
        // defaults: 19531 for every role; the proxy's Milvus port stays 19530
        let c = env(&[]);
        for r in RoleKind::ALL {
            assert_eq!(c.internal_port(r), 19531, "{r}");
        }
        assert_eq!(c.grpc.port, 19530);
        // the operator contract: FERROVUS_GRPC_PORT=19531 on non-proxy roles, 19530 on proxies
        let c = env(&[("FERROVUS_GRPC_PORT", "19531")]);
        assert_eq!(c.internal_port(RoleKind::Query), 19531);
        let c = env(&[("FERROVUS_GRPC_PORT", "20001")]);
        assert_eq!(c.internal_port(RoleKind::Streaming), 20001);
        assert_eq!(c.internal_port(RoleKind::Proxy), 19531);
        // an explicit internal port wins everywhere
        let c = env(&[
            ("FERROVUS_GRPC_PORT", "20001"),
            ("FERROVUS_CLUSTER__INTERNAL_PORT", "20002"),
        ]);
        assert_eq!(c.cluster.internal_port, Some(20002));
        for r in RoleKind::ALL {
            assert_eq!(c.internal_port(r), 20002, "{r}");
        }
    }

    #[test]
    fn proxy_settings() {
        let c = Config::load(None, vec![]).unwrap();
        assert_eq!(c.proxy, ProxyConfig::default());
        assert_eq!(c.proxy.retry_deadline_ms, 10_000);
        let c = Config::load(
            None,
            vec![(
                "FERROVUS_PROXY__RETRY_DEADLINE_MS".to_string(),
                "2500".to_string(),
            )],
        )
        .unwrap();
        assert_eq!(c.proxy.retry_deadline_ms, 2500);
        let e = Config::load(
            None,
            vec![(
                "FERROVUS_PROXY__CATALOG_WATCH_MS".to_string(),
                "60000".to_string(),
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("catalog_watch_ms"), "{e}");
    }

    #[test]
    fn streaming_and_data_node_settings() {
        let c = Config::load(None, vec![]).unwrap();
        assert_eq!(c.streaming, StreamingNodeConfig::default());
        assert_eq!(c.datanode, DataNodeConfig::default());
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = Config::load(
            None,
            env(&[
                ("FERROVUS_STREAMING__SYNC_WAIT_MS", "2000"),
                ("FERROVUS_DATANODE__SLOTS", "4"),
            ]),
        )
        .unwrap();
        assert_eq!((c.streaming.sync_wait_ms, c.datanode.slots), (2000, 4));
        let e = Config::load(None, env(&[("FERROVUS_DATANODE__SLOTS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("datanode.slots"), "{e}");
        let e = Config::load(None, env(&[("FERROVUS_STREAMING__SYNC_WAIT_MS", "30000")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("streaming.sync_wait_ms"), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = Config::default();
        c.storage.s3.secret_access_key = Some("hunter2".into());
        c.security.root_password = Secret("rootpw-42".into());
        c.cluster.secret = Some(Secret("shared-77".into()));
        let y = c.redacted_yaml();
        assert!(!y.contains("hunter2") && y.contains("<redacted>"));
        assert!(!y.contains("rootpw-42") && !y.contains("shared-77"), "{y}");
        assert!(!format!("{c:?}").contains("rootpw-42"));
    }
}
