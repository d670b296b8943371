//! Index DDL and build progress. An index definition lives in the collection record; the
//! builds it calls for (one per live segment lacking it, vector fields only, not FLAT) are
//! data-node tasks, and each result is recorded on its segment (query nodes then load it).

use ferrovus_core::request::{IndexSpec, IndexType, MetricType};
use ferrovus_core::schema::DataType;
use ferrovus_core::vindex;

use super::catalog::{Edit, has_index};
use super::ddl::not_found;
use super::fence::store_error;
use super::leader::Leader;
use crate::api::{CreateIndexReq, DropIndexReq, IndexProgress, NameReq};
use crate::rpc::ClusterError;

impl Leader {
    /// One distinct index per field: an identical request is a no-op.
    pub async fn create_index(&self, req: CreateIndexReq) -> Result<(), ClusterError> {
        let CreateIndexReq {
            collection,
            field_name,
            index_name,
            params,
        } = req;
        let g = self.lock().await?;
        let cat = self.snapshot();
        let c = cat
            .resolve(&collection)
            .ok_or_else(|| not_found(&collection))?;
        let field = c
            .record
            .schema
            .field(&field_name)
            .ok_or_else(|| {
                ClusterError::invalid("field_name", format!("field {field_name} does not exist"))
            })?
            .clone();
        if field.data_type != DataType::FloatVector {
            tracing::info!(
                field = %field_name,
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
        let (m, efc) = vindex::hnsw_params(index_type, &params)?;
        let index_name = if index_name.is_empty() {
            field_name.clone()
        } else {
            index_name
        };
        let specs = &c.record.indexes;
        if let Some(existing) = specs.iter().find(|s| s.field_id == field.field_id) {
            if existing.index_type == index_type
                && existing.metric == metric
                && existing.m == m
                && existing.ef_construction == efc
            {
                return Ok(());
            }
            return Err(ClusterError::invalid(
                "index",
                format!(
                    "at most one distinct index is allowed per field: {field_name} already has index {}",
                    existing.index_name
                ),
            ));
        }
        if specs.iter().any(|s| s.index_name == index_name) {
            return Err(ClusterError::invalid(
                "index_name",
                format!("index name {index_name} is already used"),
            ));
        }
        let spec = IndexSpec {
            index_id: self.ids.alloc(1).await.map_err(store_error)?,
            index_name,
            field_id: field.field_id,
            field_name: field.name.clone(),
            index_type,
            metric,
            m,
            ef_construction: efc,
            params,
        };
        let mut record = c.record.clone();
        record.indexes.push(spec.clone());
        let mut e = Edit::new(&cat);
        e.put_collection(record);
        self.commit(&g, e).await?;
        tracing::info!(collection = %c.record.name, index = %spec.index_name, field = %spec.field_name, index_id = spec.index_id, "index created");
        Ok(())
    }

    /// Refused while the collection is loaded. The segments' files of the dropped index are
    /// collected by the reconciler.
    pub async fn drop_index(&self, req: DropIndexReq) -> Result<(), ClusterError> {
        let DropIndexReq {
            collection,
            field_name,
            index_name,
        } = req;
        let g = self.lock().await?;
        let cat = self.snapshot();
        let c = cat
            .resolve(&collection)
            .ok_or_else(|| not_found(&collection))?;
        if c.is_loaded() {
            return Err(ClusterError::invalid(
                "index",
                "index cannot be dropped while the collection is loaded; release it first",
            ));
        }
        let matches = |s: &IndexSpec| {
            (index_name.is_empty() || s.index_name == index_name)
                && (field_name.is_empty() || s.field_name == field_name)
        };
        if !c.record.indexes.iter().any(matches) {
            return Ok(());
        }
        let mut record = c.record.clone();
        record.indexes.retain(|s| !matches(s));
        let mut e = Edit::new(&cat);
        e.put_collection(record);
        self.commit(&g, e).await?;
        tracing::info!(collection = %c.record.name, field = %field_name, index = %index_name, "index dropped");
        Ok(())
    }

    /// Every index of the collection with its progress over the live sealed segments (an
    /// index that is not built per segment — FLAT, scalar — counts as complete).
    pub async fn index_progress(&self, req: NameReq) -> Result<Vec<IndexProgress>, ClusterError> {
        self.check()?;
        let cat = self.snapshot();
        let c = cat.resolve(&req.name).ok_or_else(|| not_found(&req.name))?;
        let built: Vec<i64> = c.built_specs().map(|s| s.index_id).collect();
        let live: Vec<_> = c.segments.values().filter(|s| c.is_live(s)).collect();
        let total_rows: usize = live.iter().map(|s| s.meta.num_rows).sum();
        Ok(c.record
            .indexes
            .iter()
            .map(|spec| {
                if !built.contains(&spec.index_id) {
                    return IndexProgress {
                        spec: spec.clone(),
                        indexed_rows: total_rows,
                        total_rows,
                        pending_segments: 0,
                    };
                }
                let (done, pending) = live.iter().fold((0, 0), |(d, p), s| {
                    if has_index(s, spec) {
                        (d + s.meta.num_rows, p)
                    } else {
                        (d, p + 1)
                    }
                });
                IndexProgress {
                    spec: spec.clone(),
                    indexed_rows: done,
                    total_rows,
                    pending_segments: pending,
                }
            })
            .collect())
    }
}
