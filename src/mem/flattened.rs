//! makedumpfile's flattened format: a dump file cut into records that say "these
//! bytes belong at this offset of the real file", so that it can be written to a pipe
//! (`makedumpfile -F`) — QEMU's `dump-guest-memory` writes it for its non-"raw" kdump
//! formats too. The file it describes is a kdump-compressed file (or, with `-E`, an
//! ELF core); [`FlatIndex`] serves that "logical file" without rebuilding it.
//!
//! Layout (makedumpfile 1.7.9-15-gb7587f1 `makedumpfile.h`: `struct
//! makedumpfile_header`, `struct makedumpfile_data_header`, `MAX_SIZE_MDF_HEADER`,
//! `TYPE_FLAT_HEADER`, `END_FLAG_FLAT_HEADER`; reference `xen-x86-64.md` §7b):
//! * a 4096-byte header: `signature[16]` = "makedumpfile" NUL-padded, `type` (i64) @16
//!   = 1, `version` (i64) @24 = 1, zeros;
//! * records `{offset i64, buf_size i64, data[buf_size]}`, ended by offset = buf_size
//!   = −1. The integers are big-endian whatever the host (`write_start_flat_header`
//!   byte-swaps them on little-endian machines).
//!
//! Semantics, from the two readers (makedumpfile `rearrange_dumpdata`, which is `-R`;
//! crash `makedumpfile.c` at abcb45e, `read_flattened_format`):
//! * `-R` writes the records in order at their offsets, so a later record overwrites an
//!   earlier one where they overlap (makedumpfile rewrites headers this way);
//! * bytes no record covers were skipped with `lseek()` by the writer: they read as
//!   zero, up to the end of the furthest record (the rebuilt file's size).
//!
//! Cost: opening walks the record headers once (O(records) time; memory for one
//! 24-byte range per record, at most twice that after overlaps are cut), the data is
//! never copied; a read is a binary search over the ranges.

// Parser of untrusted input: no unchecked indexing, no unwrap (STYLE.md §8).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

use super::Malformed;
use memmap2::Mmap;
use std::collections::BTreeMap;

/// Size of the flattened header (`MAX_SIZE_MDF_HEADER`).
pub const FLAT_HEADER_SIZE: u64 = 4096;
/// `TYPE_FLAT_HEADER`.
const TYPE_FLAT_HEADER: i64 = 1;
/// `END_FLAG_FLAT_HEADER`.
const END_FLAG: i64 = -1;
/// Size of a record header (`struct makedumpfile_data_header`).
const RECORD_HEADER: u64 = 16;

/// Whether `head` starts with the flattened signature (`"makedumpfile"` and its NUL).
pub fn is_flattened(head: &[u8]) -> bool {
    head.starts_with(b"makedumpfile\0")
}

/// A run of the logical file stored contiguously in the flattened file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    /// Logical offset of the first byte.
    start: u64,
    len: u64,
    /// Offset of that byte in the flattened file.
    file: u64,
}

impl Range {
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// What the flattened layer says, for `xenwalk info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatSummary {
    /// Data records (the end marker not counted).
    pub records: u64,
    /// `version` of the flattened header.
    pub version: i64,
    /// Size of the file the records describe (what `makedumpfile -R` would write).
    pub logical_size: u64,
}

/// Bytes of the file scanned between two releases of its pages.
const RELEASE_EVERY: u64 = 16 << 20;

/// The records of a flattened file, indexed by their offset in the logical file.
pub struct FlatIndex {
    map: Mmap,
    /// Sorted by `start`, non-overlapping, no empty ranges.
    ranges: Vec<Range>,
    logical_len: u64,
    summary: FlatSummary,
    /// Problems that did not stop the index from being used (a truncated stream).
    pub warnings: Vec<String>,
}

fn be_i64(data: &[u8], at: u64) -> Option<i64> {
    let at = usize::try_from(at).ok()?;
    let b = data.get(at..at.checked_add(8)?)?;
    Some(i64::from_be_bytes(b.try_into().ok()?))
}

/// Put `[start, start+len)` → `file` into `map`, cutting whatever it overlaps (the
/// later record wins, as with `makedumpfile -R`). Each call adds at most three
/// entries and removes what it covers, so the map stays O(records).
fn insert(map: &mut BTreeMap<u64, (u64, u64)>, start: u64, len: u64, file: u64) {
    let end = start + len; // callers checked it does not overflow
    let mut hits = Vec::new();
    for (&s, &(l, f)) in map.range(..end).rev() {
        if s + l <= start {
            break; // sorted and non-overlapping: nothing earlier reaches `start`
        }
        hits.push((s, l, f));
    }
    for (s, l, f) in hits {
        map.remove(&s);
        if s < start {
            map.insert(s, (start - s, f));
        }
        let e = s + l;
        if e > end {
            map.insert(end, (e - end, f + (end - s)));
        }
    }
    map.insert(start, (len, file));
}

/// Index the flattened file in `map`.
pub fn parse(map: Mmap) -> Result<FlatIndex, Malformed> {
    let data: &[u8] = &map;
    let size = data.len() as u64;
    if size < FLAT_HEADER_SIZE {
        return Err(Malformed::new(
            0,
            format!(
                "the file is {size} bytes, shorter than the {FLAT_HEADER_SIZE}-byte header of the \
                 flattened format: truncated"
            ),
        ));
    }
    if !is_flattened(data) {
        return Err(Malformed::new(0, "no flattened-format signature (\"makedumpfile\")"));
    }
    let ty = be_i64(data, 16).unwrap_or(0);
    if ty != TYPE_FLAT_HEADER {
        return Err(Malformed::new(
            16,
            format!("flattened header type {ty}, expected {TYPE_FLAT_HEADER} (TYPE_FLAT_HEADER)"),
        ));
    }
    let version = be_i64(data, 24).unwrap_or(0);

    let mut ranges: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut pos = FLAT_HEADER_SIZE;
    let mut records = 0u64;
    let mut logical_len = 0u64;
    // Records in logical order with no overlap (the usual case) are appended at the
    // end of the map without a range query.
    let mut sorted_end = 0u64;
    let mut released = 0u64;
    loop {
        if pos == size {
            warnings.push(format!(
                "flattened format: the file ends at {size:#x} after {records} records without the \
                 end marker: the stream is truncated"
            ));
            break;
        }
        let (Some(offset), Some(len)) = (be_i64(data, pos), be_i64(data, pos + 8)) else {
            warnings.push(format!(
                "flattened format: a record header at {pos:#x} is cut off by the end of the file \
                 ({size:#x} bytes): the stream is truncated"
            ));
            break;
        };
        if offset == END_FLAG && len == END_FLAG {
            let rest = size - (pos + RECORD_HEADER).min(size);
            if rest > 0 {
                warnings.push(format!("flattened format: {rest} bytes after the end marker at {pos:#x} are ignored"));
            }
            break;
        }
        let (Ok(start), Ok(len)) = (u64::try_from(offset), u64::try_from(len)) else {
            return Err(Malformed::new(
                pos,
                format!(
                    "flattened record {records}: negative offset {offset} or size {len} (only the \
                     end marker has -1, -1)"
                ),
            ));
        };
        let data_at = pos + RECORD_HEADER;
        let Some(next) = data_at.checked_add(len).filter(|&e| e <= size) else {
            warnings.push(format!(
                "flattened format: record {records} at {pos:#x} claims {len:#x} bytes, past the end \
                 of the file ({size:#x} bytes): the stream is truncated; the record is ignored"
            ));
            break;
        };
        let Some(end) = start.checked_add(len).filter(|&e| e <= i64::MAX as u64) else {
            return Err(Malformed::new(
                pos,
                format!("flattened record {records}: offset {start:#x} + size {len:#x} overflows"),
            ));
        };
        if len > 0 {
            if start >= sorted_end {
                ranges.insert(start, (len, data_at));
            } else {
                insert(&mut ranges, start, len, data_at);
            }
            sorted_end = sorted_end.max(end);
            logical_len = logical_len.max(end);
        }
        records += 1;
        pos = next;
        // One header per record, one record per page or so: the scan touches every
        // page of the file once. What it has passed leaves the resident set every
        // 16 MiB (an 88 MiB file peaked at 138 MiB before; now the index alone).
        if pos - released >= RELEASE_EVERY {
            super::mapped::release_range(&map, released as usize, pos as usize);
            released = pos;
        }
    }
    super::mapped::release_range(&map, released as usize, pos as usize);
    let ranges: Vec<Range> = ranges.into_iter().map(|(start, (len, file))| Range { start, len, file }).collect();
    Ok(FlatIndex {
        map,
        ranges,
        logical_len,
        summary: FlatSummary { records, version, logical_size: logical_len },
        warnings,
    })
}

impl FlatIndex {
    /// Size of the logical file (the end of the furthest record).
    pub fn len(&self) -> u64 {
        self.logical_len
    }

    /// Whether the records describe no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.logical_len == 0
    }

    /// Size of the flattened file itself.
    pub fn file_size(&self) -> u64 {
        self.map.len() as u64
    }

    /// Let the kernel drop the file's pages from this process's resident set (they
    /// fault back from the page cache when read again; see `mapped::release_map`).
    pub fn release_resident(&self) {
        super::mapped::release_map(&self.map);
    }

    pub fn summary(&self) -> &FlatSummary {
        &self.summary
    }

    /// Index of the first range that ends after `off`.
    fn first_after(&self, off: u64) -> usize {
        self.ranges.partition_point(|r| r.end() <= off)
    }

    /// The bytes at logical `off..off+len` if one record holds them all (zero-copy).
    pub fn slice(&self, off: u64, len: u64) -> Option<&[u8]> {
        let r = self.ranges.get(self.first_after(off))?;
        let end = off.checked_add(len)?;
        if r.start > off || end > r.end() {
            return None;
        }
        let at = usize::try_from(r.file + (off - r.start)).ok()?;
        self.map.get(at..at.checked_add(usize::try_from(len).ok()?)?)
    }

    /// Fill `buf` with the logical bytes at `off`; bytes no record covers read as
    /// zero. `false` if the range runs past the logical end.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> bool {
        let Some(end) = off.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > self.logical_len {
            return false;
        }
        let mut i = self.first_after(off);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let want = buf.len() - done;
            let Some(dst) = buf.get_mut(done..) else {
                return false;
            };
            let n = match self.ranges.get(i) {
                Some(r) if r.start <= pos => {
                    let n = usize::try_from(r.end() - pos).map_or(want, |n| n.min(want));
                    let Some(at) = usize::try_from(r.file + (pos - r.start)).ok() else {
                        return false;
                    };
                    let (Some(src), Some(dst)) = (self.map.get(at..at.saturating_add(n)), dst.get_mut(..n)) else {
                        return false;
                    };
                    dst.copy_from_slice(src);
                    i += 1;
                    n
                }
                Some(r) => {
                    let n = usize::try_from(r.start - pos).map_or(want, |n| n.min(want));
                    dst.iter_mut().take(n).for_each(|b| *b = 0);
                    n
                }
                None => {
                    dst.fill(0);
                    want
                }
            };
            done += n;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A flattened file from (logical offset, bytes) records, in order.
    pub(crate) fn flat_bytes(records: &[(u64, Vec<u8>)], end_marker: bool) -> Vec<u8> {
        let mut v = vec![0u8; FLAT_HEADER_SIZE as usize];
        v[..12].copy_from_slice(b"makedumpfile");
        v[16..24].copy_from_slice(&1i64.to_be_bytes());
        v[24..32].copy_from_slice(&1i64.to_be_bytes());
        for (off, d) in records {
            v.extend_from_slice(&(*off as i64).to_be_bytes());
            v.extend_from_slice(&(d.len() as i64).to_be_bytes());
            v.extend_from_slice(d);
        }
        if end_marker {
            v.extend_from_slice(&(-1i64).to_be_bytes());
            v.extend_from_slice(&(-1i64).to_be_bytes());
        }
        v
    }

    fn map_of(bytes: &[u8]) -> Mmap {
        let dir = std::env::temp_dir().join(format!("xenwalk-flat-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = dir.join(format!("f{n}"));
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        // SAFETY: a private test file nobody else writes.
        let m = unsafe { Mmap::map(&f).unwrap() };
        let _ = std::fs::remove_file(&p);
        m
    }

    fn logical(ix: &FlatIndex) -> Vec<u8> {
        let mut v = vec![0xeeu8; ix.len() as usize];
        assert!(ix.read(0, &mut v));
        v
    }

    #[test]
    fn later_records_win_and_gaps_read_zero() {
        let recs = vec![
            (0u64, vec![1u8; 10]),
            (20, vec![2u8; 10]),
            (5, vec![3u8; 20]), // covers the tail of the first, a gap, the head of the second
            (40, vec![4u8; 4]),
            (0, vec![5u8; 2]),
        ];
        let ix = parse(map_of(&flat_bytes(&recs, true))).unwrap();
        assert!(ix.warnings.is_empty(), "{:?}", ix.warnings);
        assert_eq!(ix.summary().records, 5);
        // What makedumpfile -R would write: each record in order at its offset.
        let mut want = vec![0u8; 44];
        for (off, d) in &recs {
            want[*off as usize..*off as usize + d.len()].copy_from_slice(d);
        }
        assert_eq!(logical(&ix), want);
        // Zero-copy only inside one record.
        assert_eq!(ix.slice(6, 4), Some(&[3u8; 4][..]));
        assert_eq!(ix.slice(24, 4), None);
        assert_eq!(ix.slice(30, 4), None, "a gap is not stored");
        let mut b = [9u8; 2];
        assert!(!ix.read(43, &mut b), "past the logical end");
    }

    #[test]
    fn truncation_and_garbage() {
        // No end marker: usable, with a warning.
        let ix = parse(map_of(&flat_bytes(&[(0, vec![1; 8])], false))).unwrap();
        assert_eq!(ix.len(), 8);
        assert_eq!(ix.warnings.len(), 1);
        // A record claiming more than the file holds: dropped, with a warning.
        let mut b = flat_bytes(&[(0, vec![1; 8])], false);
        b.extend_from_slice(&64i64.to_be_bytes());
        b.extend_from_slice(&(1i64 << 40).to_be_bytes());
        let ix = parse(map_of(&b)).unwrap();
        assert_eq!(ix.len(), 8);
        assert!(ix.warnings[0].contains("past the end"), "{:?}", ix.warnings);
        // Negative offsets other than the end marker, and overflowing records, are errors.
        let mut b = flat_bytes(&[], false);
        b.extend_from_slice(&(-5i64).to_be_bytes());
        b.extend_from_slice(&1i64.to_be_bytes());
        b.push(0);
        assert_eq!(parse(map_of(&b)).err().unwrap().offset, 4096);
        let mut b = flat_bytes(&[], false);
        b.extend_from_slice(&(i64::MAX - 1).to_be_bytes());
        b.extend_from_slice(&4i64.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        assert!(parse(map_of(&b)).err().unwrap().what.contains("overflows"));
        // Wrong type, short header.
        let mut b = flat_bytes(&[], true);
        b[23] = 2;
        assert_eq!(parse(map_of(&b)).err().unwrap().offset, 16);
        assert!(parse(map_of(b"makedumpfile\0\0\0\0")).is_err());
    }

    #[test]
    fn many_overlapping_records_stay_bounded() {
        // Every record rewrites the middle of the previous ones.
        let recs: Vec<(u64, Vec<u8>)> = (0..2000u64).map(|i| ((i * 7) % 1000, vec![(i % 251) as u8; 50])).collect();
        let ix = parse(map_of(&flat_bytes(&recs, true))).unwrap();
        assert!(ix.ranges.len() <= 2 * recs.len());
        let mut want = vec![0u8; ix.len() as usize];
        for (off, d) in &recs {
            want[*off as usize..*off as usize + d.len()].copy_from_slice(d);
        }
        assert_eq!(logical(&ix), want);
        assert!(ix.ranges.windows(2).all(|w| w[0].end() <= w[1].start));
    }
}
