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

// Parser of untrusted input: no unchecked indexing, no unwrap (STYLE.md §8).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

use super::flattened::{self, FlatError, FlatIndex, FlatSummary};
use super::{Absent, Extent, Page, PhysMem, ReadError, lzo};
use crate::addr::{Maddr, Mfn, PAGE_SIZE};
use crate::notes::{self, RawNote};
use memmap2::Mmap;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

const PAGE: usize = PAGE_SIZE as usize;
/// `sizeof(struct disk_dump_header)` on LP64.
const HEADER_SIZE: u64 = 464;
/// `sizeof(struct kdump_sub_header)` on LP64.
const SUB_HEADER_SIZE: u64 = 104;
/// `sizeof(page_desc_t)`.
const DESC_SIZE: u64 = 24;
/// The newest `header_version` makedumpfile writes (`write_kdump_header`: 6).
pub const NEWEST_HEADER_VERSION: u32 = 6;

/// `DUMP_DH_COMPRESSED_ZLIB`, in `status` and in a descriptor's `flags`.
pub const DUMP_DH_COMPRESSED_ZLIB: u32 = 0x1;
/// `DUMP_DH_COMPRESSED_LZO`.
pub const DUMP_DH_COMPRESSED_LZO: u32 = 0x2;
/// `DUMP_DH_COMPRESSED_SNAPPY`.
pub const DUMP_DH_COMPRESSED_SNAPPY: u32 = 0x4;
/// `DUMP_DH_COMPRESSED_INCOMPLETE`: the writer ran out of space (status only).
pub const DUMP_DH_COMPRESSED_INCOMPLETE: u32 = 0x8;
/// `DUMP_DH_EXCLUDED_VMEMMAP`: unused vmemmap pages excluded (status only).
pub const DUMP_DH_EXCLUDED_VMEMMAP: u32 = 0x10;
/// `DUMP_DH_COMPRESSED_ZSTD`.
pub const DUMP_DH_COMPRESSED_ZSTD: u32 = 0x20;

/// Status bits and their names, for `info`.
const STATUS_NAMES: [(u32, &str); 6] = [
    (DUMP_DH_COMPRESSED_ZLIB, "zlib"),
    (DUMP_DH_COMPRESSED_LZO, "lzo"),
    (DUMP_DH_COMPRESSED_SNAPPY, "snappy"),
    (DUMP_DH_COMPRESSED_INCOMPLETE, "incomplete"),
    (DUMP_DH_EXCLUDED_VMEMMAP, "excluded_vmemmap"),
    (DUMP_DH_COMPRESSED_ZSTD, "zstd"),
];

/// Pfns per entry of the prefix-count table: 512 bytes of bitmap.
const RANK_PFNS: u64 = 4096;
/// Pages kept decompressed (1 MiB).
pub const CACHE_PAGES: usize = 256;
/// Bytes read at a time when scanning a bitmap or the descriptors.
const CHUNK: u64 = 64 * 1024;

/// Whether `head` starts with a kdump-compressed signature.
pub fn is_kdump(head: &[u8]) -> bool {
    head.starts_with(b"KDUMP   ") || head.starts_with(b"DISKDUMP")
}

/// A malformed or unsupported kdump file: what was wrong and where. For a flattened
/// file the offset is in the file the records describe (what `makedumpfile -R`
/// would write), unless the flattened layer itself is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset:#x}: {what}")]
pub struct KdumpError {
    pub offset: u64,
    pub what: String,
}

fn err(offset: u64, what: impl Into<String>) -> KdumpError {
    KdumpError { offset, what: what.into() }
}

impl From<FlatError> for KdumpError {
    fn from(e: FlatError) -> Self {
        KdumpError { offset: e.offset, what: format!("flattened format: {}", e.what) }
    }
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

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// A NUL-terminated string field of at most `len` bytes.
fn cstr(b: &[u8], at: usize, len: usize) -> String {
    let f = b.get(at..at + len).unwrap_or(&[]);
    let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
    String::from_utf8_lossy(f.get(..end).unwrap_or(&[])).into_owned()
}

/// What the headers say, for `xenwalk info` (counted once at open; per-compression
/// counts come from [`KdumpImage::census`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdumpSummary {
    /// `"KDUMP"` or `"DISKDUMP"` (the old diskdump signature).
    pub signature: &'static str,
    /// The flattened layer, if the file is flattened.
    pub flattened: Option<FlatSummary>,
    pub header_version: u32,
    pub block_size: u32,
    pub sub_hdr_size: u32,
    pub bitmap_blocks: u32,
    /// Two bitmaps (exists, dumped) or one serving both.
    pub two_bitmaps: bool,
    pub status: u32,
    /// `dump_level` (sub-header version 1 and later).
    pub dump_level: Option<u32>,
    /// Pfns the bitmaps describe (`max_mapnr_64` from version 6, else `max_mapnr`).
    pub max_mapnr: u64,
    pub phys_base: Option<u64>,
    /// `[start_pfn, end_pfn)` of this part of a split dump.
    pub split: Option<(u64, u64)>,
    pub nr_cpus: u32,
    pub current_cpu: u32,
    /// `utsname.machine` / `utsname.release` (QEMU writes "Unknown").
    pub machine: String,
    pub release: String,
    /// `(offset, size)` of the copied ELF notes, VMCOREINFO and erase info.
    pub notes: Option<(u64, u64)>,
    pub vmcoreinfo: Option<(u64, u64)>,
    pub eraseinfo: Option<(u64, u64)>,
    /// File offset of the page descriptors.
    pub descriptors: u64,
    /// Pfns in the 1st bitmap (they exist), in the 2nd (they were dumped), and in
    /// the 1st only (excluded by the writer).
    pub pages_present: u64,
    pub pages_dumped: u64,
    pub pages_excluded: u64,
}

impl KdumpSummary {
    /// Names of the `status` bits that are set; unknown bits as hex.
    pub fn status_names(&self) -> Vec<String> {
        let mut v: Vec<String> =
            STATUS_NAMES.iter().filter(|(b, _)| self.status & b != 0).map(|(_, n)| n.to_string()).collect();
        let known = STATUS_NAMES.iter().fold(0, |a, (b, _)| a | b);
        if self.status & !known != 0 {
            v.push(format!("{:#x}", self.status & !known));
        }
        v
    }
}

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

/// How one page is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Zlib,
    Lzo,
    Snappy,
    Zstd,
}

impl Compression {
    /// The kind a descriptor's `flags` name; `None` for unknown or several bits.
    pub fn from_flags(flags: u32) -> Option<Compression> {
        Some(match flags {
            0 => Compression::None,
            DUMP_DH_COMPRESSED_ZLIB => Compression::Zlib,
            DUMP_DH_COMPRESSED_LZO => Compression::Lzo,
            DUMP_DH_COMPRESSED_SNAPPY => Compression::Snappy,
            DUMP_DH_COMPRESSED_ZSTD => Compression::Zstd,
            _ => return None,
        })
    }

    /// The descriptor flag for this kind.
    pub fn flag(self) -> u32 {
        match self {
            Compression::None => 0,
            Compression::Zlib => DUMP_DH_COMPRESSED_ZLIB,
            Compression::Lzo => DUMP_DH_COMPRESSED_LZO,
            Compression::Snappy => DUMP_DH_COMPRESSED_SNAPPY,
            Compression::Zstd => DUMP_DH_COMPRESSED_ZSTD,
        }
    }
}

/// zstd frames for one page: a window above this is refused before decoding, so a
/// crafted frame cannot make the decoder hold more than this (plus one 128 KiB block).
const ZSTD_MAX_WINDOW: u64 = 1 << 20;

/// Window size a zstd frame header asks for (RFC 8878 §3.1.1.1), or an error.
fn zstd_window(src: &[u8]) -> Result<u64, &'static str> {
    const BAD: &str = "zstd frame header is truncated or invalid";
    if src.get(..4) != Some(&[0x28, 0xb5, 0x2f, 0xfd][..]) {
        return Err("zstd data lacks the frame magic");
    }
    let fhd = *src.get(4).ok_or(BAD)?;
    let single = fhd & 0x20 != 0;
    if !single {
        let wd = *src.get(5).ok_or(BAD)?;
        let log = 10 + u64::from(wd >> 3);
        let base = 1u64 << log;
        return Ok(base + (base / 8) * u64::from(wd & 7));
    }
    // Single segment: the window is the content size.
    let dict = match fhd & 3 {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => 4,
    };
    let at = 5 + dict;
    let fcs = match fhd >> 6 {
        0 => u64::from(*src.get(at).ok_or(BAD)?),
        1 => {
            let b = src.get(at..at + 2).ok_or(BAD)?;
            u64::from(u16::from_le_bytes(b.try_into().map_err(|_| BAD)?)) + 256
        }
        2 => u64::from(u32::from_le_bytes(src.get(at..at + 4).ok_or(BAD)?.try_into().map_err(|_| BAD)?)),
        _ => u64::from_le_bytes(src.get(at..at + 8).ok_or(BAD)?.try_into().map_err(|_| BAD)?),
    };
    Ok(fcs)
}

fn zstd_page(src: &[u8], out: &mut [u8; PAGE]) -> Result<(), &'static str> {
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
    use std::io::Read;
    if zstd_window(src)? > ZSTD_MAX_WINDOW {
        return Err("zstd frame asks for a window larger than 1 MiB: not a single page");
    }
    let mut input = src;
    let mut dec = FrameDecoder::new();
    dec.init(&mut input).map_err(|_| "zstd frame header is invalid")?;
    let mut done = 0usize;
    loop {
        let finished = dec
            .decode_blocks(&mut input, BlockDecodingStrategy::UptoBlocks(1))
            .map_err(|_| "zstd data is corrupt or truncated")?;
        // Drain what the decoder may hand out; more than a page is an error.
        let dst = out.get_mut(done..).unwrap_or(&mut []);
        done += dec.read(dst).map_err(|_| "zstd data is corrupt")?;
        if dec.can_collect() > 0 {
            return Err("zstd data decompresses past the end of the page");
        }
        if finished {
            break;
        }
    }
    if !input.is_empty() {
        return Err("zstd data continues after its frame");
    }
    if let (Some(want), Some(got)) = (dec.get_checksum_from_data(), dec.get_calculated_checksum()) {
        if want != got {
            return Err("zstd content checksum does not match");
        }
    }
    if done != PAGE {
        return Err("zstd data does not decompress to exactly one 4 KiB page");
    }
    Ok(())
}

/// Decode one page stored as `kind` into `out`. Every way of failing is an error
/// (never a panic, never output past the page).
pub fn decompress(kind: Compression, src: &[u8], out: &mut [u8; PAGE]) -> Result<(), &'static str> {
    match kind {
        Compression::None => {
            let p: &[u8; PAGE] = src.try_into().map_err(|_| "uncompressed page data is not 4096 bytes")?;
            out.copy_from_slice(p);
            Ok(())
        }
        Compression::Zlib => {
            // makedumpfile `compress2`, crash `uncompress`: a zlib stream (RFC 1950).
            // zlib-rs's one-shot `uncompress` (zlib's, ported): the whole page in one
            // call, Z_BUF_ERROR when the data would inflate past the page and
            // Z_DATA_ERROR when it is corrupt or ends early (zlib.h, uncompress()).
            let (got, code) = zlib_rs::decompress_slice(out, src, zlib_rs::InflateConfig::default());
            match code {
                zlib_rs::ReturnCode::Ok if got.len() == PAGE => Ok(()),
                zlib_rs::ReturnCode::Ok => Err("zlib data does not inflate to exactly one 4 KiB page"),
                zlib_rs::ReturnCode::BufError => Err("zlib data inflates past the end of the page"),
                _ => Err("zlib data is corrupt or truncated"),
            }
        }
        Compression::Lzo => match lzo::decompress(src, out) {
            Ok(PAGE) => Ok(()),
            Ok(_) => Err("LZO data does not decompress to exactly one 4 KiB page"),
            Err(e) => Err(e),
        },
        Compression::Snappy => {
            // makedumpfile `snappy_compress`: the raw (unframed) snappy format.
            match snap::raw::decompress_len(src) {
                Ok(PAGE) => {}
                Ok(_) => return Err("snappy data does not claim exactly one 4 KiB page"),
                Err(_) => return Err("snappy data is corrupt"),
            }
            match snap::raw::Decoder::new().decompress(src, out) {
                Ok(PAGE) => Ok(()),
                Ok(_) => Err("snappy data does not decompress to exactly one 4 KiB page"),
                Err(_) => Err("snappy data is corrupt or truncated"),
            }
        }
        Compression::Zstd => zstd_page(src, out),
    }
}

/// A bounded cache of decompressed pages with round-robin eviction.
struct PageCache {
    slots: Vec<(u64, Box<[u8; PAGE]>)>,
    index: HashMap<u64, usize>,
    hand: usize,
}

impl PageCache {
    fn new() -> PageCache {
        PageCache { slots: Vec::new(), index: HashMap::new(), hand: 0 }
    }

    fn get(&self, pfn: u64) -> Option<&[u8; PAGE]> {
        let i = *self.index.get(&pfn)?;
        self.slots.get(i).map(|(_, p)| &**p)
    }

    fn put(&mut self, pfn: u64, page: Box<[u8; PAGE]>) {
        if self.index.contains_key(&pfn) {
            return;
        }
        if self.slots.len() < CACHE_PAGES {
            self.index.insert(pfn, self.slots.len());
            self.slots.push((pfn, page));
            return;
        }
        let i = self.hand % CACHE_PAGES;
        self.hand = (i + 1) % CACHE_PAGES;
        if let Some(slot) = self.slots.get_mut(i) {
            self.index.remove(&slot.0);
            *slot = (pfn, page);
            self.index.insert(pfn, i);
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
pub fn open_plain(map: Mmap) -> Result<Kdump, KdumpError> {
    open(KdumpFile::Plain(map))
}

/// Open a flattened file, which must hold a kdump-compressed file.
pub fn open_flattened(map: Mmap) -> Result<Kdump, KdumpError> {
    let flat = flattened::parse(map)?;
    let head = flat.slice(0, 8).map(<[u8]>::to_vec).unwrap_or_else(|| {
        let mut h = vec![0u8; 8];
        if !flat.read(0, &mut h) {
            h.clear();
        }
        h
    });
    if head.starts_with(b"\x7fELF") {
        return Err(err(
            0,
            "a flattened ELF core (makedumpfile -F -E) is not supported yet: rebuild it with \
             `makedumpfile -R OUT < FILE` and pass OUT",
        ));
    }
    if !is_kdump(&head) {
        return Err(err(
            flattened::FLAT_HEADER_SIZE,
            "the flattened records do not hold a kdump-compressed file (no \"KDUMP   \" signature \
             at offset 0 of the file they describe)",
        ));
    }
    open(KdumpFile::Flattened(flat))
}

/// Parse the headers of the logical kdump file `file` and index its bitmaps.
pub fn open(file: KdumpFile) -> Result<Kdump, KdumpError> {
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
        err(0, format!("the file is {len} bytes, too short for the {HEADER_SIZE}-byte kdump header: truncated"))
    })?;
    let h: &[u8] = &h;
    let diskdump = h.starts_with(b"DISKDUMP");
    if !diskdump && !h.starts_with(b"KDUMP   ") {
        return Err(err(0, "no kdump signature (\"KDUMP   \" or \"DISKDUMP\")"));
    }
    let raw_version = u32_at(h, 8) as i32;
    let Ok(header_version) = u32::try_from(raw_version) else {
        return Err(err(8, format!("negative header_version {raw_version}")));
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
        return Err(err(428, format!("block size {block_size}: only 4096-byte pages (x86-64) are supported")));
    }
    let raw_sub = u32_at(h, 432) as i32;
    let Ok(sub_hdr_size) = u32::try_from(raw_sub) else {
        return Err(err(432, format!("negative sub_hdr_size {raw_sub}")));
    };
    if !diskdump && sub_hdr_size == 0 {
        return Err(err(432, "sub_hdr_size 0 leaves no block for the kdump sub-header"));
    }
    let bitmap_blocks = u32_at(h, 436);
    if bitmap_blocks == 0 {
        return Err(err(436, "bitmap_blocks 0: the dump has no bitmaps"));
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
                err(
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
        return Err(err(mapnr_at, "max_mapnr 0: the dump describes no memory"));
    }
    let split = if split_flag {
        let (s, e, at) = if v >= 6 { (field(80), field(88), block + 80) } else { (field(16), field(24), block + 16) };
        if s >= e || e > max_mapnr {
            return Err(err(
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
        return Err(err(
            436,
            format!(
                "the bitmaps ({bitmap_blocks} blocks at {bitmap_off:#x}) run past the end of the file \
                 ({len} bytes): truncated or not a kdump file"
            ),
        ));
    }
    if bitmap_len > file.stored() {
        return Err(err(
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
        return Err(err(
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
    let check_range = |what: &str, r: Option<(u64, u64)>, at: u64| -> Result<(), KdumpError> {
        if let Some((o, s)) = r {
            if o.checked_add(s).is_none_or(|e| e > len) || s > file.stored() {
                return Err(err(
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

/// Mask of the bits of bitmap byte `byte` that fall in `[lo, hi)` pfns.
fn byte_mask(byte: u64, lo: u64, hi: u64) -> u8 {
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
    /// What the headers say.
    pub fn summary(&self) -> &KdumpSummary {
        &self.summary
    }

    /// One pass over both bitmaps: the prefix counts of the 2nd, the counts of
    /// present, dumped and excluded pages, and the first and last present pfn.
    fn index_bitmaps(&mut self) -> Result<(), KdumpError> {
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
                return Err(err(self.bitmap1 + pos, "the bitmaps run past the end of the file: truncated"));
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
    fn rank2(&self, pfn: u64) -> Option<u64> {
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

    fn outside(&self) -> Absent {
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
    fn classify(&self, pfn: u64) -> Result<(), Absent> {
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

impl PhysMem for KdumpImage {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seed: u64) -> Box<[u8; PAGE]> {
        let mut p = Box::new([0u8; PAGE]);
        let mut x = seed | 1;
        for (i, b) in p.iter_mut().enumerate() {
            *b = if i % 128 < 96 {
                (i / 128) as u8
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            };
        }
        p
    }

    fn round_trip(kind: Compression, data: &[u8]) {
        let mut out = [0u8; PAGE];
        decompress(kind, data, &mut out).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(&out[..], &page(7)[..], "{kind:?}");
    }

    #[test]
    fn every_compression_round_trips() {
        let p = page(7);
        round_trip(Compression::None, &p[..]);
        round_trip(Compression::Zlib, &miniz_oxide::deflate::compress_to_vec_zlib(&p[..], 6));
        round_trip(Compression::Lzo, &lzokay_native::compress(&p[..]).unwrap());
        round_trip(Compression::Lzo, &crate::fixture::kdump::lzo_compress(&p[..]));
        round_trip(Compression::Snappy, &snap::raw::Encoder::new().compress_vec(&p[..]).unwrap());
        round_trip(
            Compression::Zstd,
            &ruzstd::encoding::compress_to_vec(&p[..], ruzstd::encoding::CompressionLevel::Fastest),
        );
    }

    #[test]
    fn corrupt_pages_are_errors() {
        let p = page(7);
        let big = [0x5au8; 2 * PAGE];
        let small = [0x5au8; 100];
        let mut out = [0u8; PAGE];
        let cases: Vec<(Compression, Vec<u8>)> = vec![
            (Compression::None, p[..100].to_vec()),
            (Compression::Zlib, miniz_oxide::deflate::compress_to_vec_zlib(&big, 6)),
            (Compression::Zlib, miniz_oxide::deflate::compress_to_vec_zlib(&small, 6)),
            (Compression::Zlib, vec![0x78, 0x9c, 0xff, 0xff]),
            (Compression::Lzo, lzokay_native::compress(&big).unwrap()),
            (Compression::Snappy, snap::raw::Encoder::new().compress_vec(&big).unwrap()),
            (Compression::Snappy, snap::raw::Encoder::new().compress_vec(&small).unwrap()),
            (
                Compression::Zstd,
                ruzstd::encoding::compress_to_vec(&big[..], ruzstd::encoding::CompressionLevel::Fastest),
            ),
            (
                Compression::Zstd,
                ruzstd::encoding::compress_to_vec(&small[..], ruzstd::encoding::CompressionLevel::Fastest),
            ),
            (Compression::Zstd, vec![0x28, 0xb5, 0x2f, 0xfd, 0x00]),
            (Compression::Zstd, vec![1, 2, 3]),
        ];
        for (kind, data) in &cases {
            assert!(decompress(*kind, data, &mut out).is_err(), "{kind:?} of {} bytes was accepted", data.len());
        }
        // Every truncation and many corruptions of each kind: errors, no panic.
        let good: Vec<(Compression, Vec<u8>)> = vec![
            (Compression::Zlib, miniz_oxide::deflate::compress_to_vec_zlib(&p[..], 6)),
            (Compression::Snappy, snap::raw::Encoder::new().compress_vec(&p[..]).unwrap()),
            (Compression::Zstd, ruzstd::encoding::compress_to_vec(&p[..], ruzstd::encoding::CompressionLevel::Fastest)),
        ];
        for (kind, data) in &good {
            for cut in 0..data.len() {
                assert!(decompress(*kind, &data[..cut], &mut out).is_err(), "{kind:?} cut {cut}");
            }
            for i in 0..data.len() {
                let mut bad = data.clone();
                bad[i] ^= 0xa5;
                let _ = decompress(*kind, &bad, &mut out);
            }
        }
    }

    #[test]
    fn zstd_windows_are_bounded() {
        // Frame header with a 2 GiB window (not single segment).
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8, 0x01, 0x00, 0x00];
        assert_eq!(zstd_window(&frame), Ok(1 << 31));
        let mut out = [0u8; PAGE];
        assert!(decompress(Compression::Zstd, &frame, &mut out).is_err());
        // A real frame of one page asks for a small window.
        let p = page(7);
        let c = ruzstd::encoding::compress_to_vec(&p[..], ruzstd::encoding::CompressionLevel::Fastest);
        assert!(zstd_window(&c).unwrap() <= ZSTD_MAX_WINDOW);
    }

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

    #[test]
    fn status_names() {
        let mut s = KdumpSummary {
            signature: "KDUMP",
            flattened: None,
            header_version: 6,
            block_size: 4096,
            sub_hdr_size: 1,
            bitmap_blocks: 2,
            two_bitmaps: true,
            status: DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_INCOMPLETE | 0x100,
            dump_level: Some(31),
            max_mapnr: 8,
            phys_base: Some(0),
            split: None,
            nr_cpus: 1,
            current_cpu: 0,
            machine: String::new(),
            release: String::new(),
            notes: None,
            vmcoreinfo: None,
            eraseinfo: None,
            descriptors: 0,
            pages_present: 0,
            pages_dumped: 0,
            pages_excluded: 0,
        };
        assert_eq!(s.status_names(), ["zlib", "incomplete", "0x100"]);
        s.status = 0;
        assert!(s.status_names().is_empty());
    }

    #[test]
    fn cache_is_bounded() {
        let mut c = PageCache::new();
        for pfn in 0..(CACHE_PAGES as u64 * 3) {
            c.put(pfn, Box::new([pfn as u8; PAGE]));
            assert_eq!(c.get(pfn).map(|p| p[0]), Some(pfn as u8));
        }
        assert_eq!(c.slots.len(), CACHE_PAGES);
        assert_eq!(c.index.len(), CACHE_PAGES);
        assert!(c.get(0).is_none());
    }
}
