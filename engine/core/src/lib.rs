//! Ferrovus core: the database without I/O choices.
//!
//! Layering: this crate knows nothing of gRPC, Kubernetes, etcd or S3. It defines the storage
//! traits ([`store`]) that `ferrovus-storage` implements, and everything that stores and searches
//! data on top of them.

pub mod error;
pub mod expr;
pub mod schema;
pub mod store;
pub mod value;

pub use error::{CoreError, Result};
