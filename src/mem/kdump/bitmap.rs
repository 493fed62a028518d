//! The 1st (pfn exists) and 2nd (pfn dumped) bitmaps: one indexing pass at open
//! (per-4096-pfn prefix counts of the 2nd bitmap, present/dumped/excluded counts),
//! bit look-ups, ranks, scans for the nearest present pfn, classifying a pfn as
//! dumped, excluded, a hole or outside, and the per-compression [`Census`] of the
//! descriptors.

use super::header::{DESC_SIZE, u32_at};
use super::{Compression, KdumpImage};
use crate::addr::Mfn;
use crate::mem::Absent;
use crate::mem::Malformed;

/// Pfns per entry of the prefix-count table: 512 bytes of bitmap.
const RANK_PFNS: u64 = 4096;
/// Bytes read at a time when scanning a bitmap or the descriptors.
pub(super) const CHUNK: u64 = 64 * 1024;

/// Dumped pages per descriptor kind, from reading every descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub raw: u64,
    pub zlib: u64,
    pub lzo: u64,
    pub snappy: u64,
    pub zstd: u64,
    /// Descriptors with unknown or several compression flags.
    pub unknown: u64,
    /// Descriptors past the end of the file (a truncated or incomplete dump).
    pub unreadable: u64,
}

/// Mask of the bits of bitmap byte `byte` that fall in `[lo, hi)` pfns.
pub(super) fn byte_mask(byte: u64, lo: u64, hi: u64) -> u8 {
    let first = byte * 8;
    if first >= lo && first + 8 <= hi {
        return 0xff;
    }
    let mut m = 0u8;
    for bit in 0..8 {
        let pfn = first + bit;
        if pfn >= lo && pfn < hi {
            m |= 1 << bit;
        }
    }
    m
}

fn popcount(b: &[u8]) -> u64 {
    let mut chunks = b.chunks_exact(8);
    let mut n: u64 =
        chunks.by_ref().map(|c| u64::from(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])).count_ones())).sum();
    n += chunks.remainder().iter().map(|x| u64::from(x.count_ones())).sum::<u64>();
    n
}

impl KdumpImage {
    /// One pass over both bitmaps: the prefix counts of the 2nd, the counts of
    /// present, dumped and excluded pages, and the first and last present pfn.
    pub(super) fn index_bitmaps(&mut self) -> Result<(), Malformed> {
        let need = self.max_mapnr.div_ceil(8);
        let (slo, shi) = self.span;
        let entries = self.max_mapnr.div_ceil(RANK_PFNS) + 1;
        let mut prefix = Vec::with_capacity(usize::try_from(entries).unwrap_or(0));
        let (mut present, mut dumped, mut excluded) = (0u64, 0u64, 0u64);
        let mut first: Option<u64> = None;
        let mut last = 0u64;
        let mut total2 = 0u64;
        let mut pos = 0u64;
        while pos < need {
            let n = CHUNK.min(need - pos); // a multiple of 512 except at the end
            let b1 = self.file.bytes(self.bitmap1 + pos, n);
            let b2 = self.file.bytes(self.bitmap2 + pos, n);
            let (Some(b1), Some(b2)) = (b1, b2) else {
                return Err(Malformed::new(self.bitmap1 + pos, "the bitmaps run past the end of the file: truncated"));
            };
            for (i, (&x1, &x2)) in b1.iter().zip(b2.iter()).enumerate() {
                let byte = pos + i as u64;
                if byte % (RANK_PFNS / 8) == 0 {
                    prefix.push(total2);
                }
                let mapnr_mask = byte_mask(byte, 0, self.max_mapnr);
                let x2 = x2 & mapnr_mask;
                let x1 = x1 & mapnr_mask;
                total2 += u64::from(x2.count_ones());
                let m = byte_mask(byte, slo, shi);
                let (y1, y2) = (x1 & m, x2 & m);
                if y1 | y2 != 0 {
                    let any = y1 | y2;
                    if first.is_none() {
                        first = Some(byte * 8 + u64::from(any.trailing_zeros()));
                    }
                    last = byte * 8 + 7 - u64::from(any.leading_zeros());
                }
                present += u64::from(y1.count_ones());
                dumped += u64::from(y2.count_ones());
                excluded += u64::from((y1 & !y2).count_ones());
            }
            pos += n;
        }
        prefix.push(total2);
        self.prefix = prefix;
        if let Some(f) = first {
            self.lo = f;
            self.hi = last + 1;
        }
        if let Some((s, _)) = self.summary.split {
            self.rank_base = self.rank2(s).unwrap_or(0);
        }
        self.summary.pages_present = present;
        self.summary.pages_dumped = dumped;
        self.summary.pages_excluded = excluded;
        Ok(())
    }

    fn bit(&self, bitmap: u64, pfn: u64) -> bool {
        self.file.bytes(bitmap + pfn / 8, 1).and_then(|b| b.first().copied()).is_some_and(|b| b >> (pfn % 8) & 1 == 1)
    }

    /// Set 2nd-bitmap bits below `pfn` (≤ max_mapnr).
    pub(super) fn rank2(&self, pfn: u64) -> Option<u64> {
        let blk = pfn / RANK_PFNS;
        let base = *self.prefix.get(usize::try_from(blk).ok()?)?;
        let first = blk * (RANK_PFNS / 8);
        let whole = pfn / 8 - first;
        let mut n = base;
        if whole > 0 {
            n += popcount(&self.file.bytes(self.bitmap2 + first, whole)?);
        }
        let rem = pfn % 8;
        if rem > 0 {
            let b = *self.file.bytes(self.bitmap2 + pfn / 8, 1)?.first()?;
            n += u64::from((b & ((1u8 << rem) - 1)).count_ones());
        }
        Some(n)
    }

    pub(super) fn outside(&self) -> Absent {
        Absent::OutsideImage { start: Mfn(self.lo).maddr(), end: Mfn(self.hi).maddr() }
    }

    /// The nearest pfn at or beyond `from` (going up, or down from `from`) whose
    /// 1st-bitmap bit is set, within `[lo, hi)`.
    fn scan1(&self, from: u64, up: bool) -> Option<u64> {
        let (lo, hi) = (self.lo, self.hi);
        if up {
            let mut pfn = from;
            while pfn < hi {
                let byte = pfn / 8;
                let n = CHUNK.min(hi.div_ceil(8) - byte);
                let b = self.file.bytes(self.bitmap1 + byte, n)?;
                for (i, &x) in b.iter().enumerate() {
                    let byte = byte + i as u64;
                    let x = x & byte_mask(byte, pfn.max(lo), hi);
                    if x != 0 {
                        return Some(byte * 8 + u64::from(x.trailing_zeros()));
                    }
                }
                pfn = (byte + n) * 8;
            }
            None
        } else {
            let mut end = from.checked_add(1)?; // scan [.., end)
            while end > lo {
                let last_byte = (end - 1) / 8;
                let first_byte = (lo / 8).max((last_byte + 1).saturating_sub(CHUNK));
                let b = self.file.bytes(self.bitmap1 + first_byte, last_byte + 1 - first_byte)?;
                for (i, &x) in b.iter().enumerate().rev() {
                    let byte = first_byte + i as u64;
                    let x = x & byte_mask(byte, lo, end);
                    if x != 0 {
                        return Some(byte * 8 + 7 - u64::from(x.leading_zeros()));
                    }
                }
                end = first_byte * 8;
            }
            None
        }
    }

    /// Whether this file holds the page of `pfn`, or why not.
    pub(super) fn classify(&self, pfn: u64) -> Result<(), Absent> {
        if pfn < self.span.0 || pfn >= self.span.1 || pfn >= self.max_mapnr {
            return Err(self.outside());
        }
        if self.bit(self.bitmap2, pfn) {
            return Ok(());
        }
        if self.bit(self.bitmap1, pfn) {
            return Err(Absent::Excluded { dump_level: self.dump_level });
        }
        if pfn < self.lo || pfn >= self.hi {
            return Err(self.outside());
        }
        let prev = self.scan1(pfn, false).map_or(self.lo, |p| p + 1);
        let next = self.scan1(pfn, true).unwrap_or(self.hi);
        Err(Absent::Hole { prev_end: Mfn(prev).maddr(), next_start: Mfn(next).maddr() })
    }

    /// Count the dumped pages per descriptor kind: reads every descriptor (O(pages)),
    /// so it is for `xenwalk info` only.
    pub fn census(&self) -> Census {
        let mut c = Census::default();
        let total = self.summary.pages_dumped;
        let per = CHUNK / DESC_SIZE;
        let mut i = 0u64;
        while i < total {
            let n = per.min(total - i);
            let at = self.desc_off + i * DESC_SIZE;
            let Some(b) = self.file.bytes(at, n * DESC_SIZE) else {
                // The rest, one by one (a truncated descriptor area).
                for j in i..total {
                    match self.file.bytes(self.desc_off + j * DESC_SIZE, DESC_SIZE) {
                        Some(d) => c.count(u32_at(&d, 12)),
                        None => c.unreadable += 1,
                    }
                }
                break;
            };
            for d in b.chunks_exact(DESC_SIZE as usize) {
                c.count(u32_at(d, 12));
            }
            i += n;
        }
        c
    }
}

impl Census {
    fn count(&mut self, flags: u32) {
        match Compression::from_flags(flags) {
            Some(Compression::None) => self.raw += 1,
            Some(Compression::Zlib) => self.zlib += 1,
            Some(Compression::Lzo) => self.lzo += 1,
            Some(Compression::Snappy) => self.snappy += 1,
            Some(Compression::Zstd) => self.zstd += 1,
            None => self.unknown += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_popcount_and_masks() {
        assert_eq!(byte_mask(0, 0, 8), 0xff);
        assert_eq!(byte_mask(0, 3, 8), 0xf8);
        assert_eq!(byte_mask(1, 0, 12), 0x0f);
        assert_eq!(byte_mask(2, 0, 12), 0);
        assert_eq!(popcount(&[0xff; 17]), 136);
        assert_eq!(popcount(&[]), 0);
        assert_eq!(popcount(&[1, 2, 4, 8, 16, 32, 64, 128, 3]), 10);
    }
}
