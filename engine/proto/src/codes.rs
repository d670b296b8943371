//! Milvus 2.4+ error codes (`common.Status.code`).
//!
//! Every value comes from the `newMilvusError(msg, code, retriable)` table in
//! Milvus' `pkg/util/merr/errors.go` (milvus-io/milvus, master as of the
//! Milvus 2.6 line); the Go sentinel is named in each doc comment.  The legacy
//! `common.ErrorCode` each code is paired with follows `oldCode()` in
//! `pkg/util/merr/utils.go`, reproduced by [`legacy`].
//!
//! How pymilvus 3.0.x reads them (`pymilvus/client/utils.py`,
//! `grpc_handler.py`, `decorators.py`, `exceptions.py`):
//! * success only when `code == 0 && error_code == Success`; otherwise it
//!   raises `MilvusException(code, reason, compatible_code=error_code)`;
//! * `has_collection` answers `False` on [`COLLECTION_NOT_FOUND`] (or legacy
//!   `CollectionNotExists`); `list_indexes` / `describe_index` answer `[]` /
//!   `None` on [`INDEX_NOT_FOUND`] (or legacy `IndexNotExist`);
//! * [`RATE_LIMIT`] (or legacy `RateLimit`) makes the client retry with
//!   back-off — never use it for anything else;
//! * legacy `SchemaMismatch` makes it refresh its cached schema and retry;
//! * `extra_info["is_input_error"] == "true"` marks a caller error.
//!
//! Reasons follow Milvus' `wrapFields` format, which users see verbatim:
//! `"<message>[key=value]"`, e.g. `"collection not found[collection=foo]"`.

use crate::common::ErrorCode;

/// Success (`merr.Status(nil)`).
pub const SUCCESS: i32 = 0;
/// `ErrServiceNotReady` ("service not ready"), retriable.
pub const SERVICE_NOT_READY: i32 = 1;
/// `ErrServiceUnavailable` ("service unavailable"), retriable.
pub const SERVICE_UNAVAILABLE: i32 = 2;
/// `ErrServiceMemoryLimitExceeded` ("memory limit exceeded").
pub const MEMORY_LIMIT_EXCEEDED: i32 = 3;
/// `ErrServiceTooManyRequests` ("too many concurrent requests, queue is full"), retriable.
pub const TOO_MANY_REQUESTS: i32 = 4;
/// `ErrServiceInternal` ("service internal error").
pub const SERVICE_INTERNAL: i32 = 5;
/// `ErrServiceDiskLimitExceeded` ("disk limit exceeded").
pub const DISK_LIMIT_EXCEEDED: i32 = 7;
/// `ErrServiceRateLimit` ("rate limit exceeded"), retriable.  pymilvus
/// retries on this code: use it only for real rate limiting.
pub const RATE_LIMIT: i32 = 8;
/// `ErrServiceQuotaExceeded` ("quota exceeded"; pymilvus calls it FORCE_DENY).
pub const QUOTA_EXCEEDED: i32 = 9;
/// `ErrServiceUnimplemented` ("service unimplemented").
pub const UNIMPLEMENTED: i32 = 10;

/// `ErrCollectionNotFound` ("collection not found").
pub const COLLECTION_NOT_FOUND: i32 = 100;
/// `ErrCollectionNotLoaded` ("collection not loaded"): search/query on a
/// released collection.
pub const COLLECTION_NOT_LOADED: i32 = 101;
/// `ErrCollectionNumLimitExceeded` ("exceeded the limit number of collections").
pub const COLLECTION_NUM_LIMIT_EXCEEDED: i32 = 102;
/// `ErrCollectionNotFullyLoaded` ("collection not fully loaded"), retriable.
pub const COLLECTION_NOT_FULLY_LOADED: i32 = 103;
/// `ErrCollectionIllegalSchema` ("illegal collection schema").
pub const COLLECTION_ILLEGAL_SCHEMA: i32 = 105;
/// `ErrCollectionSchemaMismatch` ("collection schema mismatch"); legacy
/// `SchemaMismatch` makes pymilvus refresh its schema cache and retry.
pub const COLLECTION_SCHEMA_MISMATCH: i32 = 109;

/// `ErrPartitionNotFound` ("partition not found").
pub const PARTITION_NOT_FOUND: i32 = 200;
/// `ErrPartitionNotLoaded` ("partition not loaded").
pub const PARTITION_NOT_LOADED: i32 = 201;

/// `ErrReplicaNotFound` ("replica not found").
pub const REPLICA_NOT_FOUND: i32 = 400;
/// `ErrSegmentNotFound` ("segment not found").
pub const SEGMENT_NOT_FOUND: i32 = 600;

/// `ErrIndexNotFound` ("index not found").
pub const INDEX_NOT_FOUND: i32 = 700;
/// `ErrIndexNotSupported` ("index type not supported").
pub const INDEX_NOT_SUPPORTED: i32 = 701;
/// `ErrIndexDuplicate` ("index duplicates").
pub const INDEX_DUPLICATE: i32 = 702;

/// `ErrDatabaseNotFound` ("database not found").
pub const DATABASE_NOT_FOUND: i32 = 800;
/// `ErrDatabaseNumLimitExceeded` ("exceeded the limit number of database").
pub const DATABASE_NUM_LIMIT_EXCEEDED: i32 = 801;
/// `ErrDatabaseInvalidName` ("invalid database name").
pub const DATABASE_INVALID_NAME: i32 = 802;

/// `ErrParameterInvalid` ("invalid parameter").  Milvus also uses it for a
/// vector dimension mismatch on insert/upsert (`internal/proxy/validate_util.go`:
/// `"the dim (D) of field data(F) is not equal to schema dim (S)"`, wrapped as
/// `...: invalid parameter[expected=S][actual=D]`), see [`DIMENSION_MISMATCH`].
pub const PARAMETER_INVALID: i32 = 1100;
/// Dimension mismatch: Milvus has no dedicated code, it reports [`PARAMETER_INVALID`].
pub const DIMENSION_MISMATCH: i32 = PARAMETER_INVALID;
/// `ErrParameterMissing` ("missing parameter").
pub const PARAMETER_MISSING: i32 = 1101;
/// `ErrParameterTooLarge` ("parameter too large").
pub const PARAMETER_TOO_LARGE: i32 = 1102;

/// `ErrMetricNotFound` ("metric not found").
pub const METRIC_NOT_FOUND: i32 = 1200;

/// `ErrPrivilegeNotAuthenticated` ("not authenticated").
pub const NOT_AUTHENTICATED: i32 = 1400;
/// `ErrPrivilegeNotPermitted` ("privilege not permitted").
pub const NOT_PERMITTED: i32 = 1401;

/// `ErrAliasNotFound` ("alias not found").
pub const ALIAS_NOT_FOUND: i32 = 1600;
/// `ErrAliasCollectionNameConfilct` ("alias and collection name conflict").
pub const ALIAS_COLLECTION_NAME_CONFLICT: i32 = 1601;
/// `ErrAliasAlreadyExist` ("alias already exist").
pub const ALIAS_ALREADY_EXIST: i32 = 1602;

/// `ErrFieldNotFound` ("field not found").
pub const FIELD_NOT_FOUND: i32 = 1700;
/// `ErrFieldInvalidName` ("field name invalid").
pub const FIELD_INVALID_NAME: i32 = 1701;

/// `ErrOperationNotSupported` ("unsupported operation").
pub const OPERATION_NOT_SUPPORTED: i32 = 3000;

/// `errUnexpected` ("unexpected error", `(1<<16)-1`): what Milvus reports for
/// any error that is not a merr sentinel.  Prefer this over
/// [`SERVICE_INTERNAL`], which Milvus never returns to clients.
pub const UNEXPECTED: i32 = 65535;

/// The legacy `common.ErrorCode` Milvus pairs with `code` (`oldCode()` in
/// `pkg/util/merr/utils.go`).  Old clients only read this one.
pub fn legacy(code: i32) -> ErrorCode {
    match code {
        SUCCESS => ErrorCode::Success,
        SERVICE_NOT_READY => ErrorCode::NotReadyServe,
        COLLECTION_NOT_FOUND => ErrorCode::CollectionNotExists,
        PARAMETER_INVALID | PARAMETER_MISSING | PARAMETER_TOO_LARGE => ErrorCode::IllegalArgument,
        PARTITION_NOT_FOUND | REPLICA_NOT_FOUND => ErrorCode::MetaFailed,
        MEMORY_LIMIT_EXCEEDED => ErrorCode::InsufficientMemoryToLoad,
        DISK_LIMIT_EXCEEDED => ErrorCode::DiskQuotaExhausted,
        RATE_LIMIT => ErrorCode::RateLimit,
        QUOTA_EXCEEDED => ErrorCode::ForceDeny,
        INDEX_NOT_FOUND => ErrorCode::IndexNotExist,
        SEGMENT_NOT_FOUND => ErrorCode::SegmentNotFound,
        COLLECTION_SCHEMA_MISMATCH => ErrorCode::SchemaMismatch,
        _ => ErrorCode::UnexpectedError,
    }
}

/// Whether Milvus marks the sentinel with this code retriable (`Status.retriable`).
pub fn is_retriable(code: i32) -> bool {
    matches!(
        code,
        SERVICE_NOT_READY
            | SERVICE_UNAVAILABLE
            | TOO_MANY_REQUESTS
            | RATE_LIMIT
            | COLLECTION_NOT_FULLY_LOADED
    )
}

/// Whether Milvus reports this code as a caller error
/// (`extra_info["is_input_error"] = "true"`; the proxy also stamps not-found
/// errors on user-supplied names as input errors).
pub fn is_input_error(code: i32) -> bool {
    matches!(
        code,
        COLLECTION_NOT_FOUND
            | COLLECTION_NUM_LIMIT_EXCEEDED
            | COLLECTION_ILLEGAL_SCHEMA
            | COLLECTION_SCHEMA_MISMATCH
            | PARTITION_NOT_FOUND
            | INDEX_DUPLICATE
            | DATABASE_NOT_FOUND
            | DATABASE_NUM_LIMIT_EXCEEDED
            | DATABASE_INVALID_NAME
            | PARAMETER_INVALID
            | PARAMETER_MISSING
            | PARAMETER_TOO_LARGE
            | NOT_AUTHENTICATED
            | NOT_PERMITTED
            | ALIAS_NOT_FOUND
            | FIELD_NOT_FOUND
    )
}
