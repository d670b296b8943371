//! Tunables of the core, with defaults in code. The server's typed config embeds this.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoreConfig {
    /// A growing segment is sealed (written to the object store) at this many rows.
    pub seal_rows: usize,
    /// … or at this many bytes of column data.
    pub seal_bytes: usize,
    /// Upper bound of one group commit (bytes of encoded records).
    pub group_commit_max_bytes: usize,
    /// Sealed segments smaller than this many rows are merged by compaction.
    pub compaction_small_rows: usize,
    /// A sealed segment with more than this fraction of deleted rows is rewritten.
    pub compaction_deleted_ratio: f64,
    /// Threads for index builds (0 = all cores).
    pub index_build_threads: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            seal_rows: 200_000,
            seal_bytes: 512 * 1024 * 1024,
            group_commit_max_bytes: 16 * 1024 * 1024,
            compaction_small_rows: 10_000,
            compaction_deleted_ratio: 0.2,
            index_build_threads: 0,
        }
    }
}
