//! Replays the committed fuzz corpus (`fuzz/corpus/index_decode/`) and every crash the fuzzer
//! found (`fuzz/regressions/index_decode/`) through `ferrovus_index::fuzzing::index_decode`, the
//! function the fuzz target calls. See `fuzz/README.md`.

use std::path::{Path, PathBuf};

use ferrovus_index::{IndexError, fuzzing};

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

#[test]
fn index_decode_corpus() {
    let files = inputs("index_decode");
    assert!(!files.is_empty(), "no corpus for fuzz target index_decode");
    for path in files {
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| fuzzing::index_decode(&data)).is_err() {
            panic!("fuzz input {} panics", path.display());
        }
    }
}

// One test per crash the fuzzer found: the input now gives this typed error.

fn regression(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/index_decode")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn corrupted(r: Result<ferrovus_index::VectorIndex, IndexError>) -> String {
    match r {
        Err(IndexError::Corrupted(m)) => m,
        other => panic!("expected a Corrupted error, got {other:?}"),
    }
}

/// A FLAT file of 0 rows of dimension 536870920 loaded (the loaders checked only dim > 0; the
/// builders refuse dim > MAX_DIM).
#[test]
fn flat_dimension_beyond_max_dim_is_corruption() {
    let m = corrupted(fuzzing::load_input(&regression("flat-dim-too-large")));
    assert!(m.contains("invalid header: dim 536870920"), "{m}");
}
