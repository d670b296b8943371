//! A compaction: merge sealed segments of one partition into a new one at a snapshot. Each
//! source is read whole (data file and its own delete log); the deletes of its rows after its
//! base timestamp and up to the snapshot come from the shard's delta objects, by key. Rows
//! deleted at the snapshot are dropped ([`compact_segments`]); the new segment — data file, pks
//! object and delete log (written even when empty: the kept rows' later deletes) — has
//! `base_ts = snapshot`, so query nodes apply every delta after it.

use std::sync::Arc;

use ferrovus_core::CoreError;
use ferrovus_core::compaction::compact_segments;
use ferrovus_core::delta::{self, DeltaIndex, DeltaObjectMeta};
use ferrovus_core::keys;
use ferrovus_core::segment::{DeleteMarks, SegmentData, SegmentMeta};

use super::{Inner, Progress};
use crate::api::{CollectionRecord, TaskOutput};

/// What to compact.
pub(super) struct Job<'a> {
    pub partition_id: i64,
    pub sources: &'a [SegmentMeta],
    pub deltas: &'a [DeltaObjectMeta],
    pub snapshot_ts: u64,
    pub target_segment_id: i64,
}

pub(super) async fn run(
    inner: &Inner,
    collection: &CollectionRecord,
    shard: u32,
    job: Job<'_>,
    progress: &Progress,
) -> Result<TaskOutput, CoreError> {
    let schema = Arc::new(collection.schema.clone());
    let pk_index = schema
        .fields
        .iter()
        .position(|f| f.is_primary)
        .ok_or_else(|| CoreError::invalid("schema", "the collection has no primary key"))?;
    let Some(min_base) = job.sources.iter().map(|s| s.base_ts).min() else {
        return Err(CoreError::invalid("sources", "nothing to compact"));
    };
    if let Some(s) = job
        .sources
        .iter()
        .find(|s| s.partition_id != job.partition_id)
    {
        return Err(CoreError::invalid(
            "sources",
            format!(
                "segment {} is in partition {}, the compaction is of partition {}",
                s.segment_id, s.partition_id, job.partition_id
            ),
        ));
    }
    let objects = &inner.objects;
    let snapshot = job.snapshot_ts;
    let deltas = DeltaIndex::new(
        delta::read_deltas(&**objects, job.deltas, min_base)
            .await?
            .into_iter()
            .filter(|(_, ts)| *ts <= snapshot),
    );
    progress.set(0.1);
    let mut inputs = Vec::with_capacity(job.sources.len());
    let mut rows_in = 0;
    for (i, meta) in job.sources.iter().enumerate() {
        let bytes = objects.get(&meta.data_key).await?;
        let (_, _, data) = SegmentData::decode(&bytes, &schema, &meta.data_key)?;
        drop(bytes);
        let rows = data.num_rows();
        if rows != meta.num_rows {
            return Err(CoreError::corrupted(
                &meta.data_key,
                format!(
                    "segment {} has {rows} rows, its metadata says {}",
                    meta.segment_id, meta.num_rows
                ),
            ));
        }
        let mut marks = match &meta.deletes_key {
            Some(k) => DeleteMarks::decode(&objects.get(k).await?, rows, k)?,
            None => DeleteMarks::default(),
        };
        if !deltas.is_empty() {
            for row in 0..rows {
                if let Some(pk) = data.primary_key(pk_index, row)
                    && let Some(ts) = deltas
                        .delete_ts(&pk, data.timestamps[row])
                        .filter(|ts| *ts > meta.base_ts)
                {
                    marks.mark(row as u32, ts);
                }
            }
        }
        rows_in += rows;
        inputs.push((data, marks));
        progress.set(0.1 + 0.6 * (i + 1) as f32 / job.sources.len() as f32);
    }
    let s2 = schema.clone();
    let merged = tokio::task::spawn_blocking(move || compact_segments(&s2, inputs, snapshot))
        .await
        .map_err(|e| CoreError::Internal(format!("compaction task failed: {e}")))??;
    progress.set(0.8);

    let (cid, shard) = (collection.id, shard as usize);
    let target = job.target_segment_id;
    let rows = merged.data.num_rows();
    let mut meta = SegmentMeta::new(
        target,
        job.partition_id,
        rows,
        keys::segment_data(cid, shard, target),
    );
    meta.base_ts = snapshot;
    meta.pks_key = Some(keys::segment_pks(cid, shard, target));
    meta.deletes_key = Some(keys::segment_deletes(cid, shard, target, 1));
    meta.deletes_version = 1;
    objects
        .put(
            &meta.data_key,
            merged.data.encode(target, job.partition_id, &schema).into(),
        )
        .await?;
    if let Some(k) = &meta.pks_key {
        objects.put(k, merged.pks.encode(target).into()).await?;
    }
    if let Some(k) = &meta.deletes_key {
        objects.put(k, merged.deletes.encode(rows).into()).await?;
    }
    progress.set(1.0);
    tracing::info!(
        collection_id = cid,
        shard,
        target_segment_id = target,
        rows_in,
        rows_out = rows,
        later_deletes = merged.deletes.count(),
        "compacted segment written"
    );
    Ok(TaskOutput::Compacted { segment: meta })
}
