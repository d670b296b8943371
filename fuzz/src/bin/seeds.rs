//! Writes the seed corpus of every fuzz target (`fuzz/corpus/<target>/seed-*`) with the engine's
//! own encoders: real segment files, delete logs, delta objects, primary-key files, WAL records
//! and objects, FLAT and HNSW index files, and filter expressions over the fuzz schema.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --bin seeds` (a stable toolchain is enough). The
//! output is deterministic; re-running it rewrites the same files.

use std::path::{Path, PathBuf};

use ferrovus_core::deletes::DeleteMarks;
use ferrovus_core::fuzzing::{framed_input, schema, wal_object_input, wal_record_input};
use ferrovus_core::pks::SegmentPks;
use ferrovus_core::segment::SegmentData;
use ferrovus_core::value::{Column, PrimaryKey, RowBatch};
use ferrovus_core::wal::{self, WalRecord};
use ferrovus_index::fuzzing::index_input;
use ferrovus_index::{FlatIndex, HnswIndex, HnswParams, Metric};

const EXPRESSIONS: &[&str] = &[
    "",
    "id > 10",
    "id in [1, 2, 3] or id == 7",
    "id not in [0x10, 0b101, 017]",
    "1 < i32 <= 100 and 200 >= i64 > -5",
    "b == true && not (f > 1.5e-3)",
    "!b || i8 != -128",
    "s == \"abc\" and s != 'x\\n\\u00e9'",
    "s like \"pre%\" or s like \"%mid%\" or s like \"a_c\"",
    "s like r\"raw\\d\"",
    "j[\"a\"] == 1 and j[\"b\"][0] < 2.5",
    "j[\"c\"][\"d\"] in [\"e\", \"f\"]",
    "exists j[\"a\"] and not exists $meta[\"zz\"]",
    "color == \"red\" and size > 3",
    "$meta[\"k\"][2] == true",
    "json_contains(j[\"b\"], 1)",
    "json_contains_all(j[\"b\"], [1, 2.5])",
    "array_contains_any(j[\"b\"], [\"x\", null])",
    "array_length(j[\"b\"]) == 5",
    "(i32 + 2) * 3 - i64 / 4 % 5 > 0",
    "i16 ** 2 >= 9.0 and -d < +f",
    "n is null or n is not null",
    "N IS NULL AND i32 > 0 OR NOT b",
    "id == {a} and s in {m} and f > {x}",
    "i32 in {l} and b == {b} and s == {s}",
    "((((((id > 1))))))",
    "not not not b",
    "d != d or f == f",
    "i64 == 9223372036854775807 or i64 == -9223372036854775808",
    "i64 + 1 > i64 and i64 * 2 < 0",
    "v is null",
    "s > \"a\" and s <= \"b\" and s >= 'A'",
    "j == {\"a\": 1}",
    "i8 in []",
    "1 == 1",
    "true and false or TRUE",
    "id > 1 and",
    "\"unterminated",
    "id = 1",
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut out = Seeds { root };

    for (i, e) in EXPRESSIONS.iter().enumerate() {
        out.write("expr_parse", &format!("{i:02}"), e.as_bytes());
    }

    let s = schema();
    let segments = [segment(0), segment(1), segment(3)];
    for (i, seg) in segments.iter().enumerate() {
        let file = seg.encode(40 + i as i64, 7, s);
        out.write(
            "segment_decode",
            &format!("rows{i}"),
            &framed(&file, b"FVSG"),
        );
        if i == 1 {
            out.write("segment_decode", "raw", &raw(&file));
        }
        let pk_index = s.fields.iter().position(|f| f.is_primary).unwrap();
        let pks = SegmentPks::from_data(seg, pk_index).unwrap().encode(40);
        let rows = seg.num_rows() as u32;
        out.write(
            "pks_decode",
            &format!("int{i}"),
            &with_rows(rows, &framed(&pks, b"FVPK")),
        );
    }
    let str_pks = SegmentPks {
        keys: Column::VarChar(vec!["k1".into(), "".into(), "ключ".into()]),
        timestamps: vec![1, 2, u64::MAX],
    }
    .encode(9);
    out.write(
        "pks_decode",
        "str",
        &with_rows(3, &framed(&str_pks, b"FVPK")),
    );
    out.write("pks_decode", "raw", &with_rows(3, &raw(&str_pks)));

    for (name, rows, marks) in [
        ("empty", 0u32, vec![]),
        ("few", 200, vec![(3u32, 11u64), (130, 12), (199, 5)]),
        ("edge", 128, vec![(0, 0), (63, 1), (64, u64::MAX), (127, 2)]),
    ] {
        let mut m = DeleteMarks::default();
        for (r, ts) in marks {
            m.mark(r, ts);
        }
        let file = m.encode(rows as usize);
        out.write(
            "deletes_decode",
            name,
            &with_rows(rows, &framed(&file, b"FVDL")),
        );
        if name == "few" {
            out.write("deletes_decode", "raw", &with_rows(rows, &raw(&file)));
        }
    }
    // A version-1 delete log (bitmap only): rows, words, the words.
    let mut v1 = vec![1u8];
    for w in [130u64, 3, 1 << 3, 1 << 2, 0b11] {
        v1.extend_from_slice(&w.to_le_bytes());
    }
    out.write("deletes_decode", "v1", &with_rows(130, &v1));

    let deltas = [
        vec![],
        vec![(PrimaryKey::Int(1), 11), (PrimaryKey::Str("k".into()), 12)],
        vec![
            (PrimaryKey::Int(i64::MIN), 0),
            (PrimaryKey::Int(-1), u64::MAX),
            (PrimaryKey::Str("ünï".into()), 5),
            (PrimaryKey::Int(1), 30),
            (PrimaryKey::Int(1), 10),
        ],
    ];
    for (i, d) in deltas.iter().enumerate() {
        let file = ferrovus_core::delta::encode(d);
        out.write("delta_decode", &format!("d{i}"), &framed(&file, b"FVDJ"));
        if i == 1 {
            out.write("delta_decode", "raw", &raw(&file));
        }
    }

    let records = wal_records();
    for (i, r) in records.iter().enumerate() {
        out.write("wal_decode", &format!("record{i}"), &wal_record_input(r));
    }
    let payloads: Vec<Vec<u8>> = records.iter().map(WalRecord::encode).collect();
    let object = wal::encode_object(100, &payloads);
    let last = 100 + payloads.len() as u64 - 1;
    out.write(
        "wal_decode",
        "object",
        &wal_object_input(100, last, &object),
    );
    let one = wal::encode_object(0, &payloads[1..2]);
    let mut raw_object = wal_object_input(0, 0, &one);
    raw_object[0] = 1; // checksums as written, not recomputed
    out.write("wal_decode", "object-raw", &raw_object);

    let vectors: Vec<f32> = (0..20 * 8).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        let m = format!("{metric:?}").to_lowercase();
        for n in [0usize, 1, 20] {
            let flat = FlatIndex::build(8, metric, &vectors[..n * 8]).unwrap();
            let mut file = Vec::new();
            flat.write_to(&mut file).unwrap();
            out.write(
                "index_decode",
                &format!("flat-{m}-{n}"),
                &index_input(&file),
            );
            let params = HnswParams::new(4, 16).unwrap();
            let hnsw = HnswIndex::build_with(8, metric, params, &vectors[..n * 8], 1, 7).unwrap();
            let mut file = Vec::new();
            hnsw.write_to(&mut file).unwrap();
            out.write(
                "index_decode",
                &format!("hnsw-{m}-{n}"),
                &index_input(&file),
            );
            if n == 20 && metric == Metric::Cosine {
                let mut raw = file.clone();
                raw.insert(0, 0);
                out.write("index_decode", "hnsw-raw", &raw);
                raw[0] = 3;
                out.write("index_decode", "hnsw-unaligned", &raw);
            }
        }
    }
    println!("seed corpus written under {}", out.root.display());
}

struct Seeds {
    root: PathBuf,
}

impl Seeds {
    fn write(&mut self, target: &str, name: &str, data: &[u8]) {
        assert!(data.len() < 64 * 1024, "{target}/{name} is too large");
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    }
}

fn framed(file: &[u8], magic: &[u8; 4]) -> Vec<u8> {
    framed_input(file, magic).unwrap()
}

fn raw(file: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(file);
    v
}

fn with_rows(rows: u32, input: &[u8]) -> Vec<u8> {
    let mut v = rows.to_le_bytes().to_vec();
    v.extend_from_slice(input);
    v
}

/// `rows` rows of every field of the fuzz schema.
fn segment(rows: usize) -> SegmentData {
    let s = schema();
    let mut d = SegmentData::empty(s);
    let r = 0..rows as i64;
    let json = |i: i64| serde_json::json!({"a": i, "b": [i, "x"], "c": {"d": "e"}});
    let columns: Vec<Column> = s
        .fields
        .iter()
        .map(|f| match f.name.as_str() {
            "id" => Column::Int(r.clone().map(|i| i * 3 - 1).collect()),
            "b" => Column::Bool(r.clone().map(|i| i % 2 == 0).collect()),
            "i8" => Column::Int(r.clone().map(|i| -128 + i).collect()),
            "i16" | "i32" | "n" => Column::Int(r.clone().map(|i| i * 1000).collect()),
            "i64" => Column::Int(r.clone().map(|i| i64::MAX - i).collect()),
            "f" => Column::Float(r.clone().map(|i| i as f32 * 0.5).collect()),
            "d" => Column::Double(r.clone().map(|i| -(i as f64) / 3.0).collect()),
            "s" => Column::VarChar(r.clone().map(|i| format!("abc{i}é")).collect()),
            "j" | "$meta" => Column::Json(r.clone().map(json).collect()),
            "v" => Column::FloatVector {
                dim: 4,
                data: (0..rows * 4).map(|i| i as f32).collect(),
            },
            other => panic!("no seed column for field {other}"),
        })
        .collect();
    d.append(&columns, 42);
    d
}

fn wal_records() -> Vec<WalRecord> {
    let rows = RowBatch {
        columns: vec![
            ("id".into(), Column::Int(vec![1, 2])),
            ("b".into(), Column::Bool(vec![true, false])),
            ("f".into(), Column::Float(vec![1.5, f32::NAN])),
            ("d".into(), Column::Double(vec![0.25, -1e300])),
            ("s".into(), Column::VarChar(vec!["a".into(), "ü".into()])),
            (
                "$meta".into(),
                Column::Json(vec![serde_json::json!({"k": 1}), serde_json::Value::Null]),
            ),
            (
                "v".into(),
                Column::FloatVector {
                    dim: 2,
                    data: vec![0.0, 1.0, 2.0, 3.0],
                },
            ),
        ],
    };
    vec![
        WalRecord::Insert {
            partition_id: 7,
            ts: 100,
            rows: rows.clone(),
        },
        WalRecord::Delete {
            ts: 101,
            pks: vec![PrimaryKey::Int(-5), PrimaryKey::Str("x".into())],
        },
        WalRecord::Upsert {
            partition_id: 1,
            ts: 102,
            rows,
        },
        WalRecord::Delete { ts: 0, pks: vec![] },
    ]
}
