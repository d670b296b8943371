//! Writes: insert and upsert (validated against the cached schema, auto ids from id blocks, one
//! log record per shard to its channel owner) and delete (keys named by the filter, or read
//! through the delegators first).

use std::collections::HashMap;
use std::sync::Arc;

use ferrovus_core::CoreError;
use ferrovus_core::plan;
use ferrovus_core::request::MutationResult;
use ferrovus_core::value::{PrimaryKey, RowBatch};
use ferrovus_core::wal::WalRecord;
use futures::future::join_all;

use super::ClusterBackend;
use crate::api::{CollectionRecord, QuerySpec, WriteReq};
use crate::error::{ApiError, ApiResult};
use crate::rpc::ClusterError;

impl ClusterBackend {
    pub(super) async fn write_impl(
        &self,
        collection: &str,
        partition: &str,
        rows: RowBatch,
        upsert: bool,
    ) -> ApiResult<MutationResult> {
        let (mut rec, cached) = self.record(collection).await?;
        let mut pid = plan::write_partition_id(&rec.partitions, partition);
        if cached && pid.is_err() {
            // The partition may be newer than the cached record: look again before the rows are
            // consumed. (A collection dropped and recreated elsewhere since it was cached is
            // noticed by the channel owners; the write then fails with the cache dropped, and a
            // retry by the client finds the new collection.)
            self.drop_cache("a partition was not in the cached record");
            rec = self.fetch_record(collection).await?;
            pid = plan::write_partition_id(&rec.partitions, partition);
        }
        let pid = pid?;
        let n = rows.num_rows();
        let wanted = plan::auto_id_count(&rec.schema, &rows);
        let auto = if wanted > 0 {
            Some(self.ids.alloc(self.coord().as_ref(), wanted).await?)
        } else {
            None
        };
        let (columns, pks) = plan::normalize_rows(&rec.schema, rows, auto, upsert)?;
        let records = plan::shard_records(
            &rec.schema,
            pid,
            columns,
            &pks,
            rec.num_shards as usize,
            upsert,
        );
        let ts = self.append(&rec, records).await?;
        Ok(MutationResult {
            insert_count: n,
            upsert_count: if upsert { n } else { 0 },
            delete_count: 0,
            ids: pks,
            timestamp: ts,
        })
    }

    /// Append `(shard, record, bytes)` records to their channels in parallel; the largest
    /// timestamp. All or nothing: if any shard failed (after retries) the write fails.
    async fn append(
        &self,
        rec: &CollectionRecord,
        records: Vec<(usize, WalRecord, usize)>,
    ) -> ApiResult<u64> {
        let deadline = self.deadline();
        let writes = records
            .into_iter()
            .map(|(shard, record, bytes)| async move {
                let shard = u32::try_from(shard)
                    .map_err(|_| ClusterError::Internal(format!("shard {shard} out of range")))?;
                self.on_channel("write", rec.id, shard, deadline, |owner, channel, term| {
                    // The request owns its record; a retry needs it again.
                    let req = WriteReq {
                        channel,
                        term,
                        record: record.clone(),
                        bytes,
                    };
                    async move { owner.write(req).await }
                })
                .await
            });
        let mut ts = 0;
        let mut failed = None;
        for r in join_all(writes).await {
            match r {
                Ok(t) => ts = ts.max(t),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            None => Ok(ts),
            Some(e) => {
                if matches!(e, ClusterError::CollectionNotFound(_)) {
                    self.drop_cache("a channel's collection is gone");
                }
                Err(e.into())
            }
        }
    }

    pub(super) async fn delete_impl(
        &self,
        collection: &str,
        partition: &str,
        filter: &str,
        params: &HashMap<String, serde_json::Value>,
    ) -> ApiResult<MutationResult> {
        let (rec, keys) = self
            .with_record(collection, |rec| async move {
                let keys = self.keys_to_delete(&rec, partition, filter, params).await?;
                Ok((rec, keys))
            })
            .await?;
        let n = keys.len();
        let ts = if n == 0 {
            self.alloc_timestamp_impl().await?
        } else {
            let records = plan::delete_records(keys.clone(), rec.num_shards as usize);
            self.append(&rec, records).await?
        };
        Ok(MutationResult {
            ids: keys,
            timestamp: ts,
            insert_count: 0,
            delete_count: n,
            upsert_count: 0,
        })
    }

    /// The keys a delete names (`pk in [...]`: as given, in every partition), or those of the
    /// rows matching its filter, read through the delegators (the collection must be loaded).
    async fn keys_to_delete(
        &self,
        rec: &Arc<CollectionRecord>,
        partition: &str,
        filter: &str,
        params: &HashMap<String, serde_json::Value>,
    ) -> ApiResult<Vec<PrimaryKey>> {
        let p = plan::plan_delete(&rec.schema, filter, params)?;
        if let Some(keys) = p.keys {
            return Ok(keys);
        }
        let partitions = plan::delete_partitions(&rec.partitions, partition)?;
        if rec.load.is_none() {
            return Err(ApiError::Core(CoreError::CollectionNotLoaded(
                rec.name.clone(),
            )));
        }
        let spec = QuerySpec {
            filter: filter.to_string(),
            filter_params: params.clone(),
            partitions,
            output: Vec::new(),
            count_only: false,
            limit: None,
        };
        let shards: Vec<u32> = super::channels::shards(rec).collect();
        let answers = self.query_shards(rec, &shards, &spec).await?;
        Ok(answers
            .into_iter()
            .flat_map(|a| a.rows.into_iter().map(|r| r.pk))
            .collect())
    }
}
