//! makedumpfile's kdump-compressed format (signature `"KDUMP   "`, and the older
//! `"DISKDUMP"`), as a plain file or inside a flattened one ([`super::flattened`]).
//! QEMU's `dump-guest-memory -z/-l/-s` writes it too. In a Xen dump "pfn" means mfn.
//!
//! Layout (makedumpfile 1.7.9-15-gb7587f1 `diskdump_mod.h`, `makedumpfile.c`
//! `write_kdump_header`; reader side crash `diskdump.c`/`diskdump.h` at abcb45e; byte
//! offsets for LP64, reference `xen-x86-64.md` §7b), in blocks of `block_size`:
//! 1. `disk_dump_header` (464 bytes) at 0: `header_version` @8, utsname @12 (6 × 65,
//!    `machine` @272), `status` @424, `block_size` @428, `sub_hdr_size` @432 (blocks),
//!    `bitmap_blocks` @436, `max_mapnr` @440 (32-bit, obsolete from version 6),
//!    `current_cpu` @456, `nr_cpus` @460;
//! 2. `kdump_sub_header` at `block_size` (field: since header_version): `phys_base` @0,
//!    `dump_level` @8 (1), `split` @12, `start_pfn` @16, `end_pfn` @24 (2),
//!    `offset_vmcoreinfo` @32, `size_vmcoreinfo` @40 (3), `offset_note` @48,
//!    `size_note` @56 (4), `offset_eraseinfo` @64, `size_eraseinfo` @72 (5),
//!    `start_pfn_64` @80, `end_pfn_64` @88, `max_mapnr_64` @96 (6); the old DISKDUMP
//!    sub-header (`disk_dump_sub_header`) holds registers only;
//! 3. the bitmaps at `(1 + sub_hdr_size) × block_size`, `bitmap_blocks` blocks: the
//!    1st (pfn exists) and, from half-way, the 2nd (pfn dumped), LSB first. crash
//!    treats an area smaller than two bitmaps of `max_mapnr` bits as one bitmap
//!    serving both (`dump_is_partial`);
//! 4. one 24-byte `page_desc` per set bit of the 2nd bitmap, in pfn order, at
//!    `(1 + sub_hdr_size + bitmap_blocks) × block_size`: `offset` (i64) @0, `size`
//!    (u32) @8, `flags` (u32) @12 (0 uncompressed, 0x1 zlib, 0x2 LZO, 0x4 snappy, 0x20
//!    zstd), `page_flags` @16. In a split dump (`split` ≠ 0) descriptors count from
//!    `start_pfn` (crash `pfn_to_pos`);
//! 5. page data, then erase info.
//!
//! A pfn whose 2nd-bitmap bit is clear but 1st-bitmap bit set was *excluded* by the
//! writer (dump level): [`Absent::Excluded`], never zeros. Zero pages kept under
//! dump level bit 0 are not excluded: makedumpfile points their descriptors at one
//! shared zero page (`write_kdump_pages_and_bitmap_cyclic`). crash differs for old
//! files: it zero-fills excluded pages of DISKDUMP and header-version-0 files (only
//! its `ERROR_EXCLUDED`, set for KDUMP version ≥ 1, makes them errors in
//! `read_diskdump`); xenwalk reports them as excluded in every version. crash also
//! refuses a page missing from the 1st bitmap even if the 2nd lists it; xenwalk reads
//! any page the 2nd bitmap lists (descriptors are counted over the 2nd bitmap only).
//!
//! Costs: opening reads the headers, the notes and both bitmaps once (bounded by the
//! file size: every header field is checked against the file before anything is
//! allocated), keeping one u64 per 4096 pfns of the 2nd bitmap (a prefix count of
//! set bits), so a page's descriptor is found with one table look-up and a popcount
//! of at most 512 bitmap bytes. Pages are decompressed on demand into a cache of
//! [`CACHE_PAGES`] pages. Counting pages per compression kind reads every descriptor
//! and is done only for `xenwalk info` ([`KdumpImage::census`]).
//!
//! Sub-modules by concern: `header` (header layout, constants, [`KdumpSummary`]),
//! `bitmap` (the bitmaps, their prefix counts and [`Census`]), `decompress` (page
//! compression kinds and decoding), `cache` (the decompressed-page cache).

// Parser of untrusted input: no unchecked indexing, no unwrap (STYLE.md §8).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

mod bitmap;
mod cache;
mod decompress;
mod header;

pub use bitmap::Census;
pub use cache::CACHE_PAGES;
pub use decompress::{Compression, decompress};
pub use header::{
    DUMP_DH_COMPRESSED_INCOMPLETE, DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB,
    DUMP_DH_COMPRESSED_ZSTD, DUMP_DH_EXCLUDED_VMEMMAP, KdumpSummary, NEWEST_HEADER_VERSION,
};

use super::flattened::{self, FlatIndex};
use super::{Absent, Extent, Malformed, Page, PhysMem, ReadError};
use crate::addr::{Maddr, Mfn, PAGE_SIZE};
use crate::notes::{self, RawNote};
use bitmap::{CHUNK, byte_mask};
use cache::PageCache;
use header::{DESC_SIZE, HEADER_SIZE, SUB_HEADER_SIZE, cstr, u32_at, u64_at};
use memmap2::Mmap;
use std::borrow::Cow;
use std::sync::Mutex;

const PAGE: usize = PAGE_SIZE as usize;

/// Whether `head` starts with a kdump-compressed signature.
pub fn is_kdump(head: &[u8]) -> bool {
    head.starts_with(b"KDUMP   ") || head.starts_with(b"DISKDUMP")
}

/// The logical kdump file: the mapped file itself, or the records of a flattened
/// file (which hold a kdump-compressed file scattered in pieces).
pub enum KdumpFile {
    Plain(Mmap),
    Flattened(FlatIndex),
}

impl KdumpFile {
    /// Size of the logical file.
    pub fn len(&self) -> u64 {
        match self {
            KdumpFile::Plain(m) => m.len() as u64,
            KdumpFile::Flattened(f) => f.len(),
        }
    }

    /// Whether the logical file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes actually stored in the file on disk (for a flattened file, its records
    /// may describe a larger file with holes).
    fn stored(&self) -> u64 {
        match self {
            KdumpFile::Plain(m) => m.len() as u64,
            KdumpFile::Flattened(f) => f.file_size(),
        }
    }

    /// The bytes at `off..off+len`: borrowed when contiguous in the file, copied when
    /// they span flattened records. `None` past the end. Callers keep `len` small
    /// (a page, a chunk) or validated against the file size.
    fn bytes(&self, off: u64, len: u64) -> Option<Cow<'_, [u8]>> {
        let end = off.checked_add(len)?;
        match self {
            KdumpFile::Plain(m) => {
                let s = usize::try_from(off).ok()?;
                let e = usize::try_from(end).ok()?;
                m.get(s..e).map(Cow::Borrowed)
            }
            KdumpFile::Flattened(f) => {
                if let Some(s) = f.slice(off, len) {
                    return Some(Cow::Borrowed(s));
                }
                if end > f.len() {
                    return None;
                }
                let mut v = vec![0u8; usize::try_from(len).ok()?];
                f.read(off, &mut v).then_some(Cow::Owned(v))
            }
        }
    }
}

/// A kdump-compressed dump as machine memory.
pub struct KdumpImage {
    file: KdumpFile,
    summary: KdumpSummary,
    /// Logical offsets of the 1st and 2nd bitmaps (equal for a single bitmap).
    bitmap1: u64,
    bitmap2: u64,
    max_mapnr: u64,
    /// Pfns this file may answer for: `[0, max_mapnr)`, or a split part's range.
    span: (u64, u64),
    /// First and one past the last pfn of the 1st bitmap inside `span` (0, 0 if none).
    lo: u64,
    hi: u64,
    /// Set 2nd-bitmap bits below `start_pfn` of a split part (0 otherwise).
    rank_base: u64,
    /// `prefix[i]` = set 2nd-bitmap bits below pfn `i × RANK_PFNS`.
    prefix: Vec<u64>,
    desc_off: u64,
    dump_level: Option<u32>,
    incomplete: bool,
    cache: Mutex<PageCache>,
}

/// An opened kdump file: its memory, its notes, and problems that did not stop it.
pub struct Kdump {
    pub image: KdumpImage,
    pub notes: Vec<RawNote>,
    pub warnings: Vec<String>,
    /// Problems in the copied ELF notes (see `Dump::open`: an error unless skipped).
    pub note_errors: Vec<String>,
}

/// Open a kdump-compressed file (`map` starts with its signature).
pub fn open_plain(map: Mmap) -> Result<Kdump, Malformed> {
    open(KdumpFile::Plain(map))
}

/// Open a flattened file, which must hold a kdump-compressed file. An error's offset
/// is in the file the records describe (what `makedumpfile -R` would write), unless
/// the flattened layer itself is broken (its text then starts "flattened format: ").
pub fn open_flattened(map: Mmap) -> Result<Kdump, Malformed> {
    let flat = flattened::parse(map).map_err(|e| e.within("flattened format"))?;
    let head = flat.slice(0, 8).map(<[u8]>::to_vec).unwrap_or_else(|| {
        let mut h = vec![0u8; 8];
        if !flat.read(0, &mut h) {
            h.clear();
        }
        h
    });
    if head.starts_with(b"\x7fELF") {
        return Err(Malformed::new(
            0,
            "a flattened ELF core (makedumpfile -F -E) is not supported yet: rebuild it with \
             `makedumpfile -R OUT < FILE` and pass OUT",
        ));
    }
    if !is_kdump(&head) {
        return Err(Malformed::new(
            flattened::FLAT_HEADER_SIZE,
            "the flattened records do not hold a kdump-compressed file (no \"KDUMP   \" signature \
             at offset 0 of the file they describe)",
        ));
    }
    open(KdumpFile::Flattened(flat))
}

/// Parse the headers of the logical kdump file `file` and index its bitmaps.
pub fn open(file: KdumpFile) -> Result<Kdump, Malformed> {
    let mut warnings = Vec::new();
    let flattened = match &file {
        KdumpFile::Flattened(f) => {
            warnings.extend(f.warnings.iter().cloned());
            Some(f.summary().clone())
        }
        KdumpFile::Plain(_) => None,
    };
    let len = file.len();
    let h = file.bytes(0, HEADER_SIZE).ok_or_else(|| {
        Malformed::new(
            0,
            format!("the file is {len} bytes, too short for the {HEADER_SIZE}-byte kdump header: truncated"),
        )
    })?;
    let h: &[u8] = &h;
    let diskdump = h.starts_with(b"DISKDUMP");
    if !diskdump && !h.starts_with(b"KDUMP   ") {
        return Err(Malformed::new(0, "no kdump signature (\"KDUMP   \" or \"DISKDUMP\")"));
    }
    let raw_version = u32_at(h, 8) as i32;
    let Ok(header_version) = u32::try_from(raw_version) else {
        return Err(Malformed::new(8, format!("negative header_version {raw_version}")));
    };
    if !diskdump && header_version > NEWEST_HEADER_VERSION {
        warnings.push(format!(
            "kdump header_version {header_version} is newer than {NEWEST_HEADER_VERSION}, the newest \
             known: read as {NEWEST_HEADER_VERSION}"
        ));
    }
    // The sub-header fields that exist in this version (KDUMP only).
    let v = if diskdump { 0 } else { header_version.min(NEWEST_HEADER_VERSION) };
    let status = u32_at(h, 424);
    let block_size = u32_at(h, 428) as i32;
    if block_size != PAGE as i32 {
        return Err(Malformed::new(
            428,
            format!("block size {block_size}: only 4096-byte pages (x86-64) are supported"),
        ));
    }
    let raw_sub = u32_at(h, 432) as i32;
    let Ok(sub_hdr_size) = u32::try_from(raw_sub) else {
        return Err(Malformed::new(432, format!("negative sub_hdr_size {raw_sub}")));
    };
    if !diskdump && sub_hdr_size == 0 {
        return Err(Malformed::new(432, "sub_hdr_size 0 leaves no block for the kdump sub-header"));
    }
    let bitmap_blocks = u32_at(h, 436);
    if bitmap_blocks == 0 {
        return Err(Malformed::new(436, "bitmap_blocks 0: the dump has no bitmaps"));
    }
    let max_mapnr32 = u64::from(u32_at(h, 440));
    let current_cpu = u32_at(h, 456);
    let nr_cpus = u32_at(h, 460);
    let machine = cstr(h, 272, 65);
    let release = cstr(h, 142, 65);

    // Sub-header: the part this version has (phys_base and dump_level from v1 ...).
    let block = PAGE_SIZE;
    let sub_len = match v {
        0 => 8,
        1 => 16,
        2 => 32,
        3 => 48,
        4 => 64,
        5 => 80,
        _ => SUB_HEADER_SIZE,
    };
    let sub: Vec<u8> = if diskdump {
        Vec::new()
    } else {
        file.bytes(block, sub_len)
            .ok_or_else(|| {
                Malformed::new(
                    block,
                    format!(
                        "the kdump sub-header ({sub_len} bytes at {block:#x}) is past the end of the \
                         file ({len} bytes): truncated"
                    ),
                )
            })?
            .into_owned()
    };
    let field = |at: usize| u64_at(&sub, at);
    let phys_base = (!diskdump).then(|| field(0));
    let dump_level = (v >= 1).then(|| u32_at(&sub, 8));
    let split_flag = v >= 2 && u32_at(&sub, 12) != 0;
    let range = |at: usize| -> Option<(u64, u64)> {
        let (o, s) = (field(at), field(at + 8));
        (o != 0 && s != 0).then_some((o, s))
    };
    let vmcoreinfo = if v >= 3 { range(32) } else { None };
    let notes_range = if v >= 4 { range(48) } else { None };
    let eraseinfo = if v >= 5 { range(64) } else { None };
    let max_mapnr = if v >= 6 {
        match field(96) {
            0 => {
                warnings.push(format!(
                    "kdump max_mapnr_64 is 0 in a version {header_version} header: using the 32-bit \
                     max_mapnr {max_mapnr32:#x}"
                ));
                max_mapnr32
            }
            m => m,
        }
    } else {
        max_mapnr32
    };
    let mapnr_at = if v >= 6 { block + 96 } else { 440 };
    if max_mapnr == 0 {
        return Err(Malformed::new(mapnr_at, "max_mapnr 0: the dump describes no memory"));
    }
    let split = if split_flag {
        let (s, e, at) = if v >= 6 { (field(80), field(88), block + 80) } else { (field(16), field(24), block + 16) };
        if s >= e || e > max_mapnr {
            return Err(Malformed::new(
                at,
                format!(
                    "split dump part with start_pfn {s:#x} and end_pfn {e:#x} (max_mapnr {max_mapnr:#x}): \
                     not a valid range"
                ),
            ));
        }
        Some((s, e))
    } else {
        None
    };

    // Layout, checked against the file before anything is allocated.
    let bitmap_off = (1 + u64::from(sub_hdr_size)) * block;
    let bitmap_len = u64::from(bitmap_blocks) * block;
    let desc_off = bitmap_off + bitmap_len; // < 2^31 × 4096 + 2^32 × 4096: no overflow
    if desc_off > len {
        return Err(Malformed::new(
            436,
            format!(
                "the bitmaps ({bitmap_blocks} blocks at {bitmap_off:#x}) run past the end of the file \
                 ({len} bytes): truncated or not a kdump file"
            ),
        ));
    }
    if bitmap_len > file.stored() {
        return Err(Malformed::new(
            436,
            format!("the bitmaps ({bitmap_len} bytes) are larger than the file itself ({} bytes)", file.stored()),
        ));
    }
    let need_bytes = max_mapnr.div_ceil(8);
    let need_blocks = need_bytes.div_ceil(block);
    // crash `dump_is_partial`: two bitmaps when the area holds two of max_mapnr bits.
    let two_bitmaps = u64::from(bitmap_blocks) >= need_blocks.saturating_mul(2);
    let bitmap2 = if two_bitmaps { bitmap_off + bitmap_len / 2 } else { bitmap_off };
    if !two_bitmaps && bitmap_len < need_bytes {
        return Err(Malformed::new(
            mapnr_at,
            format!(
                "max_mapnr {max_mapnr:#x} needs {need_bytes} bitmap bytes, but bitmap_blocks \
                 {bitmap_blocks} holds {bitmap_len}: the header is corrupt"
            ),
        ));
    }
    if !two_bitmaps && !diskdump {
        warnings.push(format!(
            "the bitmap area ({bitmap_blocks} blocks) holds one bitmap of max_mapnr {max_mapnr:#x} \
             bits, not two: every page it lists is taken as dumped"
        ));
    }
    let check_range = |what: &str, r: Option<(u64, u64)>, at: u64| -> Result<(), Malformed> {
        if let Some((o, s)) = r {
            if o.checked_add(s).is_none_or(|e| e > len) || s > file.stored() {
                return Err(Malformed::new(
                    at,
                    format!("the {what} ({s} bytes at {o:#x}) run past the end of the file ({len} bytes)"),
                ));
            }
        }
        Ok(())
    };
    check_range("copied ELF notes", notes_range, block + 48)?;
    check_range("VMCOREINFO bytes", vmcoreinfo, block + 32)?;
    if check_range("erase info", eraseinfo, block + 64).is_err() {
        warnings.push("the erase info lies past the end of the file (ignored)".into());
    }

    let span = split.unwrap_or((0, max_mapnr));
    let mut image = KdumpImage {
        file,
        summary: KdumpSummary {
            signature: if diskdump { "DISKDUMP" } else { "KDUMP" },
            flattened,
            header_version,
            block_size: PAGE as u32,
            sub_hdr_size,
            bitmap_blocks,
            two_bitmaps,
            status,
            dump_level,
            max_mapnr,
            phys_base,
            split,
            nr_cpus,
            current_cpu,
            machine,
            release,
            notes: notes_range,
            vmcoreinfo,
            eraseinfo,
            descriptors: desc_off,
            pages_present: 0,
            pages_dumped: 0,
            pages_excluded: 0,
        },
        bitmap1: bitmap_off,
        bitmap2,
        max_mapnr,
        span,
        lo: 0,
        hi: 0,
        rank_base: 0,
        prefix: Vec::new(),
        desc_off,
        dump_level,
        incomplete: status & DUMP_DH_COMPRESSED_INCOMPLETE != 0,
        cache: Mutex::new(PageCache::new()),
    };
    image.index_bitmaps()?;
    let dumped = image.summary.pages_dumped;
    let desc_end = dumped.checked_mul(DESC_SIZE).and_then(|n| n.checked_add(desc_off));
    if desc_end.is_none_or(|e| e > len) {
        let have = len.saturating_sub(desc_off) / DESC_SIZE;
        warnings.push(format!(
            "only {have} of the {dumped} page descriptors (24 bytes each from {desc_off:#x}) are in the \
             file ({len} bytes): the dump is {}; the pages of the others are unreadable",
            if image.incomplete { "incomplete (status flag 0x8)" } else { "truncated" }
        ));
    }

    let mut raw_notes = Vec::new();
    let mut note_errors = Vec::new();
    if let Some((o, s)) = notes_range {
        if let Some(b) = image.file.bytes(o, s) {
            if let Err(e) = notes::parse_stream(&b, o, 4, &mut raw_notes) {
                note_errors.push(format!("copied ELF notes: {e}"));
            }
        }
    }
    // offset_vmcoreinfo points at the VMCOREINFO note's text; usually inside the
    // copied notes (makedumpfile `write_kdump_header`), then already read.
    if let Some((o, s)) = vmcoreinfo {
        let inside = notes_range.is_some_and(|(no, ns)| o >= no && o + s <= no + ns);
        if !inside {
            if let Some(b) = image.file.bytes(o, s) {
                raw_notes.push(RawNote { name: "VMCOREINFO".into(), n_type: 0, desc: b.into_owned(), offset: o });
            }
        }
    }
    Ok(Kdump { image, notes: raw_notes, warnings, note_errors })
}

impl KdumpImage {
    /// What the headers say.
    pub fn summary(&self) -> &KdumpSummary {
        &self.summary
    }

    /// The descriptor of dumped `pfn`: (its file offset, data offset, size, flags).
    fn descriptor(&self, pfn: u64, addr: Maddr) -> Result<(u64, i64, u32, u32), ReadError> {
        let malformed = |offset, what| ReadError::Malformed { addr, offset, what };
        let at = self
            .rank2(pfn)
            .and_then(|r| r.checked_sub(self.rank_base))
            .and_then(|i| i.checked_mul(DESC_SIZE))
            .and_then(|o| o.checked_add(self.desc_off))
            .ok_or(malformed(self.bitmap2, "cannot count the 2nd bitmap up to this page"))?;
        let Some(d) = self.file.bytes(at, DESC_SIZE) else {
            return Err(malformed(
                at,
                if self.incomplete {
                    "page descriptor past the end of the file: the dump is incomplete (status flag 0x8)"
                } else {
                    "page descriptor past the end of the file: the dump is truncated"
                },
            ));
        };
        Ok((at, u64_at(&d, 0) as i64, u32_at(&d, 8), u32_at(&d, 12)))
    }

    /// Read and decode the page of dumped `pfn`.
    fn decode(&self, pfn: u64, addr: Maddr) -> Result<Box<[u8; PAGE]>, ReadError> {
        let malformed = |offset, what| ReadError::Malformed { addr, offset, what };
        let (at, offset, size, flags) = self.descriptor(pfn, addr)?;
        if offset <= 0 {
            return Err(malformed(
                at,
                if offset == 0 && self.incomplete {
                    "page descriptor is empty: the page was never written (the dump is incomplete, \
                     status flag 0x8)"
                } else {
                    "page descriptor has no valid data offset"
                },
            ));
        }
        let offset = offset as u64;
        if size == 0 || size as usize > PAGE {
            return Err(malformed(at, "page descriptor's data size is 0 or more than a page"));
        }
        let kind = Compression::from_flags(flags)
            .ok_or(malformed(at, "page descriptor has unknown or several compression flags"))?;
        let data = self
            .file
            .bytes(offset, u64::from(size))
            .ok_or(malformed(offset, "page data runs past the end of the file: the dump is truncated"))?;
        let mut page = Box::new([0u8; PAGE]);
        decompress(kind, &data, &mut page).map_err(|what| malformed(offset, what))?;
        Ok(page)
    }

    /// Run `f` on the page of `pfn` (from the cache, or decoded into it). `addr` is
    /// the address reported in errors.
    fn with_page<R>(&self, pfn: u64, addr: Maddr, f: impl FnOnce(&[u8; PAGE]) -> R) -> Result<R, ReadError> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = cache.get(pfn) {
                return Ok(f(p));
            }
        }
        self.classify(pfn).map_err(|why| ReadError::Absent { addr, why })?;
        let page = self.decode(pfn, addr)?;
        let r = f(&page);
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).put(pfn, page);
        Ok(r)
    }
}

impl PhysMem for KdumpImage {
    /// The file's mapped pages (compressed data, bitmaps, descriptors) leave the
    /// resident set when a budget asks (`mem::resident`); the decoded-page cache is
    /// small and bounded (`cache::CACHE_PAGES`) and stays.
    fn release_resident(&self) {
        match &self.file {
            KdumpFile::Plain(m) => super::mapped::release_map(m),
            KdumpFile::Flattened(f) => f.release_resident(),
        }
    }

    fn page(&self, mfn: Mfn) -> Result<Page<'_>, ReadError> {
        // Decoded pages stay in the cache too: a translator's prefix slot that is
        // evicted and needed again (two 2 MiB prefixes sharing a slot) then costs a
        // copy, not a decompression.
        let p = self.with_page(mfn.0, mfn.maddr(), |p| Box::new(*p))?;
        Ok(Page::Owned(p))
    }

    fn read(&self, addr: Maddr, buf: &mut [u8]) -> Result<(), ReadError> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr.checked_add(done as u64).ok_or(ReadError::Absent { addr, why: self.outside() })?;
            let off = (a.0 % PAGE_SIZE) as usize;
            let n = (PAGE - off).min(buf.len() - done);
            let dst = buf.get_mut(done..done + n).unwrap_or(&mut []);
            self.with_page(a.0 / PAGE_SIZE, a, |p| {
                if let Some(src) = p.get(off..off + n) {
                    dst.copy_from_slice(src);
                }
            })?;
            done += n;
        }
        Ok(())
    }

    fn locate(&self, addr: Maddr) -> Result<(), Absent> {
        let pfn = addr.0 / PAGE_SIZE;
        if self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(pfn).is_some() {
            return Ok(());
        }
        self.classify(pfn)
    }

    /// Runs of dumped pages (present) and of excluded pages (absent), in pfn order.
    /// Scans the bitmaps: O(max_mapnr / 8), for `info`.
    fn extents(&self) -> Vec<Extent> {
        let mut out: Vec<Extent> = Vec::new();
        let mut push = |pfn: u64, present: bool| {
            let start = Mfn(pfn).maddr();
            match out.last_mut() {
                Some(e) if e.present == present && e.start.0 + e.len == start.0 => e.len += PAGE_SIZE,
                _ => out.push(Extent { start, len: PAGE_SIZE, present }),
            }
        };
        let (lo, hi) = (self.lo, self.hi);
        let mut byte = lo / 8;
        let end_byte = hi.div_ceil(8);
        while byte < end_byte {
            let n = CHUNK.min(end_byte - byte);
            let (Some(b1), Some(b2)) =
                (self.file.bytes(self.bitmap1 + byte, n), self.file.bytes(self.bitmap2 + byte, n))
            else {
                break;
            };
            for (i, (&x1, &x2)) in b1.iter().zip(b2.iter()).enumerate() {
                let at = byte + i as u64;
                let m = byte_mask(at, lo, hi);
                let (x1, x2) = (x1 & m, x2 & m);
                if x1 | x2 == 0 {
                    continue;
                }
                for bit in 0..8 {
                    if x2 >> bit & 1 == 1 {
                        push(at * 8 + bit, true);
                    } else if x1 >> bit & 1 == 1 {
                        push(at * 8 + bit, false);
                    }
                }
            }
            byte += n;
        }
        out
    }
}
