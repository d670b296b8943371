//! Milvus wire protocol for Ferrovus.
//!
//! `proto/*.proto` is a subset of the public milvus-proto definitions,
//! generated from (and checked against) the descriptors that pymilvus ships —
//! see `gen_from_pymilvus.py` and `check_against_pymilvus.py` next to this
//! crate's `Cargo.toml`.  Package names, the service name
//! `milvus.proto.milvus.MilvusService`, method names, message names, field
//! names, numbers and types are identical to upstream, so an unmodified
//! pymilvus talks to a server built on these types.
//!
//! * [`common`]: `milvus.proto.common` (Status, ErrorCode, KeyValuePair, MsgBase,
//!   PlaceholderGroup, ...).
//! * [`schema`]: `milvus.proto.schema` (DataType, CollectionSchema, FieldData, IDs,
//!   SearchResultData, ...).
//! * [`msg`]: `milvus.proto.msg` (only `MsgPosition`, used by `FlushResponse`).
//! * [`milvus`]: `milvus.proto.milvus` (requests/responses and the
//!   `milvus_service_server` / `milvus_service_client` modules).  Server methods
//!   not overridden answer gRPC `Unimplemented`.
//! * [`internal`]: `ferrovus.internal`, Ferrovus' own role-to-role service
//!   (`Node.Call(Frame) -> Frame`); not part of the Milvus API.
//! * [`status`] and [`codes`]: building `common::Status` the way Milvus does.

/// Lints that fire on prost/tonic generated code; none of it is hand-written.
macro_rules! generated {
    ($(#[$meta:meta])* $name:ident, $package:literal) => {
        $(#[$meta])*
        #[allow(
            missing_docs,
            non_camel_case_types,
            unreachable_pub,
            unused_qualifications,
            rust_2018_idioms,
            clippy::all,
            clippy::pedantic,
            clippy::nursery
        )]
        pub mod $name {
            tonic::include_proto!($package);
        }
    };
}

generated!(
    /// `milvus.proto.common`: Status, ErrorCode, KeyValuePair, MsgBase, placeholders.
    common,
    "milvus.proto.common"
);
generated!(
    /// `milvus.proto.schema`: DataType, schemas, column data, ids, search results.
    schema,
    "milvus.proto.schema"
);
generated!(
    /// `milvus.proto.msg`: only `MsgPosition` (referenced by `FlushResponse`).
    msg,
    "milvus.proto.msg"
);
generated!(
    /// `milvus.proto.milvus`: `MilvusService` requests, responses, server and client.
    milvus,
    "milvus.proto.milvus"
);

generated!(
    /// `ferrovus.internal`: the role-to-role `Node` service (one generic `Call(Frame)` method).
    internal,
    "ferrovus.internal"
);

pub mod codes;
pub mod status;

pub use milvus::milvus_service_client::MilvusServiceClient;
pub use milvus::milvus_service_server::{MilvusService, MilvusServiceServer};
