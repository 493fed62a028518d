//! The four-level walk of one virtual address, recorded step by step.
//!
//! The walker does what the MMU does and nothing more: it reads the entry at each
//! level, stops where the hardware would fault (not present, reserved bits) or where
//! the dump cannot answer (the table is absent), and otherwise returns the frame and
//! page size with the rights accumulated over all levels. Explaining *why* a walk
//! stopped is [`crate::diagnose`]'s job; the walker only records the facts.

use super::desc::PagingDesc;
use super::entry::{DEFAULT_MAXPHYADDR, Entry, Level, Rights};
use crate::addr::{Maddr, Mfn, Vaddr};
use crate::mem::{PhysMem, ReadError};

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
pub struct Step {
    pub level: Level,
    pub index: u16,
    /// Machine address of the table this entry was read from.
    pub table: Maddr,
    /// Machine address of the entry (`table + 8 * index`).
    pub entry_maddr: Maddr,
    pub entry: Entry,
    /// Rights accumulated through this entry (meaningful when it is present).
    pub rights: Rights,
    /// Reserved bits that are set (0 if none).
    pub reserved: u64,
}

impl Step {
    /// Whether this step maps the page (a present leaf without reserved bits).
    pub fn is_leaf(&self) -> bool {
        self.entry.present() && self.entry.is_leaf(self.level)
    }
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The translated machine address.
    pub maddr: Maddr,
    /// First machine address of the page.
    pub page: Maddr,
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
pub struct Stop {
    pub level: Level,
    /// Table of that level (for L4: the root).
    pub table: Maddr,
    /// The entry the walk needed.
    pub entry_maddr: Maddr,
    pub kind: StopKind,
}

/// How a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Mapped(Mapping),
    Stopped(Stop),
}

/// The record of one walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    pub va: Vaddr,
    pub root: Maddr,
    steps: [Option<Step>; 4],
    pub outcome: Outcome,
}

impl Walk {
    /// Assemble a walk from its parts (the batched translator's cache keeps them).
    pub(crate) fn from_parts(va: Vaddr, root: Maddr, steps: [Option<Step>; 4], outcome: Outcome) -> Walk {
        Walk { va, root, steps, outcome }
    }
    /// The levels read, top down (no allocation: at most four).
    pub fn steps(&self) -> impl Iterator<Item = &Step> + '_ {
        self.steps.iter().map_while(|s| s.as_ref())
    }
    /// The step at `level`, if the walk got there.
    pub fn step(&self, level: Level) -> Option<&Step> {
        self.steps().find(|s| s.level == level)
    }
    /// The translation, if any.
    pub fn mapping(&self) -> Option<&Mapping> {
        match &self.outcome {
            Outcome::Mapped(m) => Some(m),
            Outcome::Stopped(_) => None,
        }
    }
    /// The stop, if any.
    pub fn stop(&self) -> Option<&Stop> {
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

/// [`walk`] by a description built once (for callers that walk many VAs).
pub(crate) fn walk_desc(mem: &dyn PhysMem, root: Maddr, va: Vaddr, desc: &PagingDesc) -> Walk {
    let mut steps = [None; 4];
    let root = Maddr(root.0 & !0xfff);
    if !va.is_canonical() {
        let outcome =
            Outcome::Stopped(Stop { level: Level::L4, table: root, entry_maddr: root, kind: StopKind::NonCanonical });
        return Walk { va, root, steps, outcome };
    }
    let outcome = walk_from(Level::L4, root, Rights::ALL, va, desc, &mut steps, |a| mem.read_u64(a));
    Walk { va, root, steps, outcome }
}

/// Where one level of a walk leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Go on with `table` at `level` (one down), with the rights accumulated so far.
    Table { level: Level, table: Maddr, rights: Rights },
    /// The walk ends here.
    End(Outcome),
}

/// Read the entry of `va` at `level` in `table` through `read`, record the step in
/// `steps` and say where the walk goes, by `desc`'s masks. This is the walker:
/// [`walk`] and the batched [`crate::paging::batch::Translator`] both run every
/// level through it, so they cannot disagree.
#[inline]
pub(crate) fn step(
    level: Level,
    table: Maddr,
    rights: Rights,
    va: Vaddr,
    desc: &PagingDesc,
    steps: &mut [Option<Step>; 4],
    read: impl FnOnce(Maddr) -> Result<u64, ReadError>,
) -> Next {
    let d = desc.level(level);
    let index = va.index_at(d.shift);
    let entry_maddr = table.wrapping_add(index as u64 * 8);
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
        Some(below) if !d.is_leaf(entry.0) => Next::Table { level: below, table: Mfn(next >> 12).maddr(), rights },
        _ => {
            let size = d.page_size;
            Next::End(Outcome::Mapped(Mapping {
                maddr: Maddr(next | (va.0 & (size - 1))),
                page: Maddr(next),
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
pub(crate) fn walk_from(
    mut level: Level,
    mut table: Maddr,
    mut rights: Rights,
    va: Vaddr,
    desc: &PagingDesc,
    steps: &mut [Option<Step>; 4],
    mut read: impl FnMut(Maddr) -> Result<u64, ReadError>,
) -> Outcome {
    loop {
        match step(level, table, rights, va, desc, steps, &mut read) {
            Next::End(outcome) => return outcome,
            Next::Table { level: l, table: t, rights: r } => (level, table, rights) = (l, t, r),
        }
    }
}
