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
    use crate::convert::kv;
    use ferrovus_proto::codes;
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

    fn vectors(vs: &[&[f32]]) -> Vec<u8> {
        PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: vs
                    .iter()
                    .map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect())
                    .collect(),
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn search(params: &[(&str, &str)]) -> SearchRequest {
        SearchRequest {
            collection_name: "c".into(),
            partition_names: vec!["p".into()],
            dsl: "id > 1".into(),
            output_fields: vec!["id".into()],
            guarantee_timestamp: 9,
            search_params: params.iter().map(|(k, v)| kv(k, *v)).collect(),
            search_input: Some(search_request::SearchInput::PlaceholderGroup(vectors(&[
                &[1.0, 2.0],
                &[3.0, 4.0],
            ]))),
            ..Default::default()
        }
    }

    fn search_error(params: &[(&str, &str)]) -> (i32, String) {
        let e = parse_search(&search(params)).unwrap_err();
        (e.code(), e.to_string())
    }

    #[test]
    fn search_parameters() {
        let plan = parse_search(&search(&[
            ("topk", "10"),
            ("offset", "2"),
            ("metric_type", "L2"),
            (
                "params",
                r#"{"metric_type": "IP", "ef": "64", "radius": 0.5, "range_filter": 0.9}"#,
            ),
            ("ignore_growing", "True"),
            ("anns_field", "v"),
            ("round_decimal", "3"),
        ]))
        .unwrap();
        let r = &plan.request;
        assert_eq!((r.limit, r.offset, r.ef), (10, 2, Some(64)));
        assert_eq!(
            r.metric,
            Some(MetricType::Ip),
            "params override the top-level metric"
        );
        assert_eq!((r.radius, r.range_filter), (Some(0.5), Some(0.9)));
        assert!(r.ignore_growing);
        assert_eq!(r.anns_field.as_deref(), Some("v"));
        assert_eq!((r.num_queries, r.vectors.len()), (2, 4));
        assert_eq!((r.collection.as_str(), r.filter.as_str()), ("c", "id > 1"));
        assert_eq!(
            (r.partitions.as_slice(), r.guarantee_ts),
            (&["p".to_string()][..], 9)
        );
        assert_eq!(plan.round_decimal, 3);
        // `limit` stands for `topk`; the rest defaults.
        let plan = parse_search(&search(&[("limit", "5"), ("metric_type", "")])).unwrap();
        assert_eq!((plan.request.limit, plan.request.offset), (5, 0));
        assert_eq!((plan.request.metric, plan.request.ef), (None, None));
        assert!(!plan.request.ignore_growing);
        assert_eq!(plan.round_decimal, -1);
    }

    #[test]
    fn bad_search_parameters_are_clear_errors() {
        let invalid = codes::PARAMETER_INVALID;
        assert_eq!(
            search_error(&[]),
            (
                invalid,
                "invalid parameter[topk]: search_params has no topk".into()
            )
        );
        assert_eq!(
            search_error(&[("topk", "-1")]),
            (
                invalid,
                r#"invalid parameter[topk]: topk must be a non-negative integer, got "-1""#.into()
            )
        );
        assert_eq!(
            search_error(&[("topk", "3"), ("offset", "x")]),
            (
                invalid,
                r#"invalid parameter[offset]: offset must be a non-negative integer, got "x""#
                    .into()
            )
        );
        let (code, msg) = search_error(&[("topk", "3"), ("params", "{bad")]);
        assert_eq!(code, invalid);
        assert!(
            msg.starts_with(
                r#"invalid parameter[params]: search params must be JSON, got "{bad": "#
            ),
            "{msg}"
        );
        assert_eq!(
            search_error(&[("topk", "3"), ("params", r#"{"ef": 0}"#)]),
            (
                invalid,
                "invalid parameter[ef]: ef must be in [1, 32768], got 0".into()
            )
        );
        assert_eq!(
            search_error(&[("topk", "3"), ("params", r#"{"ef": 40000}"#)]),
            (
                invalid,
                "invalid parameter[ef]: ef must be in [1, 32768], got 40000".into()
            )
        );
        assert_eq!(
            search_error(&[("topk", "3"), ("params", r#"{"ef": "many"}"#)]),
            (
                invalid,
                r#"invalid parameter[ef]: ef must be a positive integer, got "many""#.into()
            )
        );
        assert_eq!(
            search_error(&[("topk", "3"), ("metric_type", "HAMMING")]),
            (
                invalid,
                r#"invalid metric_type: unsupported metric type "HAMMING"; expected one of L2, IP, COSINE"#
                    .into()
            )
        );
        let mut by_ids = search(&[("topk", "3")]);
        by_ids.search_input = Some(search_request::SearchInput::Ids(ps::IDs::default()));
        let e = parse_search(&by_ids).unwrap_err();
        assert_eq!(e.code(), codes::UNIMPLEMENTED);
        assert_eq!(
            e.to_string(),
            "search by primary keys is not implemented by Ferrovus yet"
        );
        let mut none = search(&[("topk", "3")]);
        none.search_input = None;
        assert_eq!(
            parse_search(&none).unwrap_err().to_string(),
            "invalid parameter[data]: no query vectors in the request"
        );
        let mut ragged = search(&[("topk", "3")]);
        ragged.search_input = Some(search_request::SearchInput::PlaceholderGroup(vectors(&[
            &[1.0, 2.0],
            &[3.0],
        ])));
        assert_eq!(
            parse_search(&ragged).unwrap_err().to_string(),
            "invalid parameter[data]: query vector 1 has dim 1, the first has 2"
        );
    }

    #[test]
    fn query_parameters() {
        let mut r = QueryRequest {
            collection_name: "c".into(),
            expr: "id in [1, 2]".into(),
            output_fields: vec!["*".into()],
            guarantee_timestamp: 4,
            ..Default::default()
        };
        let q = parse_query(&r).unwrap();
        assert_eq!((q.limit, q.offset, q.guarantee_ts), (None, 0, 4));
        assert_eq!(q.filter, "id in [1, 2]");
        r.query_params = vec![kv("limit", "10"), kv("offset", "5")];
        let q = parse_query(&r).unwrap();
        assert_eq!((q.limit, q.offset), (Some(10), 5));
        r.query_params = vec![kv("limit", "ten")];
        let e = parse_query(&r).unwrap_err();
        assert_eq!(e.code(), codes::PARAMETER_INVALID);
        assert_eq!(
            e.to_string(),
            r#"invalid parameter[limit]: limit must be a non-negative integer, got "ten""#
        );
        r.query_params = vec![kv("offset", "-5")];
        assert_eq!(
            parse_query(&r).unwrap_err().to_string(),
            r#"invalid parameter[offset]: offset must be a non-negative integer, got "-5""#
        );
    }

    fn info() -> CollectionInfo {
        use ferrovus_core::schema::{DataType, FieldSchema};
        CollectionInfo {
            id: 1,
            name: "c".into(),
            schema: CollectionSchema {
                name: "c".into(),
                description: String::new(),
                fields: vec![
                    FieldSchema::new("id", DataType::VarChar).primary(false),
                    FieldSchema::new("v", DataType::FloatVector).with_dim(2),
                ],
                enable_dynamic_field: true,
            },
            num_shards: 1,
            partitions: vec![],
            aliases: vec![],
            indexes: vec![],
            load_state: crate::backend::LoadState::Loaded,
            properties: Default::default(),
            consistency: Default::default(),
            created_ts: 0,
        }
    }

    fn meta(rows: &[serde_json::Value]) -> ferrovus_core::request::OutputColumn {
        ferrovus_core::request::OutputColumn {
            name: DYNAMIC_FIELD_NAME.into(),
            field_id: 0,
            data_type: ferrovus_core::schema::DataType::Json,
            is_dynamic: true,
            column: ferrovus_core::value::Column::Json(rows.to_vec()),
        }
    }

    fn json_rows(f: &ps::FieldData) -> Vec<serde_json::Value> {
        match &f.field {
            Some(ps::field_data::Field::Scalars(ps::ScalarField {
                data: Some(ps::scalar_field::Data::JsonData(a)),
            })) => a
                .data
                .iter()
                .map(|b| serde_json::from_slice(b).unwrap())
                .collect(),
            other => panic!("not JSON: {other:?}"),
        }
    }

    #[test]
    fn search_results_round_scores_and_keep_requested_dynamic_keys() {
        use ferrovus_core::value::PrimaryKey;
        let res = SearchResult {
            num_queries: 2,
            topk: 1,
            ids: vec![vec![PrimaryKey::Str("a".into())], vec![]],
            scores: vec![vec![0.123_456], vec![]],
            fields: vec![meta(&[serde_json::json!({"x": 1, "y": 2})])],
        };
        let out = search_results(&info(), res, &["x".to_string()], 2, 7);
        let data = out.results.unwrap();
        assert_eq!(data.scores, [0.12]);
        assert_eq!(data.topks, [1, 0]);
        assert_eq!(
            json_rows(&data.fields_data[0]),
            [serde_json::json!({"x": 1})]
        );
        assert_eq!(data.primary_field_name, "id");
        assert_eq!((out.collection_name.as_str(), out.session_ts), ("c", 7));
        // No hits: empty IDs of the primary key's kind.
        let empty = search_results(&info(), SearchResult::default(), &[], -1, 0);
        assert_eq!(
            empty.results.unwrap().ids.unwrap().id_field,
            Some(ps::i_ds::IdField::StrId(ps::StringArray::default()))
        );
    }

    #[test]
    fn query_results_list_dynamic_keys_and_count() {
        let res = QueryResult {
            num_rows: 1,
            fields: vec![meta(&[serde_json::json!({"x": 1, "y": 2})])],
            count: None,
        };
        let out = query_results(&info(), res.clone(), &["x".into(), "v".into()]);
        assert_eq!(out.output_fields, ["x"]);
        assert_eq!(
            json_rows(&out.fields_data[0]),
            [serde_json::json!({"x": 1})]
        );
        let all = query_results(&info(), res, &["*".into()]);
        assert_eq!(
            json_rows(&all.fields_data[0]),
            [serde_json::json!({"x": 1, "y": 2})]
        );
        let count = query_results(
            &info(),
            QueryResult {
                count: Some(3),
                ..Default::default()
            },
            &["count(*)".into()],
        );
        assert_eq!(count.output_fields, ["count(*)"]);
        assert_eq!(count.fields_data[0].field_name, "count(*)");
    }
}
