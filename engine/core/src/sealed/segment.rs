//! One sealed segment as a query node holds it.

use std::sync::Arc;

use crate::delta::Delta;
use crate::error::{CoreError, Result};
use crate::pks::SegmentPks;
use crate::schema::CollectionSchema;
use crate::segment::{DeleteMarks, Segment, SegmentData, SegmentMeta};
use crate::store::ObjectStore;
use crate::value::PrimaryKey;
use crate::vindex::VectorIndex;

/// A sealed segment: its rows, delete marks (own delete log plus deltas applied by key),
/// attached indexes, and a primary key → rows lookup.
#[derive(Debug)]
pub struct SealedSegment {
    schema: Arc<CollectionSchema>,
    meta: SegmentMeta,
    seg: Segment,
    /// `(key, row)` sorted by key then row.
    by_pk: Vec<(PrimaryKey, u32)>,
    /// Row timestamps (deltas only delete rows written before them).
    row_ts: Vec<u64>,
}

impl SealedSegment {
    /// Load a segment's data file, its own delete log and its keys (the pks object, or the
    /// data file's key column for segments written without one).
    pub async fn load(
        objects: &dyn ObjectStore,
        schema: &CollectionSchema,
        meta: &SegmentMeta,
    ) -> Result<SealedSegment> {
        let bytes = objects.get(&meta.data_key).await?;
        let (_, _, data) = SegmentData::decode(&bytes, schema, &meta.data_key)?;
        let marks = match &meta.deletes_key {
            Some(k) => DeleteMarks::decode(&objects.get(k).await?, data.num_rows(), k)?,
            None => DeleteMarks::default(),
        };
        let pks = match &meta.pks_key {
            Some(k) => Some(SegmentPks::decode(&objects.get(k).await?, data.num_rows(), k)?.1),
            None => None,
        };
        Self::from_parts(schema, meta.clone(), data, marks, pks)
    }

    /// A segment from its decoded parts; `pks` defaults to the data's key column.
    pub fn from_parts(
        schema: &CollectionSchema,
        meta: SegmentMeta,
        data: SegmentData,
        marks: DeleteMarks,
        pks: Option<SegmentPks>,
    ) -> Result<SealedSegment> {
        let pk_index = schema.fields.iter().position(|f| f.is_primary).unwrap_or(0);
        let pks = match pks {
            Some(p) => p,
            None => SegmentPks::from_data(&data, pk_index)?,
        };
        if pks.len() != data.num_rows() || meta.num_rows != data.num_rows() {
            return Err(CoreError::corrupted(
                &meta.data_key,
                format!(
                    "segment {} has {} rows, its metadata says {} and its keys {}",
                    meta.segment_id,
                    data.num_rows(),
                    meta.num_rows,
                    pks.len()
                ),
            ));
        }
        let mut by_pk: Vec<(PrimaryKey, u32)> = (0..pks.len())
            .filter_map(|r| Some((pks.pk(r)?, r as u32)))
            .collect();
        by_pk.sort_unstable();
        let handle = meta.segment_id as u64;
        Ok(SealedSegment {
            schema: Arc::new(schema.clone()),
            seg: Segment::sealed(handle, Arc::new(data), meta.clone(), marks),
            meta,
            by_pk,
            row_ts: pks.timestamps,
        })
    }

    pub fn id(&self) -> i64 {
        self.meta().segment_id
    }

    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    /// The segment the per-segment reads take.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    pub fn num_rows(&self) -> usize {
        self.row_ts.len()
    }

    pub fn memory_bytes(&self) -> usize {
        self.seg.data().memory_bytes()
            + self
                .seg
                .indexes
                .values()
                .map(|(_, i)| i.memory_bytes())
                .sum::<usize>()
            + self.by_pk.len() * std::mem::size_of::<(PrimaryKey, u32)>()
    }

    /// Rows holding `pk`, ascending.
    pub fn rows_of<'a>(&'a self, pk: &'a PrimaryKey) -> impl Iterator<Item = usize> + 'a {
        let from = self.by_pk.partition_point(|(k, _)| k < pk);
        self.by_pk[from..]
            .iter()
            .take_while(move |(k, _)| k == pk)
            .map(|(_, r)| *r as usize)
    }

    /// Apply deletes by key: every row with the key written before the delete is deleted at
    /// the delete's timestamp (the earliest such delete wins). Returns how many marks changed.
    pub fn apply_deltas(&mut self, deltas: &[Delta]) -> usize {
        let mut changed = 0;
        for (pk, ts) in deltas {
            let from = self.by_pk.partition_point(|(k, _)| k < pk);
            for (_, row) in self.by_pk[from..].iter().take_while(|(k, _)| k == pk) {
                if self.row_ts.get(*row as usize).is_some_and(|rt| rt < ts)
                    && self.seg.deleted.mark(*row, *ts)
                {
                    changed += 1;
                }
            }
        }
        changed
    }

    /// Attach (or replace) the index of a vector field, in one step for readers; the segment
    /// drops its own copy of the vectors when the index stores them exactly.
    pub fn attach_index(
        &mut self,
        field_id: i64,
        index_id: i64,
        index: Arc<VectorIndex>,
    ) -> Result<()> {
        let schema = &self.schema;
        let fi = schema.field_index_by_id(field_id).ok_or_else(|| {
            CoreError::invalid("field_id", format!("no field with id {field_id}"))
        })?;
        let dim = schema.fields[fi].dim();
        if index.len() != self.num_rows() || index.dim() != dim {
            return Err(CoreError::invalid(
                "index",
                format!(
                    "index of {} vectors of dim {} does not fit segment {} ({} rows, dim {dim})",
                    index.len(),
                    index.dim(),
                    self.id(),
                    self.num_rows()
                ),
            ));
        }
        // A replaced index may hold the only copy of the vectors: give them back first.
        self.seg.restore_vectors(fi);
        self.seg.indexes.insert(field_id, (index_id, index.clone()));
        self.seg.release_vectors(fi, &index);
        Ok(())
    }

    /// Detach the index of a field (searches fall back to exact search over the vectors).
    pub fn detach_index(&mut self, field_id: i64) {
        if let Some(fi) = self.schema.field_index_by_id(field_id) {
            self.seg.restore_vectors(fi);
        }
        self.seg.indexes.remove(&field_id);
    }

    /// The index attached for a field: (index id, index).
    pub fn index(&self, field_id: i64) -> Option<(i64, Arc<VectorIndex>)> {
        self.seg.indexes.get(&field_id).cloned()
    }

    /// Whether the segment holds no copy of some vector column (an index serves it).
    pub fn vectors_in_index(&self) -> bool {
        !self.seg.raw_vectors.is_empty()
    }
}
