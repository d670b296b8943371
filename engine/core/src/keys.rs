//! The one place that names objects and metadata keys of a shard (see the object layout in
//! `docs/distributed.md`). Every reader and writer goes through these functions, so a layout
//! change is a change here.

/// Prefix of a shard's write-ahead log objects (no trailing `/`).
pub fn wal_prefix(collection_id: i64, shard: usize) -> String {
    format!("wal/{collection_id}/{shard}")
}

/// A group-commit object holding LSNs `first..=last`.
pub fn wal_object(wal_prefix: &str, first_lsn: u64, last_lsn: u64) -> String {
    format!("{wal_prefix}/{first_lsn:020}-{last_lsn:020}.log")
}

/// Prefix of every segment object of a shard (with trailing `/`).
pub fn segments_prefix(collection_id: i64, shard: usize) -> String {
    format!("segments/{collection_id}/{shard}/")
}

/// The rows (all columns) of a sealed segment.
pub fn segment_data(collection_id: i64, shard: usize, segment_id: i64) -> String {
    format!("segments/{collection_id}/{shard}/{segment_id}/data")
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
        assert_eq!(
            wal_object("wal/3/1", 5, 7),
            "wal/3/1/00000000000000000005-00000000000000000007.log"
        );
        assert_eq!(segments_prefix(3, 1), "segments/3/1/");
        assert!(segment_data(3, 1, 9).starts_with(&segments_prefix(3, 1)));
        assert_eq!(segment_data(3, 1, 9), "segments/3/1/9/data");
        assert_eq!(
            segment_deletes(3, 1, 9, 2),
            "segments/3/1/9/deletes-0000000002"
        );
        assert_eq!(segment_index(3, 1, 9, 101, 7), "segments/3/1/9/index-101-7");
        assert_eq!(checkpoint(3, 1), "shards/3/1");
    }
}
