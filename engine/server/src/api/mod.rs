//! The contracts between roles (see docs/distributed.md): one trait per serving role
//! ([`CoordApi`], [`StreamingApi`], [`QueryApi`]) with plain serialisable messages.
//!
//! Each trait has two kinds of implementation: the role object itself (standalone calls it
//! directly, in-process) and a remote client over the internal RPC (`Remote*<C>`, generated here
//! with the trait). [`serve_coord`], [`serve_streaming`] and [`serve_query`] register a role
//! object's methods on an [`RpcServer`] under `<role>.<method>`, so the two can never drift
//! apart: the method table below is the only list of them.

pub mod coord;
pub mod nodes;
pub mod query;
pub mod streaming;
pub mod types;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use coord::*;
pub use nodes::*;
pub use query::*;
pub use streaming::*;
pub use types::*;

use crate::rpc::{ClusterError, RpcClient, RpcServer};

/// How a remote API client sends one call: straight to one address ([`RpcClient`]), or to
/// whoever currently leads ([`nodes::LeaderCaller`]).
#[async_trait]
pub trait Caller: Send + Sync + 'static {
    async fn call<Req, Resp>(&self, method: &'static str, req: &Req) -> Result<Resp, ClusterError>
    where
        Req: Serialize + Send + Sync,
        Resp: DeserializeOwned + Send;
}

#[async_trait]
impl Caller for RpcClient {
    async fn call<Req, Resp>(&self, method: &'static str, req: &Req) -> Result<Resp, ClusterError>
    where
        Req: Serialize + Send + Sync,
        Resp: DeserializeOwned + Send,
    {
        RpcClient::call(self, method, req).await
    }
}

/// Declares a role API: the trait, its remote client and its server registration, from one
/// method table (`fn name(Request) -> Response;`, served as `<prefix>.<name>`).
macro_rules! role_api {
    (
        $(#[$meta:meta])*
        trait $tr:ident, remote $remote:ident, serve $serve:ident, prefix $prefix:literal;
        $( $(#[$mmeta:meta])* fn $m:ident($req:ty) -> $resp:ty; )*
    ) => {
        $(#[$meta])*
        #[async_trait::async_trait]
        pub trait $tr: Send + Sync + 'static {
            $( $(#[$mmeta])* async fn $m(&self, req: $req) -> Result<$resp, crate::rpc::ClusterError>; )*
        }

        /// Remote client of this API over the internal RPC.
        #[derive(Debug, Clone)]
        pub struct $remote<C> {
            pub caller: C,
        }

        impl<C> $remote<C> {
            pub fn new(caller: C) -> Self {
                $remote { caller }
            }
        }

        #[async_trait::async_trait]
        impl<C: crate::api::Caller> $tr for $remote<C> {
            $(
                async fn $m(&self, req: $req) -> Result<$resp, crate::rpc::ClusterError> {
                    self.caller.call(concat!($prefix, ".", stringify!($m)), &req).await
                }
            )*
        }

        /// Register every method of `api` on `rpc` as `<prefix>.<method>`.
        pub fn $serve(rpc: &mut crate::rpc::RpcServer, api: std::sync::Arc<dyn $tr>) {
            $(
                {
                    let api = api.clone();
                    rpc.handle(concat!($prefix, ".", stringify!($m)), move |req: $req| {
                        let api = api.clone();
                        async move { api.$m(req).await }
                    });
                }
            )*
        }
    };
}
pub(crate) use role_api;

/// Serve every API a process implements (helper for role processes with several).
pub fn serve_all(
    rpc: &mut RpcServer,
    coord: Option<Arc<dyn CoordApi>>,
    streaming: Option<Arc<dyn StreamingApi>>,
    query: Option<Arc<dyn QueryApi>>,
) {
    if let Some(c) = coord {
        serve_coord(rpc, c);
    }
    if let Some(s) = streaming {
        serve_streaming(rpc, s);
    }
    if let Some(q) = query {
        serve_query(rpc, q);
    }
}
