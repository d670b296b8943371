//! Collections, partitions and loading: request parsing and replies.

use std::collections::BTreeMap;

use crate::backend::LoadState;
use ferrovus_core::request::Consistency;
use ferrovus_core::schema::CollectionSchema;
use ferrovus_core::tso::physical_ms;
use ferrovus_proto::common;
use ferrovus_proto::milvus::{
    CreateCollectionRequest, DescribeCollectionResponse, ShowCollectionsResponse,
    ShowPartitionsResponse,
};
use ferrovus_proto::status;

use super::{
    DEFAULT_DB, check_name, consistency_from, consistency_to, kv, kv_map, pchannel,
    schema_from_proto, schema_to_proto, vchannel,
};
use crate::backend::CollectionInfo;
use crate::error::ApiResult;

/// A parsed CreateCollection request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCollection {
    pub schema: CollectionSchema,
    /// 0 lets the backend choose (one shard).
    pub num_shards: usize,
    pub consistency: Consistency,
    pub properties: BTreeMap<String, String>,
}

pub fn parse_create_collection(r: &CreateCollectionRequest) -> ApiResult<NewCollection> {
    check_name("collection_name", &r.collection_name)?;
    Ok(NewCollection {
        schema: schema_from_proto(&r.schema, &r.collection_name)?,
        num_shards: usize::try_from(r.shards_num.max(0)).unwrap_or(1),
        consistency: consistency_from(r.consistency_level),
        properties: kv_map(&r.properties),
    })
}

/// The replica count of a LoadCollection request (0, the default, and negatives mean 1).
pub fn replica_count(replica_number: i32) -> usize {
    usize::try_from(replica_number).unwrap_or(0).max(1)
}

pub fn describe_collection_reply(c: CollectionInfo) -> DescribeCollectionResponse {
    // Milvus hides the dynamic `$meta` field and reports only enable_dynamic_field.
    let mut schema = schema_to_proto(&c.schema);
    schema.fields.retain(|f| !f.is_dynamic);
    DescribeCollectionResponse {
        status: Some(status::success()),
        schema: Some(schema),
        collection_id: c.id,
        virtual_channel_names: (0..c.num_shards).map(|s| vchannel(c.id, s)).collect(),
        physical_channel_names: (0..c.num_shards).map(pchannel).collect(),
        created_timestamp: c.created_ts,
        created_utc_timestamp: physical_ms(c.created_ts),
        shards_num: c.num_shards as i32,
        aliases: c.aliases,
        consistency_level: consistency_to(c.consistency),
        collection_name: c.name,
        properties: c.properties.into_iter().map(|(k, v)| kv(&k, v)).collect(),
        db_name: DEFAULT_DB.into(),
        num_partitions: c.partitions.len() as i64,
        ..Default::default()
    }
}

/// ShowCollections: the collections named in `names` (all when empty).
pub fn show_collections_reply(
    collections: Vec<CollectionInfo>,
    names: &[String],
) -> ShowCollectionsResponse {
    let mut resp = ShowCollectionsResponse {
        status: Some(status::success()),
        ..Default::default()
    };
    for c in collections {
        if !names.is_empty() && !names.contains(&c.name) {
            continue;
        }
        let loaded = c.load_state == LoadState::Loaded;
        resp.collection_names.push(c.name);
        resp.collection_ids.push(c.id);
        resp.created_timestamps.push(c.created_ts);
        resp.created_utc_timestamps.push(physical_ms(c.created_ts));
        resp.in_memory_percentages.push(loaded_percent(loaded));
        resp.query_service_available.push(loaded);
        resp.shards_num.push(c.num_shards as i32);
    }
    resp
}

/// ShowPartitions: the collection's partitions named in `names` (all when empty).
pub fn show_partitions_reply(c: CollectionInfo, names: &[String]) -> ShowPartitionsResponse {
    let loaded = c.load_state == LoadState::Loaded;
    let mut resp = ShowPartitionsResponse {
        status: Some(status::success()),
        ..Default::default()
    };
    for p in c.partitions {
        if !names.is_empty() && !names.contains(&p.name) {
            continue;
        }
        resp.partition_names.push(p.name);
        resp.partition_i_ds.push(p.id);
        resp.created_timestamps.push(p.created_ts);
        resp.created_utc_timestamps.push(physical_ms(p.created_ts));
        resp.in_memory_percentages.push(loaded_percent(loaded));
    }
    resp
}

fn loaded_percent(loaded: bool) -> i64 {
    if loaded { 100 } else { 0 }
}

/// GetLoadState's answer; a missing collection is `NotExist`, not an error.
pub fn load_state_to_proto(state: Option<LoadState>) -> common::LoadState {
    match state {
        None => common::LoadState::NotExist,
        Some(LoadState::Loaded) => common::LoadState::Loaded,
        Some(LoadState::Loading) => common::LoadState::Loading,
        Some(LoadState::NotLoad) => common::LoadState::NotLoad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::PartitionInfo;
    use ferrovus_core::schema::{DataType, FieldSchema};
    use ferrovus_proto::codes;
    use prost::Message;

    fn schema() -> CollectionSchema {
        CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("v", DataType::FloatVector).with_dim(2),
                FieldSchema {
                    is_dynamic: true,
                    ..FieldSchema::new("$meta", DataType::Json)
                },
            ],
            enable_dynamic_field: true,
        }
    }

    fn info() -> CollectionInfo {
        CollectionInfo {
            id: 7,
            name: "c".into(),
            schema: schema(),
            num_shards: 2,
            partitions: vec![
                PartitionInfo {
                    id: 8,
                    name: "_default".into(),
                    created_ts: 1 << 18,
                },
                PartitionInfo {
                    id: 9,
                    name: "p".into(),
                    created_ts: 2 << 18,
                },
            ],
            aliases: vec!["a".into()],
            indexes: vec![],
            load_state: LoadState::Loaded,
            properties: [("k".to_string(), "v".to_string())].into(),
            consistency: Consistency::Strong,
            created_ts: 1 << 18,
        }
    }

    #[test]
    fn create_collection_requests() {
        let req = CreateCollectionRequest {
            collection_name: "c".into(),
            schema: schema_to_proto(&schema()).encode_to_vec(),
            shards_num: -3,
            consistency_level: common::ConsistencyLevel::Session as i32,
            properties: vec![kv("k", "v")],
            ..Default::default()
        };
        let n = parse_create_collection(&req).unwrap();
        assert_eq!(n.num_shards, 0);
        assert_eq!(n.consistency, Consistency::Session);
        assert_eq!(n.properties.get("k").map(String::as_str), Some("v"));
        assert_eq!(n.schema.name, "c");

        let e = parse_create_collection(&CreateCollectionRequest {
            collection_name: String::new(),
            ..req.clone()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid parameter[collection_name]: collection_name should not be empty"
        );
        let e = parse_create_collection(&CreateCollectionRequest {
            schema: b"\xff\xff".to_vec(),
            ..req.clone()
        })
        .unwrap_err();
        assert_eq!(e.code(), codes::PARAMETER_INVALID);
        assert!(
            e.to_string()
                .starts_with("invalid parameter[schema]: cannot decode CollectionSchema"),
            "{e}"
        );
        let e = parse_create_collection(&CreateCollectionRequest {
            collection_name: "other".into(),
            ..req
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid parameter[collection_name]: collection name other does not match the schema's name c"
        );
    }

    #[test]
    fn replica_counts() {
        assert_eq!(replica_count(0), 1);
        assert_eq!(replica_count(-1), 1);
        assert_eq!(replica_count(1), 1);
        assert_eq!(replica_count(3), 3);
    }

    #[test]
    fn describe_hides_the_dynamic_field_and_names_channels() {
        let d = describe_collection_reply(info());
        let s = d.schema.unwrap();
        assert!(s.enable_dynamic_field);
        assert_eq!(
            s.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["id", "v"]
        );
        assert_eq!(
            d.virtual_channel_names,
            ["ferrovus-dml_0_7v0", "ferrovus-dml_1_7v1"]
        );
        assert_eq!(
            d.physical_channel_names,
            ["ferrovus-dml_0", "ferrovus-dml_1"]
        );
        assert_eq!((d.collection_id, d.shards_num, d.num_partitions), (7, 2, 2));
        assert_eq!(d.created_utc_timestamp, 1);
        assert_eq!(d.aliases, ["a"]);
        assert_eq!(d.db_name, "default");
        assert_eq!(d.consistency_level, common::ConsistencyLevel::Strong as i32);
    }

    #[test]
    fn show_filters_by_name() {
        let all = show_collections_reply(vec![info()], &[]);
        assert_eq!(all.collection_names, ["c"]);
        assert_eq!(all.in_memory_percentages, [100]);
        assert!(
            show_collections_reply(vec![info()], &["x".into()])
                .collection_names
                .is_empty()
        );
        let p = show_partitions_reply(info(), &["p".into()]);
        assert_eq!(p.partition_names, ["p"]);
        assert_eq!(p.partition_i_ds, [9]);
        assert_eq!(p.created_utc_timestamps, [2]);
        let mut released = info();
        released.load_state = LoadState::NotLoad;
        assert_eq!(
            show_partitions_reply(released, &[]).in_memory_percentages,
            [0, 0]
        );
    }

    #[test]
    fn load_states() {
        assert_eq!(load_state_to_proto(None), common::LoadState::NotExist);
        assert_eq!(
            load_state_to_proto(Some(LoadState::Loaded)),
            common::LoadState::Loaded
        );
        assert_eq!(
            load_state_to_proto(Some(LoadState::NotLoad)),
            common::LoadState::NotLoad
        );
    }
}
