//! Request and result types of the core API (independent of the wire protocol).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::value::{Column, PrimaryKey};

/// Largest top-k / limit accepted (Milvus' `quotaAndLimits.limits.topK`).
pub const MAX_TOPK: usize = 16384;

/// Distance metric with Milvus score conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetricType {
    /// Squared Euclidean distance, ascending.
    L2,
    /// Inner product, descending.
    Ip,
    /// Cosine similarity, descending.
    Cosine,
}

impl MetricType {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "L2" => Ok(MetricType::L2),
            "IP" => Ok(MetricType::Ip),
            "COSINE" => Ok(MetricType::Cosine),
            _ => Err(CoreError::invalid(
                "metric_type",
                format!("unsupported metric type {s:?}; expected one of L2, IP, COSINE"),
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::L2 => "L2",
            MetricType::Ip => "IP",
            MetricType::Cosine => "COSINE",
        }
    }
    /// Whether a larger score is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, MetricType::L2)
    }
    /// True if score `a` ranks before score `b`.
    pub fn better(self, a: f32, b: f32) -> bool {
        if self.higher_is_better() {
            a > b
        } else {
            a < b
        }
    }
}

/// Index type of a vector field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexType {
    Flat,
    Hnsw,
    AutoIndex,
}

impl IndexType {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "FLAT" => Ok(IndexType::Flat),
            "HNSW" => Ok(IndexType::Hnsw),
            "AUTOINDEX" | "" => Ok(IndexType::AutoIndex),
            _ => Err(CoreError::invalid(
                "index_type",
                format!("unsupported index type {s:?}; expected one of FLAT, HNSW, AUTOINDEX"),
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            IndexType::Flat => "FLAT",
            IndexType::Hnsw => "HNSW",
            IndexType::AutoIndex => "AUTOINDEX",
        }
    }
}

/// An index definition on a vector field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexSpec {
    pub index_id: i64,
    pub index_name: String,
    pub field_id: i64,
    pub field_name: String,
    pub index_type: IndexType,
    pub metric: MetricType,
    /// HNSW `M`.
    pub m: usize,
    /// HNSW `efConstruction`.
    pub ef_construction: usize,
    /// User-supplied parameters, echoed back by DescribeIndex.
    pub params: BTreeMap<String, String>,
}

/// Read consistency, as Milvus' `ConsistencyLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Consistency {
    Strong,
    Session,
    #[default]
    Bounded,
    Eventually,
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub collection: String,
    pub partitions: Vec<String>,
    pub anns_field: Option<String>,
    /// Row-major query vectors.
    pub vectors: Vec<f32>,
    pub num_queries: usize,
    pub limit: usize,
    pub offset: usize,
    pub metric: Option<MetricType>,
    pub ef: Option<usize>,
    pub filter: String,
    pub filter_params: std::collections::HashMap<String, serde_json::Value>,
    pub output_fields: Vec<String>,
    /// Only rows with timestamps ≤ this are waited for (0 = no wait).
    pub guarantee_ts: u64,
    pub ignore_growing: bool,
    pub radius: Option<f32>,
    pub range_filter: Option<f32>,
}

/// Results of one search: per query, hits best first.
#[derive(Debug, Clone, Default)]
pub struct SearchResult {
    pub num_queries: usize,
    pub topk: usize,
    /// Per query: primary keys and scores.
    pub ids: Vec<Vec<PrimaryKey>>,
    pub scores: Vec<Vec<f32>>,
    /// Output fields: (field name, column over all hits of all queries in order).
    pub fields: Vec<OutputColumn>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputColumn {
    pub name: String,
    pub field_id: i64,
    pub data_type: crate::schema::DataType,
    pub is_dynamic: bool,
    pub column: Column,
}

#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub collection: String,
    pub partitions: Vec<String>,
    pub filter: String,
    pub filter_params: std::collections::HashMap<String, serde_json::Value>,
    pub output_fields: Vec<String>,
    pub limit: Option<usize>,
    pub offset: usize,
    pub guarantee_ts: u64,
}

#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub num_rows: usize,
    pub fields: Vec<OutputColumn>,
    /// Set when the request asked for `count(*)`.
    pub count: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct MutationResult {
    pub ids: Vec<PrimaryKey>,
    pub timestamp: u64,
    pub insert_count: usize,
    pub delete_count: usize,
    pub upsert_count: usize,
}
