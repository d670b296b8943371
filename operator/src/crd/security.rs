//! `spec.security`: Milvus-compatible users and privileges, and TLS on the proxies' Milvus port.
//! The role-to-role secret needs no spec: the operator generates it (`<name>-cluster-secret`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Authentication, access control and TLS of the cluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Security {
    /// Milvus-compatible authentication and RBAC (Milvus'
    /// `common.security.authorizationEnabled`): every client must log in
    /// (pymilvus `token="user:password"`) and hold privileges for what it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,

    /// TLS on the proxies' Milvus port (Milvus' `common.security.tlsMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// Users and privileges.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// Require a login and check privileges on every request.
    #[serde(default)]
    pub enabled: bool,

    /// Secret holding the root user's initial password (used when the
    /// database first starts; change it later with `update_password`).
    /// Required when `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password_secret: Option<SecretKeyRef>,
}

/// A key of a Secret in the MilvusCluster's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key in the Secret (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SecretKeyRef {
    pub fn key_or(&self, default: &str) -> String {
        self.key
            .clone()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| default.to_string())
    }
}

/// TLS of the Milvus port.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// `OneWay`: the proxies present `tls.crt`; `Mutual`: clients must also
    /// present a certificate signed by `ca.crt`.
    pub mode: TlsMode,

    /// Secret of type `kubernetes.io/tls` with `tls.crt`, `tls.key` and, for
    /// `Mutual`, `ca.crt` — what a cert-manager Certificate writes. The
    /// certificate must name the proxy Service's DNS names clients use.
    #[schemars(length(min = 1))]
    pub secret_name: String,
}

/// TLS mode of the Milvus port.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Server certificate only (Milvus tlsMode 1).
    OneWay,
    /// Server and client certificates (Milvus tlsMode 2).
    Mutual,
}

impl TlsMode {
    /// Milvus' `tlsMode` number.
    pub fn milvus_mode(self) -> u8 {
        match self {
            TlsMode::OneWay => 1,
            TlsMode::Mutual => 2,
        }
    }
}
