//! Immutable byte regions that are either owned (64-byte aligned heap buffers) or borrowed from a
//! caller-supplied buffer such as a memory map, so that a loaded index searches the mapped bytes
//! directly (no deserialisation copy).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::any::Any;
use std::sync::Arc;

pub(crate) const ALIGN: usize = 64;

/// Buffers at least this large are anonymous memory maps advised to use transparent huge pages:
/// the HNSW node block is accessed at random, and with 4 KiB pages nearly every neighbour visit is
/// a TLB miss.
const HUGE_MIN: usize = 4 << 20;

/// A zero-initialised, 64-byte aligned buffer (heap, or huge-page advised anonymous map).
pub(crate) struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
    map: Option<memmap2::MmapMut>,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out &[u8] (or raw pointers whose users synchronise).
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    pub(crate) fn zeroed(len: usize) -> AlignedBuf {
        if len == 0 {
            return AlignedBuf {
                ptr: ALIGN as *mut u8,
                len: 0,
                map: None,
            };
        }
        let map = if len >= HUGE_MIN {
            memmap2::MmapMut::map_anon(len).ok()
        } else {
            None
        };
        if let Some(mut map) = map {
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
            let ptr = map.as_mut_ptr();
            debug_assert!((ptr as usize) % ALIGN == 0);
            return AlignedBuf {
                ptr,
                len,
                map: Some(map),
            };
        }
        let layout = Layout::from_size_align(len, ALIGN).expect("allocation too large");
        // SAFETY: layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf {
            ptr,
            len,
            map: None,
        }
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for len bytes and uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.len != 0 && self.map.is_none() {
            // SAFETY: allocated in zeroed() with this layout.
            unsafe { dealloc(self.ptr, Layout::from_size_align_unchecked(self.len, ALIGN)) }
        }
    }
}

/// Shared, immutable bytes with a cached pointer.
#[derive(Clone)]
pub(crate) struct Blob {
    ptr: *const u8,
    len: usize,
    _owner: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({} bytes)", self.len)
    }
}

// SAFETY: the bytes are immutable for the Blob's lifetime and the owner is Send + Sync.
unsafe impl Send for Blob {}
// SAFETY: as above.
unsafe impl Sync for Blob {}

/// Plain-old-data element types that may be viewed from raw little-endian bytes.
pub(crate) trait Pod: Copy + Send + Sync + 'static {}
impl Pod for u8 {}
impl Pod for u32 {}
impl Pod for f32 {}

struct VecOwner<T>(#[allow(dead_code)] Vec<T>);

impl Blob {
    pub(crate) fn from_aligned(buf: AlignedBuf) -> Blob {
        let (ptr, len) = (buf.as_ptr(), buf.len());
        Blob {
            ptr,
            len,
            _owner: Arc::new(buf),
        }
    }

    pub(crate) fn from_vec<T: Pod>(v: Vec<T>) -> Blob {
        let ptr = v.as_ptr() as *const u8;
        let len = std::mem::size_of_val(v.as_slice());
        Blob {
            ptr,
            len,
            _owner: Arc::new(VecOwner(v)),
        }
    }

    /// Wraps caller bytes. The pointer is taken once: `AsRef` must keep returning the same slice
    /// (true of `Vec<u8>`, `Box<[u8]>`, `memmap2::Mmap`, `bytes::Bytes`, ...).
    pub(crate) fn from_shared<B: AsRef<[u8]> + Send + Sync + 'static>(bytes: B) -> Blob {
        let owner = Arc::new(bytes);
        let s: &[u8] = (*owner).as_ref();
        let (ptr, len) = (s.as_ptr(), s.len());
        Blob {
            ptr,
            len,
            _owner: owner,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: ptr is valid for len bytes while the owner lives (it lives as long as self).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Sub-range sharing the same owner. Panics if out of bounds.
    pub(crate) fn slice(&self, off: usize, len: usize) -> Blob {
        assert!(off.checked_add(len).is_some_and(|e| e <= self.len));
        // SAFETY: in bounds (checked above).
        Blob {
            ptr: unsafe { self.ptr.add(off) },
            len,
            _owner: self._owner.clone(),
        }
    }

    /// Views the bytes as `[T]`. Panics on misalignment or a length not a multiple of T.
    pub(crate) fn as_slice<T: Pod>(&self) -> &[T] {
        let sz = std::mem::size_of::<T>();
        assert!(self.len % sz == 0 && (self.ptr as usize) % std::mem::align_of::<T>() == 0);
        // SAFETY: aligned, in bounds, T is plain data valid for any bit pattern.
        unsafe { std::slice::from_raw_parts(self.ptr as *const T, self.len / sz) }
    }
}
