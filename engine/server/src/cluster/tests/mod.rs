//! [`ClusterBackend`] against fakes of the coordinator, the channel owners and the delegators
//! (in-process through [`LocalNodes`]).

mod catalog;
mod fakes;
mod reads;
mod role;
mod writes;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ferrovus_core::request::{Consistency, QueryRequest, SearchRequest};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::value::{Column, RowBatch};

use super::*;
use crate::api::LocalNodes;
use crate::backend::Backend;
use fakes::{FakeCoord, FakeQuery, FakeStreaming};

/// A proxy over fakes of every other role.
struct Harness {
    coord: Arc<FakeCoord>,
    streaming: Arc<FakeStreaming>,
    query: Arc<FakeQuery>,
    proxy: ClusterBackend,
}

/// Retries give up quickly in tests that exhaust them.
fn config(retry_deadline: Duration) -> ClusterBackendConfig {
    ClusterBackendConfig {
        retry_deadline,
        catalog_watch: Duration::from_secs(5),
        id_block: 100,
    }
}

fn harness_with(config: ClusterBackendConfig) -> Harness {
    let coord = Arc::new(FakeCoord::default());
    let streaming = Arc::new(FakeStreaming::default());
    let query = Arc::new(FakeQuery::new(coord.clone(), streaming.clone()));
    let nodes = Arc::new(LocalNodes {
        coord: coord.clone(),
        streaming: streaming.clone(),
        query: query.clone(),
    });
    let proxy = ClusterBackend::new(
        nodes,
        config,
        ServerIdentity {
            node_id: 7,
            role: "proxy".into(),
            deploy_mode: "CLUSTER".into(),
        },
    );
    Harness {
        coord,
        streaming,
        query,
        proxy,
    }
}

fn harness() -> Harness {
    harness_with(config(Duration::from_secs(5)))
}

/// `id` (Int64 primary key), `v` (2-dim vector), `n` (Int64), dynamic fields on.
fn schema(name: &str, auto_id: bool) -> CollectionSchema {
    CollectionSchema {
        name: name.into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(auto_id),
            FieldSchema::new("v", DataType::FloatVector).with_dim(2),
            FieldSchema::new("n", DataType::Int64),
        ],
        enable_dynamic_field: true,
    }
}

/// Rows `ids` with `v = [id, 0]` and `n = id % 3` (without `id` when `with_ids` is false).
fn rows(ids: &[i64], with_ids: bool) -> RowBatch {
    let mut columns = vec![];
    if with_ids {
        columns.push(("id".to_string(), Column::Int(ids.to_vec())));
    }
    columns.push((
        "v".to_string(),
        Column::FloatVector {
            dim: 2,
            data: ids.iter().flat_map(|i| [*i as f32, 0.0]).collect(),
        },
    ));
    columns.push((
        "n".to_string(),
        Column::Int(ids.iter().map(|i| i % 3).collect()),
    ));
    RowBatch { columns }
}

impl Harness {
    /// Create `name` with `shards` shards (and load it with `replicas` replicas if non-zero).
    async fn collection(&self, name: &str, shards: usize, replicas: u32) -> CollectionInfo {
        self.proxy
            .create_collection(
                schema(name, false),
                shards,
                Consistency::Strong,
                BTreeMap::new(),
            )
            .await
            .unwrap();
        if replicas > 0 {
            self.coord.set_replicas(replicas);
            self.proxy
                .load_collection(name, replicas as usize)
                .await
                .unwrap();
        }
        self.proxy.describe_collection(name).await.unwrap()
    }
}

fn search(collection: &str, q: [f32; 2], limit: usize, offset: usize) -> SearchRequest {
    SearchRequest {
        collection: collection.into(),
        partitions: vec![],
        anns_field: None,
        vectors: q.to_vec(),
        num_queries: 1,
        limit,
        offset,
        metric: None,
        ef: None,
        filter: String::new(),
        filter_params: HashMap::new(),
        output_fields: vec!["n".into()],
        guarantee_ts: 0,
        ignore_growing: false,
        radius: None,
        range_filter: None,
    }
}

fn query(collection: &str, filter: &str, limit: Option<usize>, offset: usize) -> QueryRequest {
    QueryRequest {
        collection: collection.into(),
        partitions: vec![],
        filter: filter.into(),
        filter_params: HashMap::new(),
        output_fields: vec!["n".into()],
        limit,
        offset,
        guarantee_ts: 0,
    }
}

fn int_column(c: &Column) -> Vec<i64> {
    match c {
        Column::Int(v) => v.clone(),
        other => panic!("an Int column, got {other:?}"),
    }
}
