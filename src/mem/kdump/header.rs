//! The kdump headers' layout: the sizes of `disk_dump_header`, `kdump_sub_header` and
//! `page_desc_t`, the `status` and descriptor flag bits, little-endian field readers, and
//! [`KdumpSummary`] (what the headers say, for `xenwalk info`). The headers themselves
//! are parsed in [`super::open`].

use crate::mem::flattened::FlatSummary;

/// `sizeof(struct disk_dump_header)` on LP64.
pub(super) const HEADER_SIZE: u64 = 464;
/// `sizeof(struct kdump_sub_header)` on LP64.
pub(super) const SUB_HEADER_SIZE: u64 = 104;
/// `sizeof(page_desc_t)`.
pub(super) const DESC_SIZE: u64 = 24;
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

pub(super) fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes)
}

pub(super) fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// A NUL-terminated string field of at most `len` bytes.
pub(super) fn cstr(b: &[u8], at: usize, len: usize) -> String {
    let f = b.get(at..at + len).unwrap_or(&[]);
    let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
    String::from_utf8_lossy(f.get(..end).unwrap_or(&[])).into_owned()
}

/// What the headers say, for `xenwalk info` (counted once at open; per-compression
/// counts come from [`KdumpImage::census`](super::KdumpImage::census)).
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
