//! Replays the committed fuzz corpus (`fuzz/corpus/index_decode/`) and every crash the fuzzer
//! found (`fuzz/regressions/index_decode/`) through `ferrovus_index::fuzzing::index_decode`, the
//! function the fuzz target calls. See `fuzz/README.md`.

use std::path::{Path, PathBuf};

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
        if std::panic::catch_unwind(|| ferrovus_index::fuzzing::index_decode(&data)).is_err() {
            panic!("fuzz input {} panics", path.display());
        }
    }
}
