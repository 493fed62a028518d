//! What a walk means to the hypervisor, computed once as data.
//!
//! A walk ([`crate::diagnose::Translation`]) says which entries the MMU read; this
//! step adds what a Xen developer reads beside them: the region of the VA in Xen's
//! layout, its symbol and section, what kind of root it is, each table page as Xen
//! knows it (`idle_pg_table`, `l3_xenmap`, a heap page's direct-map address), the
//! guest pfn of each frame of a PV guest's tables (the M2P, as Xen's
//! `show_page_walk` prints it), the second dimension of an HVM guest's walk (each of
//! its guest-physical frames through the host p2m), and what code inside Xen would
//! read if it used a table's machine address as a pointer. The human, JSON and
//! Xen-style renderers print these records and never read the dump themselves.

use super::hvm::{GuestMemory, Machine};
use super::p2m::{M2p, M2pEntry};
use super::{RootKind, Xen};
use crate::addr::{Gpa, Maddr, Mfn, Pfn};
use crate::diagnose::Translation;
use crate::mem::PhysMem;
use crate::paging::root::Root;

/// A root's meaning to the hypervisor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootNotes {
    /// The L4 page as Xen knows it.
    pub table_name: Option<String>,
    /// What kind of L4 it is (with a dump to read it from).
    pub kind: Option<RootKind>,
}

/// The hypervisor's view of `root`.
pub fn root(xen: Option<&Xen>, mem: Option<&dyn PhysMem>, root: &Root) -> RootNotes {
    let Some(x) = xen else { return RootNotes::default() };
    RootNotes { table_name: x.describe_table(root.maddr), kind: mem.map(|m| x.root_kind(m, root.maddr)) }
}

/// The M2P's answer for one frame of a PV guest's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum M2pNote {
    Pfn(Pfn),
    Invalid,
    Shared,
    /// The M2P entry is not in the dump.
    Unreadable,
}

/// One level of a walk, as the hypervisor sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelNotes {
    /// The table page read at this level, as Xen knows it.
    pub table_name: Option<String>,
    /// When that table is one of the image's static tables: its role.
    pub static_role: Option<&'static str>,
    /// In a PV guest's tables: the M2P's pfn for the frame the entry points to
    /// (`None` for a non-present entry).
    pub m2p: Option<M2pNote>,
}

/// One guest-physical frame of an HVM/PVH guest's walk through the host p2m.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct P2mStep {
    /// `L4 table` … `L1 table`, or `data`.
    pub what: String,
    pub gpa: Gpa,
    pub maddr: Option<Maddr>,
    pub p2m_type: Option<&'static str>,
    pub stop: Option<String>,
}

/// A walk's meaning to the hypervisor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalkNotes {
    /// The VA's region in Xen's layout, as this root maps it.
    pub region: Option<&'static str>,
    /// `symbol+offset` of the VA in the image.
    pub symbol: Option<String>,
    /// The image section holding the VA.
    pub section: Option<String>,
    /// What the root is to Xen.
    pub root_kind: Option<RootKind>,
    /// Whether the tables hold a PV guest's machine frames (the M2P column).
    pub pv: bool,
    /// One per step of the walk, in order.
    pub levels: Vec<LevelNotes>,
    /// What Xen code would read using a table's machine address as a pointer.
    pub pointer_pitfalls: Vec<String>,
}

/// What to compute.
#[derive(Clone, Copy, Debug)]
pub struct AnnotateOptions {
    /// The machine's physical-address width (for entry frames).
    pub maxphyaddr: u8,
    /// Compute the pointer pitfalls even when the walk translated (they walk the
    /// root again per table: only asked for by a long explanation or a stop).
    pub pitfalls_always: bool,
}

/// Annotate one walk of `root` in machine memory `mem`.
pub fn walk(xen: Option<&Xen>, mem: &dyn PhysMem, root: &Root, t: &Translation, o: AnnotateOptions) -> WalkNotes {
    let mut n = WalkNotes::default();
    let Some(x) = xen else { return n };
    n.region = x.region_in(mem, root.maddr, t.va).map(|r| r.name);
    n.symbol = x.syms.as_ref().and_then(|sy| sy.name_of(t.va));
    n.section = x.syms.as_ref().and_then(|sy| sy.section_of(t.va)).map(|sec| sec.name.clone());
    let kind = x.root_kind(mem, root.maddr);
    n.root_kind = Some(kind);
    let m2p = match (kind, x.idle_root()) {
        (RootKind::PvGuest, Some(r)) => Some(M2p::new(x, mem, r)),
        _ => None,
    };
    n.pv = m2p.is_some();
    if let Some(w) = &t.walk {
        n.levels = w
            .steps()
            .map(|s| {
                let table_name = x.describe_table(s.table);
                let static_role = table_name
                    .as_deref()
                    .and_then(|name| super::layout::static_table_role(name.split('+').next().unwrap_or("")));
                let m2p = m2p.as_ref().filter(|_| s.entry.present()).map(|m| {
                    match m.get(Mfn(s.entry.addr(s.level, o.maxphyaddr) >> 12)) {
                        Ok(M2pEntry::Pfn(p)) => M2pNote::Pfn(p),
                        Ok(M2pEntry::Invalid) => M2pNote::Invalid,
                        Ok(M2pEntry::Shared) => M2pNote::Shared,
                        Err(_) => M2pNote::Unreadable,
                    }
                });
                LevelNotes { table_name, static_role, m2p }
            })
            .collect();
        if t.diagnosis.is_some() || o.pitfalls_always {
            n.pointer_pitfalls = x.pointer_pitfalls(mem, root.maddr, w);
        }
    }
    n
}

/// One level of a walk of a guest's own tables, in machine memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestLevelNotes {
    /// The table page this level read.
    pub table: Machine,
    /// Where the entry's target (the next table, or the page) lives, when present.
    pub next: Option<Machine>,
}

/// The machine side of a walk of an HVM/PVH guest's own tables ([`Translation<Gpa>`]):
/// the second dimension, each guest-physical address the walk met through the host
/// p2m. Without a p2m (an HVM guest core) every [`Machine`] is `NoP2m`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestNotes {
    /// The guest's L4 table.
    pub root: Machine,
    /// One per step of the walk, in order.
    pub levels: Vec<GuestLevelNotes>,
    /// The translated address, when the walk translated.
    pub result: Option<Machine>,
    /// With a p2m: each guest table the walk read and the data page, through it, in
    /// order (JSON `p2m`, the human "through the p2m" lines).
    pub p2m: Option<Vec<P2mStep>>,
}

impl GuestNotes {
    /// The machine address of the translated address, when known.
    pub fn maddr(&self) -> Option<Maddr> {
        self.result.as_ref().and_then(Machine::maddr)
    }
}

/// The machine side of a walk of a guest's own tables.
pub fn guest_walk(mem: &GuestMemory<'_>, root: &Root<Gpa>, t: &Translation<Gpa>, maxphyaddr: u8) -> GuestNotes {
    let mut n = GuestNotes { root: mem.machine(root.maddr), levels: Vec::new(), result: None, p2m: None };
    let Some(w) = &t.walk else { return n };
    n.levels = w
        .steps()
        .map(|s| GuestLevelNotes {
            table: mem.machine(s.table),
            next: s.entry.present().then(|| mem.machine(Gpa(s.entry.addr(s.level, maxphyaddr)))),
        })
        .collect();
    n.result = w.mapping().map(|m| mem.machine(m.maddr));
    if mem.p2m().is_some() {
        let mut dim2: Vec<P2mStep> =
            w.steps().zip(&n.levels).map(|(s, l)| p2m_step(format!("{} table", s.level), s.table, &l.table)).collect();
        if let (Some(m), Some(r)) = (w.mapping(), &n.result) {
            dim2.push(p2m_step("data".into(), m.maddr, r));
        }
        n.p2m = Some(dim2);
    }
    n
}

fn p2m_step(what: String, gpa: Gpa, m: &Machine) -> P2mStep {
    match m {
        Machine::At { maddr, p2m_type, .. } => {
            P2mStep { what, gpa, maddr: Some(*maddr), p2m_type: *p2m_type, stop: None }
        }
        Machine::Unmapped(why) => P2mStep { what, gpa, maddr: None, p2m_type: None, stop: Some(why.clone()) },
        Machine::NoP2m => P2mStep { what, gpa, maddr: None, p2m_type: None, stop: None },
    }
}

/// "region: symbol (section)" for a VA, as the human renderer heads a walk.
pub fn describe_va(n: &WalkNotes) -> Option<String> {
    let mut s = n.region?.to_string();
    if let Some(name) = &n.symbol {
        s.push_str(": ");
        s.push_str(name);
    }
    if let Some(sec) = &n.section {
        s.push_str(&format!(" ({sec})"));
    }
    Some(s)
}
