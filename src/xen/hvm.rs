//! HVM and PVH guests: the host p2m Xen keeps for them (EPT on Intel, an ordinary
//! x86-64 table on AMD/NPT and in shadow mode), and the guest-physical memory it
//! defines, so that the guest's own page tables can be walked — the two-dimensional
//! walk: every guest table (from the guest's CR3 down) is a guest frame, translated
//! through the p2m before it can be read (reference §5.3).
//!
//! `d->arch.p2m` → `struct p2m_domain`: `phys_table` (root mfn) and, on VMX, `ept`
//! whose first word is the EPTP (`X:xen/arch/x86/include/asm/p2m.h@4.17.0`,
//! `X:…/asm/hvm/vmx/vmcs.h@4.17.0`). An EPTP of 0 means the p2m is not EPT (AMD NPT
//! or shadow paging): then `phys_table` is an x86-64 table indexed by gpa, with the
//! p2m type in bits 52–58 (`p2m_flags_to_type`, `X:xen/arch/x86/mm/p2m-pt.c@4.17.0`).

use super::domains::{DomainError, DomainInfo, Fields};
use super::p2m::P2mError;
use crate::addr::{Gfn, Gpa, Maddr, Mfn, PAGE_SIZE, Vaddr};
use crate::mem::xlcore::XlCore;
use crate::mem::{Absent, Page, PhysMem, ReadError, TableMem};
use crate::paging::PagingDesc;
use crate::paging::enumerate::Leaf;
use crate::paging::ept::{Ept, EptWalk, Listed, TableLoop};
use crate::paging::{Entry, Level, Rights};
use crate::paging::{WalkOptions, walk};
use serde::Serialize;
use std::collections::HashSet;

/// How one guest frame translates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct P2mHit {
    pub gfn: Gfn,
    pub mfn: Option<Mfn>,
    /// Size of the p2m leaf that maps it (4 KiB, or a superpage), when it maps.
    pub page_size: Option<u64>,
    /// Xen's p2m type of the leaf.
    pub p2m_type: Option<&'static str>,
    pub stop: Option<String>,
}

/// A domain's host p2m.
#[derive(Clone, Copy)]
pub enum HostP2m<'a> {
    Ept(Ept<'a>),
    /// An x86-64 page table indexed by gpa.
    Pt {
        mem: &'a dyn PhysMem,
        root: Maddr,
    },
}

impl<'a> HostP2m<'a> {
    /// Read `d->arch.p2m` of `dom`.
    pub fn of(f: &Fields<'a>, dom: &DomainInfo) -> Result<HostP2m<'a>, P2mError> {
        let p = dom.p2m;
        f.read(p, 8).map_err(|error| P2mError::HostP2mUnreadable { domain: dom.id, p2m: p, error })?;
        let phys_table = f.field(p, "p2m_domain.phys_table", 8)?;
        let eptp = match f.field(p, "p2m_domain.ept", 8) {
            Ok(v) => v,
            // On SVM no p2m is an EPT: a build whose `ept` member no source knows
            // (inference cannot see it where it is always 0) reads phys_table alone.
            Err(DomainError::Offset(_)) if f.xen.hvm_name(f.mem).as_deref() == Some("SVM") => 0,
            Err(e) => return Err(e.into()),
        };
        let minor = f.xen.layout().minor;
        if eptp != 0 {
            Ok(Ept::from_eptp(f.mem, eptp, minor).map(HostP2m::Ept)?)
        } else if phys_table != 0 {
            Ok(HostP2m::Pt { mem: f.mem, root: Mfn(phys_table).maddr() })
        } else {
            Err(P2mError::NoHostTable { domain: dom.id })
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            HostP2m::Ept(_) => "EPT",
            HostP2m::Pt { .. } => "x86-64 table (NPT/shadow)",
        }
    }

    /// Translate one guest frame.
    pub fn translate(&self, gfn: Gfn) -> P2mHit {
        match self {
            HostP2m::Ept(e) => {
                let w: EptWalk = e.walk(gfn);
                let ty = w.mfn.map(|_| crate::paging::ept::EptEntry(w.last).p2m_type_name());
                P2mHit { gfn, mfn: w.mfn, page_size: w.page_size, p2m_type: ty, stop: w.stop }
            }
            HostP2m::Pt { mem, root } => {
                let w = walk(*mem, *root, Vaddr(gfn.0 << 12), WalkOptions::default());
                match w.mapping() {
                    Some(m) => {
                        let t = w.steps().last().map(|s| ((s.entry.0 >> 52) & 0x7f) as usize).unwrap_or(0);
                        P2mHit {
                            gfn,
                            mfn: Some(m.maddr.mfn()),
                            page_size: Some(m.page_size),
                            p2m_type: crate::paging::ept::P2M_TYPES.get(t).copied(),
                            stop: None,
                        }
                    }
                    None => {
                        let stop = Some(format!("{:?}", w.stop().map(|s| s.kind)));
                        P2mHit { gfn, mfn: None, page_size: None, p2m_type: None, stop }
                    }
                }
            }
        }
    }
}

/// One run of guest frames a host p2m entry covers, as a listing reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P2mLeaf {
    pub gfn: Gfn,
    /// The first machine frame (`None`: a valid entry without one, or misconfigured).
    pub mfn: Option<Mfn>,
    /// Xen's p2m type name, or `misconfigured` (the MMU faults on the entry).
    pub kind: &'static str,
    /// Frames the entry covers.
    pub frames: u64,
}

impl HostP2m<'_> {
    /// Every entry that maps or types guest frames, in gfn order. Each table is read
    /// once: Xen's p2m code never shares a table between two entries (EPT and the
    /// NPT/shadow table alike: each intermediate table is a page of its own from
    /// `p2m_alloc_ptp`, `X:xen/arch/x86/mm/p2m.c@4.17.0`), so a table reached a
    /// second time — an entry pointing back at its own table or an ancestor — is
    /// corruption. It is not followed again (a table whose 512 entries point at
    /// itself would otherwise make 512^3 visits and 2^36 leaves), the listing goes on,
    /// and the first entry where the loop closes is [`Listed::first_loop`]. Only an
    /// unreadable root is an error.
    pub fn leaves(&self, mut f: impl FnMut(P2mLeaf)) -> Result<Listed, ReadError> {
        match self {
            HostP2m::Ept(ept) => ept.leaves(|gfn, e, frames| {
                let kind: &'static str = if !e.present() {
                    e.p2m_type_name()
                } else if e.misconfig(1, 52).is_some()
                    && (e.mem_type() == 2 || e.mem_type() == 3 || e.write() && !e.read())
                {
                    "misconfigured"
                } else {
                    e.p2m_type_name()
                };
                f(P2mLeaf { gfn, mfn: e.present().then(|| e.mfn()), kind, frames });
            }),
            HostP2m::Pt { mem, root } => {
                let desc = PagingDesc::x86_64(WalkOptions::default());
                let page = mem.page(root.mfn())?;
                let mut n = Npt { mem: *mem, desc, seen: HashSet::from([root.mfn()]), out: Listed::default() };
                n.out.tables = 1;
                n.table(&page, *root, Level::L4, 0, &mut f);
                Ok(n.out)
            }
        }
    }
}

/// The NPT/shadow p2m listing: an x86-64 table indexed by gpa, its p2m type in bits
/// 58:52 of each leaf (`p2m_flags_to_type`, reference "NPT and shadow-mode p2m",
/// `X:xen/arch/x86/mm/p2m-pt.c@4.17.0`).
struct Npt<'m> {
    mem: &'m dyn PhysMem,
    desc: PagingDesc,
    seen: HashSet<Mfn>,
    out: Listed,
}

impl Npt<'_> {
    fn table(&mut self, page: &Page<'_>, table: Maddr, level: Level, base: u64, f: &mut impl FnMut(P2mLeaf)) {
        let d = *self.desc.level(level);
        let frames = d.page_size >> 12;
        for i in 0..512u64 {
            let e = page.entry(i as usize);
            // In frames: the gfn of the entry's first page (gpa bits 47:12).
            let gfn = Gfn(base | (i << (d.shift - 12)));
            if e & self.desc.present == 0 {
                self.out.not_present_nonzero += u64::from(e != 0);
                continue;
            }
            if d.reserved(e) != 0 {
                f(P2mLeaf { gfn, mfn: None, kind: "misconfigured", frames });
                continue;
            }
            let (Some(below), false) = (level.below(), d.is_leaf(e)) else {
                let t = ((e >> 52) & 0x7f) as usize;
                let kind = crate::paging::ept::P2M_TYPES.get(t).copied().unwrap_or("unknown");
                f(P2mLeaf { gfn, mfn: Some(Maddr(d.addr(e)).mfn()), kind, frames });
                continue;
            };
            let next = Maddr(d.addr(e));
            if !self.seen.insert(next.mfn()) {
                self.out.first_loop.get_or_insert(TableLoop {
                    level: level.number(),
                    entry: table.wrapping_add(i * 8),
                    table: next,
                });
                continue;
            }
            match self.mem.page(next.mfn()) {
                Ok(p) => {
                    self.out.tables += 1;
                    self.table(&p, next, below, gfn.0, f);
                }
                // A table the dump lacks ends that branch, counted.
                Err(_) => self.out.unreadable += 1,
            }
        }
    }
}

/// What the machine holds behind one guest-physical address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Machine {
    /// Machine memory at `maddr`; the p2m leaf maps `run` bytes from there on
    /// contiguously (to the end of the leaf), with Xen's p2m type `p2m_type`.
    At { maddr: Maddr, run: u64, p2m_type: Option<&'static str> },
    /// The host p2m has no machine frame for it: why, in words.
    Unmapped(String),
    /// No p2m is known (an HVM `xl dump-core` core holds the guest's pages by guest
    /// frame, and nothing of the machine): the machine address is not in the dump.
    NoP2m,
}

impl Machine {
    /// The machine address, when known.
    pub fn maddr(&self) -> Option<Maddr> {
        match self {
            Machine::At { maddr, .. } => Some(*maddr),
            _ => None,
        }
    }
    /// Why there is no machine address (`None` when there is one or no p2m at all).
    pub fn stop(&self) -> Option<&str> {
        match self {
            Machine::Unmapped(why) => Some(why),
            _ => None,
        }
    }
}

/// An HVM/PVH guest's guest-physical memory read through the host p2m: pages come
/// from the machine frames the p2m maps them to. A [`TableMem`] at [`Gpa`]s, not a
/// [`PhysMem`]: walks of it are `Walk<Gpa>`.
pub struct GuestPhys<'a> {
    pub mem: &'a dyn PhysMem,
    pub p2m: HostP2m<'a>,
}

impl GuestPhys<'_> {
    fn frame(&self, gpa: Gpa) -> Result<Maddr, ReadError> {
        let hit = self.p2m.translate(gpa.gfn());
        match hit.mfn {
            Some(m) => Ok(Maddr(m.maddr().0 | gpa.page_offset())),
            None => Err(ReadError::GuestAbsent { gpa, why: Absent::NotInP2m }),
        }
    }
}

impl TableMem<Gpa> for GuestPhys<'_> {
    fn read_u64(&self, gpa: Gpa) -> Result<u64, ReadError> {
        let mut b = [0u8; 8];
        let mut done = 0usize;
        while done < b.len() {
            let a = gpa.wrapping_add(done as u64);
            let n = ((PAGE_SIZE - a.page_offset()) as usize).min(b.len() - done);
            let ma = self.frame(a)?;
            self.mem.read(ma, b.get_mut(done..done + n).unwrap_or_default())?;
            done += n;
        }
        Ok(u64::from_le_bytes(b))
    }
    fn page_at(&self, gpa: Gpa) -> Result<Page<'_>, ReadError> {
        self.mem.page(self.frame(gpa)?.mfn())
    }
    fn locate_at(&self, gpa: Gpa) -> Result<(), Absent> {
        match self.frame(gpa) {
            Ok(ma) => self.mem.locate(ma),
            Err(e) => Err(e.absent().unwrap_or(Absent::NotInP2m)),
        }
    }
}

/// An HVM guest's `xl dump-core` core seen as guest-physical memory: its pages are
/// indexed by `.xen_pfn` (guest frames: reference §7c), and nothing read through it
/// has a machine address (the core's machine view, [`PhysMem`], holds none).
#[derive(Clone, Copy)]
pub struct HvmCore<'a>(pub &'a XlCore);

impl TableMem<Gpa> for HvmCore<'_> {
    fn read_u64(&self, gpa: Gpa) -> Result<u64, ReadError> {
        self.0.guest_read_u64(gpa)
    }
    fn page_at(&self, gpa: Gpa) -> Result<Page<'_>, ReadError> {
        self.0.guest_page(gpa.gfn())
    }
    fn locate_at(&self, gpa: Gpa) -> Result<(), Absent> {
        self.0.guest_locate(gpa)
    }
}

/// An HVM/PVH guest's guest-physical memory, wherever it comes from: through Xen's
/// host p2m in a dump of the machine, or from an HVM guest core (no p2m, so no
/// machine addresses).
pub enum GuestMemory<'a> {
    P2m(GuestPhys<'a>),
    Core(HvmCore<'a>),
}

impl<'a> GuestMemory<'a> {
    /// The host p2m, when there is one.
    pub fn p2m(&self) -> Option<HostP2m<'a>> {
        match self {
            GuestMemory::P2m(g) => Some(g.p2m),
            GuestMemory::Core(_) => None,
        }
    }

    /// What the machine holds behind `gpa`.
    pub fn machine(&self, gpa: Gpa) -> Machine {
        let GuestMemory::P2m(g) = self else { return Machine::NoP2m };
        let hit = g.p2m.translate(gpa.gfn());
        match hit.mfn {
            Some(m) => {
                let size = hit.page_size.unwrap_or(PAGE_SIZE).max(PAGE_SIZE);
                // The leaf maps the superpage's frames contiguously from its first one.
                let run = size - (gpa.0 & (size - 1));
                Machine::At { maddr: Maddr(m.maddr().0 | gpa.page_offset()), run, p2m_type: hit.p2m_type }
            }
            None => Machine::Unmapped(hit.stop.unwrap_or_else(|| "not mapped".into())),
        }
    }
}

impl TableMem<Gpa> for GuestMemory<'_> {
    fn read_u64(&self, gpa: Gpa) -> Result<u64, ReadError> {
        match self {
            GuestMemory::P2m(g) => g.read_u64(gpa),
            GuestMemory::Core(c) => c.read_u64(gpa),
        }
    }
    fn page_at(&self, gpa: Gpa) -> Result<Page<'_>, ReadError> {
        match self {
            GuestMemory::P2m(g) => g.page_at(gpa),
            GuestMemory::Core(c) => c.page_at(gpa),
        }
    }
    fn locate_at(&self, gpa: Gpa) -> Result<(), Absent> {
        match self {
            GuestMemory::P2m(g) => g.locate_at(gpa),
            GuestMemory::Core(c) => c.locate_at(gpa),
        }
    }
}

/// A run of a guest's mappings for a listing: VAs and guest-physical addresses that
/// both continue, and machine addresses that continue too — or, where the p2m cannot
/// answer, pages without one, said so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestRange {
    pub va: Vaddr,
    pub gpa: Gpa,
    /// The machine address of the first byte; `None` when unknown (`p2m_stop` says
    /// why, or there is no p2m).
    pub maddr: Option<Maddr>,
    /// Why the p2m has no machine frame for these pages.
    pub p2m_stop: Option<String>,
    pub size: u64,
    /// The guest's page size.
    pub page_size: u64,
    pub level: Level,
    /// Leaf bits shared by the range (frame bits removed; A and D removed when
    /// coalescing), as in [`crate::paging::Range`].
    pub attrs: Entry,
    pub rights: Rights,
    /// Guest leaves that start in the range.
    pub leaves: u64,
}

impl GuestRange {
    pub fn va_last(&self) -> Vaddr {
        Vaddr(self.va.0.wrapping_add(self.size - 1))
    }
    pub fn gpa_last(&self) -> Gpa {
        Gpa(self.gpa.0.wrapping_add(self.size - 1))
    }
    pub fn maddr_last(&self) -> Option<Maddr> {
        self.maddr.map(|m| Maddr(m.0.wrapping_add(self.size - 1)))
    }
}

/// Merges a guest's leaves into [`GuestRange`]s by machine contiguity: each leaf is cut
/// where the p2m's machine frames stop being contiguous (a 2 MiB guest page may sit on
/// scattered 4 KiB machine frames), and pieces join while VA, gpa and machine address
/// all continue with the same page size, rights and attributes. With `leaves`, pieces
/// join only within their leaf.
#[derive(Default)]
pub struct GuestCoalescer {
    cur: Option<GuestRange>,
    /// One range per leaf at most (`--leaves`): keep A/D, never join across leaves.
    pub leaves: bool,
}

impl GuestCoalescer {
    /// A coalescer; with `leaves`, one range per leaf (per machine-contiguous piece).
    pub fn new(leaves: bool) -> GuestCoalescer {
        GuestCoalescer { cur: None, leaves }
    }

    /// Add `leaf`; `emit` receives every range it closes, in VA order.
    pub fn push(&mut self, mem: &GuestMemory<'_>, leaf: &Leaf<Gpa>, mut emit: impl FnMut(GuestRange)) {
        let size = leaf.size();
        let mut attrs = Entry(leaf.entry.0 & !leaf.entry.frame_mask(leaf.level, 52));
        if !self.leaves {
            attrs = Entry(attrs.0 & !(crate::paging::entry::bits::A | crate::paging::entry::bits::D));
        } else if let Some(r) = self.cur.take() {
            emit(r);
        }
        let mut off = 0u64;
        let mut first = true;
        while off < size {
            let gpa = Gpa(leaf.page.0 + off);
            let (maddr, p2m_stop, len) = match mem.machine(gpa) {
                Machine::At { maddr, run, .. } => (Some(maddr), None, run.min(size - off)),
                Machine::Unmapped(why) => (None, Some(why), PAGE_SIZE.min(size - off)),
                Machine::NoP2m => (None, None, size - off),
            };
            let piece = GuestRange {
                va: Vaddr(leaf.va.0.wrapping_add(off)),
                gpa,
                maddr,
                p2m_stop,
                size: len,
                page_size: size,
                level: leaf.level,
                attrs,
                rights: leaf.rights,
                leaves: u64::from(first),
            };
            first = false;
            off += len;
            if let Some(cur) = &mut self.cur {
                let machine = match (cur.maddr, piece.maddr) {
                    (Some(a), Some(b)) => a.0.wrapping_add(cur.size) == b.0,
                    (None, None) => cur.p2m_stop == piece.p2m_stop,
                    _ => false,
                };
                let joins = machine
                    && cur.page_size == piece.page_size
                    && cur.attrs == piece.attrs
                    && cur.rights == piece.rights
                    && cur.va.0.wrapping_add(cur.size) == piece.va.0
                    && cur.gpa.0.wrapping_add(cur.size) == piece.gpa.0;
                if joins {
                    cur.size += piece.size;
                    cur.leaves += piece.leaves;
                    continue;
                }
            }
            if let Some(r) = self.cur.replace(piece) {
                emit(r);
            }
        }
    }

    /// The last open range.
    pub fn finish(&mut self) -> Option<GuestRange> {
        self.cur.take()
    }
}
