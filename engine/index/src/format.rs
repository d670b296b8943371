//! On-disk format shared by every index kind.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "FRVSIDX\0"
//! 8       4     format version (1)
//! 12      4     index kind (1 = FLAT, 2 = HNSW)
//! 16      4     metric (0 = L2, 1 = IP, 2 = COSINE)
//! 20      4     dim
//! 24      8     number of rows
//! 32      8     total file length in bytes (including the trailer)
//! 40      32    8 × u32 kind-specific parameters
//! 72      4     number of sections (≤ 8)
//! 76      4     reserved (0)
//! 80      128   8 × (offset u64, length u64) section table
//! 208     48    zero padding (header is 256 bytes)
//! 256     ...   sections, each starting at a 64-byte aligned offset, zero padding between
//! L-8     4     CRC-32 (IEEE) of bytes [0, L-8)
//! L-4     4     trailer magic "FEND"
//! ```
//! All integers are little-endian. Sections hold raw little-endian f32 / u32 / u8 arrays, so a
//! memory-mapped file is searched in place.

use std::io::Write;

use crate::IndexError;
use crate::blob::{ALIGN, AlignedBuf, Blob};

pub(crate) const MAGIC: [u8; 8] = *b"FRVSIDX\0";
pub(crate) const TRAILER_MAGIC: [u8; 4] = *b"FEND";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 256;
pub(crate) const TRAILER_LEN: usize = 8;
pub(crate) const MAX_SECTIONS: usize = 8;

pub(crate) const KIND_FLAT: u32 = 1;
pub(crate) const KIND_HNSW: u32 = 2;

#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub kind: u32,
    pub metric: u32,
    pub dim: u32,
    pub n: u64,
    pub params: [u32; 8],
}

fn corrupted(msg: impl Into<String>) -> IndexError {
    IndexError::Corrupted(msg.into())
}

fn round_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

struct CrcWriter<'a, W: Write> {
    inner: &'a mut W,
    hasher: crc32fast::Hasher,
    written: usize,
}

impl<W: Write> CrcWriter<'_, W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.hasher.update(b);
        self.written += b.len();
        self.inner.write_all(b)
    }

    fn pad_to(&mut self, off: usize) -> std::io::Result<()> {
        const Z: [u8; ALIGN] = [0; ALIGN];
        while self.written < off {
            let n = (off - self.written).min(ALIGN);
            self.put(&Z[..n])?;
        }
        Ok(())
    }
}

/// Writes a complete index file.
pub(crate) fn write_file(
    w: &mut impl Write,
    h: &Header,
    sections: &[&[u8]],
) -> Result<(), IndexError> {
    assert!(sections.len() <= MAX_SECTIONS);
    let mut table = Vec::with_capacity(sections.len());
    let mut off = HEADER_LEN;
    for s in sections {
        off = round_up(off, ALIGN);
        table.push((off as u64, s.len() as u64));
        off += s.len();
    }
    let body_end = round_up(off, 8);
    let file_len = body_end + TRAILER_LEN;

    let mut hdr = [0u8; HEADER_LEN];
    hdr[0..8].copy_from_slice(&MAGIC);
    hdr[8..12].copy_from_slice(&VERSION.to_le_bytes());
    hdr[12..16].copy_from_slice(&h.kind.to_le_bytes());
    hdr[16..20].copy_from_slice(&h.metric.to_le_bytes());
    hdr[20..24].copy_from_slice(&h.dim.to_le_bytes());
    hdr[24..32].copy_from_slice(&h.n.to_le_bytes());
    hdr[32..40].copy_from_slice(&(file_len as u64).to_le_bytes());
    for (i, p) in h.params.iter().enumerate() {
        hdr[40 + 4 * i..44 + 4 * i].copy_from_slice(&p.to_le_bytes());
    }
    hdr[72..76].copy_from_slice(&(sections.len() as u32).to_le_bytes());
    for (i, (o, l)) in table.iter().enumerate() {
        hdr[80 + 16 * i..88 + 16 * i].copy_from_slice(&o.to_le_bytes());
        hdr[88 + 16 * i..96 + 16 * i].copy_from_slice(&l.to_le_bytes());
    }

    let mut cw = CrcWriter {
        inner: w,
        hasher: crc32fast::Hasher::new(),
        written: 0,
    };
    cw.put(&hdr)?;
    for (s, (o, _)) in sections.iter().zip(&table) {
        cw.pad_to(*o as usize)?;
        cw.put(s)?;
    }
    cw.pad_to(body_end)?;
    let crc = cw.hasher.clone().finalize();
    cw.inner.write_all(&crc.to_le_bytes())?;
    cw.inner.write_all(&TRAILER_MAGIC)?;
    cw.inner.flush()?;
    Ok(())
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Makes sure the bytes are at least 4-byte aligned so that sections can be viewed as f32/u32
/// in place; otherwise (rare: e.g. a sub-slice of a larger buffer) copies them once.
pub(crate) fn aligned(blob: Blob) -> Blob {
    if (blob.as_ptr() as usize) % 4 == 0 {
        return blob;
    }
    let mut buf = AlignedBuf::zeroed(blob.len());
    buf.as_mut_slice().copy_from_slice(blob.bytes());
    Blob::from_aligned(buf)
}

/// Parses and verifies a file: size, magic, version, trailer, checksum, section table.
/// Returns the header and the sections as sub-blobs (no copy).
pub(crate) fn read_file(blob: &Blob) -> Result<(Header, Vec<Blob>), IndexError> {
    if cfg!(target_endian = "big") {
        return Err(corrupted(
            "index files are little-endian; big-endian hosts are not supported",
        ));
    }
    let b = blob.bytes();
    if b.len() < 8 || b[0..8] != MAGIC {
        return Err(corrupted("bad magic: not a Ferrovus index file"));
    }
    if b.len() < HEADER_LEN + TRAILER_LEN {
        return Err(corrupted(format!(
            "truncated: {} bytes, shorter than the {}-byte header",
            b.len(),
            HEADER_LEN
        )));
    }
    let version = u32_at(b, 8);
    if version != VERSION {
        return Err(corrupted(format!(
            "unsupported format version {version} (this build reads version {VERSION})"
        )));
    }
    let file_len = u64_at(b, 32);
    if (b.len() as u64) < file_len {
        return Err(corrupted(format!(
            "truncated: header declares {file_len} bytes, got {}",
            b.len()
        )));
    }
    if (b.len() as u64) > file_len {
        return Err(corrupted(format!(
            "size mismatch: header declares {file_len} bytes, got {}",
            b.len()
        )));
    }
    let file_len = file_len as usize;
    if b[file_len - 4..] != TRAILER_MAGIC {
        return Err(corrupted(
            "bad trailer magic (truncated or overwritten file)",
        ));
    }
    let stored = u32_at(b, file_len - 8);
    let computed = crc32fast::hash(&b[..file_len - 8]);
    if stored != computed {
        return Err(corrupted(format!(
            "checksum mismatch: stored crc32 {stored:#010x}, computed {computed:#010x}"
        )));
    }
    let mut params = [0u32; 8];
    for (i, p) in params.iter_mut().enumerate() {
        *p = u32_at(b, 40 + 4 * i);
    }
    let h = Header {
        kind: u32_at(b, 12),
        metric: u32_at(b, 16),
        dim: u32_at(b, 20),
        n: u64_at(b, 24),
        params,
    };
    let ns = u32_at(b, 72) as usize;
    if ns > MAX_SECTIONS {
        return Err(corrupted(format!("{ns} sections (at most {MAX_SECTIONS})")));
    }
    let mut sections = Vec::with_capacity(ns);
    for i in 0..ns {
        let o = u64_at(b, 80 + 16 * i);
        let l = u64_at(b, 88 + 16 * i);
        let end = o.checked_add(l);
        if o < HEADER_LEN as u64
            || o % ALIGN as u64 != 0
            || end.is_none_or(|e| e > (file_len - TRAILER_LEN) as u64)
        {
            return Err(corrupted(format!(
                "section {i} out of bounds or misaligned (offset {o}, length {l})"
            )));
        }
        sections.push(blob.slice(o as usize, l as usize));
    }
    Ok((h, sections))
}
