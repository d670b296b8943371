use std::sync::Arc;

use bytes::Bytes;
use ferrovus_core::CoreError;
use ferrovus_core::store::ObjectStore;
use ferrovus_storage::LocalObjectStore;
use ferrovus_storage::testing::conformance::{self, pattern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalObjectStore::new(dir.path().join("objects")).unwrap();
    conformance::object_store(&store).await;
    conformance::object_store_key_rules(&store).await;
}

#[tokio::test]
async fn local_path_is_the_object_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalObjectStore::new(dir.path()).unwrap();
    store
        .put("idx/segment-1.bin", Bytes::from_static(b"mmap me"))
        .await
        .unwrap();
    let path = store.local_path("idx/segment-1.bin").unwrap();
    assert_eq!(path, dir.path().join("idx/segment-1.bin"));
    assert_eq!(std::fs::read(&path).unwrap(), b"mmap me");
    assert_eq!(store.local_path("../outside"), None);
    assert_eq!(store.local_path("/etc/passwd"), None);
}

#[tokio::test]
async fn temp_files_are_invisible_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalObjectStore::new(dir.path()).unwrap();
    store.put("a/b", Bytes::from_static(b"1")).await.unwrap();
    // A temp file left by a crash mid-put is not an object.
    std::fs::write(dir.path().join("a/.ferrovus-tmp.123.0"), b"partial").unwrap();
    assert_eq!(store.list("").await.unwrap(), ["a/b"]);
    assert_eq!(store.list("a/").await.unwrap(), ["a/b"]);
    // Successful puts leave no temp files behind.
    for i in 0..20 {
        store.put("a/c", pattern(1000 + i, i as u64)).await.unwrap();
    }
    let names: Vec<String> = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".123.0"))
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["b", "c"]);
}

#[tokio::test]
async fn deletes_remove_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalObjectStore::new(dir.path()).unwrap();
    store
        .put("x/y/z/obj", Bytes::from_static(b"1"))
        .await
        .unwrap();
    store.put("x/keep", Bytes::from_static(b"2")).await.unwrap();
    store.delete("x/y/z/obj").await.unwrap();
    assert!(
        !dir.path().join("x/y").exists(),
        "emptied directories are removed"
    );
    assert!(dir.path().join("x/keep").exists());
    assert!(dir.path().exists(), "the root stays");
}

#[tokio::test]
async fn object_and_directory_conflict_is_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalObjectStore::new(dir.path()).unwrap();
    store.put("a", Bytes::from_static(b"file")).await.unwrap();
    let err = store
        .put("a/b", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err:?}");
    store.put("d/e", Bytes::from_static(b"x")).await.unwrap();
    let err = store.put("d", Bytes::from_static(b"x")).await.unwrap_err();
    assert!(matches!(err, CoreError::InvalidArgument { .. }), "{err:?}");
    assert_eq!(store.get("d/e").await.unwrap(), Bytes::from_static(b"x"));
}

/// Concurrent writers of one key: readers only ever see one writer's complete object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_are_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalObjectStore::new(dir.path()).unwrap());
    let versions: Vec<Bytes> = (0..8).map(|i| pattern(256 * 1024, i)).collect();
    store.put("hot", versions[0].clone()).await.unwrap();
    let mut writers = Vec::new();
    for v in versions.clone() {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..5 {
                store.put("hot", v.clone()).await.unwrap();
            }
        }));
    }
    let reader = {
        let (store, versions) = (store.clone(), versions.clone());
        tokio::spawn(async move {
            for _ in 0..50 {
                let got = store.get("hot").await.unwrap();
                assert!(versions.contains(&got), "torn read of length {}", got.len());
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    reader.await.unwrap();
    assert!(versions.contains(&store.get("hot").await.unwrap()));
}
