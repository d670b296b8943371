//! A shard ("channel") of a collection: its write-ahead log, its growing and sealed segments,
//! the primary-key map that makes the latest write of a key the only visible one, checkpoints
//! (seal + persist + log truncation), recovery, and the per-shard half of search and query.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::config::CoreConfig;
use crate::error::{CoreError, Result};
use crate::expr::Plan;
use crate::request::{IndexSpec, IndexType, MetricType};
use crate::schema::CollectionSchema;
use crate::segment::{
    DeleteBits, Segment, SegmentData, SegmentIndexMeta, SegmentKind, SegmentMeta,
};
use crate::store::{MetaStore, ObjectStore};
use crate::tso::{IdAllocator, TimestampOracle};
use crate::value::{Column, PrimaryKey};
use crate::vindex::{self, Bitset, VectorIndex};
use crate::wal::{Wal, WalRecord};

/// Shared services a shard needs.
#[derive(Debug, Clone)]
pub struct ShardEnv {
    pub objects: Arc<dyn ObjectStore>,
    pub meta: Arc<dyn MetaStore>,
    pub tso: Arc<TimestampOracle>,
    pub ids: Arc<IdAllocator>,
    pub config: Arc<CoreConfig>,
}

/// Persisted state of a shard: what the log replay starts from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    pub next_lsn: u64,
    pub segments: Vec<SegmentMeta>,
}

#[derive(Debug)]
struct ShardState {
    segments: BTreeMap<u64, Segment>,
    growing: HashMap<i64, u64>,
    next_handle: u64,
    pk_map: HashMap<PrimaryKey, (u64, u32)>,
    /// Next LSN to apply.
    next_lsn: u64,
    /// Highest applied write timestamp.
    applied_ts: u64,
}

impl ShardState {
    fn growing_for(&mut self, schema: &CollectionSchema, partition_id: i64) -> u64 {
        if let Some(h) = self.growing.get(&partition_id) {
            return *h;
        }
        let handle = self.next_handle;
        self.next_handle += 1;
        self.segments.insert(
            handle,
            Segment {
                handle,
                partition_id,
                kind: SegmentKind::Growing(SegmentData::empty(schema)),
                deleted: DeleteBits::default(),
                indexes: HashMap::new(),
                raw_vectors: HashMap::new(),
            },
        );
        self.growing.insert(partition_id, handle);
        handle
    }

    fn mark_deleted(&mut self, loc: (u64, u32)) {
        if let Some(seg) = self.segments.get_mut(&loc.0) {
            seg.deleted.set(loc.1 as usize);
        }
    }

    fn apply(&mut self, schema: &CollectionSchema, pk_index: usize, record: &WalRecord) {
        match record {
            WalRecord::Insert {
                partition_id,
                ts,
                rows,
            }
            | WalRecord::Upsert {
                partition_id,
                ts,
                rows,
            } => {
                let handle = self.growing_for(schema, *partition_id);
                let n = rows.num_rows();
                let base = self
                    .segments
                    .get(&handle)
                    .map_or(0, |s| s.data().num_rows());
                if let Some((_, pk_col)) = rows.columns.get(pk_index) {
                    for i in 0..n {
                        if let Some(pk) = pk_col.primary_key(i)
                            && let Some(old) = self.pk_map.insert(pk, (handle, (base + i) as u32))
                        {
                            self.mark_deleted(old);
                        }
                    }
                }
                if let Some(Segment {
                    kind: SegmentKind::Growing(data),
                    ..
                }) = self.segments.get_mut(&handle)
                {
                    data.append(rows.columns.iter().map(|(_, c)| c), *ts);
                }
                self.applied_ts = self.applied_ts.max(*ts);
            }
            WalRecord::Delete { ts, pks } => {
                for pk in pks {
                    if let Some(loc) = self.pk_map.remove(pk) {
                        self.mark_deleted(loc);
                    }
                }
                self.applied_ts = self.applied_ts.max(*ts);
            }
        }
    }
}

struct WriteReq {
    record: WalRecord,
    bytes: usize,
    ack: oneshot::Sender<Result<u64>>,
}

/// Shard internals shared with its background tasks.
struct Inner {
    collection_id: i64,
    shard: usize,
    schema: Arc<CollectionSchema>,
    pk_index: usize,
    env: ShardEnv,
    wal: Wal,
    state: RwLock<ShardState>,
    indexes: Arc<RwLock<Vec<IndexSpec>>>,
    checkpoint_lock: tokio::sync::Mutex<()>,
    flush_scheduled: AtomicBool,
    closed: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("collection_id", &self.collection_id)
            .field("shard", &self.shard)
            .finish()
    }
}

/// One shard of a collection.
#[derive(Debug)]
pub struct Shard {
    inner: Arc<Inner>,
    tx: mpsc::Sender<WriteReq>,
}

/// One search hit inside a shard, with the requested output values already extracted.
#[derive(Debug, Clone)]
pub struct ShardHit {
    pub score: f32,
    pub pk: PrimaryKey,
    pub values: Vec<crate::value::Value>,
}

/// A search prepared against the schema (shared by all shards).
pub struct PreparedSearch<'a> {
    pub field_index: usize,
    pub metric: MetricType,
    pub queries: &'a [f32],
    pub num_queries: usize,
    pub k: usize,
    pub ef: usize,
    pub plan: &'a Plan,
    pub partitions: Option<HashSet<i64>>,
    pub output: &'a [usize],
    pub ignore_growing: bool,
    pub radius: Option<f32>,
    pub range_filter: Option<f32>,
}

pub fn checkpoint_key(collection_id: i64, shard: usize) -> String {
    format!("shards/{collection_id}/{shard}")
}

impl Shard {
    /// Open (or create) a shard: load its checkpoint and sealed segments, replay its log.
    pub async fn open(
        collection_id: i64,
        shard: usize,
        schema: Arc<CollectionSchema>,
        indexes: Arc<RwLock<Vec<IndexSpec>>>,
        env: ShardEnv,
    ) -> Result<Shard> {
        let key = checkpoint_key(collection_id, shard);
        let ckpt: ShardCheckpoint = match env.meta.get(&key).await? {
            Some(kv) => serde_json::from_slice(&kv.value)
                .map_err(|e| CoreError::corrupted(&key, e.to_string()))?,
            None => ShardCheckpoint::default(),
        };
        let pk_index = schema.fields.iter().position(|f| f.is_primary).unwrap_or(0);
        let mut state = ShardState {
            segments: BTreeMap::new(),
            growing: HashMap::new(),
            next_handle: 1,
            pk_map: HashMap::new(),
            next_lsn: ckpt.next_lsn,
            applied_ts: 0,
        };
        let specs = indexes.read().clone();
        for meta in &ckpt.segments {
            let bytes = env.objects.get(&meta.data_key).await?;
            let (_, _, data) = SegmentData::decode(&bytes, &schema, &meta.data_key)?;
            let deleted = match &meta.deletes_key {
                Some(k) => DeleteBits::decode(&env.objects.get(k).await?, data.num_rows(), k)?,
                None => DeleteBits::default(),
            };
            let mut seg_indexes = HashMap::new();
            for im in &meta.indexes {
                if !specs.iter().any(|s| s.index_id == im.index_id) {
                    continue; // index dropped since
                }
                let bytes = env.objects.get(&im.key).await?;
                let idx = tokio::task::spawn_blocking(move || VectorIndex::load(bytes))
                    .await
                    .map_err(|e| CoreError::Internal(e.to_string()))??;
                seg_indexes.insert(im.field_id, (im.index_id, Arc::new(idx)));
            }
            let handle = state.next_handle;
            state.next_handle += 1;
            let persisted_deletes = deleted.count();
            let mut seg = Segment {
                handle,
                partition_id: meta.partition_id,
                kind: SegmentKind::Sealed {
                    data: Arc::new(data),
                    meta: meta.clone(),
                    persisted_deletes,
                },
                deleted,
                indexes: seg_indexes,
                raw_vectors: HashMap::new(),
            };
            release_indexed_vectors(&mut seg, &schema);
            state.segments.insert(handle, seg);
        }
        // Rebuild the primary-key map from live sealed rows.
        let mut pk_updates = Vec::new();
        for (h, seg) in &state.segments {
            let d = seg.data();
            for row in 0..d.num_rows() {
                if !seg.deleted.get(row)
                    && let Some(pk) = d.primary_key(pk_index, row)
                {
                    pk_updates.push((pk, (*h, row as u32)));
                }
            }
        }
        for (pk, loc) in pk_updates {
            if let Some(old) = state.pk_map.insert(pk, loc) {
                state.mark_deleted(old);
            }
        }
        let wal = Wal::new(env.objects.clone(), format!("wal/{collection_id}/{shard}"));
        let (entries, next) = wal.replay(ckpt.next_lsn).await?;
        let replayed = entries.len();
        for e in &entries {
            state.apply(&schema, pk_index, &e.record);
        }
        state.next_lsn = next.max(ckpt.next_lsn);
        if replayed > 0 {
            tracing::info!(
                collection_id,
                shard,
                replayed,
                next_lsn = state.next_lsn,
                "replayed write-ahead log"
            );
        }
        let inner = Arc::new(Inner {
            collection_id,
            shard,
            schema,
            pk_index,
            env,
            wal,
            state: RwLock::new(state),
            indexes,
            checkpoint_lock: tokio::sync::Mutex::new(()),
            flush_scheduled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(write_pipeline(inner.clone(), rx));
        let shard = Shard { inner, tx };
        shard.schedule_index_builds();
        Ok(shard)
    }

    /// Append a record durably and apply it; returns its timestamp. The record's own `ts` is
    /// replaced by the one the pipeline assigns, so timestamps follow log order.
    pub async fn write(&self, record: WalRecord, bytes: usize) -> Result<u64> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(WriteReq { record, bytes, ack })
            .await
            .map_err(|_| CoreError::Internal("shard is closed".into()))?;
        rx.await
            .map_err(|_| CoreError::Internal("shard write pipeline stopped".into()))?
    }

    pub fn num_rows(&self) -> usize {
        self.inner.state.read().pk_map.len()
    }

    /// Persist growing segments and deletes, then truncate the log.
    pub async fn flush(&self) -> Result<()> {
        checkpoint(&self.inner).await
    }

    pub fn schedule_index_builds(&self) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Err(e) = build_missing_indexes(&inner).await {
                tracing::error!(collection_id = inner.collection_id, shard = inner.shard, error = %e, "index build failed");
            }
        });
    }

    /// Detach a dropped index from every segment (its files become garbage at the next
    /// checkpoint's index update or are ignored on recovery, since the spec is gone).
    pub fn detach_index(&self, field_id: i64, index_id: i64) {
        let field_index = self.inner.schema.field_index_by_id(field_id);
        let mut st = self.inner.state.write();
        for seg in st.segments.values_mut() {
            if seg
                .indexes
                .get(&field_id)
                .is_some_and(|(id, _)| *id == index_id)
            {
                if let Some(fi) = field_index {
                    seg.restore_vectors(fi);
                }
                seg.indexes.remove(&field_id);
            }
        }
    }

    /// (indexed rows, total sealed rows) for an index id.
    pub fn index_progress(&self, index_id: i64, field_id: i64) -> (usize, usize) {
        let st = self.inner.state.read();
        let mut done = 0;
        let mut total = 0;
        for seg in st.segments.values().filter(|s| s.is_sealed()) {
            total += seg.data().num_rows();
            if seg
                .indexes
                .get(&field_id)
                .is_some_and(|(id, _)| *id == index_id)
            {
                done += seg.data().num_rows();
            }
        }
        (done, total)
    }

    /// Segment ids and row counts (sealed: persisted id; growing: negative handle).
    pub fn segment_infos(&self) -> Vec<(i64, i64, usize, bool)> {
        let st = self.inner.state.read();
        st.segments
            .values()
            .map(|s| {
                (
                    s.segment_id().unwrap_or(-(s.handle as i64)),
                    s.partition_id,
                    s.data().num_rows(),
                    s.is_sealed(),
                )
            })
            .collect()
    }

    /// Sealed rows whose vectors (of some field) live only in an attached index.
    pub fn vectors_in_index_rows(&self) -> usize {
        let st = self.inner.state.read();
        st.segments
            .values()
            .filter(|s| !s.raw_vectors.is_empty())
            .map(|s| s.data().num_rows())
            .sum()
    }

    pub fn memory_bytes(&self) -> usize {
        let st = self.inner.state.read();
        st.segments
            .values()
            .map(|s| {
                s.data().memory_bytes()
                    + s.indexes
                        .values()
                        .map(|(_, i)| i.memory_bytes())
                        .sum::<usize>()
            })
            .sum()
    }

    /// Delete every object of this shard (collection dropped).
    pub async fn destroy(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::SeqCst);
        let _g = self.inner.checkpoint_lock.lock().await;
        self.inner.wal.destroy().await?;
        let prefix = format!(
            "segments/{}/{}/",
            self.inner.collection_id, self.inner.shard
        );
        for k in self.inner.env.objects.list(&prefix).await? {
            self.inner.env.objects.delete(&k).await?;
        }
        self.inner
            .env
            .meta
            .delete(&checkpoint_key(self.inner.collection_id, self.inner.shard))
            .await
    }

    /// Drop all rows of a partition (partition dropped): deletes them like a delete would.
    pub async fn drop_partition(&self, partition_id: i64) -> Result<()> {
        let pks: Vec<PrimaryKey> = {
            let st = self.inner.state.read();
            st.pk_map
                .iter()
                .filter(|(_, (h, _))| {
                    st.segments
                        .get(h)
                        .is_some_and(|s| s.partition_id == partition_id)
                })
                .map(|(pk, _)| pk.clone())
                .collect()
        };
        if !pks.is_empty() {
            self.write(WalRecord::Delete { ts: 0, pks }, 0).await?;
        }
        Ok(())
    }

    /// Primary keys of live rows matching `plan` (for delete by filter).
    pub fn matching_pks(&self, plan: &Plan, partitions: &Option<HashSet<i64>>) -> Vec<PrimaryKey> {
        let st = self.inner.state.read();
        let mut out = Vec::new();
        for_each_live_match(&st, plan, partitions, |seg, row| {
            if let Some(pk) = seg.data().primary_key(self.inner.pk_index, row) {
                out.push(pk);
            }
        });
        out
    }

    /// Top `k` hits per query in this shard, best first, with output values.
    pub fn search(&self, req: &PreparedSearch<'_>) -> Result<Vec<Vec<ShardHit>>> {
        let st = self.inner.state.read();
        let mut per_query: Vec<Vec<(f32, u64, u32)>> = vec![Vec::new(); req.num_queries];
        let dim = self.inner.schema.fields[req.field_index].dim();
        let field_id = self.inner.schema.fields[req.field_index].field_id;
        for seg in st.segments.values() {
            if req
                .partitions
                .as_ref()
                .is_some_and(|p| !p.contains(&seg.partition_id))
            {
                continue;
            }
            if req.ignore_growing && !seg.is_sealed() {
                continue;
            }
            let d = seg.data();
            let n = d.num_rows();
            if n == 0 || seg.deleted.count() == n {
                continue;
            }
            let filter = allowed_rows(seg, req.plan);
            if filter.as_ref().is_some_and(|f| f.count_ones() == 0) {
                continue;
            }
            let results = match seg.indexes.get(&field_id) {
                Some((_, idx)) if idx.metric() == req.metric => {
                    idx.search(req.queries, req.k, req.ef, filter.as_ref())?
                }
                _ => {
                    let vectors = seg.vectors(req.field_index)?;
                    vindex::flat_search(
                        &vectors,
                        dim,
                        req.metric,
                        req.queries,
                        req.k,
                        filter.as_ref(),
                    )?
                }
            };
            for (q, hits) in results.into_iter().enumerate() {
                if let Some(list) = per_query.get_mut(q) {
                    list.extend(
                        hits.into_iter()
                            .map(|(off, score)| (score, seg.handle, off)),
                    );
                }
            }
        }
        let metric = req.metric;
        let mut out = Vec::with_capacity(req.num_queries);
        for mut list in per_query {
            if let Some(r) = req.radius {
                list.retain(|(s, _, _)| in_range(metric, *s, r, req.range_filter));
            }
            list.sort_by(|a, b| rank(metric, a.0, b.0));
            list.truncate(req.k);
            let hits = list
                .into_iter()
                .filter_map(|(score, h, off)| {
                    let seg = st.segments.get(&h)?;
                    let d = seg.data();
                    let pk = d.primary_key(self.inner.pk_index, off as usize)?;
                    let values = req
                        .output
                        .iter()
                        .map(|&fi| seg.value(fi, off as usize))
                        .collect();
                    Some(ShardHit { score, pk, values })
                })
                .collect();
            out.push(hits);
        }
        Ok(out)
    }

    /// Rows matching `plan`: (pk, output values), or only the count when `count_only`.
    pub fn query(
        &self,
        plan: &Plan,
        partitions: &Option<HashSet<i64>>,
        output: &[usize],
        count_only: bool,
    ) -> (usize, Vec<(PrimaryKey, Vec<crate::value::Value>)>) {
        let st = self.inner.state.read();
        if let Some(keys) = plan.primary_keys() {
            let mut rows = Vec::new();
            let mut seen = HashSet::new();
            for pk in keys {
                if !seen.insert(pk.clone()) {
                    continue;
                }
                if let Some((h, off)) = st.pk_map.get(&pk)
                    && let Some(seg) = st.segments.get(h)
                {
                    if partitions
                        .as_ref()
                        .is_some_and(|p| !p.contains(&seg.partition_id))
                    {
                        continue;
                    }
                    let vals = if count_only {
                        Vec::new()
                    } else {
                        output
                            .iter()
                            .map(|&fi| seg.value(fi, *off as usize))
                            .collect()
                    };
                    rows.push((pk, vals));
                }
            }
            return (rows.len(), rows);
        }
        let mut count = 0;
        let mut rows = Vec::new();
        for_each_live_match(&st, plan, partitions, |seg, row| {
            count += 1;
            if !count_only && let Some(pk) = seg.data().primary_key(self.inner.pk_index, row) {
                rows.push((pk, output.iter().map(|&fi| seg.value(fi, row)).collect()));
            }
        });
        (count, rows)
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
    }
}

/// Call `f` for every live row of the selected partitions that matches `plan`.
fn for_each_live_match(
    st: &ShardState,
    plan: &Plan,
    partitions: &Option<HashSet<i64>>,
    mut f: impl FnMut(&Segment, usize),
) {
    let all = plan.is_match_all();
    for seg in st.segments.values() {
        if partitions
            .as_ref()
            .is_some_and(|p| !p.contains(&seg.partition_id))
        {
            continue;
        }
        let d = seg.data();
        for row in 0..d.num_rows() {
            if !seg.deleted.get(row) && (all || plan.eval(&d.row(row))) {
                f(seg, row);
            }
        }
    }
}

fn rank(metric: MetricType, a: f32, b: f32) -> std::cmp::Ordering {
    let o = a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal);
    if metric.higher_is_better() {
        o.reverse()
    } else {
        o
    }
}

/// Milvus range search: L2 keeps `range_filter <= d < radius`; IP/COSINE keep
/// `radius < s <= range_filter`.
fn in_range(metric: MetricType, s: f32, radius: f32, range_filter: Option<f32>) -> bool {
    if metric.higher_is_better() {
        s > radius && range_filter.is_none_or(|rf| s <= rf)
    } else {
        s < radius && range_filter.is_none_or(|rf| s >= rf)
    }
}

/// Rows of `seg` that are live and match `plan`; `None` when every row qualifies.
fn allowed_rows(seg: &Segment, plan: &Plan) -> Option<Bitset> {
    let d = seg.data();
    let n = d.num_rows();
    if seg.deleted.count() == 0 && plan.is_match_all() {
        return None;
    }
    let mut bits = Bitset::new(n);
    let all = plan.is_match_all();
    for row in 0..n {
        if !seg.deleted.get(row) && (all || plan.eval(&d.row(row))) {
            bits.set(row, true);
        }
    }
    Some(bits)
}

async fn write_pipeline(inner: Arc<Inner>, mut rx: mpsc::Receiver<WriteReq>) {
    let max_bytes = inner.env.config.group_commit_max_bytes;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut bytes = batch[0].bytes;
        while bytes < max_bytes {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.bytes;
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let n = batch.len() as u32;
        let last_ts = match inner.env.tso.alloc(n).await {
            Ok(t) => t,
            Err(e) => {
                let msg = e.to_string();
                for r in batch {
                    let _ = r.ack.send(Err(CoreError::Storage(msg.clone())));
                }
                continue;
            }
        };
        let first_ts = last_ts + 1 - u64::from(n);
        for (i, r) in batch.iter_mut().enumerate() {
            let ts = first_ts + i as u64;
            match &mut r.record {
                WalRecord::Insert { ts: t, .. }
                | WalRecord::Delete { ts: t, .. }
                | WalRecord::Upsert { ts: t, .. } => *t = ts,
            }
        }
        let payloads: Vec<Vec<u8>> = batch.iter().map(|r| r.record.encode()).collect();
        let first_lsn = inner.state.read().next_lsn;
        let res = inner.wal.append_group(first_lsn, &payloads).await;
        {
            let mut st = inner.state.write();
            // LSNs are consumed even on failure: the object may exist although the put failed.
            st.next_lsn = first_lsn + u64::from(n);
            if res.is_ok() {
                for r in &batch {
                    st.apply(&inner.schema, inner.pk_index, &r.record);
                }
            }
        }
        match res {
            Ok(()) => {
                for (i, r) in batch.into_iter().enumerate() {
                    let _ = r.ack.send(Ok(first_ts + i as u64));
                }
            }
            Err(e) => {
                tracing::error!(collection_id = inner.collection_id, shard = inner.shard, error = %e, "write-ahead log append failed");
                let msg = e.to_string();
                for r in batch {
                    let _ = r.ack.send(Err(CoreError::Storage(msg.clone())));
                }
            }
        }
        maybe_schedule_flush(&inner);
    }
}

fn maybe_schedule_flush(inner: &Arc<Inner>) {
    let (rows, bytes) = {
        let st = inner.state.read();
        st.growing
            .values()
            .filter_map(|h| st.segments.get(h))
            .fold((0, 0), |(r, b), s| {
                (r + s.data().num_rows(), b + s.data().memory_bytes())
            })
    };
    if (rows >= inner.env.config.seal_rows || bytes >= inner.env.config.seal_bytes)
        && !inner.flush_scheduled.swap(true, Ordering::SeqCst)
    {
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Err(e) = checkpoint(&inner).await {
                tracing::error!(collection_id = inner.collection_id, shard = inner.shard, error = %e, "automatic flush failed");
            }
            inner.flush_scheduled.store(false, Ordering::SeqCst);
        });
    }
}

/// Seal growing segments, persist them and changed delete logs, commit the checkpoint, truncate
/// the log. Crash-safe at every step: the checkpoint record is the commit point.
async fn checkpoint(inner: &Arc<Inner>) -> Result<()> {
    let _g = inner.checkpoint_lock.lock().await;
    if inner.closed.load(Ordering::SeqCst) {
        return Ok(());
    }
    // 1. Under the lock: seal growing segments and snapshot what must be written.
    let growing: Vec<(u64, i64)> = {
        let st = inner.state.read();
        st.growing.iter().map(|(p, h)| (*h, *p)).collect()
    };
    let mut new_ids = Vec::new();
    for _ in &growing {
        new_ids.push(inner.env.ids.alloc(1).await?);
    }
    // Ids for compacted segments: at most one per partition.
    let partitions: HashSet<i64> = inner
        .state
        .read()
        .segments
        .values()
        .map(|s| s.partition_id)
        .collect();
    let compact_first = inner.env.ids.alloc(partitions.len() as u32 + 1).await?;
    let mut compacted_garbage = Vec::new();
    let (next_lsn, to_write, delete_snapshots, mut metas) = {
        let mut st = inner.state.write();
        let mut to_write = Vec::new();
        for ((handle, partition_id), seg_id) in growing.iter().zip(&new_ids) {
            st.growing.remove(partition_id);
            let Some(seg) = st.segments.get_mut(handle) else {
                continue;
            };
            let SegmentKind::Growing(data) = std::mem::replace(
                &mut seg.kind,
                SegmentKind::Growing(SegmentData {
                    columns: vec![],
                    timestamps: vec![],
                }),
            ) else {
                continue;
            };
            if data.num_rows() == 0 {
                st.segments.remove(handle);
                continue;
            }
            let data = Arc::new(data);
            let meta = SegmentMeta {
                segment_id: *seg_id,
                partition_id: *partition_id,
                num_rows: data.num_rows(),
                data_key: format!(
                    "segments/{}/{}/{seg_id}/data",
                    inner.collection_id, inner.shard
                ),
                deletes_key: None,
                deletes_version: 0,
                indexes: Vec::new(),
            };
            seg.kind = SegmentKind::Sealed {
                data: data.clone(),
                meta,
                persisted_deletes: 0,
            };
            to_write.push((*seg_id, *partition_id, data));
        }
        let mut next_compact_id = compact_first;
        for (new_segment, garbage) in compact(&mut st, inner, &mut next_compact_id) {
            compacted_garbage.extend(garbage);
            to_write.extend(new_segment);
        }
        // Freshly sealed segments that compaction already merged need not be written.
        let live_ids: HashSet<i64> = st
            .segments
            .values()
            .filter_map(Segment::segment_id)
            .collect();
        to_write.retain(|(id, _, _)| live_ids.contains(id));
        let mut deletes = Vec::new();
        let mut metas = Vec::new();
        for seg in st.segments.values() {
            if let SegmentKind::Sealed {
                meta,
                persisted_deletes,
                data,
            } = &seg.kind
            {
                if seg.deleted.count() != *persisted_deletes {
                    deletes.push((
                        meta.segment_id,
                        seg.deleted.clone(),
                        data.num_rows(),
                        meta.deletes_version + 1,
                    ));
                }
                metas.push(meta.clone());
            }
        }
        (st.next_lsn, to_write, deletes, metas)
    };
    // 2. Write immutable files.
    for (seg_id, partition_id, data) in &to_write {
        let key = format!(
            "segments/{}/{}/{seg_id}/data",
            inner.collection_id, inner.shard
        );
        let bytes = data.encode(*seg_id, *partition_id, &inner.schema);
        inner.env.objects.put(&key, bytes.into()).await?;
    }
    let mut delete_updates = Vec::new();
    for (seg_id, bits, rows, version) in &delete_snapshots {
        let key = format!(
            "segments/{}/{}/{seg_id}/deletes-{version:010}",
            inner.collection_id, inner.shard
        );
        inner
            .env
            .objects
            .put(&key, bits.encode(*rows).into())
            .await?;
        delete_updates.push((*seg_id, key, *version, bits.count()));
    }
    for m in metas.iter_mut() {
        if let Some((_, key, version, _)) = delete_updates.iter().find(|u| u.0 == m.segment_id) {
            m.deletes_key = Some(key.clone());
            m.deletes_version = *version;
        }
    }
    // Drop segments with every row deleted from the checkpoint (their files become garbage).
    let dead: Vec<i64> = metas
        .iter()
        .filter(|m| {
            delete_updates
                .iter()
                .any(|u| u.0 == m.segment_id && u.3 == m.num_rows)
        })
        .map(|m| m.segment_id)
        .collect();
    metas.retain(|m| !dead.contains(&m.segment_id));
    // 3. Commit point.
    let ckpt = ShardCheckpoint {
        next_lsn,
        segments: metas.clone(),
    };
    let value = serde_json::to_vec(&ckpt).map_err(|e| CoreError::Internal(e.to_string()))?;
    inner
        .env
        .meta
        .put(&checkpoint_key(inner.collection_id, inner.shard), value)
        .await?;
    // 4. Reflect in memory, then truncate the log and remove superseded files.
    let mut garbage = Vec::new();
    {
        let mut st = inner.state.write();
        let mut dead_handles = Vec::new();
        for seg in st.segments.values_mut() {
            if let SegmentKind::Sealed {
                meta,
                persisted_deletes,
                ..
            } = &mut seg.kind
            {
                if let Some((_, key, version, count)) =
                    delete_updates.iter().find(|u| u.0 == meta.segment_id)
                {
                    if let Some(old) = meta.deletes_key.replace(key.clone()) {
                        garbage.push(old);
                    }
                    meta.deletes_version = *version;
                    *persisted_deletes = *count;
                }
                if dead.contains(&meta.segment_id) && seg.deleted.count() == meta.num_rows {
                    dead_handles.push(seg.handle);
                }
            }
        }
        for h in dead_handles {
            if let Some(seg) = st.segments.remove(&h)
                && let SegmentKind::Sealed { meta, .. } = seg.kind
            {
                garbage.push(meta.data_key.clone());
                garbage.extend(meta.deletes_key.clone());
                garbage.extend(meta.indexes.iter().map(|i| i.key.clone()));
            }
        }
    }
    garbage.extend(compacted_garbage);
    let removed = inner.wal.truncate_before(next_lsn).await?;
    for k in garbage {
        inner.env.objects.delete(&k).await?;
    }
    tracing::info!(
        collection_id = inner.collection_id,
        shard = inner.shard,
        sealed = to_write.len(),
        delete_logs = delete_updates.len(),
        next_lsn,
        log_objects_removed = removed,
        "checkpoint committed"
    );
    drop(_g);
    // The written segments' data is shared no more: indexed vectors can live in the index alone.
    let sealed_any = !to_write.is_empty();
    drop(to_write);
    {
        let mut st = inner.state.write();
        for seg in st.segments.values_mut() {
            release_indexed_vectors(seg, &inner.schema);
        }
    }
    if sealed_any {
        build_missing_indexes(inner).await?;
    }
    Ok(())
}

/// Let every attached index that stores its column's vectors exactly serve them, dropping the
/// segment's own copy (see [`Segment::release_vectors`]).
fn release_indexed_vectors(seg: &mut Segment, schema: &CollectionSchema) {
    let attached: Vec<(i64, Arc<VectorIndex>)> = seg
        .indexes
        .iter()
        .map(|(fid, (_, idx))| (*fid, idx.clone()))
        .collect();
    for (field_id, idx) in attached {
        if let Some(fi) = schema.field_index_by_id(field_id) {
            seg.release_vectors(fi, &idx);
        }
    }
}

/// A segment to write: (segment id, partition id, rows).
type NewSegment = (i64, i64, Arc<SegmentData>);

/// Merge small sealed segments of a partition, and rewrite segments with many deleted rows,
/// into new segments without the deleted rows. Runs under the state lock inside a checkpoint, so
/// no write can interleave; the new segments are committed by that checkpoint. Returns the new
/// segments and the object keys of the replaced ones (garbage once the checkpoint commits).
fn compact(
    st: &mut ShardState,
    inner: &Inner,
    next_id: &mut i64,
) -> Vec<(Option<NewSegment>, Vec<String>)> {
    let cfg = &inner.env.config;
    let mut by_partition: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for seg in st.segments.values() {
        let SegmentKind::Sealed { data, .. } = &seg.kind else {
            continue;
        };
        let rows = data.num_rows();
        let small = rows < cfg.compaction_small_rows;
        let dirty =
            rows > 0 && seg.deleted.count() as f64 / rows as f64 > cfg.compaction_deleted_ratio;
        if small || dirty {
            by_partition
                .entry(seg.partition_id)
                .or_default()
                .push(seg.handle);
        }
    }
    let mut out = Vec::new();
    for (partition_id, handles) in by_partition {
        let dirty_single = handles.len() == 1
            && st.segments.get(&handles[0]).is_some_and(|s| {
                s.deleted.count() as f64 / s.data().num_rows().max(1) as f64
                    > cfg.compaction_deleted_ratio
            });
        if handles.len() < 2 && !dirty_single {
            continue;
        }
        let seg_id = *next_id;
        *next_id += 1;
        let new_handle = st.next_handle;
        st.next_handle += 1;
        let mut merged = SegmentData::empty(&inner.schema);
        let mut garbage = Vec::new();
        let mut moved: Vec<(PrimaryKey, u32)> = Vec::new();
        for h in &handles {
            let Some(seg) = st.segments.remove(h) else {
                continue;
            };
            let SegmentKind::Sealed { data, meta, .. } = &seg.kind else {
                continue;
            };
            let live: Vec<usize> = (0..data.num_rows())
                .filter(|r| !seg.deleted.get(*r))
                .collect();
            let base = merged.num_rows();
            for (i, &r) in live.iter().enumerate() {
                if let Some(pk) = data.primary_key(inner.pk_index, r) {
                    moved.push((pk, (base + i) as u32));
                }
            }
            for (i, dst) in merged.columns.iter_mut().enumerate() {
                dst.extend(&seg.take_column(i, &live));
            }
            merged
                .timestamps
                .extend(live.iter().map(|&r| data.timestamps[r]));
            garbage.push(meta.data_key.clone());
            garbage.extend(meta.deletes_key.clone());
            garbage.extend(meta.indexes.iter().map(|i| i.key.clone()));
        }
        for (pk, off) in moved {
            st.pk_map.insert(pk, (new_handle, off));
        }
        let rows = merged.num_rows();
        if rows == 0 {
            out.push((None, garbage));
            continue;
        }
        let data = Arc::new(merged);
        let meta = SegmentMeta {
            segment_id: seg_id,
            partition_id,
            num_rows: rows,
            data_key: format!(
                "segments/{}/{}/{seg_id}/data",
                inner.collection_id, inner.shard
            ),
            deletes_key: None,
            deletes_version: 0,
            indexes: Vec::new(),
        };
        st.segments.insert(
            new_handle,
            Segment {
                handle: new_handle,
                partition_id,
                kind: SegmentKind::Sealed {
                    data: data.clone(),
                    meta,
                    persisted_deletes: 0,
                },
                deleted: DeleteBits::default(),
                indexes: HashMap::new(),
                raw_vectors: HashMap::new(),
            },
        );
        tracing::info!(
            collection_id = inner.collection_id,
            shard = inner.shard,
            segment_id = seg_id,
            merged = handles.len(),
            rows,
            "compacted segments"
        );
        out.push((Some((seg_id, partition_id, data)), garbage));
    }
    out
}

/// Build, persist and attach every index the collection defines that a sealed segment lacks.
async fn build_missing_indexes(inner: &Arc<Inner>) -> Result<()> {
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
        let key = format!(
            "segments/{}/{}/{segment_id}/index-{}-{}",
            inner.collection_id, inner.shard, spec.field_id, spec.index_id
        );
        inner.env.objects.put(&key, buf.into()).await?;
        // Record in the checkpoint (under the checkpoint lock so it cannot race a checkpoint).
        let _g = inner.checkpoint_lock.lock().await;
        let ckey = checkpoint_key(inner.collection_id, inner.shard);
        if let Some(kv) = inner.env.meta.get(&ckey).await? {
            let mut ckpt: ShardCheckpoint = serde_json::from_slice(&kv.value)
                .map_err(|e| CoreError::corrupted(&ckey, e.to_string()))?;
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
            let value =
                serde_json::to_vec(&ckpt).map_err(|e| CoreError::Internal(e.to_string()))?;
            inner.env.meta.put(&ckey, value).await?;
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
