//! The one place that names objects and metadata keys of a shard (see the object layout in
//! `docs/distributed.md`). Every reader and writer goes through these functions, so a layout
//! change is a change here.

/// Prefix of a shard's write-ahead log objects (no trailing `/`).
pub fn wal_prefix(collection_id: i64, shard: usize) -> String {
    format!("wal/{collection_id}/{shard}")
}

/// A group-commit object holding LSNs `first..=last`, written by the channel owner of `term`.
pub fn wal_object(wal_prefix: &str, term: u64, first_lsn: u64, last_lsn: u64) -> String {
    format!("{wal_prefix}/{term:010}-{first_lsn:020}-{last_lsn:020}.log")
}

/// What a key under a log prefix names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalKey {
    /// A group-commit object: `<term>-<first>-<last>.log`, or the older `<first>-<last>.log`
    /// (term 0).
    Log { term: u64, first: u64, last: u64 },
    /// Not a log object (a fence).
    Other,
    /// A `.log` name that does not parse.
    Malformed,
}

pub fn parse_wal_object(key: &str) -> WalKey {
    let name = key.rsplit('/').next().unwrap_or("");
    let Some(stem) = name.strip_suffix(".log") else {
        return WalKey::Other;
    };
    let parts: Option<Vec<u64>> = stem.split('-').map(|p| p.parse().ok()).collect();
    match parts.as_deref() {
        Some([first, last]) => WalKey::Log {
            term: 0,
            first: *first,
            last: *last,
        },
        Some([term, first, last]) => WalKey::Log {
            term: *term,
            first: *first,
            last: *last,
        },
        _ => WalKey::Malformed,
    }
}

/// The fence the channel owner of `term` writes before it replays the log: an owner of an older
/// term that finds it after a group commit's put does not acknowledge that group. Fences live in
/// their own directory under the log prefix, so listing them stays cheap however many log
/// objects there are.
pub fn wal_fence(wal_prefix: &str, term: u64) -> String {
    format!("{wal_prefix}/fence/{term:010}")
}

/// Prefix of every fence under a log prefix.
pub fn wal_fences_prefix(wal_prefix: &str) -> String {
    format!("{wal_prefix}/fence/")
}

/// The term of a fence key ([`wal_fence`]), `None` for other keys.
pub fn parse_wal_fence(key: &str) -> Option<u64> {
    key.rsplit_once("/fence/")?.1.parse().ok()
}

/// Prefix of every segment object of a shard (with trailing `/`).
pub fn segments_prefix(collection_id: i64, shard: usize) -> String {
    format!("segments/{collection_id}/{shard}/")
}

/// The rows (all columns) of a sealed segment.
pub fn segment_data(collection_id: i64, shard: usize, segment_id: i64) -> String {
    format!("segments/{collection_id}/{shard}/{segment_id}/data")
}

/// Primary keys and row timestamps of a sealed segment.
pub fn segment_pks(collection_id: i64, shard: usize, segment_id: i64) -> String {
    format!("segments/{collection_id}/{shard}/{segment_id}/pks")
}

/// Version `version` of a sealed segment's delete log.
pub fn segment_deletes(collection_id: i64, shard: usize, segment_id: i64, version: u64) -> String {
    format!("segments/{collection_id}/{shard}/{segment_id}/deletes-{version:010}")
}

/// A vector index of field `field_id` built with index definition `index_id`.
pub fn segment_index(
    collection_id: i64,
    shard: usize,
    segment_id: i64,
    field_id: i64,
    index_id: i64,
) -> String {
    format!("segments/{collection_id}/{shard}/{segment_id}/index-{field_id}-{index_id}")
}

/// Prefix of a shard's delta objects (with trailing `/`).
pub fn deltas_prefix(collection_id: i64, shard: usize) -> String {
    format!("deltas/{collection_id}/{shard}/")
}

/// Deletes of sealed rows by primary key with timestamps in `(from_ts, to_ts]`.
pub fn delta_object(collection_id: i64, shard: usize, from_ts: u64, to_ts: u64) -> String {
    format!("deltas/{collection_id}/{shard}/{to_ts:020}-{from_ts:020}")
}

/// The `(from_ts, to_ts)` of a delta object key ([`delta_object`]), `None` for other keys.
pub fn parse_delta_object(key: &str) -> Option<(u64, u64)> {
    let name = key.rsplit('/').next()?;
    let (to, from) = name.split_once('-')?;
    Some((from.parse().ok()?, to.parse().ok()?))
}

/// Metadata key of a shard's checkpoint record (standalone checkpoint store).
pub fn checkpoint(collection_id: i64, shard: usize) -> String {
    format!("shards/{collection_id}/{shard}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        assert_eq!(wal_prefix(3, 1), "wal/3/1");
        let w = wal_object("wal/3/1", 2, 5, 7);
        assert_eq!(
            w,
            "wal/3/1/0000000002-00000000000000000005-00000000000000000007.log"
        );
        let log = |term, first, last| WalKey::Log { term, first, last };
        assert_eq!(parse_wal_object(&w), log(2, 5, 7));
        assert_eq!(
            parse_wal_object("wal/3/1/00000000000000000005-00000000000000000007.log"),
            log(0, 5, 7),
            "the older form without a term"
        );
        assert_eq!(parse_wal_object("wal/3/1/fence-0000000002"), WalKey::Other);
        assert_eq!(wal_fence("wal/3/1", 2), "wal/3/1/fence/0000000002");
        assert_eq!(parse_wal_object(&wal_fence("wal/3/1", 2)), WalKey::Other);
        assert!(wal_fence("wal/3/1", 2).starts_with(&wal_fences_prefix("wal/3/1")));
        assert_eq!(parse_wal_fence(&wal_fence("wal/3/1", 2)), Some(2));
        assert_eq!(parse_wal_fence(&w), None);
        assert_eq!(parse_wal_object("wal/3/1/x-1.log"), WalKey::Malformed);
        assert_eq!(parse_wal_object("wal/3/1/1-2-3-4.log"), WalKey::Malformed);
        assert_eq!(segments_prefix(3, 1), "segments/3/1/");
        assert!(segment_data(3, 1, 9).starts_with(&segments_prefix(3, 1)));
        assert_eq!(segment_data(3, 1, 9), "segments/3/1/9/data");
        assert_eq!(
            segment_deletes(3, 1, 9, 2),
            "segments/3/1/9/deletes-0000000002"
        );
        assert_eq!(segment_index(3, 1, 9, 101, 7), "segments/3/1/9/index-101-7");
        assert_eq!(segment_pks(3, 1, 9), "segments/3/1/9/pks");
        assert_eq!(
            delta_object(3, 1, 10, 20),
            "deltas/3/1/00000000000000000020-00000000000000000010"
        );
        assert!(delta_object(3, 1, 10, 20).starts_with(&deltas_prefix(3, 1)));
        assert_eq!(
            parse_delta_object(&delta_object(3, 1, 10, 20)),
            Some((10, 20))
        );
        assert_eq!(parse_delta_object("deltas/3/1/x-1"), None);
        assert_eq!(parse_delta_object("deltas/3/1/12"), None);
        assert_eq!(checkpoint(3, 1), "shards/3/1");
    }
}
