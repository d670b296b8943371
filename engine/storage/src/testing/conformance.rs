//! The backend conformance suite, written once against the core traits and run against every
//! backend (and the core's in-memory reference stores). Each function expects an empty store
//! (a fresh directory, bucket prefix, etcd namespace or database) and panics on a violation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferrovus_core::CoreError;
use ferrovus_core::store::{KeyValue, MetaCondition, MetaOp, MetaStore, ObjectStore};

/// `len` deterministic, non-repeating-looking bytes (an LCG stream) for content checks.
pub fn pattern(len: usize, seed: u64) -> Bytes {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let word = (x >> 24).to_le_bytes();
        let n = word.len().min(len - v.len());
        v.extend_from_slice(&word[..n]);
    }
    Bytes::from(v)
}

fn assert_not_found<T: std::fmt::Debug>(r: ferrovus_core::Result<T>, what: &str) {
    match r {
        Err(CoreError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(r: ferrovus_core::Result<T>, what: &str) {
    match r {
        Err(CoreError::InvalidArgument { .. }) => {}
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    }
}

/// Same bytes, with a short diagnostic instead of dumping megabytes on failure.
fn assert_bytes(actual: &[u8], expected: &[u8], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    if let Some(i) = actual.iter().zip(expected).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i}");
    }
}

/// The whole object-store suite: semantics every backend must share.
pub async fn object_store(store: &dyn ObjectStore) {
    object_store_basics(store).await;
    object_store_listing(store).await;
    object_store_ranges(store).await;
    object_store_large(store, 9 * 1024 * 1024 + 123).await;
    // Leave the store as we found it: empty.
    for key in store.list("").await.unwrap() {
        store.delete(&key).await.unwrap();
    }
    assert_eq!(
        store.list("").await.unwrap(),
        Vec::<String>::new(),
        "store empty at the end"
    );
}

/// Put / get / overwrite / exists / delete, missing keys, empty and binary objects.
pub async fn object_store_basics(store: &dyn ObjectStore) {
    assert_eq!(
        store.list("").await.unwrap(),
        Vec::<String>::new(),
        "a new store is empty"
    );

    assert_not_found(store.get("missing/object").await, "get of a missing key");
    assert_not_found(
        store.get_range("missing/object", 0, 10).await,
        "get_range of a missing key",
    );
    assert!(!store.exists("missing/object").await.unwrap());
    store
        .delete("missing/object")
        .await
        .expect("deleting a missing key is not an error");

    store
        .put("a/b/c", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(
        store.get("a/b/c").await.unwrap(),
        Bytes::from_static(b"hello")
    );
    assert!(store.exists("a/b/c").await.unwrap());
    assert!(
        !store.exists("a/b").await.unwrap(),
        "a prefix of a key is not an object"
    );
    assert_not_found(store.get("a/b").await, "get of a key's prefix");

    store
        .put("a/b/c", Bytes::from_static(b"overwritten, longer"))
        .await
        .unwrap();
    assert_eq!(
        store.get("a/b/c").await.unwrap(),
        Bytes::from_static(b"overwritten, longer")
    );
    store
        .put("a/b/c", Bytes::from_static(b"short"))
        .await
        .unwrap();
    assert_eq!(
        store.get("a/b/c").await.unwrap(),
        Bytes::from_static(b"short"),
        "overwrite truncates"
    );

    store.put("empty", Bytes::new()).await.unwrap();
    assert!(store.exists("empty").await.unwrap());
    assert_eq!(store.get("empty").await.unwrap(), Bytes::new());
    assert_eq!(store.get_range("empty", 0, 10).await.unwrap(), Bytes::new());

    let all_bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    store
        .put("binary.bin", Bytes::from(all_bytes.clone()))
        .await
        .unwrap();
    assert_eq!(
        store.get("binary.bin").await.unwrap(),
        Bytes::from(all_bytes)
    );

    store.delete("a/b/c").await.unwrap();
    assert_not_found(store.get("a/b/c").await, "get after delete");
    assert!(!store.exists("a/b/c").await.unwrap());
    store.delete("a/b/c").await.expect("delete is idempotent");
    // The key's former "directory" can hold an object now.
    store.put("a/b", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(store.get("a/b").await.unwrap(), Bytes::from_static(b"x"));

    for key in ["a/b", "empty", "binary.bin"] {
        store.delete(key).await.unwrap();
    }
    assert_eq!(store.list("").await.unwrap(), Vec::<String>::new());
}

/// Listing: recursive, sorted by key bytes, exact prefix semantics (not directory semantics).
pub async fn object_store_listing(store: &dyn ObjectStore) {
    let keys = [
        "seg/2",
        "seg/10",
        "seg/1/x",
        "seg/1/y/z",
        "segment/1",
        "se",
        "z",
        "A/upper",
        "seg_x",
    ];
    for (i, k) in keys.iter().enumerate() {
        store
            .put(k, Bytes::from(format!("value {i}")))
            .await
            .unwrap();
    }
    let mut sorted: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(
        store.list("").await.unwrap(),
        sorted,
        "list of everything, sorted"
    );
    assert_eq!(
        store.list("seg/").await.unwrap(),
        ["seg/1/x", "seg/1/y/z", "seg/10", "seg/2"],
        "a directory-like prefix lists recursively and nothing beside it"
    );
    assert_eq!(
        store.list("seg").await.unwrap(),
        [
            "seg/1/x",
            "seg/1/y/z",
            "seg/10",
            "seg/2",
            "seg_x",
            "segment/1"
        ],
        "a plain string prefix matches across directory boundaries"
    );
    assert_eq!(
        store.list("seg/1").await.unwrap(),
        ["seg/1/x", "seg/1/y/z", "seg/10"]
    );
    assert_eq!(
        store.list("seg/1/").await.unwrap(),
        ["seg/1/x", "seg/1/y/z"]
    );
    assert_eq!(
        store.list("seg/1/x").await.unwrap(),
        ["seg/1/x"],
        "a full key lists itself"
    );
    assert_eq!(store.list("nothing/").await.unwrap(), Vec::<String>::new());
    assert_eq!(store.list("zz").await.unwrap(), Vec::<String>::new());
    assert_eq!(
        store.list("a").await.unwrap(),
        Vec::<String>::new(),
        "prefixes are case-sensitive"
    );
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            store.get(k).await.unwrap(),
            Bytes::from(format!("value {i}")),
            "{k}"
        );
    }
    store.delete("seg/10").await.unwrap();
    assert_eq!(
        store.list("seg/1").await.unwrap(),
        ["seg/1/x", "seg/1/y/z"],
        "deleted keys leave listings"
    );
    for k in keys {
        store.delete(k).await.unwrap();
    }
    assert_eq!(store.list("").await.unwrap(), Vec::<String>::new());
}

/// `get_range`: exact slices inside the object, clamped at its end, empty past it.
pub async fn object_store_ranges(store: &dyn ObjectStore) {
    let data = pattern(1000, 7);
    store.put("ranges/obj", data.clone()).await.unwrap();
    let cases: &[(u64, u64, std::ops::Range<usize>)] = &[
        (0, 10, 0..10),
        (10, 0, 10..10),
        (123, 456, 123..579),
        (990, 10, 990..1000),
        (995, 10, 995..1000),
        (999, 1, 999..1000),
        (0, 1000, 0..1000),
        (0, u64::MAX, 0..1000),
        (1000, 10, 1000..1000),
        (5000, 1, 1000..1000),
    ];
    for (offset, len, expect) in cases {
        let got = store.get_range("ranges/obj", *offset, *len).await.unwrap();
        assert_bytes(
            &got,
            &data[expect.clone()],
            &format!("get_range({offset}, {len})"),
        );
    }
    store.delete("ranges/obj").await.unwrap();
}

/// A large object round-trips whole and by ranges.
pub async fn object_store_large(store: &dyn ObjectStore, len: usize) {
    let data = pattern(len, 42);
    store.put("large/object.bin", data.clone()).await.unwrap();
    let got = store.get("large/object.bin").await.unwrap();
    assert_bytes(&got, &data, "large object");
    let mid = (len / 2) as u64;
    let got = store
        .get_range("large/object.bin", mid - 1000, 1_048_576)
        .await
        .unwrap();
    assert_bytes(
        &got,
        &data[mid as usize - 1000..][..1_048_576],
        "large object range",
    );
    let tail = store
        .get_range("large/object.bin", len as u64 - 10, 100)
        .await
        .unwrap();
    assert_bytes(&tail, &data[len - 10..], "large object tail");
    store.delete("large/object.bin").await.unwrap();
}

/// The key rules of `ferrovus-storage` backends (not enforced by the core's memory store).
pub async fn object_store_key_rules(store: &dyn ObjectStore) {
    for bad in [
        "",
        "/abs",
        "../escape",
        "a/../b",
        "a//b",
        "trailing/",
        "./x",
    ] {
        assert_invalid(
            store.put(bad, Bytes::from_static(b"x")).await,
            &format!("put {bad:?}"),
        );
        assert_invalid(store.get(bad).await, &format!("get {bad:?}"));
        assert_invalid(
            store.get_range(bad, 0, 1).await,
            &format!("get_range {bad:?}"),
        );
        assert_invalid(store.exists(bad).await, &format!("exists {bad:?}"));
        assert_invalid(store.delete(bad).await, &format!("delete {bad:?}"));
    }
    assert_eq!(store.list("../").await.unwrap(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------

fn put(key: &str, value: &[u8]) -> MetaOp {
    MetaOp::Put {
        key: key.into(),
        value: value.to_vec(),
    }
}

fn del(key: &str) -> MetaOp {
    MetaOp::Delete { key: key.into() }
}

fn rev(key: &str, revision: i64) -> MetaCondition {
    MetaCondition::ModRevision {
        key: key.into(),
        revision,
    }
}

async fn value_of(store: &dyn MetaStore, key: &str) -> Option<Vec<u8>> {
    store.get(key).await.unwrap().map(|kv| kv.value)
}

/// The whole metadata-store suite.
pub async fn meta_store(store: Arc<dyn MetaStore>) {
    meta_store_basics(store.as_ref()).await;
    meta_store_txn(store.as_ref()).await;
    meta_store_concurrent_cas(store.clone(), 8, 8).await;
}

/// get / put / delete, revisions, listing.
pub async fn meta_store_basics(store: &dyn MetaStore) {
    assert_eq!(
        store.list("").await.unwrap(),
        Vec::<KeyValue>::new(),
        "a new store is empty"
    );
    assert_eq!(store.get("missing").await.unwrap(), None);
    store
        .delete("missing")
        .await
        .expect("deleting a missing key is not an error");

    let r1 = store.put("k1", b"v1".to_vec()).await.unwrap();
    assert!(r1 > 0, "revisions are positive");
    let kv = store.get("k1").await.unwrap().expect("k1");
    assert_eq!(
        kv,
        KeyValue {
            key: "k1".into(),
            value: b"v1".to_vec(),
            mod_revision: r1
        }
    );
    let r2 = store.put("k1", b"v2".to_vec()).await.unwrap();
    assert!(r2 > r1, "an overwrite gets a new revision");
    assert_eq!(store.get("k1").await.unwrap().unwrap().mod_revision, r2);
    let r3 = store.put("k2", b"other".to_vec()).await.unwrap();
    assert!(r3 > r2, "revisions are global across keys");
    assert_eq!(
        store.get("k1").await.unwrap().unwrap().mod_revision,
        r2,
        "other keys keep theirs"
    );

    let binary: Vec<u8> = (0..=255u8).collect();
    store.put("binary", binary.clone()).await.unwrap();
    assert_eq!(value_of(store, "binary").await, Some(binary));
    store.put("empty-value", Vec::new()).await.unwrap();
    assert_eq!(
        value_of(store, "empty-value").await,
        Some(Vec::new()),
        "an empty value is a value"
    );

    // Listing: sorted by key, exact prefix semantics.
    let keys = ["p/b", "p/a", "p/a/x", "pa", "q", "p/"];
    let mut revs = Vec::new();
    for k in keys {
        revs.push(store.put(k, format!("val:{k}").into_bytes()).await.unwrap());
    }
    let listed = store.list("p/").await.unwrap();
    let names: Vec<&str> = listed.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(names, ["p/", "p/a", "p/a/x", "p/b"]);
    for kv in &listed {
        let i = keys.iter().position(|k| *k == kv.key).unwrap();
        assert_eq!(kv.value, format!("val:{}", kv.key).into_bytes());
        assert_eq!(
            kv.mod_revision, revs[i],
            "list reports mod_revision of {}",
            kv.key
        );
    }
    let names: Vec<String> = store
        .list("p")
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(names, ["p/", "p/a", "p/a/x", "p/b", "pa"]);
    let all: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    let mut expected: Vec<String> = ["k1", "k2", "binary", "empty-value"]
        .iter()
        .chain(&keys)
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(store.list("nothing").await.unwrap(), Vec::<KeyValue>::new());

    store.delete("k1").await.unwrap();
    assert_eq!(store.get("k1").await.unwrap(), None);
    assert!(
        store
            .list("k")
            .await
            .unwrap()
            .iter()
            .all(|kv| kv.key != "k1")
    );
    store.delete("k1").await.expect("delete is idempotent");
    let r4 = store.put("k1", b"again".to_vec()).await.unwrap();
    assert!(r4 > r3);

    for kv in store.list("").await.unwrap() {
        store.delete(&kv.key).await.unwrap();
    }
    assert_eq!(store.list("").await.unwrap(), Vec::<KeyValue>::new());
}

/// Transactions: all-or-nothing, compare-and-swap on `mod_revision`, 0 = absent.
pub async fn meta_store_txn(store: &dyn MetaStore) {
    // Create-if-absent.
    assert!(
        store
            .txn(vec![rev("t/new", 0)], vec![put("t/new", b"first")])
            .await
            .unwrap()
    );
    let created = store.get("t/new").await.unwrap().expect("created");
    assert_eq!(created.value, b"first");
    assert!(
        !store
            .txn(vec![rev("t/new", 0)], vec![put("t/new", b"second")])
            .await
            .unwrap()
    );
    assert_eq!(
        store.get("t/new").await.unwrap().unwrap(),
        created,
        "a failed txn changes nothing"
    );

    // Compare-and-swap with the current and with a stale revision.
    assert!(
        store
            .txn(
                vec![rev("t/new", created.mod_revision)],
                vec![put("t/new", b"cas")]
            )
            .await
            .unwrap()
    );
    let swapped = store.get("t/new").await.unwrap().unwrap();
    assert_eq!(swapped.value, b"cas");
    assert!(swapped.mod_revision > created.mod_revision);
    assert!(
        !store
            .txn(
                vec![rev("t/new", created.mod_revision)],
                vec![put("t/new", b"stale")]
            )
            .await
            .unwrap(),
        "a stale revision fails"
    );
    assert_eq!(value_of(store, "t/new").await.unwrap(), b"cas");
    assert!(
        !store
            .txn(vec![rev("t/absent", 12345)], vec![put("t/absent", b"x")])
            .await
            .unwrap(),
        "a non-zero revision on an absent key fails"
    );
    assert_eq!(store.get("t/absent").await.unwrap(), None);

    // A failing condition applies none of the ops, even with other conditions holding.
    let ra = store.put("t/a", b"a0".to_vec()).await.unwrap();
    let rd = store.put("t/d", b"d0".to_vec()).await.unwrap();
    let ok = store
        .txn(
            vec![rev("t/a", ra), rev("t/d", rd + 1000)],
            vec![put("t/a", b"a1"), put("t/c", b"c1"), del("t/d")],
        )
        .await
        .unwrap();
    assert!(!ok);
    assert_eq!(value_of(store, "t/a").await.unwrap(), b"a0");
    assert_eq!(store.get("t/a").await.unwrap().unwrap().mod_revision, ra);
    assert_eq!(store.get("t/c").await.unwrap(), None);
    assert_eq!(value_of(store, "t/d").await.unwrap(), b"d0");

    // All conditions hold: every op applies, all writes at one revision.
    let ok = store
        .txn(
            vec![rev("t/a", ra), rev("t/d", rd), rev("t/c", 0)],
            vec![put("t/a", b"a1"), put("t/c", b"c1"), del("t/d")],
        )
        .await
        .unwrap();
    assert!(ok);
    let a = store.get("t/a").await.unwrap().unwrap();
    let c = store.get("t/c").await.unwrap().unwrap();
    assert_eq!(
        (a.value.as_slice(), c.value.as_slice()),
        (&b"a1"[..], &b"c1"[..])
    );
    assert_eq!(
        a.mod_revision, c.mod_revision,
        "one transaction, one revision"
    );
    assert!(a.mod_revision > rd);
    assert_eq!(store.get("t/d").await.unwrap(), None);
    let next = store.put("t/other", b"o".to_vec()).await.unwrap();
    assert!(
        next > a.mod_revision,
        "revisions keep increasing after a txn"
    );

    // A deleted key counts as absent again.
    assert!(
        store
            .txn(vec![rev("t/d", 0)], vec![put("t/d", b"d1")])
            .await
            .unwrap()
    );
    assert_eq!(value_of(store, "t/d").await.unwrap(), b"d1");

    // No conditions: applies unconditionally.
    assert!(
        store
            .txn(vec![], vec![put("t/free", b"f"), del("t/other")])
            .await
            .unwrap()
    );
    assert_eq!(value_of(store, "t/free").await.unwrap(), b"f");
    assert_eq!(store.get("t/other").await.unwrap(), None);

    for kv in store.list("t/").await.unwrap() {
        store.delete(&kv.key).await.unwrap();
    }
    assert_eq!(store.list("").await.unwrap(), Vec::<KeyValue>::new());
}

/// `tasks` tasks each increment a counter `increments` times by read + compare-and-swap.
/// Exactly one writer wins per revision: no increment is lost and no base revision is used twice.
pub async fn meta_store_concurrent_cas(store: Arc<dyn MetaStore>, tasks: usize, increments: usize) {
    const KEY: &str = "cas/counter";
    store.put(KEY, 0u64.to_le_bytes().to_vec()).await.unwrap();
    let wins = Arc::new(Mutex::new(Vec::<i64>::new()));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (store, wins) = (store.clone(), wins.clone());
        handles.push(tokio::spawn(async move {
            let mut done = 0;
            let mut conflicts = 0usize;
            while done < increments {
                let kv = store.get(KEY).await.unwrap().expect("counter exists");
                let n = u64::from_le_bytes(kv.value.as_slice().try_into().expect("8 bytes"));
                let won = store
                    .txn(
                        vec![rev(KEY, kv.mod_revision)],
                        vec![put(KEY, &(n + 1).to_le_bytes())],
                    )
                    .await
                    .unwrap();
                if won {
                    wins.lock().unwrap().push(kv.mod_revision);
                    done += 1;
                } else {
                    conflicts += 1;
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for h in handles {
        conflicts += h.await.expect("CAS task panicked");
    }
    let kv = store.get(KEY).await.unwrap().unwrap();
    let total = u64::from_le_bytes(kv.value.as_slice().try_into().unwrap());
    assert_eq!(total, (tasks * increments) as u64, "no increment lost");
    let wins = std::mem::take(&mut *wins.lock().unwrap());
    assert_eq!(wins.len(), tasks * increments);
    let distinct: HashSet<i64> = wins.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        wins.len(),
        "two writers won from the same revision"
    );
    tracing::info!(tasks, increments, conflicts, "concurrent CAS done");
    store.delete(KEY).await.unwrap();
}
