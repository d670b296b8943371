use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovus_core::CoreError;
use ferrovus_core::store::{MetaCondition, MetaOp, MetaStore};
use ferrovus_storage::RedbMetaStore;
use ferrovus_storage::testing::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbMetaStore::open(dir.path().join("meta/meta.redb"))
        .await
        .unwrap();
    conformance::meta_store(Arc::new(store)).await;
}

#[tokio::test]
async fn redb_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let (rev_a, rev_c);
    {
        let store = RedbMetaStore::open(&path).await.unwrap();
        rev_a = store.put("a", b"1".to_vec()).await.unwrap();
        store.put("b", b"2".to_vec()).await.unwrap();
        store.delete("b").await.unwrap();
        assert!(
            store
                .txn(
                    vec![MetaCondition::ModRevision {
                        key: "c".into(),
                        revision: 0
                    }],
                    vec![MetaOp::Put {
                        key: "c".into(),
                        value: b"3".to_vec()
                    }],
                )
                .await
                .unwrap()
        );
        rev_c = store.get("c").await.unwrap().unwrap().mod_revision;
    } // dropped: the file is closed
    let store = RedbMetaStore::open(&path).await.unwrap();
    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!((a.value, a.mod_revision), (b"1".to_vec(), rev_a));
    assert_eq!(store.get("b").await.unwrap(), None);
    assert_eq!(store.get("c").await.unwrap().unwrap().mod_revision, rev_c);
    assert_eq!(
        store.revision().await.unwrap(),
        rev_c,
        "the revision counter is persisted"
    );
    let next = store.put("d", vec![]).await.unwrap();
    assert_eq!(next, rev_c + 1, "revisions continue after reopen");
}

#[tokio::test]
async fn redb_revision_rules() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbMetaStore::open(dir.path().join("m.redb"))
        .await
        .unwrap();
    assert_eq!(store.revision().await.unwrap(), 0);
    assert_eq!(store.put("a", vec![1]).await.unwrap(), 1);
    store.delete("missing").await.unwrap();
    assert_eq!(
        store.revision().await.unwrap(),
        1,
        "deleting a missing key is not a change"
    );
    let cond = |k: &str, r| MetaCondition::ModRevision {
        key: k.into(),
        revision: r,
    };
    assert!(
        !store
            .txn(vec![cond("a", 7)], vec![MetaOp::Delete { key: "a".into() }])
            .await
            .unwrap()
    );
    assert_eq!(
        store.revision().await.unwrap(),
        1,
        "a failed txn is not a change"
    );
    assert!(
        store.txn(vec![cond("a", 1)], vec![]).await.unwrap(),
        "a txn with no ops just compares"
    );
    assert_eq!(store.revision().await.unwrap(), 1);
    store.delete("a").await.unwrap();
    assert_eq!(store.revision().await.unwrap(), 2);
    // Invalid requests are InvalidArgument, not storage errors.
    let dup = vec![
        MetaOp::Put {
            key: "x".into(),
            value: vec![],
        },
        MetaOp::Delete { key: "x".into() },
    ];
    assert!(matches!(
        store.txn(vec![], dup).await,
        Err(CoreError::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.put("", vec![]).await,
        Err(CoreError::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.get("").await,
        Err(CoreError::InvalidArgument { .. })
    ));
}

const CRASH_CHILD_ENV: &str = "FERROVUS_REDB_CRASH_CHILD";

fn crash_value(i: u64) -> Vec<u8> {
    format!("value-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

/// Child half of `redb_survives_sigkill`: a no-op unless the env var names a database. Writes
/// forever, each step one transaction that adds key `k<i>` and sets `last` = i, printing
/// `committed <i>` after the commit returned.
#[tokio::test]
async fn redb_crash_child() {
    let Ok(path) = std::env::var(CRASH_CHILD_ENV) else {
        return;
    };
    let store = RedbMetaStore::open(&path).await.unwrap();
    let mut i = match store.get("last").await.unwrap() {
        Some(kv) => {
            std::str::from_utf8(&kv.value)
                .unwrap()
                .parse::<u64>()
                .unwrap()
                + 1
        }
        None => 0,
    };
    loop {
        let ops = vec![
            MetaOp::Put {
                key: format!("k{i:08}"),
                value: crash_value(i),
            },
            MetaOp::Put {
                key: "last".into(),
                value: i.to_string().into_bytes(),
            },
        ];
        assert!(store.txn(vec![], ops).await.unwrap());
        println!("committed {i}");
        i += 1;
    }
}

/// A writer killed with SIGKILL at arbitrary points loses nothing it acknowledged and never
/// leaves a half-applied transaction; the database reopens (repairing itself) every time.
#[test]
fn redb_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let exe = std::env::current_exe().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut acknowledged: Option<u64> = None;
    for round in 0..3u64 {
        let mut child = Command::new(&exe)
            .args([
                "redb::redb_crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("committed ")
                    && tx.send(n.trim().parse().unwrap()).is_err()
                {
                    break;
                }
            }
        });
        // Let it commit a varying number of transactions, then kill it mid-stream.
        let target = acknowledged.map_or(0, |a| a + 1) + 40 + round * 37;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last_seen = None;
        while last_seen.is_none_or(|n| n < target) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(n) => last_seen = Some(n),
                Err(e) => {
                    let _ = child.kill();
                    panic!("crash child stalled before commit {target} (last {last_seen:?}): {e}");
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        drop(rx);
        reader.join().unwrap();
        let last_seen = last_seen.unwrap();

        rt.block_on(async {
            let store = RedbMetaStore::open(&path)
                .await
                .expect("reopen after SIGKILL");
            let last: u64 = std::str::from_utf8(&store.get("last").await.unwrap().unwrap().value)
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                last >= last_seen,
                "acknowledged commit {last_seen} lost (last = {last})"
            );
            let all = store.list("k").await.unwrap();
            assert_eq!(
                all.len() as u64,
                last + 1,
                "exactly the committed transactions are present"
            );
            for (i, kv) in all.iter().enumerate() {
                assert_eq!(kv.key, format!("k{i:08}"));
                assert_eq!(kv.value, crash_value(i as u64), "value of {}", kv.key);
            }
            acknowledged = Some(last);
        });
    }
}
