//! The four-level walk of one virtual address, recorded step by step.
//!
//! The walker does what the MMU does and nothing more: it reads the entry at each
//! level, stops where the hardware would fault (not present, reserved bits) or where
//! the dump cannot answer (the table is absent), and otherwise returns the frame and
//! page size with the rights accumulated over all levels. Explaining *why* a walk
//! stopped is [`crate::diagnose`]'s job; the walker only records the facts.
//!
//! The records are generic over the kind of physical address the tables hold
//! ([`PhysAddr`]): a walk of machine memory is a `Walk` (= `Walk<Maddr>`), a walk of
//! an HVM/PVH guest's own tables a `Walk<Gpa>`, whose table, entry and result
//! addresses are guest-physical and typed so. The machine addresses behind a guest
//! walk come from the host p2m, beside the record
//! ([`crate::xen::annotate::guest_walk`]), never inside it.

use super::desc::PagingDesc;
use super::entry::{DEFAULT_MAXPHYADDR, Entry, Level, Rights};
use crate::addr::{Maddr, PhysAddr, Vaddr};
use crate::mem::{PhysMem, ReadError, TableMem};

/// Settings that change what a walk means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkOptions {
    /// Physical-address width M: bits 51:M of entries are reserved.
    pub maxphyaddr: u8,
    /// EFER.NXE: when clear, bit 63 is reserved instead of meaning no-execute.
    pub nxe: bool,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions { maxphyaddr: DEFAULT_MAXPHYADDR, nxe: true }
    }
}

/// One level of a walk: the entry read and what it led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step<A: PhysAddr = Maddr> {
    pub level: Level,
    pub index: u16,
    /// Address of the table this entry was read from (machine, or guest-physical in
    /// a guest's own tables).
    pub table: A,
    /// Address of the entry (`table + 8 * index`), of the same kind.
    pub entry_maddr: A,
    pub entry: Entry,
    /// Rights accumulated through this entry (meaningful when it is present).
    pub rights: Rights,
    /// Reserved bits that are set (0 if none).
    pub reserved: u64,
}

impl<A: PhysAddr> Step<A> {
    /// Whether this step maps the page (a present leaf without reserved bits).
    pub fn is_leaf(&self) -> bool {
        self.entry.present() && self.entry.is_leaf(self.level)
    }
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping<A: PhysAddr = Maddr> {
    /// The translated address (machine, or guest-physical in a guest's own tables).
    pub maddr: A,
    /// First address of the page.
    pub page: A,
    pub page_size: u64,
    /// The level whose entry mapped the page.
    pub level: Level,
    pub rights: Rights,
}

/// Why the walk could not continue, as a fact (see `diagnose` for the explanation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopKind {
    /// The address is not canonical: the CPU raises #GP without walking.
    NonCanonical,
    /// The table of this level could not be read from the dump.
    Unreadable(ReadError),
    /// The entry has P = 0.
    NotPresent,
    /// The entry has reserved bits set (the CPU raises #PF with PFEC.RSVD).
    Reserved(u64),
}

/// Where and why a walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop<A: PhysAddr = Maddr> {
    pub level: Level,
    /// Table of that level (for L4: the root).
    pub table: A,
    /// The entry the walk needed.
    pub entry_maddr: A,
    pub kind: StopKind,
}

/// How a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<A: PhysAddr = Maddr> {
    Mapped(Mapping<A>),
    Stopped(Stop<A>),
}

/// The record of one walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk<A: PhysAddr = Maddr> {
    pub va: Vaddr,
    pub root: A,
    steps: [Option<Step<A>>; 4],
    pub outcome: Outcome<A>,
}

impl<A: PhysAddr> Walk<A> {
    /// Assemble a walk from its parts (the batched translator's cache keeps them).
    pub(crate) fn from_parts(va: Vaddr, root: A, steps: [Option<Step<A>>; 4], outcome: Outcome<A>) -> Walk<A> {
        Walk { va, root, steps, outcome }
    }
    /// The levels read, top down (no allocation: at most four).
    pub fn steps(&self) -> impl Iterator<Item = &Step<A>> + '_ {
        self.steps.iter().map_while(|s| s.as_ref())
    }
    /// The step at `level`, if the walk got there.
    pub fn step(&self, level: Level) -> Option<&Step<A>> {
        self.steps().find(|s| s.level == level)
    }
    /// The translation, if any.
    pub fn mapping(&self) -> Option<&Mapping<A>> {
        match &self.outcome {
            Outcome::Mapped(m) => Some(m),
            Outcome::Stopped(_) => None,
        }
    }
    /// The stop, if any.
    pub fn stop(&self) -> Option<&Stop<A>> {
        match &self.outcome {
            Outcome::Stopped(s) => Some(s),
            Outcome::Mapped(_) => None,
        }
    }
}

/// Why a walk stopped, without its details: [`StopKind`] less the payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StopCode {
    NonCanonical,
    Unreadable,
    NotPresent,
    Reserved,
}

/// What a walk found, without the record of it: the machine address and the level
/// that mapped it, or the level and reason it stopped. Sixteen bytes and `Copy`, for
/// callers that translate millions of VAs and want only the answer (`--brief`,
/// [`crate::paging::Translator::translate_many`]); it is exactly what
/// [`Resolved::of`] takes from the full [`Walk`] of the same VA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    Mapped { maddr: Maddr, level: Level },
    Stopped { level: Level, code: StopCode },
}

impl Resolved {
    /// The answer of a full walk.
    pub fn of(w: &Walk) -> Resolved {
        match &w.outcome {
            Outcome::Mapped(m) => Resolved::Mapped { maddr: m.maddr, level: m.level },
            Outcome::Stopped(s) => Resolved::Stopped {
                level: s.level,
                code: match s.kind {
                    StopKind::NonCanonical => StopCode::NonCanonical,
                    StopKind::Unreadable(_) => StopCode::Unreadable,
                    StopKind::NotPresent => StopCode::NotPresent,
                    StopKind::Reserved(_) => StopCode::Reserved,
                },
            },
        }
    }
    /// The translated machine address, if the VA maps.
    #[inline]
    pub fn maddr(self) -> Option<Maddr> {
        match self {
            Resolved::Mapped { maddr, .. } => Some(maddr),
            Resolved::Stopped { .. } => None,
        }
    }
    /// The size of the page that maps the VA, if it maps.
    #[inline]
    pub fn page_size(self) -> Option<u64> {
        match self {
            Resolved::Mapped { level, .. } => Some(level.page_size()),
            Resolved::Stopped { .. } => None,
        }
    }
}

/// Walk `va` from the L4 table at `root`.
pub fn walk(mem: &dyn PhysMem, root: Maddr, va: Vaddr, opts: WalkOptions) -> Walk {
    walk_desc(mem, root, va, &PagingDesc::x86_64(opts))
}

/// Walk `va` from the L4 table at `root` in memory of any address kind: for a
/// guest's own tables, `A` is [`crate::addr::Gpa`] and `mem` its guest-physical memory.
pub fn walk_in<A: PhysAddr>(mem: &(impl TableMem<A> + ?Sized), root: A, va: Vaddr, opts: WalkOptions) -> Walk<A> {
    walk_desc_in(root, va, &PagingDesc::x86_64(opts), |a| mem.read_u64(a))
}

/// [`walk`] by a description built once (for callers that walk many VAs).
pub(crate) fn walk_desc(mem: &dyn PhysMem, root: Maddr, va: Vaddr, desc: &PagingDesc) -> Walk {
    walk_desc_in(root, va, desc, |a| mem.read_u64(a))
}

#[inline]
fn walk_desc_in<A: PhysAddr>(
    root: A,
    va: Vaddr,
    desc: &PagingDesc,
    read: impl FnMut(A) -> Result<u64, ReadError>,
) -> Walk<A> {
    let mut steps = [None; 4];
    let root = A::at(root.raw() & !0xfff);
    if !va.is_canonical() {
        let outcome =
            Outcome::Stopped(Stop { level: Level::L4, table: root, entry_maddr: root, kind: StopKind::NonCanonical });
        return Walk { va, root, steps, outcome };
    }
    let outcome = walk_from(Level::L4, root, Rights::ALL, va, desc, &mut steps, read);
    Walk { va, root, steps, outcome }
}

/// Where one level of a walk leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next<A: PhysAddr = Maddr> {
    /// Go on with `table` at `level` (one down), with the rights accumulated so far.
    Table { level: Level, table: A, rights: Rights },
    /// The walk ends here.
    End(Outcome<A>),
}

/// Read the entry of `va` at `level` in `table` through `read`, record the step in
/// `steps` and say where the walk goes, by `desc`'s masks. This is the walker:
/// [`walk`] and the batched [`crate::paging::batch::Translator`] both run every
/// level through it, so they cannot disagree.
#[inline]
pub(crate) fn step<A: PhysAddr>(
    level: Level,
    table: A,
    rights: Rights,
    va: Vaddr,
    desc: &PagingDesc,
    steps: &mut [Option<Step<A>>; 4],
    read: impl FnOnce(A) -> Result<u64, ReadError>,
) -> Next<A> {
    let d = desc.level(level);
    let index = va.index_at(d.shift);
    let entry_maddr = table.plus(index as u64 * 8);
    let stop = |kind| Next::End(Outcome::Stopped(Stop { level, table, entry_maddr, kind }));
    let entry = match read(entry_maddr) {
        Ok(v) => Entry(v),
        Err(e) => return stop(StopKind::Unreadable(e)),
    };
    let present = entry.0 & desc.present != 0;
    let reserved = if present { d.reserved(entry.0) } else { 0 };
    let rights = if present { desc.fold.apply(rights, entry) } else { rights };
    // Levels are walked top down, L4 into slot 0.
    if let Some(slot) = steps.get_mut(usize::from(4 - level.number())) {
        *slot = Some(Step { level, index: index as u16, table, entry_maddr, entry, rights, reserved });
    }
    if !present {
        return stop(StopKind::NotPresent);
    }
    if reserved != 0 {
        return stop(StopKind::Reserved(reserved));
    }
    let next = d.addr(entry.0);
    // An L1 entry is always a leaf, so `below()` is taken only above L1.
    match level.below() {
        Some(below) if !d.is_leaf(entry.0) => Next::Table { level: below, table: A::at(next & !0xfff), rights },
        _ => {
            let size = d.page_size;
            Next::End(Outcome::Mapped(Mapping {
                maddr: A::at(next | (va.0 & (size - 1))),
                page: A::at(next),
                page_size: size,
                level,
                rights,
            }))
        }
    }
}

/// Continue a walk of canonical `va` at `level` in `table`, reading entries through
/// `read`, until it ends.
#[inline]
pub(crate) fn walk_from<A: PhysAddr>(
    mut level: Level,
    mut table: A,
    mut rights: Rights,
    va: Vaddr,
    desc: &PagingDesc,
    steps: &mut [Option<Step<A>>; 4],
    mut read: impl FnMut(A) -> Result<u64, ReadError>,
) -> Outcome<A> {
    loop {
        match step(level, table, rights, va, desc, steps, &mut read) {
            Next::End(outcome) => return outcome,
            Next::Table { level: l, table: t, rights: r } => (level, table, rights) = (l, t, r),
        }
    }
}
