//! Storage backends for Ferrovus: implementations of the core's
//! [`ObjectStore`](ferrovus_core::store::ObjectStore) and
//! [`MetaStore`](ferrovus_core::store::MetaStore) traits.
//!
//! | backend | trait | use |
//! | --- | --- | --- |
//! | [`LocalObjectStore`] | `ObjectStore` | standalone: a directory on a local disk |
//! | [`S3ObjectStore`] | `ObjectStore` | cluster: S3 or an S3-compatible service |
//! | [`RedbMetaStore`] | `MetaStore` | standalone: an embedded, crash-safe redb file |
//! | [`EtcdMetaStore`] | `MetaStore` | cluster: etcd (plus leases/election helpers) |
//!
//! Every backend reports a [`StorageError`] internally and converts it into
//! [`ferrovus_core::CoreError`] at the trait boundary.
//!
//! Key rules shared by the object stores (so code that works on one works on all): keys are
//! non-empty, `/`-separated, never absolute, never end with `/`, and have no empty, `.` or `..`
//! component (see [`validate_object_key`]). Metadata keys only need to be non-empty.

pub mod error;
pub mod etcd;
pub mod local;
pub mod redb_meta;
pub mod s3;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{StorageError, StorageResult};
pub use etcd::{
    EtcdConfig, EtcdMetaStore, KeepAliveHandle, PrefixWatch, WatchEvent, WatchEventKind,
};
pub use local::LocalObjectStore;
pub use redb_meta::RedbMetaStore;
pub use s3::{S3Config, S3ObjectStore, S3Options};

use ferrovus_core::store::MetaOp;

/// Temporary files of [`LocalObjectStore`] start with this; no key component may.
pub(crate) const TMP_PREFIX: &str = ".ferrovus-tmp.";

/// Checks an object key against the rules every object store enforces.
pub fn validate_object_key(key: &str) -> StorageResult<()> {
    let bad = |reason| {
        Err(StorageError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty key");
    }
    if key.starts_with('/') {
        return bad("keys must not be absolute (start with '/')");
    }
    if key.ends_with('/') {
        return bad("keys must not end with '/'");
    }
    if key.contains('\0') {
        return bad("keys must not contain NUL");
    }
    if key.contains('\\') {
        return bad("keys must not contain '\\'");
    }
    for part in key.split('/') {
        match part {
            "" => return bad("keys must not contain an empty path component ('//')"),
            "." | ".." => return bad("keys must not contain '.' or '..' components"),
            p if p.starts_with(TMP_PREFIX) => {
                return bad("key components must not start with the reserved '.ferrovus-tmp.'");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a metadata key (etcd and redb accept any non-empty byte string; we require UTF-8 by type).
pub(crate) fn validate_meta_key(key: &str) -> StorageResult<()> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey {
            key: String::new(),
            reason: "empty key",
        });
    }
    Ok(())
}

/// Validates the ops of a transaction: non-empty keys and at most one op per key (etcd rejects
/// duplicates, so every backend does, for identical behaviour).
pub(crate) fn validate_txn_ops(ops: &[MetaOp]) -> StorageResult<()> {
    let mut seen = std::collections::HashSet::with_capacity(ops.len());
    for op in ops {
        let key = match op {
            MetaOp::Put { key, .. } | MetaOp::Delete { key } => key,
        };
        validate_meta_key(key)?;
        if !seen.insert(key.as_str()) {
            return Err(StorageError::InvalidRequest {
                field: "txn",
                message: format!("more than one operation on key {key:?} in one transaction"),
            });
        }
    }
    Ok(())
}

/// The byte range `[offset, offset + len)` clamped to an object of `size` bytes: reads past the
/// end return the bytes that exist (possibly none), like the core's in-memory reference store.
pub(crate) fn clamp_range(offset: u64, len: u64, size: u64) -> (u64, u64) {
    let start = offset.min(size);
    let end = offset.saturating_add(len).min(size);
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys() {
        for ok in [
            "a",
            "a/b",
            "segments/1/2.bin",
            "a.b/c..d",
            ".hidden",
            "x/.y",
        ] {
            validate_object_key(ok).unwrap();
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "../a",
            "a/..",
            ".",
            "a/./b",
            "a\\b",
            "a\0b",
            ".ferrovus-tmp.1",
            "a/.ferrovus-tmp.x",
        ] {
            let err = validate_object_key(bad).unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidKey { .. }),
                "{bad:?}: {err}"
            );
            let core: ferrovus_core::CoreError = err.into();
            assert!(
                matches!(&core, ferrovus_core::CoreError::InvalidArgument { field, message }
                    if field == "key" && message.contains(&format!("{bad:?}"))),
                "{core}"
            );
        }
    }

    #[test]
    fn txn_ops() {
        let put = |k: &str| MetaOp::Put {
            key: k.into(),
            value: vec![],
        };
        validate_txn_ops(&[put("a"), put("b"), MetaOp::Delete { key: "c".into() }]).unwrap();
        assert!(validate_txn_ops(&[put("a"), MetaOp::Delete { key: "a".into() }]).is_err());
        assert!(validate_txn_ops(&[put("")]).is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(clamp_range(0, 10, 100), (0, 10));
        assert_eq!(clamp_range(95, 10, 100), (95, 100));
        assert_eq!(clamp_range(100, 10, 100), (100, 100));
        assert_eq!(clamp_range(200, 10, 100), (100, 100));
        assert_eq!(clamp_range(5, u64::MAX, 100), (5, 100));
    }
}
