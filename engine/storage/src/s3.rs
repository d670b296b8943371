//! [`S3ObjectStore`]: objects in an S3 bucket (AWS or an S3-compatible service) via aws-sdk-s3.
//!
//! * Credentials: a static key pair from [`S3Config`], or else the SDK's default chain
//!   (environment, profile files, web identity, ECS, IMDS).
//! * A custom `endpoint` (MinIO, moto, Ceph...) usually wants `force_path_style`.
//! * Retries: the SDK's standard mode (exponential backoff with jitter), 5 attempts by default.
//! * Objects larger than [`S3Options::multipart_threshold`] are uploaded in parts
//!   ([`S3Options::part_size`], at least 5 MiB), several at a time; a failed upload is aborted.
//! * HTTP: hyper + rustls with the `ring` crypto provider (see [`http_client`]); https and http.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedHttpClient,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart,
    CreateBucketConfiguration,
};
use bytes::Bytes;
use ferrovus_core::Result;
use ferrovus_core::store::ObjectStore;

use crate::error::{StorageError, StorageResult};
use crate::validate_object_key;

const MIB: u64 = 1024 * 1024;
/// S3's smallest allowed part (except the last one).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
const MAX_PARTS: u64 = 10_000;

/// Where the objects live and how to authenticate.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// Custom endpoint URL (`http://127.0.0.1:9000`); `None` for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Root path inside the bucket (`ferrovus/cluster-a`); every key is stored under it.
    pub prefix: String,
    /// Static credentials; both or neither. Neither means the SDK's default provider chain.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible services.
    pub force_path_style: bool,
    /// Create the bucket on connect if it does not exist.
    pub create_bucket: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("force_path_style", &self.force_path_style)
            .field("create_bucket", &self.create_bucket)
            .finish()
    }
}

/// Tuning knobs, with defaults suited to production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// Objects strictly larger than this are uploaded with multipart upload. Default 16 MiB.
    pub multipart_threshold: u64,
    /// Size of each part but the last; raised to 5 MiB if smaller, and raised so that an object
    /// never needs more than 10,000 parts. Default 16 MiB.
    pub part_size: u64,
    /// Parts uploaded concurrently. Default 4.
    pub upload_concurrency: usize,
    /// Total attempts per request (standard retry mode). Default 5.
    pub max_attempts: u32,
    /// Send and verify CRC32 checksums. `None` (default): on for AWS, off for a custom endpoint,
    /// since many S3-compatible services do not implement the SDK's default checksum protocol.
    pub checksums: Option<bool>,
    /// Extra PEM certificate(s) to trust for https endpoints, on top of the platform's roots
    /// (e.g. a private CA of an in-cluster S3-compatible service).
    pub extra_ca_pem: Option<Vec<u8>>,
    pub connect_timeout: Duration,
    /// Time allowed from sending a request (body included) to the first byte of its response.
    pub read_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            multipart_threshold: 16 * MIB,
            part_size: 16 * MIB,
            upload_concurrency: 4,
            max_attempts: 5,
            checksums: None,
            extra_ca_pem: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// An [`ObjectStore`] on S3. Cheap to clone.
#[derive(Clone)]
pub struct S3ObjectStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: S3Config,
    options: S3Options,
    /// `config.prefix` normalised: empty, or without a leading and with one trailing `/`.
    root: String,
    checksums: bool,
}

impl fmt::Debug for S3ObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3ObjectStore")
            .field("config", &self.inner.config)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// The SDK's HTTP client: hyper with rustls on the `ring` provider, trusting the platform's root
/// certificates. Serves both `https://` and plain `http://` endpoints. Used instead of the SDK's
/// `default-https-client` feature, which needs aws-lc-sys (a C build with CMake).
/// `extra_ca_pem` adds trusted certificates to the platform's roots.
pub fn http_client(extra_ca_pem: Option<&[u8]>) -> SharedHttpClient {
    use aws_smithy_http_client::tls::{
        Provider, TlsContext, TrustStore, rustls_provider::CryptoMode,
    };
    let mut trust = TrustStore::default();
    if let Some(pem) = extra_ca_pem {
        trust = trust.with_pem_certificate(pem.to_vec());
    }
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("valid TLS context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

fn normalize_root(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

fn is_not_found<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool
where
    R: HasStatus,
{
    match err {
        SdkError::ServiceError(se) => {
            let code = se.err().code();
            matches!(code, Some("NoSuchKey" | "NotFound"))
                || (code.is_none() && se.raw().status_u16() == 404)
        }
        _ => false,
    }
}

/// Lets [`is_not_found`] read the status of the SDK's raw response type.
trait HasStatus {
    fn status_u16(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_u16(&self) -> u16 {
        self.status().as_u16()
    }
}

fn s3_error<E, R>(op: &'static str, key: &str, err: SdkError<E, R>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: HasStatus + fmt::Debug,
{
    if is_not_found(&err) {
        return StorageError::NotFound(key.to_string());
    }
    StorageError::S3 {
        op,
        key: key.to_string(),
        message: DisplayErrorContext(&err).to_string(),
    }
}

impl S3ObjectStore {
    /// Connects with default [`S3Options`].
    pub async fn connect(config: S3Config) -> StorageResult<Self> {
        Self::connect_with(config, S3Options::default()).await
    }

    pub async fn connect_with(config: S3Config, options: S3Options) -> StorageResult<Self> {
        if config.bucket.is_empty() {
            return Err(StorageError::Config("S3 bucket is empty".into()));
        }
        if config.region.is_empty() {
            return Err(StorageError::Config("S3 region is empty".into()));
        }
        if options.upload_concurrency == 0 || options.max_attempts == 0 {
            return Err(StorageError::Config(
                "S3 upload_concurrency and max_attempts must be at least 1".into(),
            ));
        }
        let root = normalize_root(&config.prefix);
        if !root.is_empty() {
            validate_object_key(root.trim_end_matches('/'))
                .map_err(|e| StorageError::Config(format!("S3 prefix: {e}")))?;
        }
        let checksums = options.checksums.unwrap_or(config.endpoint.is_none());

        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .http_client(http_client(options.extra_ca_pem.as_deref()))
            .retry_config(RetryConfig::standard().with_max_attempts(options.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(options.connect_timeout)
                    .read_timeout(options.read_timeout)
                    .build(),
            );
        match (&config.access_key_id, &config.secret_access_key) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    id.clone(),
                    secret.clone(),
                    None,
                    None,
                    "ferrovus-static",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(StorageError::Config(
                    "S3 access_key_id and secret_access_key must be given together".into(),
                ));
            }
        }
        let sdk = loader.load().await;
        let mut builder =
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(config.force_path_style);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        if !checksums {
            builder = builder
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        let client = Client::from_conf(builder.build());
        let store = Self {
            inner: Arc::new(Inner {
                client,
                config,
                options,
                root,
                checksums,
            }),
        };
        if store.inner.config.create_bucket {
            store.ensure_bucket().await?;
        }
        Ok(store)
    }

    pub fn config(&self) -> &S3Config {
        &self.inner.config
    }

    /// The underlying SDK client (for operations this store does not wrap).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    fn bucket(&self) -> &str {
        &self.inner.config.bucket
    }

    fn full_key(&self, key: &str) -> StorageResult<String> {
        validate_object_key(key)?;
        Ok(format!("{}{key}", self.inner.root))
    }

    async fn ensure_bucket(&self) -> StorageResult<()> {
        let bucket = self.bucket();
        let client = &self.inner.client;
        if client.head_bucket().bucket(bucket).send().await.is_ok() {
            return Ok(());
        }
        let mut req = client.create_bucket().bucket(bucket);
        let region = self.inner.config.region.as_str();
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => {
                tracing::info!(bucket, "created S3 bucket");
                Ok(())
            }
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            Err(e) => Err(s3_error("create_bucket", bucket, e)),
        }
    }

    async fn put_single(&self, key: &str, full: &str, data: Bytes) -> StorageResult<()> {
        self.inner
            .client
            .put_object()
            .bucket(self.bucket())
            .key(full)
            .content_length(data.len() as i64)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| s3_error("put_object", key, e))?;
        Ok(())
    }

    /// The part size actually used for an object of `len` bytes.
    fn part_size_for(&self, len: u64) -> u64 {
        let min_for_count = len.div_ceil(MAX_PARTS);
        self.inner
            .options
            .part_size
            .max(MIN_PART_SIZE)
            .max(min_for_count)
    }

    async fn put_multipart(&self, key: &str, full: &str, data: Bytes) -> StorageResult<()> {
        let client = &self.inner.client;
        let mut create = client
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(full);
        if self.inner.checksums {
            create = create.checksum_algorithm(ChecksumAlgorithm::Crc32);
        }
        let created = create
            .send()
            .await
            .map_err(|e| s3_error("create_multipart_upload", key, e))?;
        let upload_id =
            created
                .upload_id()
                .map(str::to_string)
                .ok_or_else(|| StorageError::S3 {
                    op: "create_multipart_upload",
                    key: key.to_string(),
                    message: "response has no upload id".into(),
                })?;
        let result = self.upload_parts(key, full, &upload_id, data).await;
        let result = match result {
            Ok(parts) => client
                .complete_multipart_upload()
                .bucket(self.bucket())
                .key(full)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| s3_error("complete_multipart_upload", key, e)),
            Err(e) => Err(e),
        };
        if result.is_err() {
            let abort = client
                .abort_multipart_upload()
                .bucket(self.bucket())
                .key(full)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(e) = abort {
                tracing::warn!(key, upload_id, error = %DisplayErrorContext(&e), "aborting a failed multipart upload failed");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        data: Bytes,
    ) -> StorageResult<Vec<CompletedPart>> {
        let len = data.len() as u64;
        let part_size = self.part_size_for(len);
        let count = len.div_ceil(part_size);
        let mut tasks = tokio::task::JoinSet::new();
        let mut parts = Vec::with_capacity(count as usize);
        let mut next = 0u64;
        while next < count || !tasks.is_empty() {
            while next < count && tasks.len() < self.inner.options.upload_concurrency {
                let start = next * part_size;
                let end = (start + part_size).min(len);
                let body = data.slice(start as usize..end as usize);
                let part_number = (next + 1) as i32;
                let mut req = self
                    .inner
                    .client
                    .upload_part()
                    .bucket(self.bucket())
                    .key(full)
                    .upload_id(upload_id)
                    .part_number(part_number)
                    .content_length(body.len() as i64)
                    .body(ByteStream::from(body));
                if self.inner.checksums {
                    req = req.checksum_algorithm(ChecksumAlgorithm::Crc32);
                }
                let key = key.to_string();
                tasks.spawn(async move {
                    let out = req
                        .send()
                        .await
                        .map_err(|e| s3_error("upload_part", &key, e))?;
                    let mut part = CompletedPart::builder().part_number(part_number);
                    if let Some(etag) = out.e_tag() {
                        part = part.e_tag(etag);
                    }
                    if let Some(crc) = out.checksum_crc32() {
                        part = part.checksum_crc32(crc);
                    }
                    Ok::<_, StorageError>(part.build())
                });
                next += 1;
            }
            if let Some(done) = tasks.join_next().await {
                parts.push(done??); // dropping `tasks` on error aborts the other uploads
            }
        }
        parts.sort_by_key(|p| p.part_number());
        tracing::debug!(
            key,
            parts = parts.len(),
            part_size,
            "uploaded multipart object"
        );
        Ok(parts)
    }

    async fn read_body(key: &str, body: ByteStream) -> StorageResult<Bytes> {
        body.collect()
            .await
            .map(|b| b.into_bytes())
            .map_err(|e| StorageError::S3 {
                op: "get_object",
                key: key.to_string(),
                message: DisplayErrorContext(&e).to_string(),
            })
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let full = self.full_key(key)?;
        if data.len() as u64 > self.inner.options.multipart_threshold {
            self.put_multipart(key, &full, data).await?;
        } else {
            self.put_single(key, &full, data).await?;
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let full = self.full_key(key)?;
        let out = self
            .inner
            .client
            .get_object()
            .bucket(self.bucket())
            .key(&full)
            .send()
            .await
            .map_err(|e| s3_error("get_object", key, e))?;
        Ok(Self::read_body(key, out.body).await?)
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes> {
        let full = self.full_key(key)?;
        let client = &self.inner.client;
        if len == 0 {
            // HTTP cannot express an empty range; still report a missing key.
            client
                .head_object()
                .bucket(self.bucket())
                .key(&full)
                .send()
                .await
                .map_err(|e| s3_error("head_object", key, e))?;
            return Ok(Bytes::new());
        }
        let range = match offset.checked_add(len) {
            Some(end) => format!("bytes={offset}-{}", end - 1),
            None => format!("bytes={offset}-"),
        };
        let sent = client
            .get_object()
            .bucket(self.bucket())
            .key(&full)
            .range(range)
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            // 416: the range starts at or past the end of the object.
            Err(e) if e.code() == Some("InvalidRange") => return Ok(Bytes::new()),
            Err(e) => return Err(s3_error("get_object", key, e).into()),
        };
        let ranged = out.content_range().is_some();
        let body = Self::read_body(key, out.body).await?;
        if ranged {
            // 206: S3 already clamped the range to the object.
            return Ok(body);
        }
        // A service that ignores Range answers 200 with the whole object: clamp here.
        let (start, end) = crate::clamp_range(offset, len, body.len() as u64);
        Ok(body.slice(start as usize..end as usize))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        match self
            .inner
            .client
            .delete_object()
            .bucket(self.bucket())
            .key(&full)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match s3_error("delete_object", key, e) {
                StorageError::NotFound(_) => Ok(()),
                other => Err(other.into()),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let root = &self.inner.root;
        let mut pages = self
            .inner
            .client
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(format!("{root}{prefix}"))
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error("list_objects_v2", prefix, e))?;
            for obj in page.contents() {
                if let Some(k) = obj.key().and_then(|k| k.strip_prefix(root.as_str())) {
                    keys.push(k.to_string());
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let full = self.full_key(key)?;
        match self
            .inner
            .client
            .head_object()
            .bucket(self.bucket())
            .key(&full)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match s3_error("head_object", key, e) {
                StorageError::NotFound(_) => Ok(false),
                other => Err(other.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots() {
        assert_eq!(normalize_root(""), "");
        assert_eq!(normalize_root("/"), "");
        assert_eq!(normalize_root("a"), "a/");
        assert_eq!(normalize_root("/a/b/"), "a/b/");
    }

    #[test]
    fn config_debug_redacts_the_secret() {
        let c = S3Config {
            secret_access_key: Some("hunter2".into()),
            access_key_id: Some("AKIA".into()),
            ..Default::default()
        };
        let s = format!("{c:?}");
        assert!(
            !s.contains("hunter2") && s.contains("<redacted>") && s.contains("AKIA"),
            "{s}"
        );
    }
}
