//! Ferrovus server roles over the core: the Milvus gRPC front door ([`proxy`], with the wire
//! conversions in [`convert`]) over a [`backend::Backend`], the HTTP health/metrics port
//! ([`http`], [`metrics`]), configuration ([`config`]) and the standalone wiring
//! ([`standalone`]). Errors of this layer are [`error::ApiError`], mapped once to the Milvus
//! `Status`.

pub mod backend;
pub mod config;
pub mod convert;
pub mod error;
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod standalone;
