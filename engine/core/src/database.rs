//! The database: collections by name, DDL persisted in the metadata store, recovery on open,
//! timestamps and IDs. This is the API the Milvus front door (and every role) calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::collection::{Collection, CollectionMeta, DEFAULT_PARTITION, PartitionMeta};
use crate::config::CoreConfig;
use crate::error::{CoreError, Result};
use crate::plan;
use crate::request::*;
use crate::schema::{CollectionSchema, DataType, validate_name};
use crate::shard::{MetaCheckpointStore, Shard, ShardEnv};
use crate::store::{MetaStore, ObjectStore};
use crate::tso::{IdAllocator, TimestampOracle};
use crate::value::{PrimaryKey, RowBatch};

const COLLECTION_PREFIX: &str = "collections/";
pub const MAX_SHARDS: usize = 16;

/// Load progress of a collection, as Milvus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadState {
    NotLoad,
    Loading,
    Loaded,
}

#[derive(Debug)]
pub struct Database {
    env: ShardEnv,
    /// The same oracle and allocator as `env` holds, by their concrete types.
    tso: Arc<TimestampOracle>,
    ids: Arc<IdAllocator>,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    aliases: RwLock<HashMap<String, String>>,
    ddl: tokio::sync::Mutex<()>,
}

fn collection_key(id: i64) -> String {
    format!("{COLLECTION_PREFIX}{id}")
}

impl Database {
    /// Open the database over the given stores, recovering every collection.
    pub async fn open(
        meta: Arc<dyn MetaStore>,
        objects: Arc<dyn ObjectStore>,
        config: CoreConfig,
    ) -> Result<Arc<Self>> {
        let tso = Arc::new(TimestampOracle::open(meta.clone(), "tso/upper").await?);
        let ids = Arc::new(IdAllocator::open(meta.clone(), "ids/next", 1_000).await?);
        let env = ShardEnv {
            objects,
            meta: meta.clone(),
            tso: tso.clone(),
            ids: ids.clone(),
            config: Arc::new(config),
            checkpoints: Arc::new(MetaCheckpointStore::new(meta.clone())),
            hooks: None,
        };
        let db = Database {
            env,
            tso,
            ids,
            collections: RwLock::new(BTreeMap::new()),
            aliases: RwLock::new(HashMap::new()),
            ddl: tokio::sync::Mutex::new(()),
        };
        let started = std::time::Instant::now();
        let mut n = 0;
        for kv in meta.list(COLLECTION_PREFIX).await? {
            let cm: CollectionMeta = serde_json::from_slice(&kv.value)
                .map_err(|e| CoreError::corrupted(&kv.key, e.to_string()))?;
            let name = cm.name.clone();
            let aliases = cm.aliases.clone();
            let coll = db.open_collection(cm).await?;
            for a in aliases {
                db.aliases.write().insert(a, name.clone());
            }
            db.collections.write().insert(name, Arc::new(coll));
            n += 1;
        }
        tracing::info!(
            collections = n,
            seconds = started.elapsed().as_secs_f64(),
            "database recovered"
        );
        Ok(Arc::new(db))
    }

    async fn open_collection(&self, cm: CollectionMeta) -> Result<Collection> {
        let schema = Arc::new(cm.schema.clone());
        let indexes = Arc::new(RwLock::new(cm.indexes.clone()));
        let mut shards = Vec::with_capacity(cm.num_shards);
        for s in 0..cm.num_shards {
            shards.push(
                Shard::open(cm.id, s, schema.clone(), indexes.clone(), self.env.clone()).await?,
            );
        }
        Ok(Collection::new(cm, shards, indexes))
    }

    pub fn tso(&self) -> &TimestampOracle {
        &self.tso
    }

    pub async fn alloc_timestamp(&self) -> Result<u64> {
        self.tso.alloc(1).await
    }

    /// Resolve a name or alias.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        let real = self
            .aliases
            .read()
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string());
        self.collections
            .read()
            .get(&real)
            .cloned()
            .ok_or_else(|| CoreError::CollectionNotFound(name.to_string()))
    }

    pub fn list_collections(&self) -> Vec<Arc<Collection>> {
        self.collections.read().values().cloned().collect()
    }

    async fn persist(&self, c: &Collection) -> Result<()> {
        let meta = c.meta.read().clone();
        let value = serde_json::to_vec(&meta).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.env.meta.put(&collection_key(meta.id), value).await?;
        Ok(())
    }

    /// Create a collection. Creating an existing collection with an identical schema is a no-op
    /// (as Milvus); with a different schema it is an error.
    pub async fn create_collection(
        &self,
        schema: CollectionSchema,
        num_shards: usize,
        consistency: Consistency,
        properties: BTreeMap<String, String>,
    ) -> Result<()> {
        let schema = schema.validate_and_normalize()?;
        let num_shards = if num_shards == 0 { 1 } else { num_shards };
        if num_shards > MAX_SHARDS {
            return Err(CoreError::invalid(
                "shards_num",
                format!("shards_num must be in [1, {MAX_SHARDS}], got {num_shards}"),
            ));
        }
        let _g = self.ddl.lock().await;
        if let Ok(existing) = self.collection(&schema.name) {
            let same = existing.schema.fields.len() == schema.fields.len()
                && existing
                    .schema
                    .fields
                    .iter()
                    .zip(&schema.fields)
                    .all(|(a, b)| {
                        a.name == b.name
                            && a.data_type == b.data_type
                            && a.is_primary == b.is_primary
                            && a.dim == b.dim
                            && a.max_length == b.max_length
                            && a.auto_id == b.auto_id
                    })
                && existing.schema.enable_dynamic_field == schema.enable_dynamic_field;
            if same {
                return Ok(());
            }
            return Err(CoreError::CollectionExists(schema.name.clone()));
        }
        let id = self.ids.alloc(1).await?;
        let pid = self.ids.alloc(1).await?;
        let ts = self.tso.alloc(1).await?;
        let cm = CollectionMeta {
            id,
            name: schema.name.clone(),
            schema,
            num_shards,
            partitions: vec![PartitionMeta {
                id: pid,
                name: DEFAULT_PARTITION.into(),
                created_ts: ts,
            }],
            indexes: Vec::new(),
            loaded: false,
            consistency,
            properties,
            created_ts: ts,
            aliases: Vec::new(),
        };
        let coll = self.open_collection(cm).await?;
        self.persist(&coll).await?;
        tracing::info!(collection = %coll.name(), id, num_shards, "collection created");
        self.collections.write().insert(coll.name(), Arc::new(coll));
        Ok(())
    }

    pub async fn drop_collection(&self, name: &str) -> Result<()> {
        let _g = self.ddl.lock().await;
        let Ok(c) = self.collection(name) else {
            return Ok(()); // Milvus: dropping a missing collection succeeds
        };
        let real = c.name();
        self.env.meta.delete(&collection_key(c.id())).await?;
        self.collections.write().remove(&real);
        self.aliases.write().retain(|_, v| *v != real);
        for s in &c.shards {
            s.destroy().await?;
        }
        tracing::info!(collection = %real, "collection dropped");
        Ok(())
    }

    pub async fn rename_collection(&self, old: &str, new: &str) -> Result<()> {
        validate_name("new_name", new)?;
        let _g = self.ddl.lock().await;
        let c = self.collection(old)?;
        if self.collections.read().contains_key(new) {
            return Err(CoreError::invalid(
                "new_name",
                format!("duplicated new collection name {new}"),
            ));
        }
        {
            let mut m = c.meta.write();
            m.name = new.to_string();
            m.schema.name = new.to_string();
        }
        self.persist(&c).await?;
        let mut cs = self.collections.write();
        cs.remove(old);
        cs.insert(new.to_string(), c);
        for v in self.aliases.write().values_mut() {
            if v == old {
                *v = new.to_string();
            }
        }
        Ok(())
    }

    pub async fn alter_properties(
        &self,
        name: &str,
        props: BTreeMap<String, String>,
    ) -> Result<()> {
        let _g = self.ddl.lock().await;
        let c = self.collection(name)?;
        c.meta.write().properties.extend(props);
        self.persist(&c).await
    }

    pub async fn create_alias(&self, alias: &str, collection: &str) -> Result<()> {
        validate_name("alias", alias)?;
        let _g = self.ddl.lock().await;
        if self.collections.read().contains_key(alias) {
            return Err(CoreError::invalid(
                "alias",
                format!("alias {alias} conflicts with a collection name"),
            ));
        }
        if self.aliases.read().contains_key(alias) {
            return Err(CoreError::invalid(
                "alias",
                format!("alias {alias} already exists"),
            ));
        }
        let c = self.collection(collection)?;
        c.meta.write().aliases.push(alias.to_string());
        self.persist(&c).await?;
        self.aliases.write().insert(alias.to_string(), c.name());
        Ok(())
    }

    pub async fn drop_alias(&self, alias: &str) -> Result<()> {
        let _g = self.ddl.lock().await;
        let Some(target) = self.aliases.read().get(alias).cloned() else {
            return Ok(());
        };
        if let Ok(c) = self.collection(&target) {
            c.meta.write().aliases.retain(|a| a != alias);
            self.persist(&c).await?;
        }
        self.aliases.write().remove(alias);
        Ok(())
    }

    pub async fn alter_alias(&self, alias: &str, collection: &str) -> Result<()> {
        self.drop_alias(alias).await?;
        self.create_alias(alias, collection).await
    }

    pub fn aliases_of(&self, collection: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .aliases
            .read()
            .iter()
            .filter(|(_, c)| *c == collection)
            .map(|(a, _)| a.clone())
            .collect();
        v.sort();
        v
    }

    pub fn alias_target(&self, alias: &str) -> Option<String> {
        self.aliases.read().get(alias).cloned()
    }

    pub async fn create_partition(&self, collection: &str, partition: &str) -> Result<()> {
        validate_name("partition_name", partition)?;
        let _g = self.ddl.lock().await;
        let c = self.collection(collection)?;
        if c.partition_id(partition).is_ok() {
            return Err(CoreError::invalid(
                "partition_name",
                format!("partition {partition} already exists"),
            ));
        }
        if c.meta.read().partitions.len() >= 1024 {
            return Err(CoreError::invalid(
                "partition_name",
                "a collection can have at most 1024 partitions",
            ));
        }
        let id = self.ids.alloc(1).await?;
        let ts = self.tso.alloc(1).await?;
        c.meta.write().partitions.push(PartitionMeta {
            id,
            name: partition.to_string(),
            created_ts: ts,
        });
        self.persist(&c).await
    }

    pub async fn drop_partition(&self, collection: &str, partition: &str) -> Result<()> {
        if partition == DEFAULT_PARTITION {
            return Err(CoreError::invalid(
                "partition_name",
                "the default partition cannot be dropped",
            ));
        }
        let _g = self.ddl.lock().await;
        let c = self.collection(collection)?;
        let pid = c.partition_id(partition)?;
        for s in &c.shards {
            s.drop_partition(pid).await?;
        }
        c.meta.write().partitions.retain(|p| p.id != pid);
        self.persist(&c).await
    }

    pub async fn create_index(
        &self,
        collection: &str,
        field_name: &str,
        index_name: &str,
        params: BTreeMap<String, String>,
    ) -> Result<()> {
        let _g = self.ddl.lock().await;
        let c = self.collection(collection)?;
        let field = c
            .schema
            .field(field_name)
            .ok_or_else(|| {
                CoreError::invalid("field_name", format!("field {field_name} does not exist"))
            })?
            .clone();
        if field.data_type != DataType::FloatVector {
            // Scalar indexes are accepted and recorded (filters are evaluated exactly anyway).
            tracing::info!(
                field = field_name,
                "scalar index requested; filters are evaluated without it"
            );
        }
        let index_type = IndexType::parse(
            params
                .get("index_type")
                .map(String::as_str)
                .unwrap_or("AUTOINDEX"),
        )?;
        let metric = match params.get("metric_type") {
            Some(m) if !m.is_empty() => MetricType::parse(m)?,
            _ => MetricType::Cosine,
        };
        let (m, efc) = crate::vindex::hnsw_params(index_type, &params)?;
        let index_name = if index_name.is_empty() {
            field_name.to_string()
        } else {
            index_name.to_string()
        };
        {
            let specs = c.indexes.read();
            if let Some(existing) = specs.iter().find(|s| s.field_id == field.field_id) {
                if existing.index_type == index_type
                    && existing.metric == metric
                    && existing.m == m
                    && existing.ef_construction == efc
                {
                    return Ok(());
                }
                return Err(CoreError::invalid(
                    "index",
                    format!(
                        "at most one distinct index is allowed per field: {field_name} already has index {}",
                        existing.index_name
                    ),
                ));
            }
            if specs.iter().any(|s| s.index_name == index_name) {
                return Err(CoreError::invalid(
                    "index_name",
                    format!("index name {index_name} is already used"),
                ));
            }
        }
        let spec = IndexSpec {
            index_id: self.ids.alloc(1).await?,
            index_name,
            field_id: field.field_id,
            field_name: field.name.clone(),
            index_type,
            metric,
            m,
            ef_construction: efc,
            params,
        };
        c.indexes.write().push(spec.clone());
        c.meta.write().indexes.push(spec);
        self.persist(&c).await?;
        if field.data_type == DataType::FloatVector {
            for s in &c.shards {
                s.schedule_index_builds();
            }
        }
        Ok(())
    }

    pub async fn drop_index(
        &self,
        collection: &str,
        field_name: &str,
        index_name: &str,
    ) -> Result<()> {
        let _g = self.ddl.lock().await;
        let c = self.collection(collection)?;
        if c.is_loaded() {
            return Err(CoreError::invalid(
                "index",
                "index cannot be dropped while the collection is loaded; release it first",
            ));
        }
        let matches = |s: &IndexSpec| {
            (index_name.is_empty() || s.index_name == index_name)
                && (field_name.is_empty() || s.field_name == field_name)
        };
        if !c.indexes.read().iter().any(matches) {
            return Ok(());
        }
        let dropped: Vec<IndexSpec> = c
            .indexes
            .read()
            .iter()
            .filter(|s| matches(s))
            .cloned()
            .collect();
        c.indexes.write().retain(|s| !matches(s));
        c.meta.write().indexes.retain(|s| !matches(s));
        self.persist(&c).await?;
        for spec in dropped {
            for sh in &c.shards {
                sh.detach_index(spec.field_id, spec.index_id);
            }
        }
        Ok(())
    }

    /// Index specs with (indexed rows, total rows).
    pub fn describe_indexes(
        &self,
        collection: &str,
        index_name: &str,
    ) -> Result<Vec<(IndexSpec, usize, usize)>> {
        let c = self.collection(collection)?;
        let specs = c.indexes.read().clone();
        let mut out = Vec::new();
        for s in specs {
            if !index_name.is_empty() && s.index_name != index_name && s.field_name != index_name {
                continue;
            }
            let (mut done, mut total) = (0, 0);
            if s.index_type != IndexType::Flat
                && c.schema
                    .field(&s.field_name)
                    .is_some_and(|f| f.data_type == DataType::FloatVector)
            {
                for sh in &c.shards {
                    let (d, t) = sh.index_progress(s.index_id, s.field_id);
                    done += d;
                    total += t;
                }
            } else {
                for sh in &c.shards {
                    let t: usize = sh
                        .segment_infos()
                        .iter()
                        .filter(|x| x.sealed)
                        .map(|x| x.rows)
                        .sum();
                    done += t;
                    total += t;
                }
            }
            out.push((s, done, total));
        }
        if out.is_empty() {
            return Err(CoreError::IndexNotFound {
                collection: collection.to_string(),
                field: index_name.to_string(),
            });
        }
        Ok(out)
    }

    pub async fn load(&self, collection: &str) -> Result<()> {
        let c = self.collection(collection)?;
        let missing: Vec<String> = c
            .schema
            .vector_fields()
            .filter(|f| !c.indexes.read().iter().any(|s| s.field_id == f.field_id))
            .map(|f| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(CoreError::invalid(
                "index",
                format!(
                    "there is no vector index on field: [{}], please create index firstly",
                    missing.join(", ")
                ),
            ));
        }
        if !c.is_loaded() {
            c.set_loaded(true);
            c.meta.write().loaded = true;
            self.persist(&c).await?;
        }
        Ok(())
    }

    pub async fn release(&self, collection: &str) -> Result<()> {
        let c = self.collection(collection)?;
        if c.is_loaded() {
            c.set_loaded(false);
            c.meta.write().loaded = false;
            self.persist(&c).await?;
        }
        Ok(())
    }

    pub fn load_state(&self, collection: &str) -> Result<LoadState> {
        let c = self.collection(collection)?;
        Ok(if c.is_loaded() {
            LoadState::Loaded
        } else {
            LoadState::NotLoad
        })
    }

    pub async fn insert(
        &self,
        collection: &str,
        partition: &str,
        rows: RowBatch,
    ) -> Result<MutationResult> {
        self.write(collection, partition, rows, false).await
    }

    pub async fn upsert(
        &self,
        collection: &str,
        partition: &str,
        rows: RowBatch,
    ) -> Result<MutationResult> {
        self.write(collection, partition, rows, true).await
    }

    async fn write(
        &self,
        collection: &str,
        partition: &str,
        rows: RowBatch,
        upsert: bool,
    ) -> Result<MutationResult> {
        let c = self.collection(collection)?;
        let pid = plan::write_partition_id(&c.meta.read().partitions, partition)?;
        let n = rows.num_rows();
        let wanted = plan::auto_id_count(&c.schema, &rows);
        let auto = if wanted > 0 {
            Some(self.ids.alloc(wanted as u32).await?)
        } else {
            None
        };
        let (cols, pks) = c.normalize_rows(rows, auto, upsert)?;
        let ts = c.write_rows(pid, cols, &pks, upsert).await?;
        Ok(MutationResult {
            insert_count: n,
            upsert_count: if upsert { n } else { 0 },
            delete_count: 0,
            ids: pks,
            timestamp: ts,
        })
    }

    /// Delete by filter expression (which may be `pk in [...]`).
    pub async fn delete(
        &self,
        collection: &str,
        partition: &str,
        filter: &str,
        params: &HashMap<String, serde_json::Value>,
    ) -> Result<MutationResult> {
        let c = self.collection(collection)?;
        let p = plan::plan_delete(&c.schema, filter, params)?;
        let pks = match p.keys {
            Some(keys) => keys,
            None => {
                let parts: Vec<String> = if partition.is_empty() {
                    vec![]
                } else {
                    vec![partition.to_string()]
                };
                c.matching_pks(&p.plan, &parts)?
            }
        };
        self.delete_pks(&c, pks).await
    }

    async fn delete_pks(&self, c: &Collection, pks: Vec<PrimaryKey>) -> Result<MutationResult> {
        let n = pks.len();
        let ts = if n == 0 {
            self.tso.alloc(1).await?
        } else {
            c.delete_pks(pks.clone()).await?
        };
        Ok(MutationResult {
            ids: pks,
            timestamp: ts,
            insert_count: 0,
            delete_count: n,
            upsert_count: 0,
        })
    }

    pub async fn flush(&self, collection: &str) -> Result<()> {
        let c = self.collection(collection)?;
        for s in &c.shards {
            s.flush().await?;
        }
        Ok(())
    }

    pub async fn flush_all(&self) -> Result<()> {
        for c in self.list_collections() {
            for s in &c.shards {
                s.flush().await?;
            }
        }
        Ok(())
    }

    pub fn search(&self, req: &SearchRequest) -> Result<SearchResult> {
        self.collection(&req.collection)?.search(req)
    }

    pub fn query(&self, req: &QueryRequest) -> Result<QueryResult> {
        self.collection(&req.collection)?.query(req)
    }

    pub fn row_count(&self, collection: &str) -> Result<usize> {
        Ok(self.collection(collection)?.num_rows())
    }

    /// Rows of sealed segments still waiting for an index build, over all collections.
    pub fn pending_index_rows(&self) -> usize {
        let mut pending = 0;
        for c in self.list_collections() {
            for spec in c
                .indexes
                .read()
                .iter()
                .filter(|s| s.index_type != IndexType::Flat)
            {
                for sh in &c.shards {
                    let (done, total) = sh.index_progress(spec.index_id, spec.field_id);
                    pending += total.saturating_sub(done);
                }
            }
        }
        pending
    }

    /// Totals for metrics: (collections, rows, segments, memory bytes).
    pub fn totals(&self) -> (usize, usize, usize, usize) {
        let cs = self.list_collections();
        let rows = cs.iter().map(|c| c.num_rows()).sum();
        let segs = cs
            .iter()
            .flat_map(|c| c.shards.iter())
            .map(|s| s.segment_infos().len())
            .sum();
        let mem = cs
            .iter()
            .flat_map(|c| c.shards.iter())
            .map(|s| s.memory_bytes())
            .sum();
        (cs.len(), rows, segs, mem)
    }
}
