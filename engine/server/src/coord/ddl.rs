//! Collection DDL: create, drop, rename, properties, partitions and aliases. Every change is
//! clone → change → one fenced transaction → swap ([`Leader::commit`]), under the catalogue
//! write lock; errors (kinds and texts) are those Milvus clients expect, which the pymilvus
//! suite checks.
//!
//! Dropping a partition removes it from the collection record at once: every read filters to
//! the record's partitions (proxies and delegators take them from the record), so its rows are
//! invisible from then on; the reconciler then deletes its segment records and objects, and
//! rows still growing in it are sealed into segments that meet the same fate.

use ferrovus_core::CoreError;
use ferrovus_core::collection::{DEFAULT_PARTITION, MAX_SHARDS, PartitionMeta};
use ferrovus_core::schema::{CollectionSchema, validate_name};

use super::catalog::Edit;
use super::fence::store_error;
use super::leader::Leader;
use crate::api::{
    AliasReq, AlterCollectionReq, CollectionRecord, CreateCollectionReq, NameReq, PartitionReq,
    RenameReq,
};
use crate::rpc::ClusterError;

/// Standalone's notion of "the same schema" for an idempotent create.
fn same_schema(a: &CollectionSchema, b: &CollectionSchema) -> bool {
    a.fields.len() == b.fields.len()
        && a.fields.iter().zip(&b.fields).all(|(a, b)| {
            a.name == b.name
                && a.data_type == b.data_type
                && a.is_primary == b.is_primary
                && a.dim == b.dim
                && a.max_length == b.max_length
                && a.auto_id == b.auto_id
        })
        && a.enable_dynamic_field == b.enable_dynamic_field
}

pub(super) fn not_found(name: &str) -> ClusterError {
    CoreError::CollectionNotFound(name.to_string()).into()
}

impl Leader {
    pub async fn create_collection(
        &self,
        req: CreateCollectionReq,
    ) -> Result<CollectionRecord, ClusterError> {
        let schema = req.schema.validate_and_normalize()?;
        let num_shards = req.num_shards.max(1);
        if num_shards as usize > MAX_SHARDS {
            return Err(ClusterError::invalid(
                "shards_num",
                format!("shards_num must be in [1, {MAX_SHARDS}], got {num_shards}"),
            ));
        }
        let g = self.lock().await?;
        let cat = self.snapshot();
        if let Some(existing) = cat.resolve(&schema.name) {
            if same_schema(&existing.record.schema, &schema) {
                return Ok(existing.record.clone());
            }
            return Err(CoreError::CollectionExists(schema.name.clone()).into());
        }
        let id = self.ids.alloc(1).await.map_err(store_error)?;
        let pid = self.ids.alloc(1).await.map_err(store_error)?;
        let ts = self.tso.alloc(1).await.map_err(store_error)?;
        let record = CollectionRecord {
            id,
            name: schema.name.clone(),
            schema,
            num_shards,
            partitions: vec![PartitionMeta {
                id: pid,
                name: DEFAULT_PARTITION.into(),
                created_ts: ts,
            }],
            aliases: Vec::new(),
            indexes: Vec::new(),
            consistency: req.consistency,
            properties: req.properties,
            created_ts: ts,
            load: None,
        };
        let mut e = Edit::new(&cat);
        e.create_collection(record.clone());
        self.commit(&g, e).await?;
        tracing::info!(collection = %record.name, id, num_shards, "collection created");
        Ok(record)
    }

    /// Dropping a missing collection succeeds. The collection's channels are unassigned and its
    /// replicas released in the same transaction; its objects and segment records are
    /// collected in the background.
    pub async fn drop_collection(&self, req: NameReq) -> Result<(), ClusterError> {
        let g = self.lock().await?;
        let cat = self.snapshot();
        let Some(c) = cat.resolve(&req.name) else {
            return Ok(());
        };
        let (id, name) = (c.id(), c.record.name.clone());
        let mut e = Edit::new(&cat);
        e.drop_collection(id);
        self.commit(&g, e).await?;
        tracing::info!(collection = %name, id, "collection dropped");
        Ok(())
    }

    pub async fn rename_collection(&self, req: RenameReq) -> Result<(), ClusterError> {
        let RenameReq { old_name, new_name } = req;
        validate_name("new_name", &new_name)?;
        let g = self.lock().await?;
        let cat = self.snapshot();
        let c = cat.resolve(&old_name).ok_or_else(|| not_found(&old_name))?;
        // An alias of that name would shadow the renamed collection.
        if cat.by_name(&new_name).is_some() || cat.alias_target(&new_name).is_some() {
            return Err(ClusterError::invalid(
                "new_name",
                format!("duplicated new collection name {new_name}"),
            ));
        }
        let mut record = c.record.clone();
        let was = std::mem::replace(&mut record.name, new_name.clone());
        record.schema.name = new_name.clone();
        let mut e = Edit::new(&cat);
        e.put_collection(record);
        self.commit(&g, e).await?;
        tracing::info!(from = %was, to = %new_name, "collection renamed");
        Ok(())
    }

    /// Adds or replaces properties.
    pub async fn alter_collection(&self, req: AlterCollectionReq) -> Result<(), ClusterError> {
        let g = self.lock().await?;
        let cat = self.snapshot();
        let c = cat.resolve(&req.name).ok_or_else(|| not_found(&req.name))?;
        let mut record = c.record.clone();
        record.properties.extend(req.properties);
        let mut e = Edit::new(&cat);
        e.put_collection(record);
        self.commit(&g, e).await?;
        Ok(())
    }

    pub async fn create_partition(&self, req: PartitionReq) -> Result<(), ClusterError> {
        let PartitionReq {
            collection,
            partition,
        } = req;
        validate_name("partition_name", &partition)?;
        let g = self.lock().await?;
        let cat = self.snapshot();
        let c = cat
            .resolve(&collection)
            .ok_or_else(|| not_found(&collection))?;
        if c.record.partitions.iter().any(|p| p.name == partition) {
            return Err(ClusterError::invalid(
                "partition_name",
                format!("partition {partition} already exists"),
            ));
        }
        if c.record.partitions.len() >= 1024 {
            return Err(ClusterError::invalid(
                "partition_name",
                "a collection can have at most 1024 partitions",
            ));
        }
        let id = self.ids.alloc(1).await.map_err(store_error)?;
        let ts = self.tso.alloc(1).await.map_err(store_error)?;
        let mut record = c.record.clone();
        record.partitions.push(PartitionMeta {
            id,
            name: partition.clone(),
            created_ts: ts,
        });
        let mut e = Edit::new(&cat);
        e.put_collection(record);
        self.commit(&g, e).await?;
        tracing::info!(collection = %c.record.name, %partition, id, "partition created");
        Ok(())
    }

    /// Removes the partition from the record (its rows are invisible from now on; see the
    /// module docs).
    pub async fn drop_partition(&self, req: PartitionReq) -> Result<(), ClusterError> {
        let PartitionReq {
            collection,
            partition,
        } = req;
        if partition == DEFAULT_PARTITION {
            return Err(ClusterError::invalid(
                "partition_name",
                "the default partition cannot be dropped",
            ));
        }
        let g = self.lock().await?;
        let cat = self.snapshot();
        let c = cat
            .resolve(&collection)
            .ok_or_else(|| not_found(&collection))?;
        let pid = c
            .record
            .partitions
            .iter()
            .find(|p| p.name == partition)
            .map(|p| p.id)
            .ok_or_else(|| ClusterError::from(CoreError::PartitionNotFound(partition.clone())))?;
        let mut record = c.record.clone();
        record.partitions.retain(|p| p.id != pid);
        let mut e = Edit::new(&cat);
        e.put_collection(record);
        self.commit(&g, e).await?;
        tracing::info!(collection = %c.record.name, %partition, id = pid, "partition dropped");
        Ok(())
    }

    pub async fn create_alias(&self, req: AliasReq) -> Result<(), ClusterError> {
        let AliasReq { alias, collection } = req;
        validate_name("alias", &alias)?;
        let g = self.lock().await?;
        let cat = self.snapshot();
        if cat.by_name(&alias).is_some() {
            return Err(ClusterError::invalid(
                "alias",
                format!("alias {alias} conflicts with a collection name"),
            ));
        }
        if cat.alias_target(&alias).is_some() {
            return Err(ClusterError::invalid(
                "alias",
                format!("alias {alias} already exists"),
            ));
        }
        let c = cat
            .resolve(&collection)
            .ok_or_else(|| not_found(&collection))?;
        let mut record = c.record.clone();
        record.aliases.push(alias.clone());
        let mut e = Edit::new(&cat);
        e.put_collection(record);
        self.commit(&g, e).await?;
        tracing::info!(%alias, collection = %c.record.name, "alias created");
        Ok(())
    }

    /// Dropping a missing alias succeeds.
    pub async fn drop_alias(&self, req: NameReq) -> Result<(), ClusterError> {
        let alias = req.name;
        let g = self.lock().await?;
        let cat = self.snapshot();
        let Some(target) = cat.alias_target(&alias).and_then(|id| cat.get(id)) else {
            return Ok(());
        };
        let mut record = target.record.clone();
        record.aliases.retain(|a| *a != alias);
        let mut e = Edit::new(&cat);
        e.put_collection(record);
        self.commit(&g, e).await?;
        tracing::info!(%alias, "alias dropped");
        Ok(())
    }

    /// Points `alias` at `collection` (creating it if missing, as standalone does), in one
    /// transaction: on any error the alias keeps its target.
    pub async fn alter_alias(&self, req: AliasReq) -> Result<(), ClusterError> {
        let AliasReq { alias, collection } = req;
        validate_name("alias", &alias)?;
        let g = self.lock().await?;
        let cat = self.snapshot();
        if cat.by_name(&alias).is_some() {
            return Err(ClusterError::invalid(
                "alias",
                format!("alias {alias} conflicts with a collection name"),
            ));
        }
        // The alias itself does not name its new target (standalone resolves the target after
        // dropping the alias).
        let target = (collection != alias)
            .then(|| cat.resolve(&collection))
            .flatten()
            .ok_or_else(|| not_found(&collection))?;
        let old = cat.alias_target(&alias);
        if old == Some(target.id()) {
            return Ok(());
        }
        let mut e = Edit::new(&cat);
        if let Some(old) = old.and_then(|id| cat.get(id)) {
            let mut record = old.record.clone();
            record.aliases.retain(|a| *a != alias);
            e.put_collection(record);
        }
        let mut record = target.record.clone();
        record.aliases.push(alias.clone());
        e.put_collection(record);
        self.commit(&g, e).await?;
        tracing::info!(%alias, collection = %target.record.name, "alias altered");
        Ok(())
    }
}
