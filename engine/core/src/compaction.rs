//! Compaction: merge sealed segments into one, without the rows deleted at a snapshot. Data
//! nodes run it on segments read from the object store; a standalone shard runs the same code
//! on the segments it holds (inside a checkpoint, at its applied timestamp).

use std::sync::Arc;

use crate::error::{CoreError, Result};
use crate::pks::SegmentPks;
use crate::schema::CollectionSchema;
use crate::segment::{DeleteMarks, Segment, SegmentData, SegmentMeta};

/// The merged segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Compacted {
    /// Rows of the inputs in input order, without those deleted at the snapshot.
    pub data: SegmentData,
    /// Their keys and timestamps (the new segment's pks object).
    pub pks: SegmentPks,
    /// Kept rows deleted after the snapshot, with their delete timestamps (the new segment's
    /// delete log; empty when the snapshot is at or after every delete).
    pub deletes: DeleteMarks,
    /// Per input, the rows kept (ascending); the merged rows are these, input after input.
    pub kept: Vec<Vec<usize>>,
}

/// Merge segments (rows with their delete marks) at `snapshot`: a row is dropped iff it is
/// deleted at the snapshot (a mark with `ts <= snapshot`).
pub fn compact_segments(
    schema: &CollectionSchema,
    inputs: Vec<(SegmentData, DeleteMarks)>,
    snapshot: u64,
) -> Result<Compacted> {
    let segments: Vec<Segment> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, (data, marks))| {
            let meta = SegmentMeta::new(i as i64, 0, data.num_rows(), String::new());
            Segment::sealed(i as u64, Arc::new(data), meta, marks)
        })
        .collect();
    merge(schema, &segments.iter().collect::<Vec<_>>(), snapshot)
}

/// [`compact_segments`] over segments as they are held in memory (a segment whose vectors live
/// in its index gives them from there).
pub fn merge(schema: &CollectionSchema, segments: &[&Segment], snapshot: u64) -> Result<Compacted> {
    let pk_index = schema
        .fields
        .iter()
        .position(|f| f.is_primary)
        .ok_or_else(|| CoreError::Internal("schema has no primary key".into()))?;
    let mut data = SegmentData::empty(schema);
    let mut deletes = DeleteMarks::default();
    let mut kept = Vec::with_capacity(segments.len());
    for seg in segments {
        let d = seg.data();
        if d.columns.len() != data.columns.len() {
            return Err(CoreError::invalid(
                "segments",
                "a segment to compact does not match the schema",
            ));
        }
        let rows: Vec<usize> = (0..d.num_rows())
            .filter(|r| !seg.deleted.deleted_at(*r, snapshot))
            .collect();
        let base = data.num_rows();
        for (i, &r) in rows.iter().enumerate() {
            if let Some(ts) = seg.deleted.ts(r) {
                deletes.mark((base + i) as u32, ts);
            }
        }
        for (i, dst) in data.columns.iter_mut().enumerate() {
            dst.extend(&seg.take_column(i, &rows));
        }
        data.timestamps
            .extend(rows.iter().map(|&r| d.timestamps[r]));
        kept.push(rows);
    }
    let pks = SegmentPks::from_data(&data, pk_index)?;
    Ok(Compacted {
        data,
        pks,
        deletes,
        kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{DataType, FieldSchema};
    use crate::value::{Column, PrimaryKey};

    fn schema() -> CollectionSchema {
        CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::VarChar)
                    .with_max_length(8)
                    .primary(false),
                FieldSchema::new("v", DataType::FloatVector).with_dim(1),
            ],
            enable_dynamic_field: false,
        }
        .validate_and_normalize()
        .unwrap()
    }

    fn data(keys: &[&str], ts: u64) -> SegmentData {
        let mut d = SegmentData::empty(&schema());
        d.append(
            &[
                Column::VarChar(keys.iter().map(|k| k.to_string()).collect()),
                Column::FloatVector {
                    dim: 1,
                    data: (0..keys.len()).map(|i| i as f32).collect(),
                },
            ],
            ts,
        );
        d
    }

    #[test]
    fn drops_rows_deleted_at_the_snapshot_and_keeps_later_deletes() {
        let mut a_marks = DeleteMarks::default();
        a_marks.mark(1, 15); // "b" deleted at 15
        a_marks.mark(2, 40); // "c" deleted at 40, after the snapshot
        let mut b_marks = DeleteMarks::default();
        b_marks.mark(0, 25); // "d" deleted at 25
        let out = compact_segments(
            &schema(),
            vec![
                (data(&["a", "b", "c"], 10), a_marks),
                (data(&["d", "e"], 20), b_marks),
            ],
            30,
        )
        .unwrap();
        assert_eq!(out.kept, vec![vec![0, 2], vec![1]]);
        assert_eq!(out.data.num_rows(), 3);
        assert_eq!(out.data.timestamps, vec![10, 10, 20]);
        let keys: Vec<_> = (0..3).filter_map(|r| out.pks.pk(r)).collect();
        let s = |k: &str| PrimaryKey::Str(k.into());
        assert_eq!(keys, vec![s("a"), s("c"), s("e")]);
        assert_eq!(out.pks.timestamps, out.data.timestamps);
        assert_eq!(
            out.deletes.iter().collect::<Vec<_>>(),
            vec![(1, 40)],
            "c stays, deleted at 40"
        );
        assert_eq!(
            out.data.columns[1],
            Column::FloatVector {
                dim: 1,
                data: vec![0.0, 2.0, 1.0]
            }
        );
        // At the latest snapshot every marked row goes.
        let mut m = DeleteMarks::default();
        m.mark(0, 5);
        let out = compact_segments(&schema(), vec![(data(&["x", "y"], 1), m)], u64::MAX).unwrap();
        assert_eq!((out.data.num_rows(), out.deletes.count()), (1, 0));
    }
}
