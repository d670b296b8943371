//! The typed configuration of every role: defaults in code, overridden by a YAML file, then by
//! `FERROVUS_*` environment variables.
//!
//! Environment overrides address any key by path: `FERROVUS_GRPC__PORT=19540` sets `grpc.port`
//! (sections separated by a double underscore; values parsed as YAML scalars). The short names
//! of the operator contract are aliases: `FERROVUS_DATA_DIR`, `FERROVUS_GRPC_PORT`,
//! `FERROVUS_HTTP_PORT`, `FERROVUS_LOG_LEVEL`, `FERROVUS_ETCD_ENDPOINTS` (comma-separated),
//! `FERROVUS_S3_ENDPOINT`, `FERROVUS_S3_BUCKET`, `FERROVUS_S3_REGION`,
//! `FERROVUS_S3_ACCESS_KEY_ID`, `FERROVUS_S3_SECRET_ACCESS_KEY`.

use std::path::{Path, PathBuf};

use ferrovus_core::CoreConfig;
use serde::{Deserialize, Serialize};
use thiserror::Error;

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
    pub core: CoreConfig,
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
            core: CoreConfig::default(),
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: "0.0.0.0".into(),
            port: 19530,
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
        for (k, v) in env {
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
        let cfg: Config =
            serde_yaml_ng::from_value(tree).map_err(|e| ConfigError::Invalid(e.to_string()))?;
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
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log.format must be text or json, got {:?}",
                self.log.format
            )));
        }
        Ok(())
    }

    /// YAML with secrets redacted, for the start-up log.
    pub fn redacted_yaml(&self) -> String {
        let mut c = self.clone();
        if c.storage.s3.secret_access_key.is_some() {
            c.storage.s3.secret_access_key = Some("<redacted>".into());
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
        assert!(e.contains("port") || e.contains("invalid"), "{e}");
        let dir = tempfile::tempdir().unwrap();
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
    fn secrets_are_redacted() {
        let mut c = Config::default();
        c.storage.s3.secret_access_key = Some("hunter2".into());
        let y = c.redacted_yaml();
        assert!(!y.contains("hunter2") && y.contains("<redacted>"));
    }
}
