//! Reads (search, query): request parsing and result assembly (output fields, dynamic keys,
//! score rounding).

use ferrovus_core::request::{
    MetricType, QueryRequest as CoreQuery, QueryResult, SearchRequest as CoreSearch, SearchResult,
};
use ferrovus_core::schema::{CollectionSchema, DYNAMIC_FIELD_NAME};
use ferrovus_proto::common::{PlaceholderGroup, PlaceholderType};
use ferrovus_proto::milvus::{
    QueryRequest, QueryResults, SearchRequest, SearchResults, search_request,
};
use ferrovus_proto::schema as ps;
use ferrovus_proto::status;
use prost::Message;

use super::{
    column_to_field_data, empty_ids, ids_to_proto, kv_get, kv_usize, parse_usize, template_values,
};
use crate::backend::CollectionInfo;
use crate::error::{ApiError, ApiResult};

/// A parsed Search request.
#[derive(Debug, Clone)]
pub struct SearchPlan {
    pub request: CoreSearch,
    /// Decimals to round scores to; negative keeps them as they are.
    pub round_decimal: i32,
}

/// Parse a Search request's parameters (`topk`, `offset`, `metric_type`, `params` JSON with
/// `ef`/`radius`/`range_filter`, `ignore_growing`, `anns_field`, `round_decimal`) and query
/// vectors.
pub fn parse_search(req: &SearchRequest) -> ApiResult<SearchPlan> {
    let p = &req.search_params;
    let topk = kv_get(p, "topk")
        .or_else(|| kv_get(p, "limit"))
        .ok_or_else(|| ApiError::invalid("topk", "search_params has no topk"))?;
    let limit = parse_usize("topk", topk)?;
    let offset = kv_usize(p, "offset")?.unwrap_or(0);
    let mut metric = kv_get(p, "metric_type")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mut ef = None;
    let mut radius = None;
    let mut range_filter = None;
    if let Some(params) = kv_get(p, "params") {
        let v: serde_json::Value = serde_json::from_str(params).map_err(|e| {
            ApiError::invalid(
                "params",
                format!("search params must be JSON, got {params:?}: {e}"),
            )
        })?;
        if let Some(m) = v
            .get("metric_type")
            .and_then(|m| m.as_str())
            .filter(|s| !s.is_empty())
        {
            metric = Some(m.to_string());
        }
        if let Some(e) = v.get("ef") {
            let n = e
                .as_u64()
                .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| {
                    ApiError::invalid("ef", format!("ef must be a positive integer, got {e}"))
                })?;
            if n == 0 || n > 32768 {
                return Err(ApiError::invalid(
                    "ef",
                    format!("ef must be in [1, 32768], got {n}"),
                ));
            }
            ef = Some(n as usize);
        }
        radius = v.get("radius").and_then(|r| r.as_f64()).map(|r| r as f32);
        range_filter = v
            .get("range_filter")
            .and_then(|r| r.as_f64())
            .map(|r| r as f32);
    }
    let metric = metric.map(|m| MetricType::parse(&m)).transpose()?;
    let ignore_growing =
        kv_get(p, "ignore_growing").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let anns_field = kv_get(p, "anns_field").map(str::to_string);
    let bytes = match &req.search_input {
        Some(search_request::SearchInput::PlaceholderGroup(b)) => b.as_slice(),
        Some(search_request::SearchInput::Ids(_)) => {
            return Err(ApiError::Unimplemented("search by primary keys"));
        }
        None => return Err(ApiError::invalid("data", "no query vectors in the request")),
    };
    let (vectors, nq, _dim) = parse_placeholder_group(bytes)?;
    let round_decimal = kv_get(p, "round_decimal")
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(-1);
    Ok(SearchPlan {
        request: CoreSearch {
            collection: req.collection_name.clone(),
            partitions: req.partition_names.clone(),
            anns_field,
            vectors,
            num_queries: nq,
            limit,
            offset,
            metric,
            ef,
            filter: req.dsl.clone(),
            filter_params: template_values(&req.expr_template_values),
            output_fields: req.output_fields.clone(),
            guarantee_ts: req.guarantee_timestamp,
            ignore_growing,
            radius,
            range_filter,
        },
        round_decimal,
    })
}

/// Parse a Query request (`limit` and `offset` from `query_params`).
pub fn parse_query(req: &QueryRequest) -> ApiResult<CoreQuery> {
    let limit = kv_usize(&req.query_params, "limit")?;
    let offset = kv_usize(&req.query_params, "offset")?.unwrap_or(0);
    Ok(CoreQuery {
        collection: req.collection_name.clone(),
        partitions: req.partition_names.clone(),
        filter: req.expr.clone(),
        filter_params: template_values(&req.expr_template_values),
        output_fields: req.output_fields.clone(),
        limit,
        offset,
        guarantee_ts: req.guarantee_timestamp,
    })
}

/// The Search reply: hits of every query in order, scores rounded to `round_decimal`.
pub fn search_results(
    c: &CollectionInfo,
    res: SearchResult,
    output_fields: &[String],
    round_decimal: i32,
    session_ts: u64,
) -> SearchResults {
    let mut scores: Vec<f32> = res.scores.into_iter().flatten().collect();
    if round_decimal >= 0 {
        let f = 10f32.powi(round_decimal.min(6));
        for s in &mut scores {
            *s = (*s * f).round() / f;
        }
    }
    let topks = res.ids.iter().map(|v| v.len() as i64).collect();
    let all_ids: Vec<_> = res.ids.into_iter().flatten().collect();
    SearchResults {
        status: Some(status::success()),
        results: Some(ps::SearchResultData {
            num_queries: res.num_queries as i64,
            top_k: res.topk as i64,
            fields_data: output_columns(&res.fields, output_fields, &c.schema),
            scores,
            ids: Some(if all_ids.is_empty() {
                empty_ids(&c.schema)
            } else {
                ids_to_proto(&all_ids)
            }),
            topks,
            output_fields: output_fields.to_vec(),
            primary_field_name: c.schema.primary_field().name.clone(),
            ..Default::default()
        }),
        collection_name: c.name.clone(),
        session_ts,
    }
}

/// The Query reply: the `count(*)` column, or the output columns with the requested dynamic
/// keys listed after the schema fields.
pub fn query_results(
    c: &CollectionInfo,
    res: QueryResult,
    output_fields: &[String],
) -> QueryResults {
    let primary_field_name = c.schema.primary_field().name.clone();
    if let Some(count) = res.count {
        return QueryResults {
            status: Some(status::success()),
            fields_data: vec![ps::FieldData {
                r#type: ps::DataType::Int64 as i32,
                field_name: "count(*)".into(),
                field: Some(ps::field_data::Field::Scalars(ps::ScalarField {
                    data: Some(ps::scalar_field::Data::LongData(ps::LongArray {
                        data: vec![count as i64],
                    })),
                })),
                ..Default::default()
            }],
            collection_name: c.name.clone(),
            output_fields: vec!["count(*)".into()],
            primary_field_name,
            ..Default::default()
        };
    }
    let names = res
        .fields
        .iter()
        .filter(|f| !f.is_dynamic)
        .map(|f| f.name.clone())
        .chain(
            output_fields
                .iter()
                .filter(|n| c.schema.field(n).is_none() && *n != "*")
                .cloned(),
        )
        .collect();
    QueryResults {
        status: Some(status::success()),
        fields_data: output_columns(&res.fields, output_fields, &c.schema),
        collection_name: c.name.clone(),
        output_fields: names,
        primary_field_name,
        ..Default::default()
    }
}

/// Result columns on the wire, with only the requested dynamic keys kept inside `$meta`.
fn output_columns(
    columns: &[ferrovus_core::request::OutputColumn],
    requested: &[String],
    schema: &CollectionSchema,
) -> Vec<ps::FieldData> {
    let mut fields: Vec<ps::FieldData> = columns.iter().map(column_to_field_data).collect();
    filter_dynamic(&mut fields, requested, schema);
    fields
}

/// Keep only the requested dynamic keys inside `$meta` (all of them for `*` or `$meta`).
fn filter_dynamic(fields: &mut [ps::FieldData], requested: &[String], schema: &CollectionSchema) {
    if requested
        .iter()
        .any(|f| f == "*" || f == DYNAMIC_FIELD_NAME)
    {
        return;
    }
    let keys: Vec<&str> = requested
        .iter()
        .map(String::as_str)
        .filter(|n| schema.field(n).is_none())
        .collect();
    for fd in fields.iter_mut().filter(|f| f.is_dynamic) {
        if let Some(ps::field_data::Field::Scalars(ps::ScalarField {
            data: Some(ps::scalar_field::Data::JsonData(a)),
        })) = &mut fd.field
        {
            for row in a.data.iter_mut() {
                if let Ok(serde_json::Value::Object(m)) =
                    serde_json::from_slice::<serde_json::Value>(row)
                {
                    let kept: serde_json::Map<String, serde_json::Value> = m
                        .into_iter()
                        .filter(|(k, _)| keys.contains(&k.as_str()))
                        .collect();
                    *row = serde_json::to_vec(&kept).unwrap_or_default();
                }
            }
        }
    }
}

/// Parse a serialized `PlaceholderGroup` of float vectors into (row-major data, nq, dim).
pub fn parse_placeholder_group(bytes: &[u8]) -> Result<(Vec<f32>, usize, usize), ApiError> {
    let g = PlaceholderGroup::decode(bytes).map_err(|e| {
        ApiError::invalid(
            "placeholder_group",
            format!("cannot decode PlaceholderGroup: {e}"),
        )
    })?;
    let ph = g
        .placeholders
        .first()
        .ok_or_else(|| ApiError::invalid("data", "no query vectors in the request"))?;
    if ph.r#type != PlaceholderType::FloatVector as i32 {
        let name = PlaceholderType::try_from(ph.r#type)
            .map(|t| t.as_str_name().to_string())
            .unwrap_or(ph.r#type.to_string());
        return Err(ApiError::invalid(
            "data",
            format!("placeholder type {name} is not supported; only FloatVector queries are"),
        ));
    }
    if ph.values.is_empty() {
        return Err(ApiError::invalid("data", "no query vectors in the request"));
    }
    let first_len = ph.values[0].len();
    if first_len == 0 || first_len % 4 != 0 {
        return Err(ApiError::invalid(
            "data",
            format!("query vector byte length {first_len} is not a positive multiple of 4"),
        ));
    }
    let dim = first_len / 4;
    let mut data = Vec::with_capacity(dim * ph.values.len());
    for (i, v) in ph.values.iter().enumerate() {
        if v.len() != first_len {
            return Err(ApiError::invalid(
                "data",
                format!(
                    "query vector {i} has dim {}, the first has {dim}",
                    v.len() / 4
                ),
            ));
        }
        data.extend(
            v.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    Ok((data, ph.values.len(), dim))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovus_proto::common::PlaceholderValue;

    #[test]
    fn placeholder_group_round_trip_and_errors() {
        let v1: Vec<u8> = [1.0f32, 2.0, 3.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let v2: Vec<u8> = [4.0f32, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let g = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: vec![v1, v2.clone()],
                ..Default::default()
            }],
        };
        let (data, nq, dim) = parse_placeholder_group(&g.encode_to_vec()).unwrap();
        assert_eq!((nq, dim), (2, 3));
        assert_eq!(data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let bad = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: vec![v2, vec![0; 8]],
                ..Default::default()
            }],
        };
        assert!(
            parse_placeholder_group(&bad.encode_to_vec())
                .unwrap_err()
                .to_string()
                .contains("query vector 1")
        );
        let empty = PlaceholderGroup::default();
        assert!(parse_placeholder_group(&empty.encode_to_vec()).is_err());
        assert!(parse_placeholder_group(b"\xff\xff\xff").is_err());
    }
}
