//! Against a real `moto_server` process. One server per test function (moto takes seconds to
//! start), shared by the sub-tests through separate buckets and prefixes.

use bytes::Bytes;
use ferrovus_core::CoreError;
use ferrovus_core::store::ObjectStore;
use ferrovus_storage::testing::MotoServer;
use ferrovus_storage::testing::conformance::{self, pattern};
use ferrovus_storage::{S3ObjectStore, S3Options};

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_against_moto() {
    crate::init_tracing();
    let Some(moto) = MotoServer::start().await else {
        return;
    };

    // Conformance, under a root prefix.
    let store = S3ObjectStore::connect(moto.s3_config("conformance", "cluster-a/"))
        .await
        .unwrap();
    conformance::object_store(&store).await;
    conformance::object_store_key_rules(&store).await;

    root_prefixes_isolate_stores(&moto).await;
    multipart_upload(&moto, Some(false)).await;
    multipart_upload(&moto, Some(true)).await;
    ranges_and_errors(&moto).await;
    config_errors(&moto).await;
}

async fn root_prefixes_isolate_stores(moto: &MotoServer) {
    let a = S3ObjectStore::connect(moto.s3_config("shared", "/tenants/a/"))
        .await
        .unwrap();
    let b = S3ObjectStore::connect(moto.s3_config("shared", "tenants/b"))
        .await
        .unwrap();
    let whole = S3ObjectStore::connect(moto.s3_config("shared", ""))
        .await
        .unwrap();
    a.put("x/1", Bytes::from_static(b"a1")).await.unwrap();
    b.put("x/1", Bytes::from_static(b"b1")).await.unwrap();
    b.put("x/2", Bytes::from_static(b"b2")).await.unwrap();
    assert_eq!(a.list("").await.unwrap(), ["x/1"]);
    assert_eq!(b.list("x/").await.unwrap(), ["x/1", "x/2"]);
    assert_eq!(a.get("x/1").await.unwrap(), Bytes::from_static(b"a1"));
    assert!(matches!(a.get("x/2").await, Err(CoreError::NotFound(_))));
    assert_eq!(
        whole.list("tenants/").await.unwrap(),
        ["tenants/a/x/1", "tenants/b/x/1", "tenants/b/x/2"]
    );
    // Listing paginates (moto pages at 1000 keys like S3).
    for i in 0..1100 {
        b.put(&format!("many/{i:05}"), Bytes::new()).await.unwrap();
    }
    let many = b.list("many/").await.unwrap();
    assert_eq!(many.len(), 1100);
    assert!(many.windows(2).all(|w| w[0] < w[1]));
}

/// A 12 MiB object with 5 MiB parts: three parts, read back whole and across part boundaries.
async fn multipart_upload(moto: &MotoServer, checksums: Option<bool>) {
    let options = S3Options {
        multipart_threshold: 5 * MIB,
        part_size: 5 * MIB,
        checksums,
        ..Default::default()
    };
    let prefix = match checksums {
        Some(true) => "crc32",
        Some(false) => "plain",
        None => "auto",
    };
    let config = moto.s3_config("multipart", prefix);
    let store = S3ObjectStore::connect_with(config.clone(), options)
        .await
        .unwrap();
    let data = pattern(12 * MIB as usize, 99);
    store.put("big.bin", data.clone()).await.unwrap();

    let head = store
        .client()
        .head_object()
        .bucket(&config.bucket)
        .key(format!("{}/big.bin", config.prefix))
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "a 3-part multipart ETag, got {etag}"
    );
    assert_eq!(head.content_length(), Some(12 * MIB as i64));

    let got = store.get("big.bin").await.unwrap();
    assert!(got == data, "multipart object differs");
    for (offset, len) in [
        (5 * MIB - 10, 20),
        (10 * MIB - 1, MIB + 1),
        (0, 12 * MIB),
        (12 * MIB - 5, 100),
    ] {
        let got = store.get_range("big.bin", offset, len).await.unwrap();
        let end = (offset + len).min(12 * MIB) as usize;
        assert!(
            got == data.slice(offset as usize..end),
            "range {offset}+{len}"
        );
    }
    // Objects at or under the threshold still take the single-request path.
    let small = pattern(5 * MIB as usize, 1);
    store.put("small.bin", small.clone()).await.unwrap();
    assert!(store.get("small.bin").await.unwrap() == small);
    store.delete("big.bin").await.unwrap();
    assert!(!store.exists("big.bin").await.unwrap());
}

async fn ranges_and_errors(moto: &MotoServer) {
    let store = S3ObjectStore::connect(moto.s3_config("ranges", ""))
        .await
        .unwrap();
    let data = pattern(4096, 3);
    store.put("r", data.clone()).await.unwrap();
    assert_eq!(
        store.get_range("r", 100, 200).await.unwrap(),
        data.slice(100..300)
    );
    assert_eq!(
        store.get_range("r", 4000, 1000).await.unwrap(),
        data.slice(4000..)
    );
    assert_eq!(store.get_range("r", 4096, 1).await.unwrap(), Bytes::new());
    assert!(matches!(
        store.get_range("nope", 0, 1).await,
        Err(CoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get_range("nope", 0, 0).await,
        Err(CoreError::NotFound(_))
    ));
    // Connecting again to an existing bucket with create_bucket is fine.
    S3ObjectStore::connect(moto.s3_config("ranges", ""))
        .await
        .unwrap();
}

async fn config_errors(moto: &MotoServer) {
    let mut half = moto.s3_config("x", "");
    half.secret_access_key = None;
    assert!(
        S3ObjectStore::connect(half).await.is_err(),
        "half a credential pair is refused"
    );
    let mut no_bucket = moto.s3_config("", "");
    no_bucket.create_bucket = false;
    assert!(S3ObjectStore::connect(no_bucket).await.is_err());
    // A missing bucket is a storage error, not "key not found".
    let mut missing = moto.s3_config("does-not-exist", "");
    missing.create_bucket = false;
    let store = S3ObjectStore::connect(missing).await.unwrap();
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, CoreError::Storage(_)), "{err:?}");
}

/// Makes a throwaway CA and a server certificate for 127.0.0.1 with the `openssl` CLI.
/// Returns (ca.pem, cert.pem, key.pem) paths, or `None` if openssl is unavailable.
fn make_test_pki(dir: &std::path::Path) -> Option<[std::path::PathBuf; 3]> {
    use std::process::Command;
    let Some(openssl) = ferrovus_storage::testing::find_binary("openssl", "FERROVUS_OPENSSL")
    else {
        ferrovus_storage::testing::skip_or_fail(
            "openssl",
            "it is not on PATH (apt-get install openssl)",
        );
        return None;
    };
    let p = |name: &str| dir.join(name);
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-subj",
            "/CN=ferrovus-test-ca",
            "-days",
            "2",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ],
    ]
    .concat());
    std::fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "cert.pem",
    ]);
    Some([p("ca.pem"), p("cert.pem"), p("key.pem")])
}

/// The SDK's rustls + ring client speaks https: an untrusted certificate is refused, and with
/// the CA trusted (`S3Options::extra_ca_pem`) objects round-trip over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_over_https() {
    crate::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let Some([ca, cert, key]) = make_test_pki(dir.path()) else {
        return;
    };
    let Some(moto) = MotoServer::start_tls(&cert, &key).await else {
        return;
    };
    assert!(moto.endpoint().starts_with("https://"));

    let mut untrusted_cfg = moto.s3_config("tls", "");
    untrusted_cfg.create_bucket = false;
    let untrusted = S3ObjectStore::connect_with(
        untrusted_cfg,
        S3Options {
            max_attempts: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err = untrusted.get("k").await.unwrap_err();
    let msg = format!("{err:?}").to_ascii_lowercase();
    assert!(
        matches!(err, CoreError::Storage(_)) && msg.contains("certificate"),
        "{msg}"
    );

    let options = S3Options {
        extra_ca_pem: Some(std::fs::read(&ca).unwrap()),
        ..Default::default()
    };
    let store = S3ObjectStore::connect_with(moto.s3_config("tls", "secure"), options)
        .await
        .unwrap();
    store
        .put("over/tls", Bytes::from_static(b"encrypted in transit"))
        .await
        .unwrap();
    assert_eq!(
        store.get("over/tls").await.unwrap(),
        Bytes::from_static(b"encrypted in transit")
    );
    assert_eq!(store.list("").await.unwrap(), ["over/tls"]);
}
