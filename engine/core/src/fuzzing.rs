//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`), one per decoder that reads
//! untrusted bytes: the filter-expression parser and compiler, segment files, delete logs, delta
//! objects, primary-key files and write-ahead-log objects.
//!
//! Each function feeds the input to the same public decoder the engine calls with bytes from
//! storage (or with a client's filter text) and then uses the decoded value the way the engine
//! would. It must never panic: a damaged input gives a typed error, which is ignored here. The
//! integration tests (`tests/fuzz_corpus.rs`) replay the committed corpus through these same
//! functions, so the ordinary test suite checks every input the fuzzers ever kept.
//!
//! The persisted formats are checksummed, so random mutations would almost never get past the
//! frame. The first byte of a file-shaped input therefore picks how the rest is used: `0` feeds
//! the rest as the raw file (frame and checksum checks); any other value `v` frames the rest as the
//! body of a format-version-`v` file with a correct checksum, so mutations reach the body decoder.
//! [`framed_input`] builds such inputs from real encoded files.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::codec::{frame, unframe};
use crate::deletes::DeleteMarks;
use crate::error::{CoreError, Result};
use crate::expr::{self, RowAccess};
use crate::pks::SegmentPks;
use crate::schema::{CollectionSchema, DataType, FieldSchema};
use crate::segment::{Segment, SegmentData, SegmentMeta};
use crate::value::ValueRef;
use crate::wal::{self, WalRecord};

/// Most rows (or deleted-row bits) a fuzz input may declare for the object it is decoded against:
/// the engine passes the row count from trusted segment metadata, bounded by real segment sizes.
const MAX_FUZZ_ROWS: usize = 1 << 20;

/// The schema the segment and expression targets decode and compile against: every field type
/// Ferrovus has (there is no Array type), a nullable field and the dynamic `$meta` field.
pub fn schema() -> &'static CollectionSchema {
    static SCHEMA: OnceLock<CollectionSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut nullable = FieldSchema::new("n", DataType::Int32);
        nullable.nullable = true;
        CollectionSchema {
            name: "fuzz".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("b", DataType::Bool),
                FieldSchema::new("i8", DataType::Int8),
                FieldSchema::new("i16", DataType::Int16),
                FieldSchema::new("i32", DataType::Int32),
                FieldSchema::new("i64", DataType::Int64),
                FieldSchema::new("f", DataType::Float),
                FieldSchema::new("d", DataType::Double),
                FieldSchema::new("s", DataType::VarChar).with_max_length(64),
                FieldSchema::new("j", DataType::Json),
                nullable,
                FieldSchema::new("v", DataType::FloatVector).with_dim(4),
            ],
            enable_dynamic_field: true,
        }
        .validate_and_normalize()
        .expect("the fuzz schema is valid")
    })
}

/// `[version] ++ body` of an encoded file of the given magic: the input that the file-shaped
/// targets turn back into the same file (see the module documentation).
pub fn framed_input(file: &[u8], magic: &[u8; 4]) -> Result<Vec<u8>> {
    let (version, body) = unframe(magic, file, "fuzz seed")?;
    let v = u8::try_from(version)
        .ok()
        .filter(|v| *v != 0)
        .ok_or_else(|| CoreError::Internal(format!("version {version} is not fuzzable")))?;
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(v);
    out.extend_from_slice(body);
    Ok(out)
}

/// The file a file-shaped input stands for.
fn file_of(data: &[u8], magic: &[u8; 4]) -> Vec<u8> {
    match data.split_first() {
        None => Vec::new(),
        Some((0, raw)) => raw.to_vec(),
        Some((v, body)) => frame(magic, u32::from(*v), body),
    }
}

fn split_u32(data: &[u8]) -> (u32, &[u8]) {
    match data.split_first_chunk::<4>() {
        Some((n, rest)) => (u32::from_le_bytes(*n), rest),
        None => (0, &[]),
    }
}

/// Fixed rows for evaluating compiled filters: one with every field set, one mostly empty.
struct FuzzRow(usize);

impl RowAccess for FuzzRow {
    fn get(&self, field_index: usize) -> ValueRef<'_> {
        static JSON: OnceLock<[serde_json::Value; 2]> = OnceLock::new();
        let json = JSON.get_or_init(|| {
            [
                serde_json::json!({"a": 1, "b": [1, 2.5, "x", null, [true]], "c": {"d": "e"}, "s": "abc"}),
                serde_json::json!([1, "a", {"k": []}]),
            ]
        });
        let full = self.0 == 0;
        let name = schema()
            .fields
            .get(field_index)
            .map_or("", |f| f.name.as_str());
        match (name, full) {
            ("id", true) => ValueRef::Int(7),
            ("id", false) => ValueRef::Int(i64::MIN),
            ("b", f) => ValueRef::Bool(f),
            ("i8", true) => ValueRef::Int(-128),
            ("i16", true) => ValueRef::Int(300),
            ("i32", true) => ValueRef::Int(i64::from(i32::MAX)),
            ("i64", true) => ValueRef::Int(i64::MAX),
            ("i8" | "i16" | "i32" | "i64", false) => ValueRef::Int(0),
            ("f", true) => ValueRef::Float(1.5),
            ("f", false) => ValueRef::Float(f64::NAN),
            ("d", true) => ValueRef::Float(-0.0),
            ("d", false) => ValueRef::Float(f64::INFINITY),
            ("s", true) => ValueRef::Str("héllo wörld"),
            ("s", false) => ValueRef::Str(""),
            ("j" | "$meta", true) => ValueRef::Json(&json[0]),
            ("j" | "$meta", false) => ValueRef::Json(&json[1]),
            ("n", true) => ValueRef::Int(5),
            ("v", true) => ValueRef::FloatVector(&[1.0, 2.0, 3.0, 4.0]),
            _ => ValueRef::Null,
        }
    }
}

/// Filter text (any bytes; non-UTF-8 is ignored, as the gRPC layer only passes strings):
/// parse, check that the canonical form parses back to an equal AST, compile against
/// [`schema`] (with and without template values), and evaluate the plan on two rows.
pub fn expr_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = schema();
    if let Ok(ast) = expr::parse(text) {
        let canonical = ast.to_string();
        match expr::parse(&canonical) {
            Ok(again) => assert_eq!(
                again, ast,
                "canonical form {canonical:?} of {text:?} parses to another AST"
            ),
            Err(e) => panic!("canonical form {canonical:?} of {text:?} does not parse: {e}"),
        }
        if let Ok(plan) = expr::compile(&ast, schema) {
            let _ = plan.primary_keys();
            let _ = plan.fields();
            let _ = plan.is_match_all();
            for row in 0..2 {
                let _ = plan.eval(&FuzzRow(row));
            }
        }
    }
    let params: HashMap<String, serde_json::Value> = [
        ("a".to_string(), serde_json::json!(1)),
        ("x".to_string(), serde_json::json!(-2.5)),
        ("s".to_string(), serde_json::json!("str")),
        ("l".to_string(), serde_json::json!([1, 2, 3])),
        ("m".to_string(), serde_json::json!(["a", 1, true])),
        ("b".to_string(), serde_json::json!(true)),
    ]
    .into_iter()
    .collect();
    if let Ok(plan) = expr::compile_str_with_params(text, schema, &params) {
        for row in 0..2 {
            let _ = plan.eval(&FuzzRow(row));
        }
    }
}

/// What [`SegmentData::decode`] makes of a [`segment_decode`] input.
pub fn segment_input(data: &[u8]) -> Result<(i64, i64, SegmentData)> {
    SegmentData::decode(&file_of(data, b"FVSG"), schema(), "fuzz segment")
}

/// A segment file decoded against [`schema`], then read the way a query node reads it: every
/// value of the first rows, primary keys, the primary-key file made from it, a filter over it.
pub fn segment_decode(data: &[u8]) {
    let schema = schema();
    let Ok((segment_id, partition_id, seg)) = segment_input(data) else {
        return;
    };
    for (f, c) in schema.fields.iter().zip(&seg.columns) {
        assert!(
            c.fits(f.data_type, f.dim()),
            "decoded column of field {} does not match its schema ({:?}, dim {:?})",
            f.name,
            f.data_type,
            f.dim
        );
    }
    let rows = seg.num_rows();
    let pk_index = schema.fields.iter().position(|f| f.is_primary).unwrap_or(0);
    let pks = SegmentPks::from_data(&seg, pk_index).expect("decoded segment has a primary key");
    let encoded = pks.encode(segment_id);
    let (_, back) = SegmentPks::decode(&encoded, rows, "fuzz pks").expect("pks round trip");
    assert_eq!(back, pks);
    let plan = expr::compile_str("id > 0 and s like \"a%\" or v is null", schema).ok();
    let meta = SegmentMeta::new(segment_id, partition_id, rows, "fuzz".into());
    let seg = Segment::sealed(0, Arc::new(seg), meta, DeleteMarks::default());
    for row in 0..rows.min(16) {
        for fi in 0..schema.fields.len() {
            let _ = seg.value(fi, row);
        }
        let _ = seg.data().primary_key(pk_index, row);
        if let Some(plan) = &plan {
            let _ = plan.eval(&seg.data().row(row));
        }
    }
    let vf = schema.field_index("v").unwrap_or(0);
    let _ = seg.vectors(vf);
    let _ = seg.take_column(vf, &(0..rows.min(4)).collect::<Vec<_>>());
}

/// What [`DeleteMarks::decode`] makes of a [`deletes_decode`] input, with the row count.
pub fn deletes_input(data: &[u8]) -> Result<(usize, DeleteMarks)> {
    let (rows, data) = split_u32(data);
    let rows = rows as usize % (MAX_FUZZ_ROWS + 1);
    let marks = DeleteMarks::decode(&file_of(data, b"FVDL"), rows, "fuzz deletes")?;
    Ok((rows, marks))
}

/// A delete log (`u32` row count of its segment, then the file), then read back and re-encoded.
pub fn deletes_decode(data: &[u8]) {
    let Ok((rows, marks)) = deletes_input(data) else {
        return;
    };
    assert!(marks.count() <= rows, "more deleted rows than rows");
    let marked: Vec<(u32, u64)> = marks.iter().collect();
    assert_eq!(marked.len(), marks.count());
    assert!(marked.iter().all(|(r, _)| (*r as usize) < rows));
    let _ = marks.to_bitset(rows);
    for (r, ts) in marked.iter().take(64) {
        assert!(marks.deleted_at(*r as usize, *ts));
    }
    let back = DeleteMarks::decode(&marks.encode(rows), rows, "fuzz deletes")
        .expect("a decoded delete log re-encodes");
    assert_eq!(back.iter().collect::<Vec<_>>(), marked);
}

/// What [`crate::delta::decode`] makes of a [`delta_decode`] input.
pub fn delta_input(data: &[u8]) -> Result<Vec<crate::delta::Delta>> {
    crate::delta::decode(&file_of(data, b"FVDJ"), "fuzz delta")
}

/// A delta object (deletes by primary key), then indexed by key as query nodes do.
pub fn delta_decode(data: &[u8]) {
    let Ok(deltas) = delta_input(data) else {
        return;
    };
    assert_eq!(
        crate::delta::decode(&crate::delta::encode(&deltas), "fuzz delta").expect("round trip"),
        deltas
    );
    let index = crate::delta::DeltaIndex::new(deltas.iter().cloned());
    for (pk, ts) in deltas.iter().take(16) {
        let _ = index.delete_ts(pk, ts.saturating_sub(1));
    }
}

/// What [`SegmentPks::decode`] makes of a [`pks_decode`] input, with the row count.
pub fn pks_input(data: &[u8]) -> Result<(usize, SegmentPks)> {
    let (rows, data) = split_u32(data);
    let rows = rows as usize % (MAX_FUZZ_ROWS + 1);
    let (_, pks) = SegmentPks::decode(&file_of(data, b"FVPK"), rows, "fuzz pks")?;
    Ok((rows, pks))
}

/// A segment's primary-key file (`u32` row count from its metadata, then the file).
pub fn pks_decode(data: &[u8]) {
    let Ok((rows, pks)) = pks_input(data) else {
        return;
    };
    assert_eq!(pks.len(), rows);
    for row in 0..rows.min(16) {
        assert!(pks.pk(row).is_some(), "row {row} of {rows} has no key");
    }
}

/// Write-ahead log input. The first byte picks what the rest is:
/// * even: one record payload, decoded by [`WalRecord::decode`] and re-encoded;
/// * odd: a log object (`first` and `last` LSN of its name as two `u64`, then the object), parsed
///   as replay parses it; with bit 1 set, the record checksums are recomputed first, so that
///   mutations reach the record decoder.
pub fn wal_decode(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(rec) = WalRecord::decode(rest) {
            let again = WalRecord::decode(&rec.encode()).expect("a decoded record re-encodes");
            // NaN floats compare unequal; compare the encodings instead.
            assert_eq!(again.encode(), rec.encode());
        }
        return;
    }
    let Some((first, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let Some((last, object)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let _ = wal_object(
        u64::from_le_bytes(*first),
        u64::from_le_bytes(*last),
        object,
        mode & 2 != 0,
    );
}

/// Parse a log object named for LSNs `first..=last` as replay does, with the record checksums
/// recomputed first if `fix_checksums`.
pub fn wal_object(
    first: u64,
    last: u64,
    object: &[u8],
    fix_checksums: bool,
) -> Result<Vec<wal::LogEntry>> {
    let mut object = object.to_vec();
    if fix_checksums {
        wal::fix_record_checksums(&mut object);
    }
    let key = format!("wal/{first:020}-{last:020}.log");
    match crate::keys::parse_wal_object(&key) {
        crate::keys::WalKey::Log { first, last, .. } => {
            wal::parse_object(&object, first, last, &key)
        }
        _ => Err(CoreError::Internal(format!(
            "{key} is not a log object name"
        ))),
    }
}

/// The record payloads of a log object as [`wal::parse_object`] reads them, as a fuzz input of
/// [`wal_decode`] that recomputes the checksums.
pub fn wal_object_input(first: u64, last: u64, object: &[u8]) -> Vec<u8> {
    let mut out = vec![3u8];
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&last.to_le_bytes());
    out.extend_from_slice(object);
    out
}

/// A [`wal_decode`] input holding one record payload.
pub fn wal_record_input(record: &WalRecord) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&record.encode());
    out
}
