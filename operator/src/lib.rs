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
