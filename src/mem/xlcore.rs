//! `xl dump-core` guest cores: one domain's memory as the toolstack saw it.
//!
//! Layout (reference `xen-x86-64.md` §7c; `X:tools/libs/guest/xg_core.[ch]@4.17.0`,
//! `X:docs/misc/dump-core-format.txt@4.17.0`): an ELF64 `ET_CORE` with **no program
//! headers**; section headers right after the ELF header; `e_machine` EM_X86_64, or
//! EM_386 for a 32-bit PV guest. Sections, found by name:
//!
//! * `.note.Xen`: notes named "Xen": `DUMPCORE_NONE` (0x2000000, empty),
//!   `DUMPCORE_HEADER` (0x2000001: u64 `xch_magic` 0xF00FEBED PV / 0xF00FEBEE HVM,
//!   `xch_nr_vcpus`, `xch_nr_pages`, `xch_page_size`), `DUMPCORE_XEN_VERSION`
//!   (0x2000002: u64 major, minor, `extra_version[16]`, compile info (144 bytes),
//!   `capabilities[1024]` @176, `changeset[64]` @1200, platform parameters, u64
//!   `pagesize` last), `DUMPCORE_FORMAT_VERSION` (0x2000003: u64 major << 32 | minor);
//! * `.xen_prstatus`: `vcpu_guest_context_any_t[nr_vcpus]`, 5168 bytes each (the x86_64
//!   layout: `flags` @512, `user_regs` @520 with rip +128 and rsp +152, `ctrlreg[8]`
//!   @4984). xg_core writes one context per vCPU whose context it could read, in
//!   vCPU-id order, so entry N is the N-th such vCPU;
//! * `.xen_shared_info`: the shared-info page (absent for some HVM guests);
//! * `.xen_pages`: the pages, page-aligned;
//! * `.xen_p2m` (PV): `{u64 pfn, u64 gmfn}` per page of `.xen_pages`, ascending pfn;
//!   `.xen_pfn` (HVM): `u64 pfn` per page. `~0` entries pad a live dump whose guest
//!   shrank (their pages are zeros) and describe nothing.
//!
//! **Address space.** A guest core holds only the guest's own pages, and the frames
//! that name them differ by guest type. The [`PhysMem`] of a core is indexed by the
//! frames the guest's own page tables hold:
//! * PV: machine frames. A 64-bit PV guest's CR3 (`ctrlreg[3]` = `mfn << 12`,
//!   `arch_get_info_guest`, `X:xen/arch/x86/domctl.c@4.17.0`) and every entry of its
//!   tables hold mfns, so the core is indexed by mfn through the *inverted* `.xen_p2m`
//!   (gmfn → page index). A walk from the guest's CR3 then reads the guest's tables
//!   exactly as the MMU did; a frame the guest did not own (Xen's own tables in the
//!   hypervisor slots 256–271, another domain's page, a grant) is absent: not in this
//!   guest core. [`XlCore::pfn_to_mfn`] and [`XlCore::mfn_to_pfn`] answer the p2m.
//! * HVM: guest-physical frames. `ctrlreg[3]` is the guest's CR3 (a gpa) and its
//!   tables hold gfns; the core is indexed by gfn through `.xen_pfn`. Addresses that
//!   xenwalk prints as "maddr" are then guest-physical; the core has no machine frames.
//!
//! Costs: opening reads the section headers, the notes, the vCPU contexts and the
//! p2m/pfn table once, keeping sorted (frame, page index) pairs (16 bytes per page,
//! and for PV another 16 for pfn → mfn): O(pages log pages) time. Pages are borrowed
//! from the memory map, never copied. Every size is checked against the file before
//! anything is allocated, so a header that claims more than the file holds is an
//! error, not an allocation.

// Parser of untrusted input: no unchecked indexing, no unwrap (STYLE.md §8).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

use super::{Absent, Extent, Malformed, Page, PhysMem, ReadError};
use crate::addr::{Gfn, Gpa, Maddr, Mfn, PAGE_SIZE, Pfn, hex, hex_opt};
use crate::notes::{self, RawNote};
use memmap2::Mmap;
use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader};
use serde::Serialize;

const PAGE: usize = PAGE_SIZE as usize;

/// `XC_CORE_MAGIC`: the core of a PV guest.
pub const XC_CORE_MAGIC: u64 = 0xF00F_EBED;
/// `XC_CORE_MAGIC_HVM`: the core of an HVM guest.
pub const XC_CORE_MAGIC_HVM: u64 = 0xF00F_EBEE;
/// `XEN_ELFNOTE_DUMPCORE_NONE`.
pub const NOTE_NONE: u32 = 0x200_0000;
/// `XEN_ELFNOTE_DUMPCORE_HEADER`.
pub const NOTE_HEADER: u32 = 0x200_0001;
/// `XEN_ELFNOTE_DUMPCORE_XEN_VERSION`.
pub const NOTE_XEN_VERSION: u32 = 0x200_0002;
/// `XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION`.
pub const NOTE_FORMAT_VERSION: u32 = 0x200_0003;
/// `sizeof(vcpu_guest_context_any_t)` on x86: the x86_64 layout, the larger of the union.
pub const VCPU_CONTEXT_SIZE: u64 = 5168;
/// `offsetof(vcpu_guest_context, ctrlreg)` (x86_64).
pub const CTRLREG_OFFSET: usize = 4984;
/// `offsetof(vcpu_guest_context, flags)` and `user_regs` (x86_64).
const FLAGS_OFFSET: usize = 512;
const USER_REGS_OFFSET: usize = 520;
/// `XC_CORE_INVALID_PFN` / `XC_CORE_INVALID_GMFN`.
const INVALID: u64 = u64::MAX;
/// Frames at or above this do not fit a 52-bit physical address.
const FRAME_LIMIT: u64 = 1 << (52 - 12);

/// Section names (`XEN_DUMPCORE_SEC_*`).
const SEC_NOTE: &[u8] = b".note.Xen";
const SEC_PRSTATUS: &[u8] = b".xen_prstatus";
const SEC_SHARED_INFO: &[u8] = b".xen_shared_info";
const SEC_PAGES: &[u8] = b".xen_pages";
const SEC_P2M: &[u8] = b".xen_p2m";
const SEC_PFN: &[u8] = b".xen_pfn";

/// PV (machine frames, `.xen_p2m`) or HVM (guest-physical frames, `.xen_pfn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestKind {
    Pv,
    Hvm,
}

impl GuestKind {
    pub fn name(self) -> &'static str {
        match self {
            GuestKind::Pv => "PV",
            GuestKind::Hvm => "HVM",
        }
    }
}

/// What one vCPU context says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VcpuState {
    /// Position in `.xen_prstatus` (what `--vcpu` takes).
    pub vcpu: usize,
    #[serde(serialize_with = "hex")]
    pub flags: u64,
    #[serde(serialize_with = "hex_opt")]
    pub rip: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub rsp: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub cr0: Option<u64>,
    /// `ctrlreg[3]`: PV, mfn << 12 of the kernel L4 (a machine address); HVM, the
    /// guest's CR3 (guest-physical). Null for a 32-bit guest (not decoded).
    #[serde(serialize_with = "hex_opt")]
    pub cr3: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub cr4: Option<u64>,
    /// `ctrlreg[1]` of a 64-bit PV guest: its user L4 (mfn << 12), null if none.
    #[serde(serialize_with = "hex_opt")]
    pub user_cr3: Option<u64>,
}

/// The `DUMPCORE_HEADER` note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CoreHeader {
    #[serde(serialize_with = "hex")]
    pub magic: u64,
    pub nr_vcpus: u64,
    pub nr_pages: u64,
    pub page_size: u64,
}

/// The `DUMPCORE_XEN_VERSION` note: the hypervisor the guest ran on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CoreXenVersion {
    pub major: u64,
    pub minor: u64,
    pub extra_version: String,
    pub changeset: String,
    pub capabilities: String,
    pub page_size: Option<u64>,
}

/// What a PV guest's shared-info page says about its p2m (reference §5.2: `arch.max_pfn`
/// @3088, `pfn_to_mfn_frame_list_list` @3096, `p2m_cr3` @3112, `p2m_vaddr` @3120).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SharedInfoP2m {
    #[serde(serialize_with = "hex")]
    pub max_pfn: u64,
    #[serde(serialize_with = "hex")]
    pub pfn_to_mfn_frame_list_list: u64,
    #[serde(serialize_with = "hex")]
    pub p2m_cr3: u64,
    #[serde(serialize_with = "hex")]
    pub p2m_vaddr: u64,
}

/// One section, for `info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SectionInfo {
    pub name: String,
    #[serde(serialize_with = "hex")]
    pub offset: u64,
    pub size: u64,
}

/// What the headers, notes and contexts say, for `xenwalk info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct XlCoreSummary {
    pub kind: GuestKind,
    /// 64, or 32 for a 32-bit PV guest (`e_machine` EM_386).
    pub guest_width: u8,
    pub header: Option<CoreHeader>,
    pub xen_version: Option<CoreXenVersion>,
    /// `(major, minor)` of the dump-core format (Xen writes 0.1); JSON `"0.1"`.
    #[serde(serialize_with = "dotted")]
    pub format_version: Option<(u32, u32)>,
    pub vcpus: Vec<VcpuState>,
    /// Pages in `.xen_pages`, and how many of them the p2m/pfn table marks invalid.
    pub pages: u64,
    pub invalid_entries: u64,
    /// File offset of `.xen_pages`.
    #[serde(serialize_with = "hex")]
    pub pages_offset: u64,
    pub shared_info: Option<SharedInfoP2m>,
    pub sections: Vec<SectionInfo>,
}

/// An opened guest core: memory indexed as the guest's tables expect (see the
/// module doc), the p2m, and what the notes say.
pub struct XlCore {
    map: Mmap,
    pages_off: u64,
    /// (frame, page index, pfn), sorted by frame: mfn for PV, gfn (= pfn) for HVM.
    by_frame: Vec<(u64, u64, u64)>,
    /// PV only: (pfn, mfn), sorted by pfn.
    p2m: Vec<(u64, u64)>,
    summary: XlCoreSummary,
}

/// A parsed core with the notes and problems that did not stop parsing.
pub struct Opened {
    pub core: XlCore,
    pub notes: Vec<RawNote>,
    pub warnings: Vec<String>,
}

/// Why a p2m lookup has no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum P2mError {
    /// An HVM core records guest frames only: machine frames are not in it.
    #[error("an HVM guest core records guest-physical frames only (.xen_pfn): it has no p2m")]
    Hvm,
    /// No page of the core has this frame.
    #[error("not in this guest core: no page of .xen_p2m has it")]
    NotInCore,
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at.checked_add(8)?).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes)
}

fn dotted<S: serde::Serializer>(v: &Option<(u32, u32)>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some((a, b)) => s.collect_str(&format_args!("{a}.{b}")),
        None => s.serialize_none(),
    }
}

fn cstr(b: &[u8], at: usize, len: usize) -> String {
    let f = at.checked_add(len).and_then(|e| b.get(at..e)).unwrap_or(&[]);
    let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
    String::from_utf8_lossy(f.get(..end).unwrap_or(&[])).into_owned()
}

/// Whether `data` (an ELF file) is taken as an `xl dump-core` core: ELF64 `ET_CORE`
/// with no program headers (so no memory a vmcore reader could use) and section
/// headers. Damaged section headers still make it one, so that [`parse`] says what is
/// wrong with them. Reads the ELF header only.
pub fn is_xl_core(data: &[u8]) -> bool {
    let Ok(hdr) = elf::FileHeader64::<LE>::parse(data) else { return false };
    hdr.e_type(LE) == elf::ET_CORE && hdr.e_phnum(LE) == 0 && hdr.e_shoff(LE) != 0
}

/// Parse `map`, an `xl dump-core` core ([`is_xl_core`] holds).
pub fn parse(map: Mmap) -> Result<Opened, Malformed> {
    let data: &[u8] = &map;
    let file_len = data.len() as u64;
    if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err(Malformed::new(4, "an xl dump-core core is ELF64 little-endian"));
    }
    let hdr = elf::FileHeader64::<LE>::parse(data).map_err(|e| Malformed::new(0, format!("bad ELF header: {e}")))?;
    let guest_width = match hdr.e_machine(LE) {
        elf::EM_X86_64 => 64,
        elf::EM_386 => 32,
        m => return Err(Malformed::new(18, format!("ELF machine {m}: an x86 guest core is EM_X86_64 or EM_386"))),
    };
    let shoff = hdr.e_shoff(LE);
    let table = hdr.sections(LE, data).map_err(|e| {
        Malformed::new(
            shoff,
            format!(
                "section headers (e_shoff {shoff:#x}) or their name table cannot be read ({e}): the core is \
                 truncated or corrupt"
            ),
        )
    })?;
    // Every section's file range, checked against the file (the name table too: it is
    // the last thing xg_core writes, so a truncated core loses it first).
    for (i, sh) in table.iter().enumerate() {
        let (off, size) = (sh.sh_offset(LE), sh.sh_size(LE));
        if sh.sh_type(LE) != elf::SHT_NOBITS && off.checked_add(size).is_none_or(|e| e > file_len) {
            let name = table.section_name(LE, sh).map(String::from_utf8_lossy).unwrap_or_default();
            return Err(Malformed::new(
                shoff.saturating_add(i as u64 * 64),
                format!(
                    "section {i} {name:?} ({size:#x} bytes at {off:#x}) runs past the end of the file \
                     ({file_len:#x} bytes): the core is truncated"
                ),
            ));
        }
    }
    let mut warnings = Vec::new();
    // The sections xenwalk reads.
    let mut infos = Vec::new();
    let mut find = |name: &[u8]| -> Result<Option<(u64, u64)>, Malformed> {
        let Some((index, sh)) = table.section_by_name(LE, name) else { return Ok(None) };
        let (off, size) = (sh.sh_offset(LE), sh.sh_size(LE));
        let label = String::from_utf8_lossy(name).into_owned();
        if off.checked_add(size).is_none_or(|e| e > file_len) {
            return Err(Malformed::new(
                shoff.saturating_add(index.0 as u64 * 64),
                format!("section {label} lies past the end"),
            ));
        }
        infos.push(SectionInfo { name: label, offset: off, size });
        Ok(Some((off, size)))
    };
    let note_sec = find(SEC_NOTE)?;
    let prstatus = find(SEC_PRSTATUS)?;
    let shinfo = find(SEC_SHARED_INFO)?;
    let pages = find(SEC_PAGES)?;
    let p2m_sec = find(SEC_P2M)?;
    let pfn_sec = find(SEC_PFN)?;
    let slice = |(off, size): (u64, u64)| -> &[u8] {
        // Checked against the file above; usize holds any in-file offset.
        usize::try_from(off)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| data.get(o..o.checked_add(s)?))
            .unwrap_or(&[])
    };

    // Notes.
    let mut raw_notes = Vec::new();
    let mut header = None;
    let mut xen_version = None;
    let mut format_version = None;
    match note_sec {
        None => warnings.push("no .note.Xen section: header, Xen version and format version unknown".into()),
        Some(r) => {
            if let Err(e) = notes::parse_stream(slice(r), r.0, 4, &mut raw_notes) {
                warnings.push(format!(".note.Xen: {e}"));
            }
        }
    }
    for n in raw_notes.iter().filter(|n| n.name == "Xen") {
        let d = &n.desc;
        match n.n_type {
            NOTE_HEADER => match (u64_at(d, 0), u64_at(d, 8), u64_at(d, 16), u64_at(d, 24)) {
                (Some(magic), Some(nr_vcpus), Some(nr_pages), Some(page_size)) => {
                    header = Some(CoreHeader { magic, nr_vcpus, nr_pages, page_size })
                }
                _ => warnings.push(format!("DUMPCORE_HEADER note at {:#x}: {} bytes, expected 32", n.offset, d.len())),
            },
            NOTE_XEN_VERSION => match (u64_at(d, 0), u64_at(d, 8)) {
                (Some(major), Some(minor)) => {
                    xen_version = Some(CoreXenVersion {
                        major,
                        minor,
                        extra_version: cstr(d, 16, 16),
                        capabilities: cstr(d, 176, 1024),
                        changeset: cstr(d, 1200, 64),
                        page_size: d.len().checked_sub(8).and_then(|at| u64_at(d, at)),
                    })
                }
                _ => warnings.push(format!("DUMPCORE_XEN_VERSION note at {:#x} is too short", n.offset)),
            },
            NOTE_FORMAT_VERSION => match u64_at(d, 0) {
                Some(v) => format_version = Some(((v >> 32) as u32, v as u32)),
                None => warnings.push(format!("DUMPCORE_FORMAT_VERSION note at {:#x} is too short", n.offset)),
            },
            _ => {}
        }
    }

    let Some(pages) = pages else {
        return Err(Malformed::new(
            shoff,
            "an ELF core without program headers (so no memory segments) and without a .xen_pages section: \
             neither a vmcore nor an xl dump-core guest core",
        ));
    };
    // Guest kind: the table section, cross-checked with the header's magic.
    let kind = match (p2m_sec, pfn_sec) {
        (Some(_), None) => GuestKind::Pv,
        (None, Some(_)) => GuestKind::Hvm,
        (Some(_), Some(_)) => return Err(Malformed::new(shoff, "the core has both .xen_p2m (PV) and .xen_pfn (HVM)")),
        (None, None) => {
            return Err(Malformed::new(
                shoff,
                "the core has neither .xen_p2m (PV) nor .xen_pfn (HVM): its pages cannot be placed",
            ));
        }
    };
    if let Some(h) = &header {
        let says = match h.magic {
            XC_CORE_MAGIC => Some(GuestKind::Pv),
            XC_CORE_MAGIC_HVM => Some(GuestKind::Hvm),
            _ => None,
        };
        match says {
            Some(k) if k != kind => {
                return Err(Malformed::new(
                    note_sec.map_or(0, |r| r.0),
                    format!(
                        "the header note's magic {:#x} says {} but the core has a {} table",
                        h.magic,
                        k.name(),
                        if kind == GuestKind::Pv { ".xen_p2m" } else { ".xen_pfn" }
                    ),
                ));
            }
            Some(_) => {}
            None => warnings.push(format!("unknown dump-core magic {:#x} in the header note", h.magic)),
        }
        if h.page_size != PAGE_SIZE {
            return Err(Malformed::new(
                note_sec.map_or(0, |r| r.0),
                format!("page size {} in the header note: only 4096-byte pages (x86) are supported", h.page_size),
            ));
        }
    }
    if let Some(v) = format_version.filter(|v| v.0 != 0) {
        warnings.push(format!("dump-core format version {}.{} is newer than 0.x, the one known", v.0, v.1));
    }

    // Pages and their frames.
    if pages.1 % PAGE_SIZE != 0 {
        return Err(Malformed::new(
            pages.0,
            format!(".xen_pages is {:#x} bytes, not a whole number of 4 KiB pages", pages.1),
        ));
    }
    let n = pages.1 / PAGE_SIZE;
    let (table_sec, entry) = match kind {
        GuestKind::Pv => (p2m_sec, 16u64),
        GuestKind::Hvm => (pfn_sec, 8u64),
    };
    let Some(table_sec) = table_sec else { return Err(Malformed::new(shoff, "no p2m/pfn section")) };
    if table_sec.1 != n.saturating_mul(entry) {
        return Err(Malformed::new(
            table_sec.0,
            format!(
                "{} has {} bytes for {n} pages of .xen_pages (expected {entry} bytes per page)",
                if kind == GuestKind::Pv { ".xen_p2m" } else { ".xen_pfn" },
                table_sec.1
            ),
        ));
    }
    if let Some(h) = header.as_ref().filter(|h| h.nr_pages != n) {
        warnings.push(format!("the header note says {} pages, .xen_pages holds {n}", h.nr_pages));
    }
    let entries = slice(table_sec);
    let mut by_frame = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut p2m = Vec::new();
    let mut invalid = 0u64;
    for (i, e) in entries.chunks_exact(entry as usize).enumerate() {
        let i = i as u64;
        let at = table_sec.0 + i * entry;
        let (pfn, frame) = match kind {
            GuestKind::Pv => (u64_at(e, 0).unwrap_or(INVALID), u64_at(e, 8).unwrap_or(INVALID)),
            GuestKind::Hvm => {
                let p = u64_at(e, 0).unwrap_or(INVALID);
                (p, p)
            }
        };
        if pfn == INVALID || frame == INVALID {
            invalid += 1;
            continue;
        }
        if frame >= FRAME_LIMIT || pfn >= FRAME_LIMIT {
            return Err(Malformed::new(
                at,
                format!("entry {i} names frame {frame:#x} (pfn {pfn:#x}): larger than a 52-bit address allows"),
            ));
        }
        by_frame.push((frame, i, pfn));
        if kind == GuestKind::Pv {
            p2m.push((pfn, frame));
        }
    }
    by_frame.sort_unstable();
    if let Some([a, b]) = by_frame.windows(2).find(|w| matches!(w, [a, b] if a.0 == b.0)) {
        return Err(Malformed::new(
            table_sec.0 + b.1 * entry,
            format!(
                "pages {} and {} both claim {} {:#x}",
                a.1,
                b.1,
                if kind == GuestKind::Pv { "mfn" } else { "pfn" },
                a.0
            ),
        ));
    }
    p2m.sort_unstable();
    if let Some([a, _]) = p2m.windows(2).find(|w| matches!(w, [a, b] if a.0 == b.0)) {
        return Err(Malformed::new(table_sec.0, format!(".xen_p2m lists pfn {:#x} twice", a.0)));
    }

    // vCPU contexts.
    let mut vcpus = Vec::new();
    match prstatus {
        None => warnings.push("no .xen_prstatus section: no vCPU registers".into()),
        Some(r) => {
            let b = slice(r);
            if r.1 % VCPU_CONTEXT_SIZE != 0 {
                warnings.push(format!(
                    ".xen_prstatus is {} bytes, not a whole number of {VCPU_CONTEXT_SIZE}-byte vCPU contexts",
                    r.1
                ));
            }
            for (i, c) in b.chunks_exact(VCPU_CONTEXT_SIZE as usize).enumerate() {
                let ctrl = |k: usize| u64_at(c, CTRLREG_OFFSET + 8 * k);
                let mut v = VcpuState { vcpu: i, flags: u64_at(c, FLAGS_OFFSET).unwrap_or(0), ..VcpuState::default() };
                if guest_width == 64 {
                    v.rip = u64_at(c, USER_REGS_OFFSET + 128);
                    v.rsp = u64_at(c, USER_REGS_OFFSET + 152);
                    v.cr0 = ctrl(0);
                    v.cr3 = ctrl(3);
                    v.cr4 = ctrl(4);
                    v.user_cr3 = ctrl(1).filter(|&u| u != 0 && kind == GuestKind::Pv);
                }
                vcpus.push(v);
            }
            if let Some(h) = header.as_ref().filter(|h| h.nr_vcpus != vcpus.len() as u64) {
                warnings.push(format!(
                    "the header note says {} vCPUs, .xen_prstatus holds {}",
                    h.nr_vcpus,
                    vcpus.len()
                ));
            }
        }
    }
    if guest_width == 32 {
        warnings.push(
            "32-bit PV guest (EM_386): its PAE page tables and folded CR3s are not decoded; pages and p2m are read"
                .into(),
        );
    }
    let shared_info = shinfo.filter(|_| kind == GuestKind::Pv).and_then(|r| {
        let b = slice(r);
        Some(SharedInfoP2m {
            max_pfn: u64_at(b, 3088)?,
            pfn_to_mfn_frame_list_list: u64_at(b, 3096)?,
            p2m_cr3: u64_at(b, 3112)?,
            p2m_vaddr: u64_at(b, 3120)?,
        })
    });

    let summary = XlCoreSummary {
        kind,
        guest_width,
        header,
        xen_version,
        format_version,
        vcpus,
        pages: n,
        invalid_entries: invalid,
        pages_offset: pages.0,
        shared_info,
        sections: infos,
    };
    Ok(Opened { core: XlCore { map, pages_off: pages.0, by_frame, p2m, summary }, notes: raw_notes, warnings })
}

impl XlCore {
    /// What the headers, notes and contexts say.
    pub fn summary(&self) -> &XlCoreSummary {
        &self.summary
    }

    /// PV or HVM.
    pub fn kind(&self) -> GuestKind {
        self.summary.kind
    }

    /// The machine frame of guest frame `pfn`, from `.xen_p2m`.
    pub fn pfn_to_mfn(&self, pfn: Pfn) -> Result<Mfn, P2mError> {
        if self.kind() == GuestKind::Hvm {
            return Err(P2mError::Hvm);
        }
        let i = self.p2m.binary_search_by_key(&pfn.0, |e| e.0).map_err(|_| P2mError::NotInCore)?;
        self.p2m.get(i).map(|e| Mfn(e.1)).ok_or(P2mError::NotInCore)
    }

    /// The guest frame of machine frame `mfn`: the inverted `.xen_p2m`.
    pub fn mfn_to_pfn(&self, mfn: Mfn) -> Result<Pfn, P2mError> {
        if self.kind() == GuestKind::Hvm {
            return Err(P2mError::Hvm);
        }
        let i = self.frame_index(mfn.0).ok_or(P2mError::NotInCore)?;
        self.by_frame.get(i).map(|e| Pfn(e.2)).ok_or(P2mError::NotInCore)
    }

    /// Every (pfn, mfn) pair of a PV core, in pfn order (empty for HVM).
    pub fn p2m(&self) -> impl Iterator<Item = (Pfn, Mfn)> + '_ {
        self.p2m.iter().map(|&(p, m)| (Pfn(p), Mfn(m)))
    }

    fn frame_index(&self, frame: u64) -> Option<usize> {
        self.by_frame.binary_search_by_key(&frame, |e| e.0).ok()
    }

    fn absent(&self) -> Absent {
        Absent::NotInGuestCore { hvm: self.kind() == GuestKind::Hvm }
    }

    /// The page of `frame`, borrowed from the map.
    fn frame_page(&self, frame: u64) -> Option<&[u8; PAGE]> {
        let i = self.frame_index(frame)?;
        let page = self.by_frame.get(i)?.1;
        let off = usize::try_from(self.pages_off.checked_add(page.checked_mul(PAGE_SIZE)?)?).ok()?;
        self.map.get(off..off.checked_add(PAGE)?)?.try_into().ok()
    }
}

/// Copy the bytes at `start` into `buf`, page by page: `page(addr)` gives the page
/// holding `addr`, or the error for it (machine and guest-physical reads alike).
fn copy_pages<'a>(
    start: u64,
    buf: &mut [u8],
    overflow: ReadError,
    page: impl Fn(u64) -> Result<&'a [u8; PAGE], ReadError>,
) -> Result<(), ReadError> {
    let mut done = 0usize;
    while done < buf.len() {
        let a = start.checked_add(done as u64).ok_or(overflow)?;
        let off = (a % PAGE_SIZE) as usize;
        let n = (PAGE - off).min(buf.len() - done);
        let p = page(a)?;
        if let (Some(dst), Some(src)) = (buf.get_mut(done..done + n), p.get(off..off + n)) {
            dst.copy_from_slice(src);
        }
        done += n;
    }
    Ok(())
}

/// Runs of consecutive frames, from frame numbers in ascending order.
fn runs<A: crate::addr::PhysAddr>(frames: impl Iterator<Item = u64>) -> Vec<Extent<A>> {
    let mut out: Vec<Extent<A>> = Vec::new();
    for f in frames {
        let start = f << 12;
        match out.last_mut() {
            Some(e) if e.start.raw() + e.len == start => e.len += PAGE_SIZE,
            _ => out.push(Extent { start: A::at(start), len: PAGE_SIZE, present: true }),
        }
    }
    out
}

/// Guest-physical reads: the pages the guest's own tables name. An HVM core stores
/// its pages by guest frame (`.xen_pfn`); a PV core by machine frame, reached from a
/// guest frame through `.xen_p2m`.
impl XlCore {
    /// The core's frame key (see `by_frame`) behind guest frame `gfn`.
    fn guest_frame(&self, gfn: Gfn) -> Option<u64> {
        match self.kind() {
            GuestKind::Hvm => Some(gfn.0),
            GuestKind::Pv => self.pfn_to_mfn(Pfn(gfn.0)).ok().map(|m| m.0),
        }
    }

    /// The page of guest frame `gfn`, borrowed from the map.
    pub fn guest_page(&self, gfn: Gfn) -> Result<Page<'_>, ReadError> {
        self.guest_frame(gfn)
            .and_then(|f| self.frame_page(f))
            .map(Page::Borrowed)
            .ok_or(ReadError::GuestAbsent { gpa: gfn.gpa(), why: self.absent() })
    }

    /// Fill `buf` with the guest-physical bytes at `gpa` (across pages when it must).
    pub fn guest_read(&self, gpa: Gpa, buf: &mut [u8]) -> Result<(), ReadError> {
        let overflow = ReadError::GuestAbsent { gpa, why: self.absent() };
        copy_pages(gpa.0, buf, overflow, |a| {
            self.guest_frame(Gpa(a).gfn())
                .and_then(|f| self.frame_page(f))
                .ok_or(ReadError::GuestAbsent { gpa: Gpa(a), why: self.absent() })
        })
    }

    /// The little-endian u64 (a page-table entry) at guest-physical `gpa`.
    pub fn guest_read_u64(&self, gpa: Gpa) -> Result<u64, ReadError> {
        let mut b = [0u8; 8];
        self.guest_read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Whether the core holds guest-physical `gpa`, or why not.
    pub fn guest_locate(&self, gpa: Gpa) -> Result<(), Absent> {
        self.guest_frame(gpa.gfn()).and_then(|f| self.frame_index(f)).map(|_| ()).ok_or(self.absent())
    }

    /// Runs of consecutive guest frames the core holds, in guest-physical order.
    pub fn guest_extents(&self) -> Vec<Extent<Gpa>> {
        let mut gfns: Vec<u64> = match self.kind() {
            GuestKind::Hvm => self.by_frame.iter().map(|e| e.0).collect(),
            GuestKind::Pv => self.p2m.iter().map(|e| e.0).collect(),
        };
        gfns.sort_unstable();
        runs(gfns.into_iter())
    }
}

/// Machine memory: a PV core's pages by machine frame (the inverted `.xen_p2m`). An
/// HVM core holds no machine address at all (no p2m: reference §7c), so every machine
/// read of it is [`Absent::NoMachineMemory`]; its pages are read as guest-physical
/// memory ([`XlCore::guest_page`]), never as machine frames.
impl PhysMem for XlCore {
    fn page(&self, mfn: Mfn) -> Result<Page<'_>, ReadError> {
        if self.kind() == GuestKind::Hvm {
            return Err(ReadError::Absent { addr: mfn.maddr(), why: Absent::NoMachineMemory });
        }
        self.frame_page(mfn.0).map(Page::Borrowed).ok_or(ReadError::Absent { addr: mfn.maddr(), why: self.absent() })
    }

    fn read(&self, addr: Maddr, buf: &mut [u8]) -> Result<(), ReadError> {
        if self.kind() == GuestKind::Hvm {
            return Err(ReadError::Absent { addr, why: Absent::NoMachineMemory });
        }
        copy_pages(addr.0, buf, ReadError::Absent { addr, why: self.absent() }, |a| {
            self.frame_page(a >> 12).ok_or(ReadError::Absent { addr: Maddr(a), why: self.absent() })
        })
    }

    fn locate(&self, addr: Maddr) -> Result<(), Absent> {
        if self.kind() == GuestKind::Hvm {
            return Err(Absent::NoMachineMemory);
        }
        self.frame_index(addr.mfn().0).map(|_| ()).ok_or(self.absent())
    }

    /// Runs of consecutive machine frames the core holds (none in an HVM core).
    fn extents(&self) -> Vec<Extent> {
        if self.kind() == GuestKind::Hvm {
            return Vec::new();
        }
        runs(self.by_frame.iter().map(|e| e.0))
    }
}
