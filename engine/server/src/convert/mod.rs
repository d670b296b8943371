//! Conversions between the Milvus wire types and the backend's (core) types, by family: request
//! parsing (a protobuf request → a validated core request or parameters, with the errors Milvus
//! clients see for bad input) and reply building (backend data → protobuf response). Pure
//! functions, unit-tested; the proxy handlers only call them around one backend call.

mod admin;
mod collections;
mod data;
mod indexes;
mod read;
mod schema;

pub use admin::*;
pub use collections::*;
pub use data::*;
pub use indexes::*;
pub use read::*;
pub use schema::*;

use std::collections::BTreeMap;

use ferrovus_proto::common::KeyValuePair;

use crate::error::{ApiError, ApiResult};

/// The only database: requests may name it or leave the name empty.
pub const DEFAULT_DB: &str = "default";

pub fn kv_get<'a>(params: &'a [KeyValuePair], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

pub fn kv_map(params: &[KeyValuePair]) -> BTreeMap<String, String> {
    params
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

pub fn kv(key: &str, value: impl Into<String>) -> KeyValuePair {
    KeyValuePair {
        key: key.to_string(),
        value: value.into(),
    }
}

/// Only the default database exists.
pub fn check_db(db_name: &str) -> ApiResult<()> {
    if db_name.is_empty() || db_name == DEFAULT_DB {
        Ok(())
    } else {
        Err(ApiError::DatabaseNotFound(db_name.to_string()))
    }
}

pub fn check_name(field: &str, name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field} should not be empty"),
        ));
    }
    Ok(())
}

pub fn parse_usize(field: &str, v: &str) -> ApiResult<usize> {
    v.trim()
        .parse::<i64>()
        .ok()
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{field} must be a non-negative integer, got {v:?}"),
            )
        })
}

/// Optional non-negative integer parameter `key` of a request's key-value list.
pub fn kv_usize(params: &[KeyValuePair], key: &str) -> ApiResult<Option<usize>> {
    kv_get(params, key).map(|v| parse_usize(key, v)).transpose()
}

/// The virtual channel (DML stream) name Milvus clients see for a shard of a collection.
pub fn vchannel(collection_id: i64, shard: usize) -> String {
    format!("ferrovus-dml_{shard}_{collection_id}v{shard}")
}

/// The physical channel name of a shard.
pub fn pchannel(shard: usize) -> String {
    format!("ferrovus-dml_{shard}")
}

/// Row-count statistics, as GetCollectionStatistics and GetPartitionStatistics answer them.
pub fn row_count_stats(rows: usize) -> Vec<KeyValuePair> {
    vec![kv("row_count", rows.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovus_proto::codes;

    #[test]
    fn db_names() {
        assert!(check_db("").is_ok() && check_db("default").is_ok());
        let e = check_db("other").unwrap_err();
        assert_eq!(e.code(), codes::DATABASE_NOT_FOUND);
        assert_eq!(e.to_string(), "database not found[database=other]");
    }

    #[test]
    fn empty_names_are_invalid() {
        assert!(check_name("collection_name", "c").is_ok());
        let e = check_name("collection_name", "").unwrap_err();
        assert_eq!(e.code(), codes::PARAMETER_INVALID);
        assert_eq!(
            e.to_string(),
            "invalid parameter[collection_name]: collection_name should not be empty"
        );
    }

    #[test]
    fn non_negative_integers() {
        assert_eq!(parse_usize("limit", " 7 ").unwrap(), 7);
        for bad in ["-1", "x", "", "1.5"] {
            let e = parse_usize("limit", bad).unwrap_err();
            assert_eq!(e.code(), codes::PARAMETER_INVALID);
            assert_eq!(
                e.to_string(),
                format!(
                    "invalid parameter[limit]: limit must be a non-negative integer, got {bad:?}"
                )
            );
        }
        let params = [kv("offset", "3")];
        assert_eq!(kv_usize(&params, "offset").unwrap(), Some(3));
        assert_eq!(kv_usize(&params, "limit").unwrap(), None);
        assert!(kv_usize(&[kv("offset", "-3")], "offset").is_err());
    }

    #[test]
    fn channel_names() {
        assert_eq!(vchannel(42, 1), "ferrovus-dml_1_42v1");
        assert_eq!(pchannel(1), "ferrovus-dml_1");
    }
}
