//! pfn ↔ mfn: the M2P table, the frame table (who owns a frame), and a 64-bit PV
//! guest's p2m, with their consistency checked both ways.
//!
//! Facts (reference §3.5, §3.6, §5.1, §5.2, §6):
//! * `machine_to_phys_mapping[mfn]` is a u64 array at `RDWR_MPT_VIRT_START`, backed
//!   only where mfns are valid; `INVALID_M2P_ENTRY` = ~0, `SHARED_M2P_ENTRY` = ~0 − 1.
//! * `frame_table[pdx]` is a `struct page_info` (32 bytes in 4.17) at
//!   `FRAMETABLE_VIRT_START`; `v.inuse._domain` is the owner's direct-map pdx (owner =
//!   `DIRECTMAP_VIRT_START + (_domain << 12)`); `count_info` bits 63 allocated,
//!   62 xen_heap, 61 page_table, 60 broken, 59:58 state (0 inuse, 1 offlining,
//!   2 offlined, 3 free) since 4.17; `type_info` type in 63:61.
//! * A PV guest publishes its p2m through its shared-info page (x86_64 ABI offsets,
//!   `X:xen/include/public/arch-x86/xen.h@4.17.0`): `arch.max_pfn` @3088,
//!   `arch.pfn_to_mfn_frame_list_list` @3096 (3-level list of mfns), `arch.p2m_cr3`
//!   @3112 and `arch.p2m_vaddr` @3120 (Linux's linear array, under that L4).
//!   Linux marks entries: `INVALID_P2M_ENTRY` ~0, `FOREIGN_FRAME_BIT` 1<<63,
//!   `IDENTITY_FRAME_BIT` 1<<62 (Linux `arch/x86/include/asm/xen/page.h`).

use super::domains::{DomainError, Fields};
use super::{INVALID_M2P_ENTRY, SHARED_M2P_ENTRY, VaReadError, Xen};
use crate::addr::{Maddr, Mfn, Pfn, Vaddr};
use crate::mem::{Page, PhysMem, ReadError};
use crate::paging::ept::UnsupportedEptp;
use crate::paging::{Level, WalkOptions, walk};
use serde::Serialize;
use std::cell::RefCell;

const SI_MAX_PFN: u64 = 3088;
const SI_FLL: u64 = 3096;
const SI_P2M_CR3: u64 = 3112;
const SI_P2M_VADDR: u64 = 3120;
const SI_P2M_GENERATION: u64 = 3128;
/// Linux's p2m entry markers.
pub const FOREIGN_FRAME_BIT: u64 = 1 << 63;
pub const IDENTITY_FRAME_BIT: u64 = 1 << 62;
/// Pfns a 64-bit guest's 3-level frame-list-list can address (512 u64 per page).
pub const FLL_PFNS: u64 = 512 * 512 * 512;
/// Pfns of 52-bit physical addresses: no p2m has more.
pub const MAX_PFNS: u64 = 1 << 40;

/// Why an M2P or p2m entry (or a domain's p2m itself) cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum P2mError {
    /// The machine memory holding the entry is not in the dump.
    #[error(transparent)]
    Memory(#[from] ReadError),
    /// A hypervisor variable (a shared-info field) cannot be read.
    #[error(transparent)]
    Read(#[from] VaReadError),
    /// A field of a hypervisor structure cannot be read.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The page of an array at `va` is not mapped: the walk stops at `level`.
    #[error("{va} is not mapped (the walk stops at {level})")]
    NotMapped { va: Vaddr, level: Level },
    /// The walk to the page at `va` neither translates nor says where it stops.
    #[error("no walk")]
    NoWalk { va: Vaddr },
    /// The M2P entry of `mfn` lies beyond the address space.
    #[error("mfn too large")]
    MfnTooLarge { mfn: Mfn },
    /// A PV guest's shared info at `shared_info` names no p2m.
    #[error(
        "the guest publishes no p2m in its shared info at {shared_info} (frame-list-list {fll:#x}, p2m_cr3 {p2m_cr3:#x})"
    )]
    NotPublished { shared_info: Vaddr, fll: u64, p2m_cr3: u64 },
    #[error("pfn {pfn} is beyond max_pfn {max_pfn:#x}")]
    BeyondMaxPfn { pfn: Pfn, max_pfn: u64 },
    /// The shared info's `max_pfn` is more than the published p2m can hold: 512^3
    /// pfns for a frame-list-list, 2^40 (52-bit physical addresses) for any.
    #[error(
        "the guest's shared info at {shared_info} says max_pfn {max_pfn:#x}, more than {list} can hold ({limit:#x} pfns)"
    )]
    AbsurdMaxPfn { shared_info: Vaddr, max_pfn: u64, limit: u64, list: P2mSource },
    /// `pfn` lies beyond what the frame-list-list addresses (512^3 pfns).
    #[error("pfn {pfn} is beyond the frame-list-list's reach ({FLL_PFNS:#x} pfns)")]
    BeyondFrameList { pfn: Pfn },
    /// The linear p2m's source has no reader (not expected: one is made with it).
    #[error("no reader")]
    NoReader,
    /// The guest's linear p2m does not map the entry's VA `va`.
    #[error("the linear p2m is not mapped there")]
    LinearNotMapped { va: Vaddr },
    /// `d->arch.p2m` of domain `domain` (`p2m`) cannot be read.
    #[error("domain {domain}: arch.p2m = {p2m}: {error}")]
    HostP2mUnreadable { domain: u16, p2m: Vaddr, error: VaReadError },
    #[error(transparent)]
    Ept(#[from] UnsupportedEptp),
    /// Domain `domain`'s host p2m has neither an EPTP nor a `phys_table`.
    #[error("domain {domain}: its p2m has neither an EPTP nor a phys_table")]
    NoHostTable { domain: u16 },
}

/// Reads u64s at hypervisor (or guest) VAs through one root, a page at a time, keeping
/// the last page: walks over arrays (M2P, p2m) cost one page walk per 512 entries.
pub struct ArrayReader<'a> {
    mem: &'a dyn PhysMem,
    root: Maddr,
    last: RefCell<Option<(u64, Result<Page<'a>, P2mError>)>>,
}

impl<'a> ArrayReader<'a> {
    pub fn new(mem: &'a dyn PhysMem, root: Maddr) -> Self {
        ArrayReader { mem, root, last: RefCell::new(None) }
    }

    /// The u64 at `va` (8-aligned).
    pub fn u64_at(&self, va: u64) -> Result<u64, P2mError> {
        let page_va = Vaddr(va & !0xfff);
        let mut last = self.last.borrow_mut();
        let (_, page) = match last.take() {
            Some(cached) if cached.0 == page_va.0 => last.insert(cached),
            _ => {
                let w = walk(self.mem, self.root, page_va, WalkOptions::default());
                let page = match (w.mapping(), w.stop()) {
                    (Some(m), _) => self.mem.page(m.maddr.mfn()).map_err(P2mError::from),
                    (None, Some(s)) => Err(P2mError::NotMapped { va: page_va, level: s.level }),
                    _ => Err(P2mError::NoWalk { va: page_va }),
                };
                last.insert((page_va.0, page))
            }
        };
        match page {
            Ok(p) => Ok(p.entry(((va & 0xfff) / 8) as usize)),
            Err(e) => Err(e.clone()),
        }
    }
}

/// What the M2P says about a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "pfn")]
pub enum M2pEntry {
    Pfn(Pfn),
    Invalid,
    /// Owned by `dom_cow` (shared memory).
    Shared,
}

impl M2pEntry {
    pub fn from_raw(v: u64) -> M2pEntry {
        match v {
            INVALID_M2P_ENTRY => M2pEntry::Invalid,
            SHARED_M2P_ENTRY => M2pEntry::Shared,
            // VALID_M2P(e): bit 63 clear (`X:…/asm/mm.h@4.17.0`)
            v if v >> 63 == 0 => M2pEntry::Pfn(Pfn(v)),
            _ => M2pEntry::Invalid,
        }
    }
}

/// The M2P, read through the hypervisor's own mapping of it.
pub struct M2p<'a> {
    base: u64,
    reader: ArrayReader<'a>,
}

impl<'a> M2p<'a> {
    /// Through `root` (any root Xen builds maps the RW M2P: idle is the natural one).
    pub fn new(xen: &Xen, mem: &'a dyn PhysMem, root: Maddr) -> M2p<'a> {
        M2p { base: xen.layout().rdwr_m2p_start, reader: ArrayReader::new(mem, root) }
    }
    /// `machine_to_phys_mapping[mfn]`.
    pub fn get(&self, mfn: Mfn) -> Result<M2pEntry, P2mError> {
        let va = mfn.0.checked_mul(8).and_then(|o| o.checked_add(self.base)).ok_or(P2mError::MfnTooLarge { mfn })?;
        Ok(M2pEntry::from_raw(self.reader.u64_at(va)?))
    }
}

/// What the frame table says about a frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageOwner {
    #[serde(serialize_with = "crate::addr::hex")]
    pub count_info: u64,
    #[serde(serialize_with = "crate::addr::hex")]
    pub type_info: u64,
    /// The owner's `struct domain` (None when `_domain` is 0).
    pub owner: Option<Vaddr>,
    /// The owner's domain id, when readable.
    pub owner_id: Option<u16>,
    /// `count_info` state in words: inuse, offlining, offlined, free; plus flags.
    pub state: String,
    /// `type_info` type: none, L1..L4 page table, GDT/LDT, shared, writable.
    pub page_type: &'static str,
}

/// Read `frame_table[pdx(mfn)]` (4.17 layout: `count_info`, `type_info`, `_domain`
/// from the offsets of that build).
pub fn page_owner(f: &Fields<'_>, mfn: Mfn) -> Result<PageOwner, DomainError> {
    let xen = f.xen;
    let pdx = xen.pdx.value.pfn_to_pdx(mfn.0);
    let size = f.offs.size("page_info")?.value;
    let pi = Vaddr(xen.layout().frametable_start.wrapping_add(pdx.wrapping_mul(size)));
    let count_info = f.field(pi, "page_info.count_info", 8)?;
    let type_info = f.field(pi, "page_info.u.inuse.type_info", 8)?;
    let dom_pdx = f.field(pi, "page_info.v.inuse._domain", 4)?;
    let owner = (dom_pdx != 0).then(|| {
        // pdx_to_virt: the direct-map address of pdx << 12 (reference §3.3).
        Vaddr(xen.layout().directmap_start + (dom_pdx << 12))
    });
    let owner_id = owner.and_then(|o| f.field(o, "domain.domain_id", 2).ok()).map(|v| v as u16);
    let mut flags = Vec::new();
    for (bit, name) in [(63, "allocated"), (62, "xen_heap"), (61, "page_table"), (60, "broken"), (57, "extra")] {
        if count_info >> bit & 1 != 0 {
            flags.push(name);
        }
    }
    let state = ["inuse", "offlining", "offlined", "free"][((count_info >> 58) & 3) as usize];
    let page_type = ["none", "L1", "L2", "L3", "L4", "GDT/LDT", "shared", "writable"][(type_info >> 61) as usize];
    Ok(PageOwner {
        count_info,
        type_info,
        owner,
        owner_id,
        state: if flags.is_empty() { state.to_string() } else { format!("{state} ({})", flags.join(", ")) },
        page_type,
    })
}

/// How a PV guest's p2m is read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum P2mSource {
    /// Linux's linear array at `p2m_vaddr` under the L4 at `p2m_cr3`.
    Linear { cr3: Maddr, vaddr: Vaddr },
    /// The 3-level frame-list-list (mfn of the top page).
    FrameListList {
        fll: Mfn,
        /// Where the mfn came from: shared info, or the CRASH_INFO note (dom0).
        from: &'static str,
    },
}

impl std::fmt::Display for P2mSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            P2mSource::Linear { cr3, vaddr } => {
                write!(f, "the guest's linear p2m list at {vaddr} (under the L4 at {cr3})")
            }
            P2mSource::FrameListList { fll, from } => write!(f, "the frame-list-list at mfn {fll} ({from})"),
        }
    }
}

/// A PV guest's p2m.
pub struct PvP2m<'a> {
    pub max_pfn: u64,
    pub source: P2mSource,
    /// Other sources the guest publishes, for cross-checks.
    pub alternatives: Vec<P2mSource>,
    pub generation: u64,
    mem: &'a dyn PhysMem,
    reader: Option<ArrayReader<'a>>,
}

/// A p2m entry, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "mfn")]
pub enum P2mEntry {
    Mfn(Mfn),
    Invalid,
    /// Linux's identity frame (1:1 mapped, e.g. for MMIO holes).
    Identity(Mfn),
    /// A frame of another domain (grant-mapped).
    Foreign(Mfn),
}

impl P2mEntry {
    pub fn from_raw(v: u64) -> P2mEntry {
        if v == u64::MAX {
            P2mEntry::Invalid
        } else if v & FOREIGN_FRAME_BIT != 0 {
            P2mEntry::Foreign(Mfn(v & !(FOREIGN_FRAME_BIT | IDENTITY_FRAME_BIT)))
        } else if v & IDENTITY_FRAME_BIT != 0 {
            P2mEntry::Identity(Mfn(v & !IDENTITY_FRAME_BIT))
        } else {
            P2mEntry::Mfn(Mfn(v))
        }
    }
    pub fn mfn(self) -> Option<Mfn> {
        match self {
            P2mEntry::Mfn(m) => Some(m),
            _ => None,
        }
    }
}

impl<'a> PvP2m<'a> {
    /// Find a PV guest's p2m from its shared-info page (`shared_info` is its
    /// hypervisor VA); `crash_fll` is CRASH_INFO's dom0 list-list mfn.
    pub fn open(f: &Fields<'a>, shared_info: Vaddr, crash_fll: Option<u64>) -> Result<PvP2m<'a>, P2mError> {
        // The pointer comes from the domain struct: it may be anything.
        let si = |off: u64| f.read(Vaddr(shared_info.0.wrapping_add(off)), 8);
        let max_pfn = si(SI_MAX_PFN)?;
        let fll = si(SI_FLL)?;
        let p2m_cr3 = si(SI_P2M_CR3)?;
        let p2m_vaddr = si(SI_P2M_VADDR)?;
        let generation = si(SI_P2M_GENERATION)?;
        let mut sources = Vec::new();
        if p2m_cr3 != 0 && p2m_vaddr != 0 {
            // 64-bit: xen_pfn_to_cr3(mfn) = mfn << 12 (reference §7c).
            sources.push(P2mSource::Linear { cr3: Maddr(p2m_cr3 & 0x000f_ffff_ffff_f000), vaddr: Vaddr(p2m_vaddr) });
        }
        if fll != 0 && fll != u64::MAX {
            sources.push(P2mSource::FrameListList { fll: Mfn(fll), from: "shared_info" });
        }
        if let Some(c) = crash_fll.filter(|&c| c != 0 && c != u64::MAX && c != fll) {
            sources.push(P2mSource::FrameListList { fll: Mfn(c), from: "CRASH_INFO" });
        }
        if sources.is_empty() {
            return Err(P2mError::NotPublished { shared_info, fll, p2m_cr3 });
        }
        let source = sources.remove(0);
        // Every listing and check goes 0..max_pfn: a value no p2m can hold is refused
        // (an absurd one would make them run for ever).
        let limit = match source {
            P2mSource::FrameListList { .. } => FLL_PFNS,
            P2mSource::Linear { .. } => MAX_PFNS,
        };
        if max_pfn > limit {
            return Err(P2mError::AbsurdMaxPfn { shared_info, max_pfn, limit, list: source });
        }
        let reader = match &source {
            P2mSource::Linear { cr3, .. } => Some(ArrayReader::new(f.mem, *cr3)),
            P2mSource::FrameListList { .. } => None,
        };
        Ok(PvP2m { max_pfn, source, alternatives: sources, generation, mem: f.mem, reader })
    }

    /// The raw entry of `pfn`.
    pub fn raw(&self, pfn: Pfn) -> Result<u64, P2mError> {
        if pfn.0 >= self.max_pfn {
            return Err(P2mError::BeyondMaxPfn { pfn, max_pfn: self.max_pfn });
        }
        match (&self.source, &self.reader) {
            (P2mSource::Linear { vaddr, .. }, Some(r)) => r.u64_at(linear_va(*vaddr, pfn)?.0),
            (P2mSource::FrameListList { fll, .. }, _) => fll_entry(self.mem, *fll, pfn),
            _ => Err(P2mError::NoReader),
        }
    }

    pub fn get(&self, pfn: Pfn) -> Result<P2mEntry, P2mError> {
        self.raw(pfn).map(P2mEntry::from_raw)
    }

    /// The raw entry of `pfn` through another published source (cross-check).
    pub fn raw_via(&self, source: &P2mSource, pfn: Pfn) -> Result<u64, P2mError> {
        match source {
            P2mSource::FrameListList { fll, .. } => fll_entry(self.mem, *fll, pfn),
            P2mSource::Linear { cr3, vaddr } => {
                let va = linear_va(*vaddr, pfn)?;
                let w = walk(self.mem, *cr3, va, WalkOptions::default());
                let m = w.mapping().ok_or(P2mError::LinearNotMapped { va })?;
                Ok(self.mem.read_u64(m.maddr)?)
            }
        }
    }
}

/// The VA of `pfn`'s entry in a linear p2m at `vaddr` (an error past the top of the
/// address space: the guest's `p2m_vaddr` may be anything).
fn linear_va(vaddr: Vaddr, pfn: Pfn) -> Result<Vaddr, P2mError> {
    pfn.0
        .checked_mul(8)
        .and_then(|o| vaddr.0.checked_add(o))
        .map(Vaddr)
        .ok_or(P2mError::LinearNotMapped { va: Vaddr(vaddr.0.wrapping_add(pfn.0.wrapping_mul(8))) })
}

/// [`fll_lookup`], refusing a pfn beyond the list's reach (whose index would wrap
/// around the top page and give another pfn's entry).
fn fll_entry(mem: &dyn PhysMem, fll: Mfn, pfn: Pfn) -> Result<u64, P2mError> {
    if pfn.0 >= FLL_PFNS {
        return Err(P2mError::BeyondFrameList { pfn });
    }
    Ok(fll_lookup(mem, fll, pfn)?)
}

/// The 3-level list: fll page → fl page → p2m page (512 u64 per page, 64-bit guest).
pub fn fll_lookup(mem: &dyn PhysMem, fll: Mfn, pfn: Pfn) -> Result<u64, ReadError> {
    let e = |mfn: Mfn, i: u64| mem.page(mfn).map(|p| p.entry(i as usize));
    let fl = e(fll, pfn.0 / (512 * 512))?;
    let p2m_page = e(Mfn(fl), (pfn.0 / 512) % 512)?;
    e(Mfn(p2m_page), pfn.0 % 512)
}

impl super::Pdx {
    /// `pfn_to_pdx` (mask compression).
    pub fn pfn_to_pdx(&self, pfn: u64) -> u64 {
        (pfn & self.pfn_pdx_bottom_mask) | ((pfn & self.pfn_top_mask) >> self.hole_shift)
    }
}

/// A run of p2m entries: `count` frames from `first` (a pfn or a gfn) of one kind,
/// whose machine frames (when they have one) continue from `mfn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P2mRun {
    pub first: u64,
    pub mfn: Option<Mfn>,
    pub count: u64,
    /// `ram`, `identity`, `foreign`, `invalid`, `unreadable` (PV); the p2m type (HVM).
    pub kind: &'static str,
}

/// Coalesces p2m entries, fed in frame order, into runs of one kind whose machine
/// frames continue too: the PV list and the EPT and NPT listings all go through it.
/// Memory does not grow with the number of entries.
#[derive(Debug, Default)]
pub struct RunCoalescer {
    cur: Option<P2mRun>,
}

impl RunCoalescer {
    /// `count` frames from `first`, mapped from `mfn` on (or to none); the run this
    /// closes, if any.
    pub fn push(&mut self, first: u64, mfn: Option<Mfn>, kind: &'static str, count: u64) -> Option<P2mRun> {
        if let Some(r) = self.cur.as_mut() {
            let continues = r.kind == kind
                && r.first + r.count == first
                && match (r.mfn, mfn) {
                    (Some(a), Some(b)) => a.0 + r.count == b.0,
                    (None, None) => true,
                    _ => false,
                };
            if continues {
                r.count += count;
                return None;
            }
        }
        self.cur.replace(P2mRun { first, mfn, count, kind })
    }

    /// The last run.
    pub fn finish(&mut self) -> Option<P2mRun> {
        self.cur.take()
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;

    #[test]
    fn runs_continue_only_when_both_frames_do() {
        let mut c = RunCoalescer::default();
        assert_eq!(c.push(0, Some(Mfn(10)), "ram", 1), None);
        assert_eq!(c.push(1, Some(Mfn(11)), "ram", 2), None);
        // The pfn continues, the mfn does not: a new run.
        let r = c.push(3, Some(Mfn(20)), "ram", 1).unwrap();
        assert_eq!((r.first, r.mfn, r.count), (0, Some(Mfn(10)), 3));
        // Another kind: a new run.
        let r = c.push(4, None, "invalid", 1).unwrap();
        assert_eq!((r.first, r.count), (3, 1));
        assert_eq!(c.push(5, None, "invalid", 4), None);
        let r = c.finish().unwrap();
        assert_eq!((r.first, r.mfn, r.count, r.kind), (4, None, 5, "invalid"));
        assert_eq!(c.finish(), None);
    }
}
