//! A read-only memory-mapped file seen as sorted segments of machine memory.
//!
//! Raw images (one segment) and ELF cores (one segment per `PT_LOAD`) share this:
//! reads are zero-copy slices of the map, lookups are a binary search over the
//! segments (O(log n)), and opening costs O(segments), never O(bytes): a 64 GiB
//! sparse image is mapped, not read.

use super::{Absent, Extent, Page, PhysMem, ReadError};
use crate::addr::{Maddr, Mfn, PAGE_SIZE};
use memmap2::Mmap;

/// One run of machine memory described by the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First machine address.
    pub paddr: u64,
    /// Bytes of machine memory described (`p_memsz`).
    pub memsz: u64,
    /// File offset of the first byte.
    pub offset: u64,
    /// Bytes present in the file (`p_filesz`, at most `memsz`); the rest is absent.
    pub filesz: u64,
    /// Index of the program header this came from (for messages).
    pub index: usize,
}

impl Segment {
    /// One past the last machine address described. Callers validated no overflow.
    pub fn end(&self) -> u64 {
        self.paddr + self.memsz
    }
}

/// A memory-mapped dump with sorted, non-overlapping segments.
pub struct MappedImage {
    map: Mmap,
    segs: Vec<Segment>,
}

impl MappedImage {
    /// Wrap a map and segments that the format parser already validated: sorted by
    /// `paddr`, non-overlapping, no overflow, file ranges inside the map. Segments with
    /// `memsz == 0` must have been dropped.
    pub(crate) fn new(map: Mmap, segs: Vec<Segment>) -> MappedImage {
        debug_assert!(segs.windows(2).all(|w| w[0].end() <= w[1].paddr));
        debug_assert!(segs.iter().all(|s| s.filesz <= s.memsz && s.offset + s.filesz <= map.len() as u64));
        MappedImage { map, segs }
    }

    /// The segments, sorted by address.
    pub fn segments(&self) -> &[Segment] {
        &self.segs
    }

    /// The span the image covers, as the absence reason for addresses outside it.
    fn bounds(&self) -> Absent {
        match (self.segs.first(), self.segs.last()) {
            (Some(f), Some(l)) => Absent::OutsideImage { start: Maddr(f.paddr), end: Maddr(l.end()) },
            _ => Absent::OutsideImage { start: Maddr(0), end: Maddr(0) },
        }
    }

    /// Find the segment holding `addr` and the offset of `addr` inside it.
    fn find(&self, addr: u64) -> Result<(&Segment, u64), Absent> {
        let i = self.segs.partition_point(|s| s.end() <= addr);
        let outside = self.bounds();
        match self.segs.get(i) {
            None => Err(outside),
            Some(s) if s.paddr <= addr => {
                let off = addr - s.paddr;
                if off < s.filesz { Ok((s, off)) } else { Err(Absent::NotCaptured { segment: s.index }) }
            }
            Some(s) => match i.checked_sub(1).and_then(|p| self.segs.get(p)) {
                None => Err(outside),
                Some(prev) => Err(Absent::Hole { prev_end: Maddr(prev.end()), next_start: Maddr(s.paddr) }),
            },
        }
    }

    /// The file bytes for `addr..addr+len` if they are contiguous in one segment.
    fn contiguous(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let (s, off) = self.find(addr).ok()?;
        if off.checked_add(len)? > s.filesz {
            return None;
        }
        let start = usize::try_from(s.offset + off).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.map.get(start..end)
    }
}

impl PhysMem for MappedImage {
    fn page(&self, mfn: Mfn) -> Result<Page<'_>, ReadError> {
        let addr = mfn.maddr();
        if let Some(bytes) = self.contiguous(addr.0, PAGE_SIZE) {
            if let Ok(p) = <&[u8; PAGE_SIZE as usize]>::try_from(bytes) {
                return Ok(Page::Borrowed(p));
            }
        }
        // Segments that split a page: assemble it (fails if any part is absent).
        let mut buf = Box::new([0u8; PAGE_SIZE as usize]);
        self.read(addr, &mut buf[..])?;
        Ok(Page::Owned(buf))
    }

    fn read(&self, addr: Maddr, buf: &mut [u8]) -> Result<(), ReadError> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr.checked_add(done as u64).ok_or(ReadError::Absent { addr, why: self.bounds() })?;
            let (s, off) = self.find(a.0).map_err(|why| ReadError::Absent { addr: a, why })?;
            let avail = s.filesz - off;
            let want = (buf.len() - done) as u64;
            let n = avail.min(want) as usize;
            let start = (s.offset + off) as usize;
            let src = self.map.get(start..start + n).ok_or(ReadError::Malformed {
                addr: a,
                offset: s.offset + off,
                what: "segment data past the end of the file",
            })?;
            buf[done..done + n].copy_from_slice(src);
            done += n;
        }
        Ok(())
    }

    fn read_u64(&self, addr: Maddr) -> Result<u64, ReadError> {
        if let Some(b) = self.contiguous(addr.0, 8) {
            if let Ok(arr) = <[u8; 8]>::try_from(b) {
                return Ok(u64::from_le_bytes(arr));
            }
        }
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn locate(&self, addr: Maddr) -> Result<(), Absent> {
        self.find(addr.0).map(|_| ())
    }

    fn release_resident(&self) {
        release_map(&self.map);
    }

    /// One segment's file bytes (a raw image): they are the machine's bytes from its
    /// start on; the part past `filesz`, and everything outside, stays with `read`.
    fn linear(&self) -> Option<(u64, &[u8])> {
        let [s] = self.segs.as_slice() else { return None };
        let start = usize::try_from(s.offset).ok()?;
        let end = start.checked_add(usize::try_from(s.filesz).ok()?)?;
        Some((s.paddr, self.map.get(start..end)?))
    }

    fn extents(&self) -> Vec<Extent> {
        let mut v = Vec::with_capacity(self.segs.len() + 1);
        for s in &self.segs {
            if s.filesz > 0 {
                v.push(Extent { start: Maddr(s.paddr), len: s.filesz, present: true });
            }
            if s.memsz > s.filesz {
                v.push(Extent { start: Maddr(s.paddr + s.filesz), len: s.memsz - s.filesz, present: false });
            }
        }
        v
    }
}

/// Drop this process's page-table mappings of `map`'s pages (`MADV_DONTNEED`), so
/// they stop counting as its resident memory; they stay in the page cache.
/// As [`release_map`], for the page-aligned part of `[from, to)` of `map` only: a
/// reader that scans a file once (the flattened format's record headers, one per
/// page) keeps its resident set to what it has not passed yet.
pub(crate) fn release_range(map: &Mmap, from: usize, to: usize) {
    const PAGE: usize = 4096;
    let (a, b) = (from.div_ceil(PAGE) * PAGE, (to.min(map.len()) / PAGE) * PAGE);
    if a >= b {
        return;
    }
    #[cfg(unix)]
    {
        // SAFETY: as in `release_map`: a read-only shared file mapping, whose pages
        // fault back with the same contents; failure leaves them resident.
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a) };
    }
}

pub(crate) fn release_map(map: &Mmap) {
    #[cfg(unix)]
    {
        // SAFETY: `map` is a read-only shared mapping of a file this process never
        // writes (memmap2's `Mmap::map` is `MAP_SHARED` + `PROT_READ`). For such a
        // mapping MADV_DONTNEED only removes the page-table entries: the next access
        // faults the same bytes back in from the page cache, so every slice borrowed
        // from the map keeps its contents (madvise(2): "subsequent accesses of pages in
        // the range ... will result in repopulating the memory contents from the
        // up-to-date contents of the underlying mapped file" for shared mappings).
        // Failure only means the pages stay resident.
        let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
    }
    #[cfg(not(unix))]
    let _ = map;
}
