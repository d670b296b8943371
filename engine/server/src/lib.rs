//! Ferrovus server roles over the core: the Milvus gRPC front door ([`proxy`], with the wire
//! conversions in [`convert`]) over a [`backend::Backend`], the HTTP health/metrics port
//! ([`http`], [`metrics`]), configuration ([`config`]) and the standalone wiring
//! ([`standalone`]), and for the cluster roles: internal RPC ([`rpc`]), sessions and leader
//! election ([`session`]) and the role-process skeleton of `ferrovus run` ([`node`]); the role
//! contracts ([`api`]) and the roles: the streaming node ([`streaming`]), the query node
//! ([`querynode`]), the data node ([`datanode`]) and the proxy's backend over the other roles
//! ([`cluster`]).
//! Errors of the Milvus API are [`error::ApiError`], mapped once to the Milvus `Status`; internal
//! RPCs fail with [`rpc::ClusterError`], sessions with [`session::SessionError`], role processes
//! with [`node::NodeError`].

pub mod api;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod coord;
pub mod datanode;
pub mod error;
pub mod http;
pub mod metrics;
pub mod node;
pub mod proxy;
pub mod querynode;
pub mod rpc;
pub mod security;
pub mod session;
pub mod standalone;
pub mod streaming;
