//! Ferrovus core: the database without I/O choices.
//!
//! Layering: this crate knows nothing of gRPC, Kubernetes, etcd or S3. It defines the storage
//! traits ([`store`]) that `ferrovus-storage` implements, and everything that stores and searches
//! data on top of them: schema and values, filter expressions, segments, the write-ahead log,
//! shards and the request planning ([`plan`]) that the server's roles share.

pub mod codec;
pub mod collection;
pub mod compaction;
pub mod config;
pub mod deletes;
pub mod delta;
pub mod error;
pub mod expr;
pub mod fuzzing;
pub mod keys;
pub mod pks;
pub mod plan;
pub mod read;
pub mod request;
pub mod schema;
pub mod sealed;
pub mod segment;
pub mod shard;
pub mod store;
pub mod tso;
pub mod value;
pub mod vindex;
pub mod wal;

pub use config::CoreConfig;
pub use error::{CoreError, Result};
