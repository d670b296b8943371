//! Building `common::Status` the way Milvus does (`merr.Status` in
//! `pkg/util/merr/utils.go`).
//!
//! A status carries two codes because old and new clients read different
//! ones: Milvus >= 2.3 clients (pymilvus 2.3+, including 3.0.x) read `code`
//! (see [`crate::codes`]), older ones only the legacy `error_code`.  pymilvus'
//! `check_status` treats a response as successful only if BOTH are zero, so an
//! error must set at least one of them, and a success must set neither.
//! Milvus also copies the reason into `detail`, sets `retriable`, and marks
//! caller errors with `extra_info["is_input_error"] = "true"`; [`error`] does
//! the same.

use crate::codes;
use crate::common::{ErrorCode, Status};

/// Key of `Status.extra_info` that marks a caller (input) error.
pub const INPUT_ERROR_KEY: &str = "is_input_error";

/// A success status: `code = 0`, `error_code = Success`, empty reason.
pub fn success() -> Status {
    Status::default()
}

/// An error status with both the Milvus 2.4+ `code` and the legacy
/// `error_code` set.  `retriable` and the input-error flag follow `code`
/// ([`codes::is_retriable`], [`codes::is_input_error`]).
///
/// `code` must not be [`codes::SUCCESS`]: a zero code with a non-zero legacy
/// code still reads as an error to pymilvus, but nothing in Milvus does that.
pub fn error(code: i32, legacy: ErrorCode, reason: impl Into<String>) -> Status {
    let reason = reason.into();
    let mut status = Status {
        error_code: legacy as i32,
        detail: reason.clone(),
        reason,
        code,
        retriable: codes::is_retriable(code),
        ..Status::default()
    };
    if codes::is_input_error(code) {
        status
            .extra_info
            .insert(INPUT_ERROR_KEY.to_owned(), "true".to_owned());
        // Milvus never tells a caller to retry a malformed request.
        status.retriable = false;
    }
    status
}

/// [`error`] with the legacy code Milvus pairs with `code` ([`codes::legacy`]).
pub fn from_code(code: i32, reason: impl Into<String>) -> Status {
    error(code, codes::legacy(code), reason)
}

/// True when a client would accept `status` as success (both codes zero).
pub fn is_success(status: &Status) -> bool {
    status.code == codes::SUCCESS && status.error_code == ErrorCode::Success as i32
}

/// `collection not found[database=DB][collection=NAME]` (code 100), the text
/// Milvus' `WrapErrCollectionNotFoundWithDB` produces.
pub fn collection_not_found(db_name: &str, collection: &str) -> Status {
    from_code(
        codes::COLLECTION_NOT_FOUND,
        format!("collection not found[database={db_name}][collection={collection}]"),
    )
}

/// `partition not found[partition=NAME]` (code 200).
pub fn partition_not_found(partition: &str) -> Status {
    from_code(
        codes::PARTITION_NOT_FOUND,
        format!("partition not found[partition={partition}]"),
    )
}

/// `index not found[collection=NAME]` (code 700): what `describe_index` /
/// `list_indexes` in pymilvus turn into `None` / `[]`.
pub fn index_not_found(collection: &str) -> Status {
    from_code(
        codes::INDEX_NOT_FOUND,
        format!("index not found[collection={collection}]"),
    )
}

/// `collection not loaded[collection=NAME]` (code 101).
pub fn collection_not_loaded(collection: &str) -> Status {
    from_code(
        codes::COLLECTION_NOT_LOADED,
        format!("collection not loaded[collection={collection}]"),
    )
}

/// `MSG: invalid parameter` (code 1100), as `merr.WrapErrParameterInvalidMsg`.
pub fn parameter_invalid(msg: impl std::fmt::Display) -> Status {
    from_code(
        codes::PARAMETER_INVALID,
        format!("{msg}: invalid parameter"),
    )
}

/// The exact insert/upsert dimension-mismatch error of Milvus
/// (`internal/proxy/validate_util.go`), code 1100.
pub fn dimension_mismatch(field: &str, data_dim: i64, schema_dim: i64) -> Status {
    from_code(
        codes::DIMENSION_MISMATCH,
        format!(
            "the dim ({data_dim}) of field data({field}) is not equal to schema dim \
             ({schema_dim}): invalid parameter[expected={schema_dim}][actual={data_dim}]"
        ),
    )
}

/// `WHAT: service unimplemented` (code 10).
pub fn unimplemented(what: impl std::fmt::Display) -> Status {
    from_code(
        codes::UNIMPLEMENTED,
        format!("{what}: service unimplemented"),
    )
}

/// Any other failure (code 65535, legacy `UnexpectedError`), as Milvus
/// reports errors that are not one of its sentinels.
pub fn unexpected(reason: impl Into<String>) -> Status {
    from_code(codes::UNEXPECTED, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_all_zero() {
        let s = success();
        assert!(is_success(&s));
        assert_eq!(s.code, 0);
        assert_eq!(s.error_code, 0);
        assert!(s.reason.is_empty());
        assert!(!s.retriable);
    }

    #[test]
    fn error_sets_both_codes() {
        let s = error(
            codes::INDEX_NOT_FOUND,
            ErrorCode::IndexNotExist,
            "index not found",
        );
        assert!(!is_success(&s));
        assert_eq!(s.code, 700);
        assert_eq!(s.error_code, ErrorCode::IndexNotExist as i32);
        assert_eq!(s.error_code, 25);
        assert_eq!(s.reason, "index not found");
        assert_eq!(s.detail, "index not found");
        assert!(!s.retriable);
        assert!(!s.extra_info.contains_key(INPUT_ERROR_KEY));
    }

    #[test]
    fn from_code_uses_milvus_legacy_mapping() {
        let s = collection_not_found("default", "c1");
        assert_eq!(s.code, 100);
        assert_eq!(s.error_code, ErrorCode::CollectionNotExists as i32);
        assert_eq!(
            s.reason,
            "collection not found[database=default][collection=c1]"
        );
        assert_eq!(
            s.extra_info.get(INPUT_ERROR_KEY).map(String::as_str),
            Some("true")
        );

        let s = dimension_mismatch("vector", 3, 4);
        assert_eq!(s.code, 1100);
        assert_eq!(s.error_code, ErrorCode::IllegalArgument as i32);
        assert_eq!(
            s.reason,
            "the dim (3) of field data(vector) is not equal to schema dim (4): \
             invalid parameter[expected=4][actual=3]"
        );

        assert_eq!(
            partition_not_found("p").error_code,
            ErrorCode::MetaFailed as i32
        );
        assert_eq!(
            index_not_found("c").error_code,
            ErrorCode::IndexNotExist as i32
        );
        assert_eq!(collection_not_loaded("c").code, 101);
        assert_eq!(unimplemented("Frob").code, 10);
        let u = unexpected("boom");
        assert_eq!(
            (u.code, u.error_code),
            (65535, ErrorCode::UnexpectedError as i32)
        );
    }

    #[test]
    fn rate_limit_is_retriable_and_only_it_maps_to_legacy_rate_limit() {
        let s = from_code(codes::RATE_LIMIT, "rate limit exceeded");
        assert!(s.retriable);
        assert_eq!(s.error_code, ErrorCode::RateLimit as i32);
        for code in [0, 1, 5, 10, 100, 101, 200, 700, 1100, 65535] {
            assert_ne!(codes::legacy(code), ErrorCode::RateLimit, "code {code}");
        }
    }

    #[test]
    fn input_errors_are_never_retriable() {
        let s = parameter_invalid("bad");
        assert_eq!(s.reason, "bad: invalid parameter");
        assert!(!s.retriable);
        assert_eq!(
            s.extra_info.get(INPUT_ERROR_KEY).map(String::as_str),
            Some("true")
        );
    }
}
