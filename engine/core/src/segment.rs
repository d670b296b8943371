//! Segments: growing (appendable, in memory, searched exactly) and sealed (immutable, persisted
//! as one checksummed file, optionally indexed). Deleted or superseded rows carry per-segment
//! delete marks ([`DeleteMarks`]) persisted as versioned, immutable "delete log" files.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::codec::{Reader, Writer, frame, unframe};
pub use crate::deletes::DeleteMarks;
use crate::error::{CoreError, Result};
use crate::expr::RowAccess;
use crate::schema::{CollectionSchema, DataType, FieldId};
use crate::value::{Column, PrimaryKey, Value, ValueRef};
use crate::vindex::VectorIndex;

const SEGMENT_MAGIC: &[u8; 4] = b"FVSG";
const SEGMENT_VERSION: u32 = 1;

/// Rows of a segment, one column per schema field in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentData {
    pub columns: Vec<Column>,
    pub timestamps: Vec<u64>,
}

impl SegmentData {
    pub fn empty(schema: &CollectionSchema) -> Self {
        SegmentData {
            columns: schema
                .fields
                .iter()
                .map(|f| Column::empty_for(f.data_type, f.dim()))
                .collect(),
            timestamps: Vec::new(),
        }
    }

    pub fn num_rows(&self) -> usize {
        self.timestamps.len()
    }

    pub fn row(&self, row: usize) -> SegmentRow<'_> {
        SegmentRow { data: self, row }
    }

    /// Approximate memory held by the columns.
    pub fn memory_bytes(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match c {
                Column::Bool(v) => v.len(),
                Column::Int(v) => v.len() * 8,
                Column::Float(v) => v.len() * 4,
                Column::Double(v) => v.len() * 8,
                Column::VarChar(v) => v.iter().map(|s| s.len() + 24).sum(),
                Column::Json(v) => v.len() * 64,
                Column::FloatVector { data, .. } => data.len() * 4,
            })
            .sum::<usize>()
            + self.timestamps.len() * 8
    }

    pub fn encode(&self, segment_id: i64, partition_id: i64, schema: &CollectionSchema) -> Vec<u8> {
        let mut w = Writer::new();
        w.i64(segment_id);
        w.i64(partition_id);
        w.u64(self.num_rows() as u64);
        w.column(&Column::Int(
            self.timestamps.iter().map(|t| *t as i64).collect(),
        ));
        w.u32(self.columns.len() as u32);
        for (f, c) in schema.fields.iter().zip(&self.columns) {
            w.i64(f.field_id);
            w.column(c);
        }
        frame(SEGMENT_MAGIC, SEGMENT_VERSION, &w.buf)
    }

    /// Decode and verify a segment file against the schema.
    pub fn decode(
        bytes: &[u8],
        schema: &CollectionSchema,
        what: &str,
    ) -> Result<(i64, i64, SegmentData)> {
        let (version, body) = unframe(SEGMENT_MAGIC, bytes, what)?;
        if version != SEGMENT_VERSION {
            return Err(CoreError::corrupted(
                what,
                format!("unsupported segment format version {version}"),
            ));
        }
        let mut r = Reader::new(body, what);
        let segment_id = r.i64()?;
        let partition_id = r.i64()?;
        let rows = r.u64()? as usize;
        let Column::Int(ts) = r.column()? else {
            return Err(CoreError::corrupted(
                what,
                "timestamp column has the wrong type",
            ));
        };
        let n = r.u32()? as usize;
        let mut by_id: HashMap<FieldId, Column> = HashMap::new();
        for _ in 0..n {
            let id = r.i64()?;
            by_id.insert(id, r.column()?);
        }
        let mut columns = Vec::with_capacity(schema.fields.len());
        for f in &schema.fields {
            let c = by_id.remove(&f.field_id).ok_or_else(|| {
                CoreError::corrupted(what, format!("missing column for field {}", f.name))
            })?;
            if !c.fits(f.data_type, f.dim()) {
                return Err(CoreError::corrupted(
                    what,
                    format!(
                        "column {} does not hold {} values{}",
                        f.name,
                        f.data_type,
                        match f.data_type {
                            DataType::FloatVector => format!(" of dim {}", f.dim()),
                            _ => String::new(),
                        }
                    ),
                ));
            }
            if c.len() != rows {
                return Err(CoreError::corrupted(
                    what,
                    format!("column {} has {} rows, expected {rows}", f.name, c.len()),
                ));
            }
            columns.push(c);
        }
        if ts.len() != rows {
            return Err(CoreError::corrupted(
                what,
                "timestamp column length mismatch",
            ));
        }
        Ok((
            segment_id,
            partition_id,
            SegmentData {
                columns,
                timestamps: ts.into_iter().map(|t| t as u64).collect(),
            },
        ))
    }

    /// Append rows (schema-ordered columns of equal length) with timestamp `ts`.
    pub fn append<'a>(&mut self, rows: impl IntoIterator<Item = &'a Column>, ts: u64) {
        let mut n = None;
        for (dst, src) in self.columns.iter_mut().zip(rows) {
            n.get_or_insert(src.len());
            dst.extend(src);
        }
        self.timestamps
            .extend(std::iter::repeat_n(ts, n.unwrap_or(0)));
    }

    pub fn primary_key(&self, pk_index: usize, row: usize) -> Option<PrimaryKey> {
        self.columns.get(pk_index).and_then(|c| c.primary_key(row))
    }
}

/// One row of a segment, for the expression evaluator.
pub struct SegmentRow<'a> {
    data: &'a SegmentData,
    row: usize,
}

impl RowAccess for SegmentRow<'_> {
    fn get(&self, field_index: usize) -> ValueRef<'_> {
        self.data
            .columns
            .get(field_index)
            .map_or(ValueRef::Null, |c| c.get(self.row))
    }
}

/// Where a sealed segment lives in the object store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentMeta {
    pub segment_id: i64,
    pub partition_id: i64,
    pub num_rows: usize,
    pub data_key: String,
    /// Latest persisted delete log, if any rows were deleted.
    pub deletes_key: Option<String>,
    pub deletes_version: u64,
    /// Persisted indexes: field id → (index id, object key).
    #[serde(default)]
    pub indexes: Vec<SegmentIndexMeta>,
    /// Every row has a timestamp `<= base_ts`, and every delete of its rows at or before
    /// `base_ts` is in the segment's own delete log; later deletes come from deltas by key.
    #[serde(default)]
    pub base_ts: u64,
    /// The segment's primary keys and row timestamps (absent for segments written before).
    #[serde(default)]
    pub pks_key: Option<String>,
}

impl SegmentMeta {
    /// A segment without deletes or indexes yet.
    pub fn new(segment_id: i64, partition_id: i64, num_rows: usize, data_key: String) -> Self {
        SegmentMeta {
            segment_id,
            partition_id,
            num_rows,
            data_key,
            deletes_key: None,
            deletes_version: 0,
            indexes: Vec::new(),
            base_ts: 0,
            pks_key: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentIndexMeta {
    pub field_id: FieldId,
    pub index_id: i64,
    pub key: String,
}

/// A segment as a shard (or a query node) holds it in memory.
#[derive(Debug)]
pub struct Segment {
    /// In-memory handle (stable for the process lifetime; not persisted).
    pub handle: u64,
    pub partition_id: i64,
    pub kind: SegmentKind,
    pub deleted: DeleteMarks,
    /// Vector indexes by field id (sealed segments only).
    pub indexes: HashMap<FieldId, (i64, Arc<VectorIndex>)>,
    /// Vector columns (by field index) whose values this sealed segment no longer holds itself
    /// because an attached index stores the same vectors exactly: one copy of the vectors in
    /// memory, not two. Read them with [`Segment::value`], [`Segment::vectors`] and
    /// [`Segment::take_column`], never from `data().columns` directly.
    pub raw_vectors: HashMap<usize, Arc<VectorIndex>>,
    /// The largest row timestamp (a read at or after it needs no per-row timestamp check).
    max_row_ts: u64,
}

#[derive(Debug)]
pub enum SegmentKind {
    Growing(SegmentData),
    Sealed {
        data: Arc<SegmentData>,
        meta: SegmentMeta,
        /// Generation of the delete marks last persisted as the segment's delete log.
        persisted_generation: u64,
    },
}

impl Segment {
    /// An empty growing segment.
    pub fn growing(handle: u64, partition_id: i64, schema: &CollectionSchema) -> Segment {
        Segment {
            handle,
            partition_id,
            kind: SegmentKind::Growing(SegmentData::empty(schema)),
            deleted: DeleteMarks::default(),
            indexes: HashMap::new(),
            raw_vectors: HashMap::new(),
            max_row_ts: 0,
        }
    }

    /// A sealed segment over persisted (or freshly written) data; its delete marks are the
    /// persisted ones.
    pub fn sealed(
        handle: u64,
        data: Arc<SegmentData>,
        meta: SegmentMeta,
        deleted: DeleteMarks,
    ) -> Segment {
        let max_row_ts = data.timestamps.iter().copied().max().unwrap_or(0);
        Segment {
            handle,
            partition_id: meta.partition_id,
            kind: SegmentKind::Sealed {
                data,
                meta,
                persisted_generation: deleted.generation(),
            },
            deleted,
            indexes: HashMap::new(),
            raw_vectors: HashMap::new(),
            max_row_ts,
        }
    }

    /// Append rows to a growing segment (no-op on a sealed one).
    pub fn append<'a>(&mut self, rows: impl IntoIterator<Item = &'a Column>, ts: u64) {
        if let SegmentKind::Growing(data) = &mut self.kind {
            data.append(rows, ts);
            self.max_row_ts = self.max_row_ts.max(ts);
        }
    }

    /// The largest row timestamp.
    pub fn max_row_ts(&self) -> u64 {
        self.max_row_ts
    }

    pub fn data(&self) -> &SegmentData {
        match &self.kind {
            SegmentKind::Growing(d) => d,
            SegmentKind::Sealed { data, .. } => data,
        }
    }
    pub fn is_sealed(&self) -> bool {
        matches!(self.kind, SegmentKind::Sealed { .. })
    }
    pub fn segment_id(&self) -> Option<i64> {
        match &self.kind {
            SegmentKind::Sealed { meta, .. } => Some(meta.segment_id),
            SegmentKind::Growing(_) => None,
        }
    }
    pub fn live_rows(&self) -> usize {
        self.data().num_rows() - self.deleted.count()
    }

    /// The value of column `field_index` at `row` (vectors from the index that holds them).
    pub fn value(&self, field_index: usize, row: usize) -> Value {
        if let Some(idx) = self.raw_vectors.get(&field_index) {
            return match u32::try_from(row) {
                Ok(r) if row < idx.len() => Value::FloatVector(idx.vector(r).to_vec()),
                _ => Value::Null,
            };
        }
        match self.data().columns.get(field_index).map(|c| c.get(row)) {
            Some(ValueRef::Bool(b)) => Value::Bool(b),
            Some(ValueRef::Int(i)) => Value::Int(i),
            Some(ValueRef::Float(f)) => Value::Float(f),
            Some(ValueRef::Str(s)) => Value::String(s.to_string()),
            Some(ValueRef::Json(j)) => Value::Json(j.clone()),
            Some(ValueRef::FloatVector(v)) => Value::FloatVector(v.to_vec()),
            Some(ValueRef::Null) | None => Value::Null,
        }
    }

    /// Every vector of column `field_index`, row-major: borrowed from the column, or gathered
    /// from the index that holds them (index rebuilds and searches with another metric only).
    pub fn vectors(&self, field_index: usize) -> Result<Cow<'_, [f32]>> {
        if let Some(idx) = self.raw_vectors.get(&field_index) {
            return Ok(Cow::Owned(gather(idx, 0..idx.len())));
        }
        match self.data().columns.get(field_index) {
            Some(Column::FloatVector { data, .. }) => Ok(Cow::Borrowed(data)),
            _ => Err(CoreError::Internal(format!(
                "column {field_index} is not a vector column"
            ))),
        }
    }

    /// Rows `rows` of column `field_index` as a new column (compaction).
    pub fn take_column(&self, field_index: usize, rows: &[usize]) -> Column {
        match self.raw_vectors.get(&field_index) {
            Some(idx) => Column::FloatVector {
                dim: idx.dim(),
                data: gather(idx, rows.iter().copied()),
            },
            None => self.data().columns[field_index].take(rows),
        }
    }

    /// Drop the segment's own copy of vector column `field_index` when `index` (built over it)
    /// stores the same vectors exactly. Needs the only reference to the segment's data (a
    /// checkpoint that is still writing the segment file holds another); returns whether the
    /// column was released.
    pub fn release_vectors(&mut self, field_index: usize, index: &Arc<VectorIndex>) -> bool {
        if self.raw_vectors.contains_key(&field_index) || !index.has_raw_vectors() {
            return false;
        }
        let SegmentKind::Sealed { data, .. } = &mut self.kind else {
            return false;
        };
        let rows = data.num_rows();
        let Some(d) = Arc::get_mut(data) else {
            return false;
        };
        match d.columns.get_mut(field_index) {
            Some(Column::FloatVector { dim, data })
                if *dim == index.dim() && index.len() == rows =>
            {
                *data = Vec::new();
                self.raw_vectors.insert(field_index, index.clone());
                true
            }
            _ => false,
        }
    }

    /// Let every attached index that stores its column's vectors exactly serve them, dropping
    /// the segment's own copy (see [`Segment::release_vectors`]).
    pub fn release_indexed_vectors(&mut self, schema: &CollectionSchema) {
        let attached: Vec<(i64, Arc<VectorIndex>)> = self
            .indexes
            .iter()
            .map(|(fid, (_, idx))| (*fid, idx.clone()))
            .collect();
        for (field_id, idx) in attached {
            if let Some(fi) = schema.field_index_by_id(field_id) {
                self.release_vectors(fi, &idx);
            }
        }
    }

    /// Put vector column `field_index` back into the segment (its index is being dropped).
    pub fn restore_vectors(&mut self, field_index: usize) {
        let Some(idx) = self.raw_vectors.remove(&field_index) else {
            return;
        };
        if let SegmentKind::Sealed { data, .. } = &mut self.kind
            && let Some(Column::FloatVector { data: v, .. }) =
                Arc::make_mut(data).columns.get_mut(field_index)
        {
            *v = gather(&idx, 0..idx.len());
        }
    }
}

/// Vectors of `rows` of `idx`, row-major.
fn gather(idx: &VectorIndex, rows: impl Iterator<Item = usize>) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.size_hint().0 * idx.dim());
    for r in rows {
        out.extend_from_slice(idx.vector(r as u32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FieldSchema;

    fn schema() -> CollectionSchema {
        CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("title", DataType::VarChar).with_max_length(10),
                FieldSchema::new("v", DataType::FloatVector).with_dim(2),
            ],
            enable_dynamic_field: false,
        }
        .validate_and_normalize()
        .unwrap()
    }

    #[test]
    fn segment_file_round_trip_and_corruption() {
        let s = schema();
        let mut d = SegmentData::empty(&s);
        d.append(
            &vec![
                Column::Int(vec![1, 2]),
                Column::VarChar(vec!["a".into(), "b".into()]),
                Column::FloatVector {
                    dim: 2,
                    data: vec![1.0, 2.0, 3.0, 4.0],
                },
            ],
            42,
        );
        let bytes = d.encode(9, 1, &s);
        let (id, part, back) = SegmentData::decode(&bytes, &s, "seg").unwrap();
        assert_eq!((id, part), (9, 1));
        assert_eq!(back, d);
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        let e = SegmentData::decode(&bad, &s, "segments/9")
            .unwrap_err()
            .to_string();
        assert!(e.contains("segments/9") && e.contains("checksum"), "{e}");
    }
}
