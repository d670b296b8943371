//! Integration tests of every backend against real services: the shared conformance suite
//! (`ferrovus_storage::testing::conformance`) plus backend-specific behaviour.
//!
//! One test binary (not one per backend) so the AWS SDK and etcd client are linked once.
//! S3 and etcd tests start `moto_server` / `etcd`; without them they skip, or fail when
//! `FERROVUS_REQUIRE_EXTERNAL=1`.

mod etcd;
mod local;
mod memory;
mod redb;
mod s3;

/// Sends the stores' tracing output to the test output when `RUST_LOG` is set
/// (e.g. `RUST_LOG=ferrovus_storage=debug cargo test -p ferrovus-storage -- --nocapture`).
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
