//! A collection: schema, partitions, index definitions, load state and its shards. Validates
//! writes against the schema and routes rows to shards by primary-key hash; fans searches and
//! queries out to shards and merges — all through the planning functions of [`crate::plan`],
//! which a cluster proxy shares.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::expr::{self, Plan};
use crate::plan;
use crate::request::*;
use crate::schema::CollectionSchema;
use crate::shard::Shard;
use crate::value::{Column, PrimaryKey, RowBatch};
use crate::wal::WalRecord;

pub const DEFAULT_PARTITION: &str = "_default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub id: i64,
    pub name: String,
    pub created_ts: u64,
}

/// What is persisted about a collection (one metadata key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionMeta {
    pub id: i64,
    pub name: String,
    pub schema: CollectionSchema,
    pub num_shards: usize,
    pub partitions: Vec<PartitionMeta>,
    pub indexes: Vec<IndexSpec>,
    pub loaded: bool,
    pub consistency: Consistency,
    pub properties: BTreeMap<String, String>,
    pub created_ts: u64,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug)]
pub struct Collection {
    pub meta: RwLock<CollectionMeta>,
    pub schema: Arc<CollectionSchema>,
    pub shards: Vec<Shard>,
    pub indexes: Arc<RwLock<Vec<IndexSpec>>>,
    pub loaded: AtomicBool,
}

impl Collection {
    pub fn new(
        meta: CollectionMeta,
        shards: Vec<Shard>,
        indexes: Arc<RwLock<Vec<IndexSpec>>>,
    ) -> Self {
        let loaded = AtomicBool::new(meta.loaded);
        Collection {
            schema: Arc::new(meta.schema.clone()),
            meta: RwLock::new(meta),
            shards,
            indexes,
            loaded,
        }
    }

    pub fn id(&self) -> i64 {
        self.meta.read().id
    }
    pub fn name(&self) -> String {
        self.meta.read().name.clone()
    }
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }
    pub fn set_loaded(&self, v: bool) {
        self.loaded.store(v, Ordering::SeqCst);
    }

    pub fn num_rows(&self) -> usize {
        self.shards.iter().map(Shard::num_rows).sum()
    }

    /// Live rows in the given partitions (all when empty); needs no load, like Milvus' statistics.
    pub fn count_rows(&self, partitions: &[String]) -> Result<usize> {
        let parts = self.partition_filter(partitions)?;
        let all = expr::Plan::match_all();
        let none = HashSet::new();
        Ok(self
            .shards
            .iter()
            .map(|s| s.query(&all, &parts, &[], true, &none).value.0)
            .sum())
    }

    pub fn partition_id(&self, name: &str) -> Result<i64> {
        plan::partition_id(&self.meta.read().partitions, name)
    }

    fn partition_filter(&self, names: &[String]) -> Result<Option<HashSet<i64>>> {
        Ok(plan::partition_ids(&self.meta.read().partitions, names)?
            .map(|ids| ids.into_iter().collect()))
    }

    /// Validate a batch against the schema and return schema-ordered columns and primary keys
    /// ([`plan::normalize_rows`]).
    pub fn normalize_rows(
        &self,
        batch: RowBatch,
        auto_ids: Option<i64>,
        upsert: bool,
    ) -> Result<(Vec<Column>, Vec<PrimaryKey>)> {
        plan::normalize_rows(&self.schema, batch, auto_ids, upsert)
    }

    /// Split schema-ordered rows by shard: per shard, the row indexes.
    pub fn route(&self, pks: &[PrimaryKey]) -> Vec<Vec<usize>> {
        plan::route(pks, self.shards.len())
    }

    /// Write validated rows; returns the largest timestamp.
    pub async fn write_rows(
        &self,
        partition_id: i64,
        columns: Vec<Column>,
        pks: &[PrimaryKey],
        upsert: bool,
    ) -> Result<u64> {
        let records = plan::shard_records(
            &self.schema,
            partition_id,
            columns,
            pks,
            self.shards.len(),
            upsert,
        );
        self.write_records(records).await
    }

    pub async fn delete_pks(&self, pks: Vec<PrimaryKey>) -> Result<u64> {
        self.write_records(plan::delete_records(pks, self.shards.len()))
            .await
    }

    /// Append `(shard, record, bytes)` records to their shards in parallel; the largest
    /// timestamp.
    async fn write_records(&self, records: Vec<(usize, WalRecord, usize)>) -> Result<u64> {
        let futs = records.into_iter().filter_map(|(shard, record, bytes)| {
            self.shards.get(shard).map(|s| s.write(record, bytes))
        });
        let mut ts = 0;
        for r in futures::future::join_all(futs).await {
            ts = ts.max(r?);
        }
        Ok(ts)
    }

    pub fn compile_filter(
        &self,
        filter: &str,
        params: &HashMap<String, serde_json::Value>,
    ) -> Result<Plan> {
        plan::compile_filter(&self.schema, filter, params)
    }

    /// Primary keys matching a delete filter.
    pub fn matching_pks(&self, plan: &Plan, partitions: &[String]) -> Result<Vec<PrimaryKey>> {
        if let Some(keys) = plan.primary_keys() {
            return Ok(keys);
        }
        let parts = self.partition_filter(partitions)?;
        Ok(self
            .shards
            .iter()
            .flat_map(|s| s.matching_pks(plan, &parts).value)
            .collect())
    }

    pub fn search(&self, req: &SearchRequest) -> Result<SearchResult> {
        if !self.is_loaded() {
            return Err(CoreError::CollectionNotLoaded(self.name()));
        }
        let p = {
            let indexes = self.indexes.read();
            let meta = self.meta.read();
            plan::plan_search(&self.schema, &indexes, &meta.partitions, req)?
        };
        let prepared = p.prepared();
        let mut shards = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            shards.push(shard.search(&prepared, &HashSet::new())?.value);
        }
        Ok(plan::merge_search(&self.schema, &p, shards))
    }

    pub fn query(&self, req: &QueryRequest) -> Result<QueryResult> {
        if !self.is_loaded() {
            return Err(CoreError::CollectionNotLoaded(self.name()));
        }
        let p = plan::plan_query(&self.schema, &self.meta.read().partitions, req)?;
        let partitions = p
            .partitions
            .as_ref()
            .map(|ids| ids.iter().copied().collect());
        let none = HashSet::new();
        let shards = p
            .shards(self.shards.len())
            .into_iter()
            .filter_map(|s| self.shards.get(s))
            .map(|s| {
                s.query(&p.plan, &partitions, &p.output, p.count_only, &none)
                    .value
            })
            .collect();
        Ok(plan::merge_query(&self.schema, &p, shards))
    }
}
