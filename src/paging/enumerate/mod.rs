//! Whole-address-space enumeration: every present leaf reachable from a root.
//!
//! Each table is visited once per path through it, and every present entry is
//! followed, including entries equal to their neighbours and self-references (Xen's
//! linear page-table slot 258 maps the L4 onto itself, and the MMU follows it like any
//! other entry; memflow's and volatility3's shortcuts drop such mappings, see STYLE.md
//! §3). Leaves stream to a callback in ascending VA order; nothing proportional to the
//! number of mappings is kept.
//!
//! The core works a table at a time ([`enumerate_tables`]): a table page is decoded
//! once into masks (leaves, tables below, reserved, junk), the decoding is reused
//! when the same frame is met again at the same level (it depends on nothing else),
//! and a table's leaves go to the callback as one [`Leaves`] run. Counting or bulk
//! work then costs per table, not per leaf — on a root whose entries all lead to one
//! table, millions of leaves cost a few thousand runs — and still every leaf is
//! there: the per-leaf [`enumerate`] expands the runs.
//!
//! Here: the events and counts, [`enumerate`], [`enumerate_tables`], [`enumerate_with`]
//! and the sequential enumerator every variant drives. Beside it: `tables` (a table
//! decoded once, and [`Leaves`]), `parallel` ([`enumerate_par`], [`enumerate_tables_with`]:
//! L2 tables expanded on rayon's threads, delivered in order) and `coalesce` ([`Range`],
//! [`Coalescer`]: leaves merged for display).

mod coalesce;
mod parallel;
mod tables;
mod typed;

pub use coalesce::{Coalescer, Range};
pub use parallel::{enumerate_par, enumerate_tables_with};
pub use tables::Leaves;
pub use typed::enumerate_in;

use super::desc::PagingDesc;
use super::entry::{Entry, Level, Rights};
use super::walk::WalkOptions;
use crate::addr::{Maddr, PhysAddr, Vaddr};
use crate::mem::resident::{self, Resident};
use crate::mem::{PhysMem, ReadError};
use serde::Serialize;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use tables::Decoded;

/// A present leaf: one mapped page (`Leaf<Gpa>` in a guest's own tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf<A: PhysAddr = Maddr> {
    pub va: Vaddr,
    /// First address of the page (machine, or guest-physical in a guest's tables).
    pub page: A,
    pub level: Level,
    pub entry: Entry,
    /// Rights accumulated over all levels.
    pub rights: Rights,
}

impl<A: PhysAddr> Leaf<A> {
    pub fn size(&self) -> u64 {
        self.level.page_size()
    }
}

/// What the enumeration meets, in VA order.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a, A: PhysAddr = Maddr> {
    Leaf(&'a Leaf<A>),
    /// A table the dump cannot supply (all or some of its entries).
    Unreadable {
        level: Level,
        table: A,
        va: Vaddr,
        error: ReadError,
        partial: bool,
    },
    /// A present entry with reserved bits: the CPU faults on every VA below it.
    Reserved {
        level: Level,
        va: Vaddr,
        entry_maddr: A,
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

/// At most how many leaves a listing delivers. Every path is followed (an address
/// space whose tables are shared is listed as the MMU sees it), so a root whose
/// tables alias everywhere — 512 L4 entries naming one L3 whose 512 entries name one
/// L2, and so on, which a corrupt or hostile dump can hold — maps every one of the
/// 2^36 4 KiB pages of the address space: streamed in bounded memory, but for hours.
/// A listing counts its leaves here and stops at the limit, saying so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafLimit {
    max: u64,
    delivered: u64,
    reached: bool,
}

impl LeafLimit {
    /// The default: 2^28 leaves (a 1 TiB direct map in 4 KiB pages; the real machines
    /// met so far list 16,416 to 16.8 million).
    pub const DEFAULT: u64 = 1 << 28;

    pub fn new(max: u64) -> LeafLimit {
        LeafLimit { max, delivered: 0, reached: false }
    }

    /// One more leaf: `Break` (and the leaf is not to be delivered) once `max` were.
    #[inline]
    pub fn take(&mut self) -> ControlFlow<()> {
        if self.delivered >= self.max {
            self.reached = true;
            return ControlFlow::Break(());
        }
        self.delivered += 1;
        ControlFlow::Continue(())
    }

    /// The limit, when the listing stopped at it.
    pub fn reached(&self) -> Option<u64> {
        self.reached.then_some(self.max)
    }
}

impl Default for LeafLimit {
    fn default() -> Self {
        LeafLimit::new(LeafLimit::DEFAULT)
    }
}

/// Enumerate every leaf under the L4 at `root`, calling `f` for each event in VA
/// order. `f` may stop the enumeration by returning `Break`.
pub fn enumerate<F>(mem: &dyn PhysMem, root: Maddr, opts: WalkOptions, mut f: F) -> Summary
where
    F: FnMut(Event<'_>) -> ControlFlow<()>,
{
    enumerate_tables(mem, root, opts, per_leaf(&mut f))
}

/// [`enumerate`] a table at a time: `f` gets each table's leaves at once (a
/// [`Leaves`]: the table, its base VA, level and rights, and which of its entries are
/// leaves), and the other events as they come, all in VA order. A table whose
/// leaves are interrupted by a sub-table or an entry with reserved bits comes as
/// several runs. This is what [`enumerate`] and [`enumerate_with`] are built on:
/// counting or bulk-processing leaves costs nothing per leaf here.
pub fn enumerate_tables<F>(mem: &dyn PhysMem, root: Maddr, opts: WalkOptions, mut f: F) -> Summary
where
    F: FnMut(TableEvent<'_>) -> ControlFlow<()>,
{
    let mut e = Enumerator::new(mem, opts, Direct(&mut f), Resident::new(None, u32::MAX));
    let _ = e.table(Level::L4, Maddr(root.0 & !0xfff), 0, Rights::ALL);
    e.summary.distinct_tables = e.seen.len() as u64;
    e.summary
}

/// A per-leaf event function as a table-event function: each leaf of a run in turn.
fn per_leaf<F>(f: &mut F) -> impl FnMut(TableEvent<'_>) -> ControlFlow<()> + '_
where
    F: FnMut(Event<'_>) -> ControlFlow<()>,
{
    move |te| match te {
        TableEvent::Leaves(run) => run.try_for_each(|leaf| f(Event::Leaf(leaf))),
        TableEvent::Other(ev) => f(ev),
    }
}

/// What a table-at-a-time enumeration meets, in VA order.
#[derive(Clone, Copy, Debug)]
pub enum TableEvent<'a> {
    /// Consecutive leaves of one table.
    Leaves(&'a Leaves),
    /// Anything but a leaf ([`Event::Unreadable`], [`Event::Reserved`]).
    Other(Event<'a>),
}

/// Where an [`Enumerator`] sends what it finds.
trait Sink {
    /// Anything but a leaf.
    fn event(&mut self, ev: Event<'_>) -> ControlFlow<()>;
    /// Consecutive leaves of a table.
    fn leaves(&mut self, run: &Leaves) -> ControlFlow<()>;
    /// A present entry leads to the table `table` one level down, `below`. Return
    /// `None` to descend into it here and now, or take it elsewhere.
    fn split(&mut self, _below: Level, _table: Maddr, _va: u64, _rights: Rights) -> Option<ControlFlow<()>> {
        None
    }
}

/// Events straight to the caller's function.
struct Direct<'f, F>(&'f mut F);

impl<F> Sink for Direct<'_, F>
where
    F: FnMut(TableEvent<'_>) -> ControlFlow<()>,
{
    #[inline]
    fn event(&mut self, ev: Event<'_>) -> ControlFlow<()> {
        (self.0)(TableEvent::Other(ev))
    }
    #[inline]
    fn leaves(&mut self, run: &Leaves) -> ControlFlow<()> {
        (self.0)(TableEvent::Leaves(run))
    }
}

/// Decoded tables kept by one enumerator (direct-mapped by frame and level).
const MEMO_SLOTS: usize = 64;

struct Enumerator<'m, S> {
    mem: &'m dyn PhysMem,
    desc: PagingDesc,
    summary: Summary,
    seen: HashSet<u64>,
    sink: S,
    resident: Resident,
    /// (frame << 3 | level, its decoded entries); only wholly readable pages.
    memo: Vec<Option<(u64, Arc<Decoded>)>>,
}

/// Mask of entries `range` (within 0..512) in word `w`.
#[inline]
fn range_word(range: &std::ops::Range<usize>, w: usize) -> u64 {
    let (lo, hi) = (w * 64, w * 64 + 64);
    let (a, b) = (range.start.clamp(lo, hi) - lo, range.end.clamp(lo, hi) - lo);
    if a >= b {
        0
    } else if b - a == 64 {
        u64::MAX
    } else {
        ((1u64 << (b - a)) - 1) << a
    }
}

impl<'m, S: Sink> Enumerator<'m, S> {
    fn new(mem: &'m dyn PhysMem, opts: WalkOptions, sink: S, resident: Resident) -> Self {
        Enumerator {
            mem,
            desc: PagingDesc::x86_64(opts),
            summary: Summary::default(),
            seen: HashSet::new(),
            sink,
            resident,
            memo: vec![None; MEMO_SLOTS],
        }
    }

    fn table(&mut self, level: Level, table: Maddr, va_base: u64, rights: Rights) -> ControlFlow<()> {
        self.entries(level, table, va_base, rights, 0..512)
    }

    /// The decoded table at `table`, from the memo or read now; `None` (after the
    /// event, for the head) when the dump holds none of it.
    fn decoded(
        &mut self,
        level: Level,
        table: Maddr,
        va_base: u64,
        head: bool,
    ) -> Result<Arc<Decoded>, ControlFlow<()>> {
        let key = (table.0 >> 12) << 3 | u64::from(level.number());
        let slot = ((key ^ (key >> 9) ^ (key >> 18)) as usize) % MEMO_SLOTS;
        if let Some(Some((k, d))) = self.memo.get(slot) {
            if *k == key {
                return Ok(Arc::clone(d));
            }
        }
        let mem = self.mem;
        self.resident.tick(mem, table);
        let (rules, present, fold) = (self.desc.level(level), self.desc.present, self.desc.fold);
        match mem.page(table.mfn()) {
            Ok(p) => {
                let d = Arc::new(Decoded::new(rules, present, fold, |i| Some(p.entry(i))));
                if let Some(s) = self.memo.get_mut(slot) {
                    *s = Some((key, Arc::clone(&d)));
                }
                Ok(d)
            }
            Err(error) => {
                // Segments may split a page: read what can be read, entry by entry.
                let mut part = Box::new([None; 512]);
                for (i, slot) in part.iter_mut().enumerate() {
                    *slot = mem.read_u64(table.wrapping_add(i as u64 * 8)).ok();
                }
                let any = part.iter().any(Option::is_some);
                if head {
                    self.summary.unreadable_tables += 1;
                    let va = Vaddr::canonicalize(va_base);
                    if self.sink.event(Event::Unreadable { level, table, va, error, partial: any }).is_break() {
                        return Err(ControlFlow::Break(()));
                    }
                }
                if !any {
                    return Err(ControlFlow::Continue(()));
                }
                let rules = self.desc.level(level);
                Ok(Arc::new(Decoded::new(rules, present, fold, |i| part.get(i).copied().flatten())))
            }
        }
    }

    /// Hand the leaves of `run` (if any) to the sink and count them.
    #[inline]
    fn flush(&mut self, run: &mut Leaves) -> ControlFlow<()> {
        let n = run.count();
        if n == 0 {
            return ControlFlow::Continue(());
        }
        let (level, l) = (run.level, &mut self.summary.leaves);
        match level {
            Level::L4 => l.l4 += n,
            Level::L3 => l.l3 += n,
            Level::L2 => l.l2 += n,
            Level::L1 => l.l1 += n,
        }
        self.summary.mapped_bytes = self.summary.mapped_bytes.saturating_add(n.saturating_mul(level.page_size()));
        let flow = self.sink.leaves(run);
        run.mask = [0; 8];
        flow
    }

    /// Entries `range` of the table at `table`. The table itself (counted, its
    /// absence reported) belongs to the range that starts at entry 0.
    fn entries(
        &mut self,
        level: Level,
        table: Maddr,
        va_base: u64,
        rights: Rights,
        range: std::ops::Range<usize>,
    ) -> ControlFlow<()> {
        let head = range.start == 0;
        if head {
            self.summary.tables.bump(level);
            self.seen.insert(table.0);
        }
        let d = match self.decoded(level, table, va_base, head) {
            Ok(d) => d,
            Err(flow) => return flow,
        };
        let mut run = Leaves { decoded: Arc::clone(&d), level, table, va_base, rights, mask: [0; 8] };
        for w in 0..8 {
            let within = range_word(&range, w);
            let junk = d.junk.get(w).copied().unwrap_or(0) & within;
            self.summary.not_present_nonzero += u64::from(junk.count_ones());
            let leaves = d.leaf.get(w).copied().unwrap_or(0) & within;
            let mut stops = (d.table.get(w).copied().unwrap_or(0) | d.reserved.get(w).copied().unwrap_or(0)) & within;
            if stops == 0 {
                if let Some(m) = run.mask.get_mut(w) {
                    *m |= leaves;
                }
                continue;
            }
            // Leaves before each stop go first, in VA order.
            let mut done = 0u64; // bits of this word already taken
            while stops != 0 {
                let b = stops.trailing_zeros() as usize;
                stops &= stops - 1;
                let below_b = (1u64 << b) - 1;
                if let Some(m) = run.mask.get_mut(w) {
                    *m |= leaves & below_b & !done;
                }
                done = below_b | (1 << b);
                self.flush(&mut run)?;
                let i = w * 64 + b;
                self.stop_or_descend(&d, level, table, va_base, rights, i)?;
            }
            if let Some(m) = run.mask.get_mut(w) {
                *m |= leaves & !done;
            }
        }
        self.flush(&mut run)
    }

    /// Entry `i` of a table is present and not a leaf: a reserved entry's event, or
    /// the table below.
    fn stop_or_descend(
        &mut self,
        d: &Decoded,
        level: Level,
        table: Maddr,
        va_base: u64,
        rights: Rights,
        i: usize,
    ) -> ControlFlow<()> {
        let e = Entry(d.entry(i));
        let rules = &d.rules;
        let va = va_base | ((i as u64) << rules.shift);
        let rsvd = rules.reserved(e.0);
        if rsvd != 0 {
            self.summary.reserved_entries += 1;
            let ev = Event::Reserved {
                level,
                va: Vaddr::canonicalize(va),
                entry_maddr: table.wrapping_add(i as u64 * 8),
                entry: e,
                bits: rsvd,
            };
            return self.sink.event(ev);
        }
        let r = d.fold.apply(rights, e);
        let next = Maddr(rules.addr(e.0));
        match level.below() {
            Some(below) => match self.sink.split(below, next, va, r) {
                Some(flow) => flow,
                None => self.table(below, next, va, r),
            },
            None => ControlFlow::Continue(()),
        }
    }
}
impl PerLevel {
    fn add(&mut self, o: &PerLevel) {
        self.l4 += o.l4;
        self.l3 += o.l3;
        self.l2 += o.l2;
        self.l1 += o.l1;
    }
}

impl Summary {
    /// Add the counts of a part enumerated separately (not `distinct_tables`).
    fn add(&mut self, o: &Summary) {
        self.tables.add(&o.tables);
        self.leaves.add(&o.leaves);
        self.mapped_bytes = self.mapped_bytes.saturating_add(o.mapped_bytes);
        self.not_present_nonzero += o.not_present_nonzero;
        self.reserved_entries += o.reserved_entries;
        self.unreadable_tables += o.unreadable_tables;
    }
}

/// How far a whole-space enumeration has got, for progress bars: `done` of `total`
/// L2 tables (1 GiB of VA each) delivered, and leaves so far. `total` comes from a
/// first look at the L4 and L3 tables and is an estimate (a table the dump lacks
/// counts as one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub leaves: u64,
}

/// How [`enumerate_with`] runs.
#[derive(Clone, Copy)]
pub struct EnumerateOptions<'p> {
    /// Expand L2 tables on rayon's thread pool (when called from outside it, with at
    /// least two threads); otherwise on the calling thread.
    pub parallel: bool,
    /// Release memory-mapped pages when the process's RSS has grown by more than
    /// this many bytes since the start ([`crate::mem::resident`]); `None`: never.
    pub resident_limit: Option<u64>,
    /// Called on the calling thread each time an L2 table's events have all been
    /// delivered.
    pub progress: Option<&'p dyn Fn(Progress)>,
}

impl Default for EnumerateOptions<'_> {
    fn default() -> Self {
        EnumerateOptions { parallel: true, resident_limit: Some(resident::DEFAULT_LIMIT), progress: None }
    }
}

/// Whole-space enumeration with the events of [`enumerate`], in the same order, and
/// the same [`Summary`]; `f` runs on the calling thread only. Built on
/// [`enumerate_tables_with`].
pub fn enumerate_with<F>(
    mem: &dyn PhysMem,
    root: Maddr,
    opts: WalkOptions,
    o: &EnumerateOptions<'_>,
    mut f: F,
) -> Summary
where
    F: FnMut(Event<'_>) -> ControlFlow<()>,
{
    enumerate_tables_with(mem, root, opts, o, per_leaf(&mut f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Machine, PageTables, XEN_TABLE, xen};
    use crate::paging::entry::bits;
    use std::cell::Cell;

    /// Every event, as text, and the summary.
    fn sequence(run: impl FnOnce(&mut dyn FnMut(Event<'_>) -> ControlFlow<()>) -> Summary) -> (Vec<String>, Summary) {
        let mut v = Vec::new();
        let s = run(&mut |ev| {
            v.push(format!("{ev:?}"));
            ControlFlow::Continue(())
        });
        (v, s)
    }

    fn all_ways_agree(mem: &dyn PhysMem, root: Maddr) -> usize {
        let opts = WalkOptions::default();
        let plain = sequence(|f| enumerate(mem, root, opts, f));
        assert_eq!(plain, sequence(|f| enumerate_par(mem, root, opts, f)), "parallel");
        // The enumeration of any address kind (a guest's own tables) is the same
        // enumeration: on machine memory it gives exactly these events and counts.
        assert_eq!(plain, sequence(|f| enumerate_in(mem, root, opts, f)), "typed");
        let last = Cell::new(Progress::default());
        let p = |x: Progress| {
            assert!(x.done <= x.total && x.done >= last.get().done && x.leaves >= last.get().leaves);
            last.set(x);
        };
        for parallel in [true, false] {
            let o = EnumerateOptions { parallel, resident_limit: Some(0), progress: Some(&p) };
            assert_eq!(plain, sequence(|f| enumerate_with(mem, root, opts, &o, f)), "parallel {parallel}, progress");
            assert_eq!(last.get().leaves, plain.1.leaves.total());
            last.set(Progress::default());
        }
        plain.0.len()
    }

    #[test]
    fn parallel_equals_sequential_on_the_xenlike_machine() {
        let mut x = xen::build();
        x.machine.uncaptured.extend(x.omitted.iter().map(|m| m.0));
        assert!(all_ways_agree(&x.machine, x.idle) > 100);
        assert!(all_ways_agree(&x.machine, x.pv) > 100);
        // A table page that is partly readable, and one that is malformed.
        x.machine.malformed.insert(x.noise.mfn().0);
        all_ways_agree(&x.machine, x.pv);
    }

    /// The table-at-a-time events, expanded, are the per-leaf events; the counts
    /// of the runs add up to the leaves.
    fn tables_agree(mem: &dyn PhysMem, root: Maddr) -> Summary {
        let opts = WalkOptions::default();
        let plain = sequence(|f| enumerate(mem, root, opts, f));
        for parallel in [false, true] {
            let o = EnumerateOptions { parallel, resident_limit: None, progress: None };
            let (mut v, mut counted) = (Vec::new(), 0u64);
            let s = enumerate_tables_with(mem, root, opts, &o, |te| {
                match te {
                    TableEvent::Leaves(run) => {
                        counted += run.count();
                        let _ = run.try_for_each(|l| {
                            v.push(format!("{:?}", Event::Leaf(l)));
                            ControlFlow::Continue(())
                        });
                    }
                    TableEvent::Other(ev) => v.push(format!("{ev:?}")),
                }
                ControlFlow::Continue(())
            });
            assert_eq!((v, s.clone()), plain, "parallel {parallel}");
            assert_eq!(counted, s.leaves.total());
        }
        plain.1
    }

    #[test]
    fn table_events_equal_leaf_events_on_the_xenlike_machine() {
        let mut x = xen::build();
        x.machine.uncaptured.extend(x.omitted.iter().map(|m| m.0));
        x.machine.malformed.insert(x.noise.mfn().0);
        for root in [x.idle, x.pv] {
            assert!(tables_agree(&x.machine, root).leaves.total() > 100);
        }
    }

    /// One L1 table (leaves, reserved entries, junk) under every entry of one L2
    /// table, under 3 L3 entries: decoded once, counted every time.
    #[test]
    fn a_shared_table_counts_once_per_path() {
        let mut m = Machine::new(16 << 20);
        let pt = PageTables::new(&mut m);
        let base = Vaddr(0xffff_8880_0000_0000);
        let leaf = bits::P | bits::RW;
        pt.map_range(&mut m, base, Maddr(0x40_0000), 0x20_0000, Level::L1, leaf, XEN_TABLE);
        let l1 = pt.table_of(&m, base, Level::L1).expect("L1");
        m.write_u64(Maddr(l1.0 + 8 * 7), 0x5000 | bits::P | (1 << 51)); // reserved (M = 40 below)
        m.write_u64(Maddr(l1.0 + 8 * 300), 0x5000 | bits::P | (1 << 50));
        m.write_u64(Maddr(l1.0 + 8 * 301), 0x1234_5000); // not present, not zero
        m.write_u64(Maddr(l1.0 + 8 * 302), 0);
        let l2 = pt.table_of(&m, base, Level::L2).expect("L2");
        let l2e = m.read_u64(l2);
        for i in 0..512 {
            m.write_u64(Maddr(l2.0 + 8 * i), l2e);
        }
        let l3 = pt.table_of(&m, base, Level::L3).expect("L3");
        let l3e = m.read_u64(Maddr(l3.0 + 8 * base.index_at(30) as u64));
        for i in 1..3 {
            m.write_u64(Maddr(l3.0 + 8 * (base.index_at(30) as u64 + i)), l3e);
        }
        let s = tables_agree(&m, pt.root);
        assert_eq!(s.leaves.l1, 3 * 512 * 510); // with M = 52 bits 51 and 50 are address bits
        assert_eq!(s.not_present_nonzero, 3 * 512);
        let opts = WalkOptions { maxphyaddr: 40, ..WalkOptions::default() };
        let (mut runs, mut leaves) = (0u64, 0u64);
        let s = enumerate_tables(&m, pt.root, opts, |te| {
            if let TableEvent::Leaves(r) = te {
                runs += 1;
                leaves += r.count();
            }
            ControlFlow::Continue(())
        });
        assert_eq!((s.reserved_entries, s.leaves.l1, leaves), (3 * 512 * 2, 3 * 512 * 508, 3 * 512 * 508));
        // Each L1 table comes in three runs, cut by its two reserved entries.
        assert_eq!(runs, 3 * 512 * 3);
        assert_eq!(s.tables.l1, 3 * 512);
        assert_eq!(s.distinct_tables, 4);
    }

    /// Many L2 tables, each split into several runs, shared tables reached through
    /// identical entries (every path followed), and a stop in the middle.
    #[test]
    fn parallel_equals_sequential_with_many_tables_and_a_break() {
        let mut m = Machine::new(256 << 20);
        let pt = PageTables::new(&mut m);
        let leaf = bits::P | bits::RW | bits::A;
        let base = 0xffff_8880_0000_0000u64;
        for gib in 0..3u64 {
            let va = Vaddr(base + (gib << 30));
            pt.map_range(&mut m, va, Maddr(gib << 24), 40 << 21, Level::L1, leaf, XEN_TABLE);
            pt.map(&mut m, Vaddr(va.0 + (100 << 21)), Maddr(0x20_0000), Level::L2, leaf | bits::NX, XEN_TABLE);
        }
        let l3 = pt.table_of(&m, Vaddr(base), Level::L3).expect("L3");
        let same = m.read_u64(Maddr(l3.0 + 8 * Vaddr(base).index_at(30) as u64));
        m.write_u64(Maddr(l3.0 + 8 * 500), same);
        pt.poke(&mut m, Vaddr(base + (1 << 30) + (300 << 21)), Level::L2, 0x1234_5000 | bits::P | 1 << 13, XEN_TABLE);
        let n = all_ways_agree(&m, pt.root);
        assert!(n > 4 * 40 * 512, "{n}");

        // Stopping after k events delivers exactly the first k.
        let opts = WalkOptions::default();
        let (all, _) = sequence(|f| enumerate(&m, pt.root, opts, f));
        for k in [1usize, 5000, 40_000] {
            let mut got = Vec::new();
            enumerate_par(&m, pt.root, opts, |ev| {
                got.push(format!("{ev:?}"));
                if got.len() == k { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            });
            assert_eq!(got[..], all[..k]);
        }
    }
}
