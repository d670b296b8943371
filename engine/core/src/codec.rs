//! Little-endian binary encoding used by WAL records and segment files.
//!
//! Why our own format and not Arrow/Parquet: segments are read whole into memory and searched
//! there, so a column is a length-prefixed little-endian array that decodes with one copy; the
//! format carries its own version and CRC32 so corruption is always detected; and it keeps the
//! core free of a large dependency tree. Arrow IPC would be the choice once segments are
//! memory-mapped column by column.

use crate::error::{CoreError, Result};
use crate::value::{Column, PrimaryKey};

pub struct Writer {
    pub buf: Vec<u8>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub fn pk(&mut self, pk: &PrimaryKey) {
        match pk {
            PrimaryKey::Int(i) => {
                self.u8(0);
                self.i64(*i);
            }
            PrimaryKey::Str(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    pub fn column(&mut self, c: &Column) {
        match c {
            Column::Bool(v) => {
                self.u8(1);
                self.u64(v.len() as u64);
                self.buf.extend(v.iter().map(|b| u8::from(*b)));
            }
            Column::Int(v) => {
                self.u8(2);
                self.u64(v.len() as u64);
                for x in v {
                    self.i64(*x);
                }
            }
            Column::Float(v) => {
                self.u8(3);
                self.u64(v.len() as u64);
                for x in v {
                    self.buf.extend_from_slice(&x.to_le_bytes());
                }
            }
            Column::Double(v) => {
                self.u8(4);
                self.u64(v.len() as u64);
                for x in v {
                    self.buf.extend_from_slice(&x.to_le_bytes());
                }
            }
            Column::VarChar(v) => {
                self.u8(5);
                self.u64(v.len() as u64);
                for s in v {
                    self.str(s);
                }
            }
            Column::Json(v) => {
                self.u8(6);
                self.u64(v.len() as u64);
                for j in v {
                    // serde_json never fails to serialise a Value
                    let s = serde_json::to_vec(j).unwrap_or_default();
                    self.bytes(&s);
                }
            }
            Column::FloatVector { dim, data } => {
                self.u8(7);
                self.u64(*dim as u64);
                self.u64(data.len() as u64);
                self.buf.reserve(data.len() * 4);
                for x in data {
                    self.buf.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
}

/// A bounds-checked reader; every failure is a `Corrupted` error naming `what`.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'a str) -> Self {
        Reader { buf, pos: 0, what }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    fn err(&self, msg: &str) -> CoreError {
        CoreError::corrupted(self.what, format!("{msg} at byte {}", self.pos))
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.err("unexpected end of data"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(self.u64()? as i64)
    }
    fn len(&mut self, elem_size: usize) -> Result<usize> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| self.err("length overflow"))?;
        if n.saturating_mul(elem_size) > self.remaining() {
            return Err(self.err("length exceeds data"));
        }
        Ok(n)
    }
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len(1)?;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("invalid utf-8"))
    }
    pub fn pk(&mut self) -> Result<PrimaryKey> {
        match self.u8()? {
            0 => Ok(PrimaryKey::Int(self.i64()?)),
            1 => Ok(PrimaryKey::Str(self.string()?)),
            t => Err(self.err(&format!("bad primary key tag {t}"))),
        }
    }
    pub fn column(&mut self) -> Result<Column> {
        let tag = self.u8()?;
        Ok(match tag {
            1 => {
                let n = self.len(1)?;
                Column::Bool(self.take(n)?.iter().map(|b| *b != 0).collect())
            }
            2 => {
                let n = self.len(8)?;
                let b = self.take(n * 8)?;
                Column::Int(
                    b.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(arr8(c)))
                        .collect(),
                )
            }
            3 => {
                let n = self.len(4)?;
                let b = self.take(n * 4)?;
                Column::Float(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(arr4(c)))
                        .collect(),
                )
            }
            4 => {
                let n = self.len(8)?;
                let b = self.take(n * 8)?;
                Column::Double(
                    b.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(arr8(c)))
                        .collect(),
                )
            }
            5 => {
                let n = self.len(8)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.string()?);
                }
                Column::VarChar(v)
            }
            6 => {
                let n = self.len(8)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let b = self.bytes()?;
                    v.push(
                        serde_json::from_slice(b)
                            .map_err(|e| self.err(&format!("bad json: {e}")))?,
                    );
                }
                Column::Json(v)
            }
            7 => {
                let dim = self.u64()? as usize;
                let n = self.len(4)?;
                if dim == 0 || n % dim != 0 {
                    return Err(self.err("vector length is not a multiple of dim"));
                }
                let b = self.take(n * 4)?;
                Column::FloatVector {
                    dim,
                    data: b
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(arr4(c)))
                        .collect(),
                }
            }
            t => return Err(self.err(&format!("bad column tag {t}"))),
        })
    }
}

fn arr4(c: &[u8]) -> [u8; 4] {
    [c[0], c[1], c[2], c[3]]
}
fn arr8(c: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(c);
    a
}

/// Frame: magic(4) | version(u32) | body_len(u64) | body | crc32(header+body) (u32).
pub fn frame(magic: &[u8; 4], version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Check a frame and return (version, body).
pub fn unframe<'a>(magic: &[u8; 4], data: &'a [u8], what: &str) -> Result<(u32, &'a [u8])> {
    if data.len() < 20 {
        return Err(CoreError::corrupted(
            what,
            format!("file too short ({} bytes)", data.len()),
        ));
    }
    if &data[0..4] != magic {
        return Err(CoreError::corrupted(what, "bad magic"));
    }
    let version = u32::from_le_bytes(arr4(&data[4..8]));
    let len = u64::from_le_bytes(arr8(&data[8..16])) as usize;
    if data.len() != len.saturating_add(20) {
        return Err(CoreError::corrupted(
            what,
            format!(
                "length mismatch: header says {len} body bytes, file has {}",
                data.len().saturating_sub(20)
            ),
        ));
    }
    let crc_stored = u32::from_le_bytes(arr4(&data[16 + len..]));
    let crc = crc32fast::hash(&data[..16 + len]);
    if crc != crc_stored {
        return Err(CoreError::corrupted(
            what,
            format!("checksum mismatch (stored {crc_stored:08x}, computed {crc:08x})"),
        ));
    }
    Ok((version, &data[16..16 + len]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        let cols = vec![
            Column::Bool(vec![true, false]),
            Column::Int(vec![1, -5, i64::MAX]),
            Column::Float(vec![1.5, -0.25]),
            Column::Double(vec![3.25]),
            Column::VarChar(vec!["a".into(), "".into(), "ünï".into()]),
            Column::Json(vec![
                serde_json::json!({"a": [1, 2]}),
                serde_json::Value::Null,
            ]),
            Column::FloatVector {
                dim: 2,
                data: vec![1.0, 2.0, 3.0, 4.0],
            },
        ];
        let mut w = Writer::new();
        for c in &cols {
            w.column(c);
        }
        let mut r = Reader::new(&w.buf, "test");
        for c in &cols {
            assert_eq!(&r.column().unwrap(), c);
        }
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn frame_detects_corruption_and_truncation() {
        let f = frame(b"TEST", 1, b"hello world");
        assert_eq!(unframe(b"TEST", &f, "x").unwrap(), (1, &b"hello world"[..]));
        let mut bad = f.clone();
        bad[18] ^= 0x40;
        let e = unframe(b"TEST", &bad, "x").unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let e = unframe(b"TEST", &f[..f.len() - 3], "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("length mismatch"), "{e}");
        assert!(unframe(b"NOPE", &f, "x").is_err());
    }

    #[test]
    fn reader_never_panics_on_garbage() {
        for seed in 0..200u32 {
            let data: Vec<u8> = (0..(seed % 64))
                .map(|i| (i.wrapping_mul(seed).wrapping_add(7)) as u8)
                .collect();
            let mut r = Reader::new(&data, "garbage");
            let _ = r.column();
            let mut r = Reader::new(&data, "garbage");
            let _ = r.pk();
        }
    }
}
