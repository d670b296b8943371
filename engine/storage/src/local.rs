//! [`LocalObjectStore`]: objects as files under a root directory.
//!
//! Key `a/b/c` is the file `<root>/a/b/c`, so indexes can memory-map it ([`ObjectStore::local_path`]).
//! A put writes a temporary file in the target directory, fsyncs it, renames it over the target
//! and fsyncs the directory: readers see the old or the new object, never a torn one, and the
//! object survives a crash once `put` returns. Directories created on the way are fsynced into
//! their parents; empty directories are removed again when their last object is deleted.
//!
//! Limitation (filesystem, not S3, semantics): a key cannot be both an object and a proper prefix
//! of another object's directory path (`a` and `a/b` cannot coexist); such a put fails with
//! `InvalidArgument`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use ferrovus_core::Result;
use ferrovus_core::store::ObjectStore;

use crate::error::{StorageError, StorageResult};
use crate::{TMP_PREFIX, clamp_range, validate_object_key};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An [`ObjectStore`] on a local directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalObjectStore {
    root: Arc<PathBuf>,
}

impl LocalObjectStore {
    /// Opens (creating it if needed) a store rooted at `root`.
    pub fn new(root: impl AsRef<Path>) -> StorageResult<Self> {
        let root = root.as_ref();
        fs::create_dir_all(root).map_err(|e| StorageError::io(root, e))?;
        let root = std::path::absolute(root).map_err(|e| StorageError::io(root, e))?;
        Ok(Self {
            root: Arc::new(root),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> StorageResult<PathBuf> {
        validate_object_key(key)?;
        Ok(self.root.join(key))
    }

    async fn blocking<T, F>(f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce() -> StorageResult<T> + Send + 'static,
    {
        tokio::task::spawn_blocking(f).await?
    }
}

fn sync_dir(dir: &Path) -> StorageResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

fn key_conflict(key: &str) -> StorageError {
    StorageError::InvalidRequest {
        field: "key",
        message: format!(
            "{key:?} conflicts with an existing object or prefix (a local store cannot hold both `a` and `a/b`)"
        ),
    }
}

/// Creates `dir` (inside `root`) and its missing ancestors, fsyncing each new entry into its parent.
fn create_dirs(root: &Path, dir: &Path, key: &str) -> StorageResult<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let rel = dir
        .strip_prefix(root)
        .expect("object paths are under the root");
    let mut cur = root.to_path_buf();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        match fs::create_dir(&cur) {
            Ok(()) => sync_dir(&parent)?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if !cur.is_dir() {
                    return Err(key_conflict(key));
                }
            }
            Err(e) if e.kind() == ErrorKind::NotADirectory => return Err(key_conflict(key)),
            Err(e) => return Err(StorageError::io(&cur, e)),
        }
    }
    Ok(())
}

fn put_blocking(root: &Path, key: &str, path: &Path, data: &[u8]) -> StorageResult<()> {
    let dir = path.parent().expect("object paths have a parent");
    let mut attempt = 0;
    loop {
        attempt += 1;
        create_dirs(root, dir, key)?;
        let tmp = dir.join(format!(
            "{TMP_PREFIX}{}.{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => f,
            // A concurrent delete removed the (then empty) directory between create_dirs and here.
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < 5 => continue,
            Err(e) => return Err(StorageError::io(&tmp, e)),
        };
        let written = file.write_all(data).and_then(|()| file.sync_all());
        drop(file);
        let renamed = written.and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = renamed {
            let _ = fs::remove_file(&tmp);
            return Err(match e.kind() {
                ErrorKind::IsADirectory | ErrorKind::DirectoryNotEmpty => key_conflict(key),
                _ => StorageError::io(path, e),
            });
        }
        return sync_dir(dir);
    }
}

fn read_range_blocking(key: &str, path: &Path, offset: u64, len: u64) -> StorageResult<Bytes> {
    let mut file = open_object(key, path)?;
    let size = file
        .metadata()
        .map_err(|e| StorageError::io(path, e))?
        .len();
    let (start, end) = clamp_range(offset, len, size);
    let mut buf = vec![0u8; (end - start) as usize];
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(|e| StorageError::io(path, e))?;
    Ok(Bytes::from(buf))
}

fn open_object(key: &str, path: &Path) -> StorageResult<File> {
    let file = File::open(path).map_err(|e| not_found_or_io(key, path, e))?;
    let meta = file.metadata().map_err(|e| StorageError::io(path, e))?;
    if !meta.is_file() {
        return Err(StorageError::NotFound(key.to_string()));
    }
    Ok(file)
}

fn not_found_or_io(key: &str, path: &Path, e: std::io::Error) -> StorageError {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory => {
            StorageError::NotFound(key.to_string())
        }
        _ => StorageError::io(path, e),
    }
}

fn delete_blocking(root: &Path, path: &Path) -> StorageResult<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
            ) =>
        {
            return Ok(());
        }
        // Linux reports unlink() of a directory as EISDIR, others as EPERM.
        Err(e) if path.is_dir() => {
            tracing::debug!(path = %path.display(), error = %e, "delete of a directory path: no such object");
            return Ok(());
        }
        Err(e) => return Err(StorageError::io(path, e)),
    }
    let mut dir = path.parent();
    if let Some(d) = dir {
        sync_dir(d)?;
    }
    // Remove directories left empty, up to (not including) the root. `remove_dir` refuses
    // non-empty directories, so a concurrent put into one of them is safe (it retries).
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

fn list_blocking(root: &Path, prefix: &str) -> StorageResult<Vec<String>> {
    // Start the walk at the deepest directory the prefix names, e.g. `a/b/` for `a/b/se`.
    let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
    if !dir_part.is_empty() && validate_object_key(dir_part).is_err() {
        return Ok(Vec::new()); // no valid key can start with this prefix
    }
    let start = if dir_part.is_empty() {
        root.to_path_buf()
    } else {
        root.join(dir_part)
    };
    let mut keys = Vec::new();
    let mut stack = vec![(start, dir_part.to_string())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(it) => it,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                continue;
            }
            Err(e) => return Err(StorageError::io(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(&dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                tracing::warn!(path = %entry.path().display(), "skipping a non-UTF-8 file name in the object store");
                continue;
            };
            if name.starts_with(TMP_PREFIX) {
                continue;
            }
            let key = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            // Prune subtrees that cannot contain a match.
            if !(key.starts_with(prefix) || prefix.starts_with(&key)) {
                continue;
            }
            let path = entry.path();
            // `metadata` follows symlinks: a linked file is an object, a linked directory is walked.
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => continue, // deleted meanwhile
                Err(e) => return Err(StorageError::io(&path, e)),
            };
            if meta.is_dir() {
                stack.push((path, key));
            } else if meta.is_file() && key.starts_with(prefix) {
                keys.push(key);
            }
        }
    }
    keys.sort_unstable();
    Ok(keys)
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path_of(key)?;
        let (root, key) = (self.root.clone(), key.to_string());
        Self::blocking(move || put_blocking(&root, &key, &path, &data)).await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        let data = Self::blocking(move || {
            let mut file = open_object(&key, &path)?;
            let mut buf =
                Vec::with_capacity(file.metadata().map(|m| m.len() as usize).unwrap_or(0));
            file.read_to_end(&mut buf)
                .map_err(|e| StorageError::io(&path, e))?;
            Ok(Bytes::from(buf))
        })
        .await?;
        Ok(data)
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        Ok(Self::blocking(move || read_range_blocking(&key, &path, offset, len)).await?)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        let root = self.root.clone();
        Self::blocking(move || delete_blocking(&root, &path)).await?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        Ok(Self::blocking(move || list_blocking(&root, &prefix)).await?)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let path = self.path_of(key)?;
        let exists = Self::blocking(move || match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Ok(false)
            }
            Err(e) => Err(StorageError::io(&path, e)),
        })
        .await?;
        Ok(exists)
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path_of(key).ok()
    }
}
