//! Entry point of the `index_decode` fuzz target (`fuzz/fuzz_targets/index_decode.rs`) and of the
//! replay of its corpus in `tests/fuzz_corpus.rs`.
//!
//! An index file comes from the object store (or a memory map of a local copy): whatever its
//! bytes, loading must give an index that is safe to search, or [`IndexError::Corrupted`], never
//! a panic or an out-of-bounds read.
//!
//! The first byte of an input picks how the rest is loaded:
//! * bit 0 set: the header's file length, the trailer magic and the CRC-32 are rewritten to match
//!   the bytes, so that mutations reach the header fields, the section table and the sections
//!   (a random mutation would otherwise almost always fail the checksum);
//! * bit 1 set: the bytes are loaded from an address that is not 4-byte aligned (the copying
//!   path of [`format::aligned`](crate::format)).
//!
//! Every input is loaded by [`VectorIndex::load`], [`FlatIndex::load`] and [`HnswIndex::load`];
//! a loaded index is then read and searched.

use crate::format::{HEADER_LEN, TRAILER_LEN, TRAILER_MAGIC};
use crate::{Bitset, FlatIndex, HnswIndex, IndexError, MAX_DIM, VectorIndex};

/// Bytes that `AsRef` to all but their first byte: a slice that starts one byte after an
/// allocation's (aligned) start.
struct Unaligned(Vec<u8>);

impl AsRef<[u8]> for Unaligned {
    fn as_ref(&self) -> &[u8] {
        &self.0[1..]
    }
}

/// `[mode] ++ file`, the input of [`index_decode`] that loads `file` with its checksum fixed up.
pub fn index_input(file: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() + 1);
    out.push(1);
    out.extend_from_slice(file);
    out
}

/// Rewrite the file length, trailer magic and checksum of an index file to match its bytes.
fn fix_up(b: &mut [u8]) {
    let len = b.len();
    if len < HEADER_LEN + TRAILER_LEN {
        return;
    }
    b[32..40].copy_from_slice(&(len as u64).to_le_bytes());
    b[len - 4..].copy_from_slice(&TRAILER_MAGIC);
    let crc = crc32fast::hash(&b[..len - TRAILER_LEN]);
    b[len - 8..len - 4].copy_from_slice(&crc.to_le_bytes());
}

fn load<T>(
    file: &[u8],
    unaligned: bool,
    f: impl Fn(Box<dyn AsRef<[u8]> + Send + Sync>) -> Result<T, IndexError>,
) -> Result<T, IndexError> {
    if unaligned {
        let mut v = Vec::with_capacity(file.len() + 1);
        v.push(0);
        v.extend_from_slice(file);
        f(Box::new(Unaligned(v)))
    } else {
        f(Box::new(file.to_vec()))
    }
}

struct Boxed(Box<dyn AsRef<[u8]> + Send + Sync>);

impl AsRef<[u8]> for Boxed {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// The file an input stands for, and whether to load it unaligned.
fn file_of(data: &[u8]) -> Option<(Vec<u8>, bool)> {
    let (mode, file) = data.split_first()?;
    let mut file = file.to_vec();
    if mode & 1 != 0 {
        fix_up(&mut file);
    }
    Some((file, mode & 2 != 0))
}

/// What [`VectorIndex::load`] makes of an [`index_decode`] input.
pub fn load_input(data: &[u8]) -> Result<VectorIndex, IndexError> {
    let (file, unaligned) =
        file_of(data).ok_or_else(|| IndexError::Corrupted("empty fuzz input".into()))?;
    load(&file, unaligned, |b| VectorIndex::load(Boxed(b)))
}

/// Load an index file with every loader; search and read back whatever loads.
pub fn index_decode(data: &[u8]) {
    let Some((file, unaligned)) = file_of(data) else {
        return;
    };
    let any = load(&file, unaligned, |b| VectorIndex::load(Boxed(b)));
    let flat = load(&file, unaligned, |b| FlatIndex::load(Boxed(b)));
    let hnsw = load(&file, unaligned, |b| HnswIndex::load(Boxed(b)));
    assert_eq!(
        any.is_ok(),
        flat.is_ok() || hnsw.is_ok(),
        "VectorIndex::load disagrees with the per-kind loaders"
    );
    if let Ok(index) = any {
        exercise(&index);
        let mut again = Vec::new();
        index.write_to(&mut again).expect("a loaded index writes");
        let back = VectorIndex::load(again).expect("a written index loads");
        assert_eq!((back.len(), back.dim()), (index.len(), index.dim()));
    }
}

fn exercise(index: &VectorIndex) {
    let (n, dim) = (index.len(), index.dim());
    assert!(
        (1..=MAX_DIM).contains(&dim),
        "loaded an index of dimension {dim}"
    );
    let _ = index.memory_bytes();
    for row in (0..n).take(8) {
        let row = row as u32;
        assert_eq!(index.vector(row).len(), dim);
        let _ = index.norm(row);
        let _ = index.original_vector(row);
    }
    let queries: Vec<f32> = (0..2 * dim).map(|i| (i % 7) as f32 - 3.0).collect();
    let k = n.clamp(1, 5);
    let check = |res: Result<Vec<crate::SearchResult>, IndexError>| {
        let res = res.expect("search of a loaded index");
        assert_eq!(res.len(), 2);
        for hits in res {
            assert!(hits.len() <= k);
            assert!(hits.iter().all(|(row, _)| (*row as usize) < n));
        }
    };
    check(index.search(&queries, k, None, None));
    check(index.search(&queries, k, Some(k), None));
    let every_other = Bitset::from_offsets(n, (0..n as u32).step_by(2));
    check(index.search(&queries, k, Some(k.max(16)), Some(&every_other)));
    let one = Bitset::from_offsets(n, [n.saturating_sub(1) as u32]);
    check(index.search(&queries, k, None, Some(&one)));
}
