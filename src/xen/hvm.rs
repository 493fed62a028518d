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

use super::domains::{DomainInfo, Fields};
use super::p2m::P2mError;
use crate::addr::{Gfn, Maddr, Mfn, Vaddr};
use crate::mem::{Absent, Extent, Page, PhysMem, ReadError};
use crate::paging::ept::{Ept, EptWalk};
use crate::paging::{WalkOptions, walk};
use serde::Serialize;

/// How one guest frame translates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct P2mHit {
    pub gfn: Gfn,
    pub mfn: Option<Mfn>,
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
        let eptp = f.field(p, "p2m_domain.ept", 8)?;
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
                P2mHit { gfn, mfn: w.mfn, p2m_type: ty, stop: w.stop }
            }
            HostP2m::Pt { mem, root } => {
                let w = walk(*mem, *root, Vaddr(gfn.0 << 12), WalkOptions::default());
                match w.mapping() {
                    Some(m) => {
                        let t = w.steps().last().map(|s| ((s.entry.0 >> 52) & 0x7f) as usize).unwrap_or(0);
                        P2mHit {
                            gfn,
                            mfn: Some(m.maddr.mfn()),
                            p2m_type: crate::paging::ept::P2M_TYPES.get(t).copied(),
                            stop: None,
                        }
                    }
                    None => {
                        P2mHit { gfn, mfn: None, p2m_type: None, stop: Some(format!("{:?}", w.stop().map(|s| s.kind))) }
                    }
                }
            }
        }
    }
}

/// The guest-physical memory of an HVM/PVH guest as a memory source: addresses are
/// guest-physical, pages come from the machine frames the p2m maps them to. (A
/// `PhysMem` speaks `Maddr`; here those numbers are guest-physical addresses.)
pub struct GuestPhys<'a> {
    pub mem: &'a dyn PhysMem,
    pub p2m: HostP2m<'a>,
}

impl GuestPhys<'_> {
    fn frame(&self, gpa: Maddr) -> Result<Mfn, ReadError> {
        let hit = self.p2m.translate(Gfn(gpa.0 >> 12));
        hit.mfn.ok_or(ReadError::Absent { addr: gpa, why: Absent::NotInP2m })
    }
}

impl PhysMem for GuestPhys<'_> {
    fn page(&self, gfn_page: Mfn) -> Result<Page<'_>, ReadError> {
        let mfn = self.frame(gfn_page.maddr())?;
        self.mem.page(mfn)
    }

    fn read(&self, addr: Maddr, buf: &mut [u8]) -> Result<(), ReadError> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr.wrapping_add(done as u64);
            let mfn = self.frame(a)?;
            let n = ((0x1000 - a.page_offset()) as usize).min(buf.len() - done);
            self.mem.read(Maddr(mfn.maddr().0 + a.page_offset()), &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn locate(&self, addr: Maddr) -> Result<(), Absent> {
        match self.frame(addr) {
            Ok(mfn) => self.mem.locate(Maddr(mfn.maddr().0 + addr.page_offset())),
            Err(e) => Err(e.absent().unwrap_or(Absent::NotInP2m)),
        }
    }

    fn extents(&self) -> Vec<Extent> {
        Vec::new()
    }
}
