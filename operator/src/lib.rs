//! Ferrovus operator: reconciles `MilvusCluster` resources (`ferrovus.io/v1alpha1`)
//! into running Ferrovus clusters.
//!
//! - [`crd`]: the custom resource types (the CRD is generated from them);
//! - [`builders`]: pure functions from a `MilvusCluster` to the Kubernetes
//!   objects that run it;
//! - [`controller`]: the reconcile loop (server-side apply, ordered bring-up and
//!   upgrades, status, finalizer);
//! - [`telemetry`]: metrics and the HTTP health endpoints.

pub mod builders;
pub mod controller;
pub mod crd;
#[cfg(test)]
pub(crate) mod fake;
pub mod telemetry;

/// Installs `ring` as rustls' process-wide crypto provider (idempotent). Call
/// before building a Kubernetes client: with both `ring` and `aws-lc-rs`
/// enabled in a build, rustls cannot pick one by itself and panics.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    /// A TLS client can be built: rustls needs exactly one crypto provider
    /// (kube's `ring` feature), otherwise the binary panics at start-up.
    #[tokio::test]
    async fn tls_client_builds() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        let config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        kube::Client::try_from(config).expect("client with rustls");
    }
}
