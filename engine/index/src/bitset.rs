//! A fixed-length bitset of allowed row offsets (bit set = row may be returned).

/// Rows a filtered search may return: bit `i` set means row offset `i` is allowed.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitset {
    words: Vec<u64>,
    len: usize,
}

impl std::fmt::Debug for Bitset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitset")
            .field("len", &self.len)
            .field("ones", &self.count_ones())
            .finish()
    }
}

impl Bitset {
    /// `len` bits, all clear (nothing allowed).
    pub fn new(len: usize) -> Bitset {
        Bitset {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// `len` bits, all set (everything allowed).
    pub fn all(len: usize) -> Bitset {
        let mut b = Bitset {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        b.clear_tail();
        b
    }

    /// Bitset of length `len` with the given offsets set (offsets >= len are ignored).
    pub fn from_offsets(len: usize, offsets: impl IntoIterator<Item = u32>) -> Bitset {
        let mut b = Bitset::new(len);
        for o in offsets {
            if (o as usize) < len {
                b.set(o as usize, true);
            }
        }
        b
    }

    /// Builds from little-endian packed u64 words (bit i of word w = offset 64*w + i).
    pub fn from_words(len: usize, mut words: Vec<u64>) -> Bitset {
        words.resize(len.div_ceil(64), 0);
        let mut b = Bitset { words, len };
        b.clear_tail();
        b
    }

    fn clear_tail(&mut self) {
        let r = self.len % 64;
        if let (true, Some(last)) = (r != 0, self.words.last_mut()) {
            *last &= (1u64 << r) - 1;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Is `i` allowed? Offsets beyond `len` are not.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        i < self.len && (self.words[i >> 6] >> (i & 63)) & 1 == 1
    }

    /// Sets or clears bit `i`. Panics if `i >= len`.
    #[inline]
    pub fn set(&mut self, i: usize, v: bool) {
        assert!(i < self.len, "bit {i} out of range (len {})", self.len);
        let w = &mut self.words[i >> 6];
        if v {
            *w |= 1 << (i & 63);
        } else {
            *w &= !(1 << (i & 63));
        }
    }

    /// Number of allowed rows.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Number of allowed rows with offset `< n`.
    pub fn count_ones_before(&self, n: usize) -> usize {
        let n = n.min(self.len);
        let full = n / 64;
        let mut c: usize = self.words[..full]
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum();
        if n % 64 != 0 {
            c += (self.words[full] & ((1u64 << (n % 64)) - 1)).count_ones() as usize;
        }
        c
    }

    /// Iterates over the allowed offsets in ascending order.
    pub fn iter_ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    None
                } else {
                    let t = w.trailing_zeros() as usize;
                    w &= w - 1;
                    Some(wi * 64 + t)
                }
            })
        })
    }

    /// In-place AND with `other` (bits beyond `other.len()` are cleared).
    pub fn and_with(&mut self, other: &Bitset) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    /// Flips every bit (allowed <-> not allowed).
    pub fn negate(&mut self) {
        for w in self.words.iter_mut() {
            *w = !*w;
        }
        self.clear_tail();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        let mut b = Bitset::new(130);
        b.set(0, true);
        b.set(64, true);
        b.set(129, true);
        assert_eq!(b.count_ones(), 3);
        assert!(b.get(64) && !b.get(65) && !b.get(1000));
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0, 64, 129]);
        b.negate();
        assert_eq!(b.count_ones(), 127);
        assert_eq!(Bitset::all(70).count_ones(), 70);
        assert_eq!(Bitset::from_offsets(10, [1, 3, 99]).count_ones(), 2);
    }
}
