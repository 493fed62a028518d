//! Whole-address-space enumeration: every present leaf reachable from a root.
//!
//! Each table page is read once per path through it, 512 entries at a time, and every
//! present entry is followed, including entries equal to their neighbours and
//! self-references (Xen's linear page-table slot 258 maps the L4 onto itself, and the
//! MMU follows it like any other entry; memflow's and volatility3's shortcuts drop
//! such mappings, see STYLE.md §3). Leaves stream to a callback in ascending VA order;
//! nothing proportional to the number of mappings is kept.

use super::entry::{Entry, Level, Rights, bits};
use super::walk::WalkOptions;
use crate::addr::{Maddr, Vaddr};
use crate::mem::{PhysMem, ReadError};
use serde::Serialize;
use std::collections::HashSet;
use std::ops::ControlFlow;

/// A present leaf: one mapped page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub va: Vaddr,
    /// First machine address of the page.
    pub page: Maddr,
    pub level: Level,
    pub entry: Entry,
    /// Rights accumulated over all levels.
    pub rights: Rights,
}

impl Leaf {
    pub fn size(&self) -> u64 {
        self.level.page_size()
    }
}

/// What the enumeration meets, in VA order.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    Leaf(&'a Leaf),
    /// A table the dump cannot supply (all or some of its entries).
    Unreadable {
        level: Level,
        table: Maddr,
        va: Vaddr,
        error: ReadError,
        partial: bool,
    },
    /// A present entry with reserved bits: the CPU faults on every VA below it.
    Reserved {
        level: Level,
        va: Vaddr,
        entry_maddr: Maddr,
        entry: Entry,
        bits: u64,
    },
}

/// Counts per level, indexed by level number (index 0 unused).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PerLevel {
    pub l4: u64,
    pub l3: u64,
    pub l2: u64,
    pub l1: u64,
}

impl PerLevel {
    fn bump(&mut self, level: Level) {
        match level {
            Level::L4 => self.l4 += 1,
            Level::L3 => self.l3 += 1,
            Level::L2 => self.l2 += 1,
            Level::L1 => self.l1 += 1,
        }
    }
    pub fn get(&self, level: Level) -> u64 {
        match level {
            Level::L4 => self.l4,
            Level::L3 => self.l3,
            Level::L2 => self.l2,
            Level::L1 => self.l1,
        }
    }
    pub fn total(&self) -> u64 {
        self.l4 + self.l3 + self.l2 + self.l1
    }
}

/// What an enumeration found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Table pages read, per level (a table reached by two paths counts twice).
    pub tables: PerLevel,
    /// Distinct table pages.
    pub distinct_tables: u64,
    /// Leaves per level: 1 GiB pages at L3, 2 MiB at L2, 4 KiB at L1.
    pub leaves: PerLevel,
    /// Bytes of VA mapped.
    pub mapped_bytes: u64,
    /// Entries with P = 0 but other bits set.
    pub not_present_nonzero: u64,
    /// Present entries with reserved bits set (skipped: the CPU faults there).
    pub reserved_entries: u64,
    /// Tables wholly or partly absent from the dump.
    pub unreadable_tables: u64,
}

/// Enumerate every leaf under the L4 at `root`, calling `f` for each event in VA
/// order. `f` may stop the enumeration by returning `Break`.
pub fn enumerate<F>(mem: &dyn PhysMem, root: Maddr, opts: WalkOptions, mut f: F) -> Summary
where
    F: FnMut(Event<'_>) -> ControlFlow<()>,
{
    let mut e = Enumerator { mem, opts, summary: Summary::default(), seen: HashSet::new(), f: &mut f };
    let _ = e.table(Level::L4, Maddr(root.0 & !0xfff), 0, Rights::ALL);
    e.summary.distinct_tables = e.seen.len() as u64;
    e.summary
}

struct Enumerator<'m, 'f, F> {
    mem: &'m dyn PhysMem,
    opts: WalkOptions,
    summary: Summary,
    seen: HashSet<u64>,
    f: &'f mut F,
}

/// The 512 entries of a table, with the ones the dump cannot supply marked.
enum Entries<'m> {
    Page(crate::mem::Page<'m>),
    Partial(Box<[Option<u64>; 512]>),
}

impl<F> Enumerator<'_, '_, F>
where
    F: FnMut(Event<'_>) -> ControlFlow<()>,
{
    fn table(&mut self, level: Level, table: Maddr, va_base: u64, rights: Rights) -> ControlFlow<()> {
        self.summary.tables.bump(level);
        self.seen.insert(table.0);
        let mem = self.mem;
        let entries = match mem.page(table.mfn()) {
            Ok(p) => Entries::Page(p),
            Err(error) => {
                // Segments may split a page: read what can be read, entry by entry.
                let mut part = Box::new([None; 512]);
                for (i, slot) in part.iter_mut().enumerate() {
                    *slot = mem.read_u64(table.wrapping_add(i as u64 * 8)).ok();
                }
                let any = part.iter().any(Option::is_some);
                self.summary.unreadable_tables += 1;
                let va = Vaddr::canonicalize(va_base);
                (self.f)(Event::Unreadable { level, table, va, error, partial: any })?;
                if !any {
                    return ControlFlow::Continue(());
                }
                Entries::Partial(part)
            }
        };
        for i in 0..512usize {
            let raw = match &entries {
                Entries::Page(p) => p.entry(i),
                Entries::Partial(p) => match p.get(i).copied().flatten() {
                    Some(v) => v,
                    None => continue,
                },
            };
            let e = Entry(raw);
            if !e.present() {
                if raw != 0 {
                    self.summary.not_present_nonzero += 1;
                }
                continue;
            }
            let va = va_base | ((i as u64) << level.shift());
            let rsvd = e.reserved_bits(level, self.opts.maxphyaddr, self.opts.nxe);
            if rsvd != 0 {
                self.summary.reserved_entries += 1;
                let ev = Event::Reserved {
                    level,
                    va: Vaddr::canonicalize(va),
                    entry_maddr: table.wrapping_add(i as u64 * 8),
                    entry: e,
                    bits: rsvd,
                };
                (self.f)(ev)?;
                continue;
            }
            let r = rights.through(e, self.opts.nxe);
            let next = e.addr(level, self.opts.maxphyaddr);
            match level.below() {
                Some(below) if !e.is_leaf(level) => {
                    self.table(below, Maddr(next), va, r)?;
                }
                _ => {
                    let leaf = Leaf { va: Vaddr::canonicalize(va), page: Maddr(next), level, entry: e, rights: r };
                    self.summary.leaves.bump(level);
                    self.summary.mapped_bytes = self.summary.mapped_bytes.saturating_add(level.page_size());
                    (self.f)(Event::Leaf(&leaf))?;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// A run of leaves merged for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub va: Vaddr,
    pub maddr: Maddr,
    pub size: u64,
    pub page_size: u64,
    pub level: Level,
    /// The leaf entry bits shared by every page of the range (frame bits removed;
    /// A and D removed when coalescing).
    pub attrs: Entry,
    pub rights: Rights,
    /// Number of leaves merged.
    pub leaves: u64,
}

impl Range {
    /// A range holding exactly one leaf, with all its bits.
    pub fn single(leaf: &Leaf) -> Range {
        Range {
            va: leaf.va,
            maddr: leaf.page,
            size: leaf.size(),
            page_size: leaf.size(),
            level: leaf.level,
            attrs: Entry(leaf.entry.0 & !leaf.entry.frame_mask(leaf.level, 52)),
            rights: leaf.rights,
            leaves: 1,
        }
    }
    /// Last VA of the range.
    pub fn va_last(&self) -> Vaddr {
        Vaddr(self.va.0.wrapping_add(self.size - 1))
    }
    /// Last machine address of the range.
    pub fn maddr_last(&self) -> Maddr {
        Maddr(self.maddr.0.wrapping_add(self.size - 1))
    }
}

/// Merges consecutive leaves with the same page size, rights, and attributes (all
/// leaf bits except the frame, Accessed and Dirty) whose VAs and machine addresses
/// both continue the previous leaf. Holds one range at a time.
#[derive(Default)]
pub struct Coalescer {
    cur: Option<Range>,
}

impl Coalescer {
    /// Add a leaf; returns the range it closed, if any.
    pub fn push(&mut self, leaf: &Leaf) -> Option<Range> {
        let mut r = Range::single(leaf);
        r.attrs = Entry(r.attrs.0 & !(bits::A | bits::D));
        if let Some(cur) = &mut self.cur {
            let joins = cur.page_size == r.page_size
                && cur.attrs == r.attrs
                && cur.rights == r.rights
                && cur.va.0.wrapping_add(cur.size) == r.va.0
                && cur.maddr.0.wrapping_add(cur.size) == r.maddr.0;
            if joins {
                cur.size += r.size;
                cur.leaves += 1;
                return None;
            }
        }
        self.cur.replace(r)
    }
    /// The last open range.
    pub fn finish(&mut self) -> Option<Range> {
        self.cur.take()
    }
}
