//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and every crash the fuzzers found
//! (`fuzz/regressions/<target>/`) through the same functions the fuzz targets call
//! (`ferrovus_core::fuzzing`), so the ordinary test suite keeps every decoder panic-free on them
//! without a fuzzing toolchain. See `fuzz/README.md`.

use std::path::{Path, PathBuf};

use ferrovus_core::CoreError;
use ferrovus_core::fuzzing;

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(target: &str, f: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for fuzz target {target}");
    for path in files {
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            panic!("fuzz input {} panics", path.display());
        }
    }
}

#[test]
fn expr_parse_corpus() {
    replay("expr_parse", ferrovus_core::fuzzing::expr_parse);
}

#[test]
fn segment_decode_corpus() {
    replay("segment_decode", ferrovus_core::fuzzing::segment_decode);
}

#[test]
fn deletes_decode_corpus() {
    replay("deletes_decode", ferrovus_core::fuzzing::deletes_decode);
}

#[test]
fn delta_decode_corpus() {
    replay("delta_decode", ferrovus_core::fuzzing::delta_decode);
}

#[test]
fn pks_decode_corpus() {
    replay("pks_decode", ferrovus_core::fuzzing::pks_decode);
}

#[test]
fn wal_decode_corpus() {
    replay("wal_decode", ferrovus_core::fuzzing::wal_decode);
}

// One test per crash the fuzzers found: the input now gives this typed error.

fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn corrupted(e: CoreError) -> String {
    match e {
        CoreError::Corrupted { message, .. } => message,
        other => panic!("expected a Corrupted error, got {other:?}"),
    }
}

/// A segment file whose vector column has another dimension (here 0 rows of dim 0x3a00000004)
/// than the field: the decoder took any column type for any field.
#[test]
fn segment_column_of_another_type_is_corruption() {
    let e =
        fuzzing::segment_input(&regression("segment_decode", "column-type-mismatch")).unwrap_err();
    let m = corrupted(e);
    assert!(
        m.contains("column v does not hold FloatVector values of dim 4"),
        "{m}"
    );
}

/// A log object named for LSNs 0 to u64::MAX holding records 0 and u64::MAX: the count check
/// `last - first + 1` overflowed (a panic in debug builds, a wrong count in release).
#[test]
fn wal_object_claiming_every_lsn_is_corruption() {
    let data = regression("wal_decode", "lsn-range-overflow");
    let first = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let last = u64::from_le_bytes(data[9..17].try_into().unwrap());
    assert_eq!((first, last), (0, u64::MAX));
    let e = fuzzing::wal_object(first, last, &data[17..], true).unwrap_err();
    assert_eq!(
        corrupted(e),
        "object does not hold the records its name promises"
    );
}
