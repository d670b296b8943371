//! f32 distance kernels with run-time CPU dispatch.
//!
//! Three implementations of each kernel: AVX-512F, AVX2+FMA and a portable scalar loop. All
//! accumulate in f32 (never f64). [`Kernel::detect`] picks the best one the CPU supports, unless
//! the environment variable `FERROVUS_SIMD` says otherwise (`scalar`, `avx2`, `avx512`); tests use
//! [`Kernel::scalar`] to compare the fallback with the SIMD path.
//!
//! Internally every index uses "lower is better" distances:
//! * L2: squared euclidean distance;
//! * IP and COSINE: the negated inner product (COSINE vectors are normalised once, at insert and
//!   at query time, so their inner product is the cosine similarity).
//!
//! [`Metric::to_score`] converts to the Milvus convention at the API: L2 returns the squared
//! distance (ascending), IP and COSINE return the similarity (descending).

use std::sync::OnceLock;

use crate::IndexError;

/// Similarity metric of a vector field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared euclidean distance; smaller is better.
    L2,
    /// Inner product; larger is better.
    Ip,
    /// Cosine similarity; larger is better. Vectors are normalised to unit length on insert.
    Cosine,
}

impl Metric {
    /// Milvus spelling: `L2`, `IP`, `COSINE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::L2 => "L2",
            Metric::Ip => "IP",
            Metric::Cosine => "COSINE",
        }
    }

    /// Parses the Milvus spelling (case-insensitive).
    pub fn parse(s: &str) -> Result<Metric, IndexError> {
        match s.to_ascii_uppercase().as_str() {
            "L2" => Ok(Metric::L2),
            "IP" => Ok(Metric::Ip),
            "COSINE" => Ok(Metric::Cosine),
            _ => Err(IndexError::InvalidParam {
                param: "metric_type".into(),
                message: format!("unsupported metric type {s:?}; expected L2, IP or COSINE"),
            }),
        }
    }

    /// True when a larger API score is better (IP, COSINE).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }

    /// Converts an internal "lower is better" distance into the API score.
    #[inline]
    pub fn to_score(self, internal: f32) -> f32 {
        match self {
            Metric::L2 => internal,
            Metric::Ip | Metric::Cosine => -internal,
        }
    }

    /// Converts an API score back into the internal "lower is better" distance.
    #[inline]
    pub fn from_score(self, score: f32) -> f32 {
        self.to_score(score)
    }

    pub(crate) fn code(self) -> u32 {
        match self {
            Metric::L2 => 0,
            Metric::Ip => 1,
            Metric::Cosine => 2,
        }
    }

    pub(crate) fn from_code(code: u32) -> Option<Metric> {
        match code {
            0 => Some(Metric::L2),
            1 => Some(Metric::Ip),
            2 => Some(Metric::Cosine),
            _ => None,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Instruction set a [`Kernel`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    Scalar,
    Avx2Fma,
    Avx512,
}

/// Raw kernel: `(a, b, len)`; both pointers must be valid for `len` f32 reads.
pub(crate) type RawDist = unsafe fn(*const f32, *const f32, usize) -> f32;

/// A set of distance kernels for one instruction set.
#[derive(Clone, Copy)]
pub struct Kernel {
    level: SimdLevel,
    l2: RawDist,
    ip: RawDist,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("level", &self.level)
            .finish()
    }
}

static DETECTED: OnceLock<Kernel> = OnceLock::new();

impl Kernel {
    /// The best kernel for this CPU, or the one named by `FERROVUS_SIMD` (`scalar`, `avx2`,
    /// `avx512`) when set and supported. Detected once per process.
    pub fn detect() -> Kernel {
        *DETECTED.get_or_init(|| {
            let forced = std::env::var("FERROVUS_SIMD").ok();
            match forced.as_deref().map(|s| s.to_ascii_lowercase()) {
                Some(s) if s == "scalar" => Kernel::scalar(),
                Some(s) if s == "avx2" => {
                    Kernel::with_level(SimdLevel::Avx2Fma).unwrap_or_else(Kernel::scalar)
                }
                _ => Kernel::best(),
            }
        })
    }

    /// The best kernel the CPU supports, ignoring `FERROVUS_SIMD`.
    pub fn best() -> Kernel {
        Kernel::with_level(SimdLevel::Avx512)
            .or_else(|| Kernel::with_level(SimdLevel::Avx2Fma))
            .unwrap_or_else(Kernel::scalar)
    }

    /// The portable scalar fallback.
    pub fn scalar() -> Kernel {
        Kernel {
            level: SimdLevel::Scalar,
            l2: scalar::l2_raw,
            ip: scalar::ip_raw,
        }
    }

    /// The kernel for `level`, if this CPU supports it.
    pub fn with_level(level: SimdLevel) -> Option<Kernel> {
        match level {
            SimdLevel::Scalar => Some(Kernel::scalar()),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2Fma => {
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    Some(Kernel {
                        level,
                        l2: x86::l2_avx2,
                        ip: x86::ip_avx2,
                    })
                } else {
                    None
                }
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                if std::is_x86_feature_detected!("avx512f") {
                    Some(Kernel {
                        level,
                        l2: x86::l2_avx512,
                        ip: x86::ip_avx512,
                    })
                } else {
                    None
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => None,
        }
    }

    pub fn level(&self) -> SimdLevel {
        self.level
    }

    /// Squared euclidean distance. Panics if the lengths differ.
    #[inline]
    pub fn l2_sq(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vector lengths differ");
        // SAFETY: both slices are valid for a.len() reads; the kernel's CPU features were checked
        // when the Kernel was constructed.
        unsafe { (self.l2)(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// Inner product. Panics if the lengths differ.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vector lengths differ");
        // SAFETY: as in l2_sq.
        unsafe { (self.ip)(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    /// Internal "lower is better" distance for `metric` (COSINE expects normalised inputs).
    #[inline]
    pub fn distance(&self, metric: Metric, a: &[f32], b: &[f32]) -> f32 {
        match metric {
            Metric::L2 => self.l2_sq(a, b),
            Metric::Ip | Metric::Cosine => -self.dot(a, b),
        }
    }

    /// Raw "lower is better" kernel for `metric`.
    pub(crate) fn raw(&self, metric: Metric) -> RawDist {
        match metric {
            Metric::L2 => self.l2,
            Metric::Ip | Metric::Cosine => match self.level {
                SimdLevel::Scalar => scalar::neg_ip_raw,
                #[cfg(target_arch = "x86_64")]
                SimdLevel::Avx2Fma => x86::neg_ip_avx2,
                #[cfg(target_arch = "x86_64")]
                SimdLevel::Avx512 => x86::neg_ip_avx512,
                #[cfg(not(target_arch = "x86_64"))]
                _ => scalar::neg_ip_raw,
            },
        }
    }
}

/// Euclidean norm of `v` (f32 accumulation).
pub fn norm(v: &[f32]) -> f32 {
    Kernel::detect().dot(v, v).sqrt()
}

/// Normalises `v` in place to unit length and returns the original norm. A zero (or non-finite
/// norm) vector is left unchanged.
pub fn normalize_in_place(v: &mut [f32]) -> f32 {
    let n = norm(v);
    if n > 0.0 && n.is_finite() {
        let inv = 1.0 / n;
        for x in v.iter_mut() {
            *x *= inv;
        }
    }
    n
}

/// Prefetch the cache line at `p` into all cache levels (no-op off x86_64).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetch `lines` consecutive cache lines starting at `p`.
#[inline(always)]
pub(crate) fn prefetch_lines(p: *const u8, lines: usize) {
    for i in 0..lines {
        prefetch(p.wrapping_add(i * 64));
    }
}

mod scalar {
    //! Portable kernels: plain loops with 8 independent accumulators.

    #[inline]
    fn l2(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0.0f32; 8];
        let chunks = a.len() / 8;
        for c in 0..chunks {
            for j in 0..8 {
                let d = a[c * 8 + j] - b[c * 8 + j];
                acc[j] += d * d;
            }
        }
        let mut tail = 0.0f32;
        for i in chunks * 8..a.len() {
            let d = a[i] - b[i];
            tail += d * d;
        }
        (acc[0] + acc[1]) + (acc[2] + acc[3]) + (acc[4] + acc[5]) + (acc[6] + acc[7]) + tail
    }

    #[inline]
    fn ip(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0.0f32; 8];
        let chunks = a.len() / 8;
        for c in 0..chunks {
            for j in 0..8 {
                acc[j] += a[c * 8 + j] * b[c * 8 + j];
            }
        }
        let mut tail = 0.0f32;
        for i in chunks * 8..a.len() {
            tail += a[i] * b[i];
        }
        (acc[0] + acc[1]) + (acc[2] + acc[3]) + (acc[4] + acc[5]) + (acc[6] + acc[7]) + tail
    }

    pub(super) unsafe fn l2_raw(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: the caller guarantees n valid reads behind each pointer.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(a, n),
                std::slice::from_raw_parts(b, n),
            )
        };
        l2(a, b)
    }

    pub(super) unsafe fn ip_raw(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: as above.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(a, n),
                std::slice::from_raw_parts(b, n),
            )
        };
        ip(a, b)
    }

    pub(super) unsafe fn neg_ip_raw(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: as above.
        -unsafe { ip_raw(a, b, n) }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    // ---------------------------------------------------------------- AVX-512F

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn l2_avx512(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: all loads stay within [0, n); the tail uses a masked load.
        unsafe {
            let mut acc0 = _mm512_setzero_ps();
            let mut acc1 = _mm512_setzero_ps();
            let mut i = 0;
            while i + 32 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
                let d1 = _mm512_sub_ps(
                    _mm512_loadu_ps(a.add(i + 16)),
                    _mm512_loadu_ps(b.add(i + 16)),
                );
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                acc1 = _mm512_fmadd_ps(d1, d1, acc1);
                i += 32;
            }
            if i + 16 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                i += 16;
            }
            if i < n {
                let mask: __mmask16 = ((1u32 << (n - i)) - 1) as __mmask16;
                let d = _mm512_sub_ps(
                    _mm512_maskz_loadu_ps(mask, a.add(i)),
                    _mm512_maskz_loadu_ps(mask, b.add(i)),
                );
                acc1 = _mm512_fmadd_ps(d, d, acc1);
            }
            _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn ip_avx512(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: all loads stay within [0, n); the tail uses a masked load.
        unsafe {
            let mut acc0 = _mm512_setzero_ps();
            let mut acc1 = _mm512_setzero_ps();
            let mut i = 0;
            while i + 32 <= n {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), acc0);
                acc1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(a.add(i + 16)),
                    _mm512_loadu_ps(b.add(i + 16)),
                    acc1,
                );
                i += 32;
            }
            if i + 16 <= n {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), acc0);
                i += 16;
            }
            if i < n {
                let mask: __mmask16 = ((1u32 << (n - i)) - 1) as __mmask16;
                acc1 = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(mask, a.add(i)),
                    _mm512_maskz_loadu_ps(mask, b.add(i)),
                    acc1,
                );
            }
            _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn neg_ip_avx512(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: forwarded contract.
        -unsafe { ip_avx512(a, b, n) }
    }

    // ---------------------------------------------------------------- AVX2 + FMA

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn l2_avx2(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: all loads stay within [0, n).
        unsafe {
            let mut acc0 = _mm256_setzero_ps();
            let mut acc1 = _mm256_setzero_ps();
            let mut i = 0;
            while i + 16 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)));
                let d1 =
                    _mm256_sub_ps(_mm256_loadu_ps(a.add(i + 8)), _mm256_loadu_ps(b.add(i + 8)));
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                acc1 = _mm256_fmadd_ps(d1, d1, acc1);
                i += 16;
            }
            if i + 8 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)));
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                i += 8;
            }
            let mut s = hsum256(_mm256_add_ps(acc0, acc1));
            while i < n {
                let d = *a.add(i) - *b.add(i);
                s += d * d;
                i += 1;
            }
            s
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn ip_avx2(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: all loads stay within [0, n).
        unsafe {
            let mut acc0 = _mm256_setzero_ps();
            let mut acc1 = _mm256_setzero_ps();
            let mut i = 0;
            while i + 16 <= n {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(a.add(i + 8)),
                    _mm256_loadu_ps(b.add(i + 8)),
                    acc1,
                );
                i += 16;
            }
            if i + 8 <= n {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc0);
                i += 8;
            }
            let mut s = hsum256(_mm256_add_ps(acc0, acc1));
            while i < n {
                s += *a.add(i) * *b.add(i);
                i += 1;
            }
            s
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn neg_ip_avx2(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: forwarded contract.
        -unsafe { ip_avx2(a, b, n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_parse_and_scores() {
        assert_eq!(Metric::parse("cosine").unwrap(), Metric::Cosine);
        assert!(Metric::parse("HAMMING").is_err());
        assert_eq!(Metric::L2.to_score(2.0), 2.0);
        assert_eq!(Metric::Ip.to_score(-3.0), 3.0);
    }

    #[test]
    fn scalar_matches_naive() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32).collect();
        let naive_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        let naive_ip: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let k = Kernel::scalar();
        assert!((k.l2_sq(&a, &b) - naive_l2).abs() < 1e-3);
        assert!((k.dot(&a, &b) - naive_ip).abs() < 1e-3);
    }
}
