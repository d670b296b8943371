//! The core's in-memory reference stores pass the same suite: the backends and the reference
//! agree on the semantics (except key validation, which only the real backends enforce).

use std::sync::Arc;

use ferrovus_core::store::memory::{MemoryMetaStore, MemoryObjectStore};
use ferrovus_storage::testing::conformance;

#[tokio::test]
async fn memory_object_store_conformance() {
    conformance::object_store(&MemoryObjectStore::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_meta_store_conformance() {
    conformance::meta_store(Arc::new(MemoryMetaStore::default())).await;
}
