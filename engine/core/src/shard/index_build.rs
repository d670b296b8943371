//! Local index builds: build, persist and attach every index the collection defines that a
//! sealed segment lacks.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Inner;
use crate::error::{CoreError, Result};
use crate::keys;
use crate::request::IndexType;
use crate::segment::{SegmentIndexMeta, SegmentKind};
use crate::value::Column;
use crate::vindex;

/// Build, persist and attach every index the collection defines that a sealed segment lacks.
pub(super) async fn build_missing_indexes(inner: &Arc<Inner>) -> Result<()> {
    if !inner.options.local_index_builds {
        return Ok(());
    }
    loop {
        let specs = inner.indexes.read().clone();
        // Find one (segment, spec) pair to build.
        let job = {
            let st = inner.state.read();
            let mut job = None;
            'outer: for seg in st.segments.values() {
                let SegmentKind::Sealed { data, meta, .. } = &seg.kind else {
                    continue;
                };
                for spec in &specs {
                    if spec.index_type == IndexType::Flat {
                        continue;
                    }
                    if seg
                        .indexes
                        .get(&spec.field_id)
                        .is_some_and(|(id, _)| *id == spec.index_id)
                    {
                        continue;
                    }
                    // Vectors an older index of the field holds (the segment's copy was
                    // released) are gathered now, under the read lock.
                    let gathered = inner
                        .schema
                        .field_index_by_id(spec.field_id)
                        .filter(|fi| seg.raw_vectors.contains_key(fi))
                        .map(|fi| seg.vectors(fi).map(|v| v.into_owned()))
                        .transpose();
                    job = Some((
                        seg.handle,
                        meta.segment_id,
                        data.clone(),
                        gathered,
                        spec.clone(),
                    ));
                    break 'outer;
                }
            }
            job
        };
        let Some((handle, segment_id, data, gathered, spec)) = job else {
            return Ok(());
        };
        let gathered = gathered?;
        if inner.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(field_index) = inner.schema.field_index_by_id(spec.field_id) else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let rows = data.num_rows();
        tracing::info!(collection_id = inner.collection_id, segment_id, field = %spec.field_name, rows, "index build started");
        let threads = inner.env.config.index_build_threads;
        let spec2 = spec.clone();
        let index = tokio::task::spawn_blocking(move || {
            let Column::FloatVector { dim, data: vectors } = &data.columns[field_index] else {
                return Err(CoreError::Internal(
                    "vector column has the wrong type".into(),
                ));
            };
            vindex::build(
                &spec2,
                *dim,
                gathered.as_deref().unwrap_or(vectors),
                threads,
            )
        })
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))??;
        let mut buf = Vec::new();
        index.write_to(&mut buf)?;
        let key = keys::segment_index(
            inner.collection_id,
            inner.shard,
            segment_id,
            spec.field_id,
            spec.index_id,
        );
        inner.env.objects.put(&key, buf.into()).await?;
        // Record in the checkpoint (under the checkpoint lock so it cannot race a checkpoint).
        let _g = inner.checkpoint_lock.lock().await;
        let (cid, shard) = (inner.collection_id, inner.shard);
        if let Some(mut ckpt) = inner.env.checkpoints.load(cid, shard).await? {
            if let Some(m) = ckpt
                .segments
                .iter_mut()
                .find(|m| m.segment_id == segment_id)
            {
                m.indexes.retain(|i| i.field_id != spec.field_id);
                m.indexes.push(SegmentIndexMeta {
                    field_id: spec.field_id,
                    index_id: spec.index_id,
                    key: key.clone(),
                });
            }
            inner
                .env
                .checkpoints
                .commit(cid, shard, inner.options.term, &ckpt, &[])
                .await?;
        }
        {
            let mut st = inner.state.write();
            if let Some(seg) = st.segments.get_mut(&handle) {
                if let SegmentKind::Sealed { meta, .. } = &mut seg.kind {
                    meta.indexes.retain(|i| i.field_id != spec.field_id);
                    meta.indexes.push(SegmentIndexMeta {
                        field_id: spec.field_id,
                        index_id: spec.index_id,
                        key,
                    });
                }
                let index = Arc::new(index);
                seg.indexes
                    .insert(spec.field_id, (spec.index_id, index.clone()));
                seg.release_vectors(field_index, &index);
            }
        }
        tracing::info!(
            collection_id = inner.collection_id,
            segment_id,
            field = %spec.field_name,
            rows,
            seconds = started.elapsed().as_secs_f64(),
            "index build finished"
        );
    }
}
