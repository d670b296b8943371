//! Wire-level tests: our generated types against bytes the real pymilvus
//! produces (`tests/golden/*.hex`, written by `tests/make_golden.py`), a
//! search round trip, and the generated tonic service over loopback.

use std::collections::HashMap;

use ferrovus_proto::common::{
    ConsistencyLevel, DslType, ErrorCode, KeyValuePair, PlaceholderGroup, PlaceholderType,
    PlaceholderValue,
};
use ferrovus_proto::milvus::milvus_service_client::MilvusServiceClient;
use ferrovus_proto::milvus::milvus_service_server::{self, MilvusService, MilvusServiceServer};
use ferrovus_proto::milvus::search_request::SearchInput;
use ferrovus_proto::milvus::{
    CreateCollectionRequest, GetVersionRequest, GetVersionResponse, InsertRequest, SearchRequest,
};
use ferrovus_proto::schema::{CollectionSchema, DataType, field_data, scalar_field, vector_field};
use ferrovus_proto::{common, status};
use prost::Message;

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    assert_eq!(s.len() % 2, 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

const V1: [f32; 4] = [0.5, -1.0, 2.0, 0.25];
const V2: [f32; 4] = [1.0, 0.0, -0.5, 3.0];

fn placeholder_bytes(req: &SearchRequest) -> &[u8] {
    match &req.search_input {
        Some(SearchInput::PlaceholderGroup(bytes)) => bytes,
        other => panic!("search_input is not a placeholder group: {other:?}"),
    }
}

fn params(kvs: &[KeyValuePair]) -> HashMap<&str, &str> {
    kvs.iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_str()))
        .collect()
}

#[test]
fn search_request_with_two_float_vectors_round_trips() {
    let group = PlaceholderGroup {
        placeholders: vec![PlaceholderValue {
            tag: "$0".into(),
            r#type: PlaceholderType::FloatVector as i32,
            values: vec![le_bytes(&V1), le_bytes(&V2)],
            element_level: false,
        }],
    };
    let request = SearchRequest {
        db_name: "default".into(),
        collection_name: "docs".into(),
        dsl: "id > 1".into(),
        search_input: Some(SearchInput::PlaceholderGroup(group.encode_to_vec())),
        dsl_type: DslType::BoolExprV1 as i32,
        output_fields: vec!["id".into()],
        search_params: vec![
            KeyValuePair {
                key: "topk".into(),
                value: "3".into(),
            },
            KeyValuePair {
                key: "metric_type".into(),
                value: "L2".into(),
            },
        ],
        nq: 2,
        consistency_level: ConsistencyLevel::Bounded as i32,
        ..Default::default()
    };

    let bytes = request.encode_to_vec();
    let decoded = SearchRequest::decode(bytes.as_slice()).expect("decode SearchRequest");
    assert_eq!(decoded, request);

    let group2 = PlaceholderGroup::decode(placeholder_bytes(&decoded)).expect("decode group");
    assert_eq!(group2, group);
    let ph = &group2.placeholders[0];
    assert_eq!(ph.r#type(), PlaceholderType::FloatVector);
    assert_eq!(ph.values.len(), 2);
    assert_eq!(f32s(&ph.values[0]), V1);
    assert_eq!(f32s(&ph.values[1]), V2);
}

#[test]
fn decodes_pymilvus_search_request() {
    let bytes = unhex(include_str!("golden/search_request.hex"));
    let req = SearchRequest::decode(bytes.as_slice()).expect("decode");
    assert_eq!(req.collection_name, "docs");
    assert_eq!(req.dsl, "id > 1");
    assert_eq!(req.dsl_type(), DslType::BoolExprV1);
    assert_eq!(req.output_fields, ["id"]);
    assert_eq!(req.nq, 2);
    assert!(req.use_default_consistency);
    let p = params(&req.search_params);
    assert_eq!(p["topk"], "3");
    assert_eq!(p["metric_type"], "COSINE");
    assert_eq!(p["anns_field"], "vector");
    assert_eq!(p["round_decimal"], "-1");
    assert_eq!(p["params"], r#"{"metric_type":"COSINE"}"#);

    let group = PlaceholderGroup::decode(placeholder_bytes(&req)).expect("decode group");
    assert_eq!(group.placeholders.len(), 1);
    let ph = &group.placeholders[0];
    assert_eq!(ph.tag, "$0");
    assert_eq!(ph.r#type(), PlaceholderType::FloatVector);
    assert_eq!(f32s(&ph.values[0]), V1);
    assert_eq!(f32s(&ph.values[1]), V2);

    // Nothing pymilvus sent was dropped: re-encoding gives the same bytes.
    assert_eq!(req.encode_to_vec(), bytes);
}

#[test]
fn decodes_pymilvus_create_collection_request() {
    let bytes = unhex(include_str!("golden/create_collection_request.hex"));
    let req = CreateCollectionRequest::decode(bytes.as_slice()).expect("decode");
    assert_eq!(req.collection_name, "docs");
    assert_eq!(req.consistency_level(), ConsistencyLevel::Bounded);
    let schema = CollectionSchema::decode(req.schema.as_slice()).expect("decode schema");
    assert_eq!(schema.name, "docs");
    assert!(schema.enable_dynamic_field);
    assert_eq!(schema.fields.len(), 2);
    let (id, vector) = (&schema.fields[0], &schema.fields[1]);
    assert_eq!(
        (id.name.as_str(), id.data_type(), id.is_primary_key),
        ("id", DataType::Int64, true)
    );
    assert_eq!(
        (vector.name.as_str(), vector.data_type()),
        ("vector", DataType::FloatVector)
    );
    assert_eq!(params(&vector.type_params)["dim"], "4");
    assert_eq!(req.encode_to_vec(), bytes);
}

#[test]
fn decodes_pymilvus_insert_request() {
    let bytes = unhex(include_str!("golden/insert_request.hex"));
    let req = InsertRequest::decode(bytes.as_slice()).expect("decode");
    assert_eq!(req.collection_name, "docs");
    assert_eq!(req.num_rows, 2);
    let by_name: HashMap<_, _> = req
        .fields_data
        .iter()
        .map(|f| (f.field_name.as_str(), f))
        .collect();

    let id = by_name["id"];
    assert_eq!(id.r#type(), DataType::Int64);
    let Some(field_data::Field::Scalars(s)) = &id.field else {
        panic!("id is not scalar")
    };
    let Some(scalar_field::Data::LongData(longs)) = &s.data else {
        panic!("id is not long")
    };
    assert_eq!(longs.data, [1, 2]);

    let vector = by_name["vector"];
    assert_eq!(vector.r#type(), DataType::FloatVector);
    let Some(field_data::Field::Vectors(v)) = &vector.field else {
        panic!("not a vector")
    };
    assert_eq!(v.dim, 4);
    let Some(vector_field::Data::FloatVector(fv)) = &v.data else {
        panic!("not float")
    };
    assert_eq!(fv.data, [V1, V2].concat());

    let meta = by_name["$meta"];
    assert!(meta.is_dynamic);
    assert_eq!(meta.r#type(), DataType::Json);
    let Some(field_data::Field::Scalars(s)) = &meta.field else {
        panic!("meta is not scalar")
    };
    let Some(scalar_field::Data::JsonData(json)) = &s.data else {
        panic!("meta is not json")
    };
    assert_eq!(json.data, [br#"{"tag":"a"}"#.to_vec(), b"{}".to_vec()]);

    assert_eq!(req.encode_to_vec(), bytes);
}

#[test]
fn status_helper_matches_milvus_bytes() {
    let golden = unhex(include_str!("golden/status_collection_not_found.hex"));
    let ours = status::collection_not_found("default", "c1");
    assert_eq!(ours.encode_to_vec(), golden);
    let decoded = common::Status::decode(golden.as_slice()).unwrap();
    assert_eq!(decoded.error_code(), ErrorCode::CollectionNotExists);
    assert_eq!(decoded.code, 100);
    // A success status is the empty message.
    assert!(status::success().encode_to_vec().is_empty());
}

#[derive(Default)]
struct VersionOnly;

#[tonic::async_trait]
impl MilvusService for VersionOnly {
    async fn get_version(
        &self,
        _request: tonic::Request<GetVersionRequest>,
    ) -> Result<tonic::Response<GetVersionResponse>, tonic::Status> {
        Ok(tonic::Response::new(GetVersionResponse {
            status: Some(status::success()),
            version: "v2.6.0-ferrovus".into(),
        }))
    }
}

#[tokio::test]
async fn service_over_loopback() {
    assert_eq!(
        milvus_service_server::SERVICE_NAME,
        "milvus.proto.milvus.MilvusService"
    );

    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
        .expect("bind loopback");
    let addr = incoming.local_addr().expect("local addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MilvusServiceServer::new(VersionOnly))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            }),
    );

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut client = MilvusServiceClient::new(channel);

    let version = client
        .get_version(GetVersionRequest {})
        .await
        .expect("GetVersion")
        .into_inner();
    assert_eq!(version.version, "v2.6.0-ferrovus");
    assert!(status::is_success(version.status.as_ref().unwrap()));

    // Methods the server does not override answer Unimplemented.
    let err = client
        .search(SearchRequest::default())
        .await
        .expect_err("Search is a stub");
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    let _ = stop_tx.send(());
    server.await.unwrap().expect("server");
}
