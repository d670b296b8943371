//! Which sealed segments a delegator's shard read must cover, and whether it did: every row of
//! the shard read exactly once, never a partial or doubled answer.
//!
//! Segments overlap only through compaction: a compaction result holds the rows of the segments
//! it was compacted from. So each segment stands for a set of **origins** — itself, or (for a
//! compaction result the distribution knows the sources of) the origins of its sources. A read
//! covers the shard when every origin of every target segment is read exactly once, by the
//! query nodes serving segments or by the channel owner searching the ones it retains.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::api::{Delegation, TargetSegment};

/// Sealed segments the channel owner must not read: the served ones and, transitively, the
/// segments they were compacted from (their rows are read through the served segment).
pub(crate) fn owner_exclusions(d: &Delegation) -> Vec<i64> {
    let sources: HashMap<i64, &[i64]> = d
        .targets
        .iter()
        .map(|t| (t.segment_id, t.compacted_from.as_slice()))
        .collect();
    let mut out = BTreeSet::new();
    let mut stack: Vec<i64> = d.served.iter().map(|e| e.segment_id).collect();
    while let Some(id) = stack.pop() {
        if out.insert(id)
            && let Some(from) = sources.get(&id)
        {
            stack.extend(from.iter().copied());
        }
    }
    out.into_iter().collect()
}

/// Why a shard read does not cover the shard exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CoverageError {
    /// Rows of `segment` (origin `origin`) were read by nobody.
    Missing { segment: i64, origin: i64 },
    /// Rows of origin `origin` were read more than once, by these reads.
    Duplicate { origin: i64, reads: Vec<i64> },
}

impl std::fmt::Display for CoverageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoverageError::Missing { segment, origin } if segment == origin => {
                write!(
                    f,
                    "sealed segment {segment} was read by no query node nor the channel owner"
                )
            }
            CoverageError::Missing { segment, origin } => write!(
                f,
                "sealed segment {segment} (its source {origin}) was read by no query node nor \
                 the channel owner"
            ),
            CoverageError::Duplicate { origin, reads } => write!(
                f,
                "rows of sealed segment {origin} would be counted more than once (read through \
                 segments {reads:?})"
            ),
        }
    }
}

struct Origins<'a> {
    sources: HashMap<i64, &'a [i64]>,
    memo: HashMap<i64, BTreeSet<i64>>,
}

impl<'a> Origins<'a> {
    fn new(targets: &'a [TargetSegment]) -> Self {
        Origins {
            sources: targets
                .iter()
                .filter(|t| !t.compacted_from.is_empty())
                .map(|t| (t.segment_id, t.compacted_from.as_slice()))
                .collect(),
            memo: HashMap::new(),
        }
    }

    /// The origins of a segment (a cycle in bad input ends at the repeated segment).
    fn of(&mut self, id: i64) -> BTreeSet<i64> {
        self.walk(id, &mut HashSet::new())
    }

    fn walk(&mut self, id: i64, path: &mut HashSet<i64>) -> BTreeSet<i64> {
        if let Some(o) = self.memo.get(&id) {
            return o.clone();
        }
        let Some(from) = self.sources.get(&id).copied() else {
            return BTreeSet::from([id]);
        };
        if !path.insert(id) {
            return BTreeSet::from([id]);
        }
        let mut out = BTreeSet::new();
        for s in from {
            out.extend(self.walk(*s, path));
        }
        path.remove(&id);
        self.memo.insert(id, out.clone());
        out
    }
}

/// Check that the reads (`served`: segments the query nodes answered for, `owner`: retained
/// segments the channel owner searched) cover every target segment exactly once.
pub(crate) fn check(
    targets: &[TargetSegment],
    served: &[i64],
    owner: &[i64],
) -> Result<(), CoverageError> {
    let mut origins = Origins::new(targets);
    let mut reads: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for &id in served.iter().chain(owner) {
        for o in origins.of(id) {
            reads.entry(o).or_default().push(id);
        }
    }
    if let Some((origin, by)) = reads.iter().find(|(_, by)| by.len() > 1) {
        return Err(CoverageError::Duplicate {
            origin: *origin,
            reads: by.clone(),
        });
    }
    for t in targets {
        if let Some(origin) = origins
            .of(t.segment_id)
            .into_iter()
            .find(|o| !reads.contains_key(o))
        {
            return Err(CoverageError::Missing {
                segment: t.segment_id,
                origin,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ChannelId, ChannelRoute, DistEntry};

    fn t(id: i64, from: &[i64]) -> TargetSegment {
        TargetSegment {
            segment_id: id,
            compacted_from: from.to_vec(),
        }
    }

    #[test]
    fn plain_segments_need_one_reader_each() {
        let targets = [t(1, &[]), t(2, &[])];
        assert_eq!(check(&targets, &[1], &[2]), Ok(()));
        assert_eq!(check(&targets, &[1, 2], &[]), Ok(()));
        assert_eq!(
            check(&targets, &[1], &[]),
            Err(CoverageError::Missing {
                segment: 2,
                origin: 2
            })
        );
        assert_eq!(
            check(&targets, &[1, 2], &[2]),
            Err(CoverageError::Duplicate {
                origin: 2,
                reads: vec![2, 2]
            })
        );
        // A segment the owner sealed after the distribution was computed is just read.
        assert_eq!(check(&targets, &[1, 2], &[9]), Ok(()));
    }

    #[test]
    fn a_compaction_result_and_its_sources_count_once() {
        // 3 was compacted from 1 and 2; 5 from 3 and 4.
        let targets = [
            t(1, &[]),
            t(2, &[]),
            t(3, &[1, 2]),
            t(4, &[]),
            t(5, &[3, 4]),
        ];
        // The sources are read (the result not loaded yet) ...
        assert_eq!(check(&targets, &[1, 2], &[4]), Ok(()));
        // ... or the result, which covers its sources, transitively.
        assert_eq!(check(&targets, &[3], &[4]), Ok(()));
        assert_eq!(check(&targets, &[5], &[]), Ok(()));
        // Both: counted twice.
        assert_eq!(
            check(&targets, &[3, 1], &[4]),
            Err(CoverageError::Duplicate {
                origin: 1,
                reads: vec![3, 1]
            })
        );
        assert_eq!(
            check(&targets, &[5], &[2]),
            Err(CoverageError::Duplicate {
                origin: 2,
                reads: vec![5, 2]
            })
        );
        // Half of the sources: 3 (and 5) miss source 2.
        let e = check(&targets, &[1], &[4]).unwrap_err();
        assert_eq!(
            e,
            CoverageError::Missing {
                segment: 2,
                origin: 2
            }
        );
        assert!(e.to_string().contains("segment 2"), "{e}");
        // Sources no longer in the targets are origins of their own.
        assert_eq!(check(&[t(7, &[1, 2])], &[7], &[]), Ok(()));
        assert_eq!(
            check(&[t(7, &[1, 2])], &[1], &[]),
            Err(CoverageError::Missing {
                segment: 7,
                origin: 2
            })
        );
        // A cycle in bad input ends, and still needs a reader.
        assert!(check(&[t(1, &[2]), t(2, &[1])], &[], &[]).is_err());
    }

    #[test]
    fn the_owner_excludes_served_segments_and_their_sources() {
        let route = ChannelRoute {
            channel: ChannelId::new(1, 0),
            node: 1,
            addr: "s".into(),
            term: 1,
        };
        let d = Delegation {
            collection_id: 1,
            shard: 0,
            replica_id: 1,
            version: 1,
            channel: route,
            served: [5, 6]
                .iter()
                .map(|&id| DistEntry {
                    segment_id: id,
                    node: 2,
                    addr: "q".into(),
                })
                .collect(),
            targets: vec![
                t(1, &[]),
                t(2, &[]),
                t(3, &[1, 2]),
                t(4, &[]),
                t(5, &[3, 4]),
                t(6, &[]),
            ],
        };
        assert_eq!(owner_exclusions(&d), vec![1, 2, 3, 4, 5, 6]);
    }
}
