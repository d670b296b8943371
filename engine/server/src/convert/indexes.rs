//! Indexes: CreateIndex parameters and the descriptions, states and progress replies.

use std::collections::BTreeMap;

use ferrovus_proto::common::{self, KeyValuePair};
use ferrovus_proto::milvus::IndexDescription;

use super::kv;
use crate::backend::IndexInfo;
use crate::error::{ApiError, ApiResult};

/// Index params from `CreateIndex.extra_params`: top-level keys plus the JSON object in
/// `params` (how pymilvus sends `M`/`efConstruction`).
pub fn index_params(extra: &[KeyValuePair]) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kv in extra {
        if kv.key == "params" {
            let v: serde_json::Value = serde_json::from_str(&kv.value).map_err(|e| {
                ApiError::invalid(
                    "params",
                    format!(
                        "index params must be a JSON object, got {:?}: {e}",
                        kv.value
                    ),
                )
            })?;
            let Some(obj) = v.as_object() else {
                return Err(ApiError::invalid(
                    "params",
                    format!("index params must be a JSON object, got {}", kv.value),
                ));
            };
            for (k, v) in obj {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.insert(k.clone(), s);
            }
        } else {
            out.insert(kv.key.clone(), kv.value.clone());
        }
    }
    Ok(out)
}

/// The index a describe/state/progress request names: its index name, else its field name.
pub fn index_name_or_field<'a>(index_name: &'a str, field_name: &'a str) -> &'a str {
    if index_name.is_empty() {
        field_name
    } else {
        index_name
    }
}

pub fn index_state(finished: bool) -> i32 {
    (if finished {
        common::IndexState::Finished
    } else {
        common::IndexState::InProgress
    }) as i32
}

/// One DescribeIndex entry: `index_type` and `metric_type` at the top level, the other user
/// parameters in a `params` JSON object (numbers as numbers), and the build progress.
pub fn index_description(i: IndexInfo) -> IndexDescription {
    let finished = i.finished();
    let (s, done, total) = (i.spec, i.indexed_rows, i.total_rows);
    let mut params = vec![
        kv("index_type", s.index_type.as_str()),
        kv("metric_type", s.metric.as_str()),
    ];
    let user: serde_json::Map<String, serde_json::Value> = s
        .params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "index_type" | "metric_type"))
        .map(|(k, v)| {
            (
                k.clone(),
                v.parse::<i64>()
                    .map(serde_json::Value::from)
                    .unwrap_or(serde_json::Value::String(v.clone())),
            )
        })
        .collect();
    if !user.is_empty() {
        params.push(kv("params", serde_json::Value::Object(user).to_string()));
    }
    IndexDescription {
        index_name: s.index_name,
        index_id: s.index_id,
        params,
        field_name: s.field_name,
        indexed_rows: done as i64,
        total_rows: total as i64,
        state: index_state(finished),
        pending_index_rows: (total - done.min(total)) as i64,
        ..Default::default()
    }
}

/// (indexed rows, total rows) over several indexes, for GetIndexBuildProgress.
pub fn index_progress(list: &[IndexInfo]) -> (i64, i64) {
    let (d, t) = list
        .iter()
        .fold((0, 0), |(a, b), i| (a + i.indexed_rows, b + i.total_rows));
    (d as i64, t as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovus_core::request::{IndexSpec, IndexType, MetricType};
    use ferrovus_proto::codes;

    #[test]
    fn index_params_flatten_json() {
        let p = index_params(&[
            kv("index_type", "HNSW"),
            kv("metric_type", "L2"),
            kv("params", r#"{"M": 8, "efConstruction": 64}"#),
        ])
        .unwrap();
        assert_eq!(p.get("M").map(String::as_str), Some("8"));
        assert_eq!(p.get("efConstruction").map(String::as_str), Some("64"));
        assert_eq!(p.get("index_type").map(String::as_str), Some("HNSW"));
        let e = index_params(&[kv("params", "{not json")]).unwrap_err();
        assert_eq!(e.code(), codes::PARAMETER_INVALID);
        assert!(
            e.to_string().starts_with(
                "invalid parameter[params]: index params must be a JSON object, got \"{not json\": "
            ),
            "{e}"
        );
        let e = index_params(&[kv("params", "[1, 2]")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid parameter[params]: index params must be a JSON object, got [1, 2]"
        );
    }

    #[test]
    fn names_and_descriptions() {
        assert_eq!(index_name_or_field("", "v"), "v");
        assert_eq!(index_name_or_field("idx", "v"), "idx");
        let info = IndexInfo {
            spec: IndexSpec {
                index_id: 5,
                index_name: "idx".into(),
                field_id: 101,
                field_name: "v".into(),
                index_type: IndexType::Hnsw,
                metric: MetricType::L2,
                m: 8,
                ef_construction: 64,
                params: [
                    ("index_type".to_string(), "HNSW".to_string()),
                    ("M".to_string(), "8".to_string()),
                    ("mode".to_string(), "fast".to_string()),
                ]
                .into(),
            },
            indexed_rows: 30,
            total_rows: 100,
        };
        assert_eq!(index_progress(std::slice::from_ref(&info)), (30, 100));
        let d = index_description(info);
        assert_eq!(
            d.params,
            [
                kv("index_type", "HNSW"),
                kv("metric_type", "L2"),
                kv("params", r#"{"M":8,"mode":"fast"}"#)
            ]
        );
        assert_eq!(d.state, common::IndexState::InProgress as i32);
        assert_eq!(
            (d.indexed_rows, d.total_rows, d.pending_index_rows),
            (30, 100, 70)
        );
    }
}
