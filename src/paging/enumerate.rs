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

use super::entry::{Entry, Level, Rights, addr_mask, bits};
use super::walk::WalkOptions;
use crate::addr::{Maddr, Vaddr};
use crate::mem::resident::{self, Resident};
use crate::mem::{PhysMem, ReadError};
use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, OnceLock};

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

/// One table page's entries, decoded once: which are leaves, which lead to tables,
/// which have reserved bits. It depends only on the page's bytes, its level and the
/// walk options — not on the VA or the rights above — and dumps do not change, so
/// an enumeration that meets the same frame again at the same level reuses it
/// (tables shared by many entries cost one decode, whatever the fan-in).
#[derive(Debug)]
struct Decoded {
    entries: [u64; 512],
    /// Present, no reserved bits, a page.
    leaf: [u64; 8],
    /// Present, no reserved bits, a table below.
    table: [u64; 8],
    /// Present with reserved bits set.
    reserved: [u64; 8],
    /// Not present but not zero.
    junk: [u64; 8],
}

impl Decoded {
    /// Decode `raw` (entry `i`, or `None` where the dump cannot supply it) at `level`.
    fn new(level: Level, opts: WalkOptions, raw: impl Fn(usize) -> Option<u64>) -> Decoded {
        let mut d = Decoded { entries: [0; 512], leaf: [0; 8], table: [0; 8], reserved: [0; 8], junk: [0; 8] };
        let (m, nxe) = (opts.maxphyaddr, opts.nxe);
        // The reserved bits of a table pointer and of a leaf at this level, from
        // `reserved_bits` itself (the entry masked by a set that depends only on
        // whether it is a leaf; at L4 PS is reserved and never makes a leaf).
        let rsvd_table =
            if level == Level::L4 { Entry(u64::MAX) } else { Entry(!bits::PS) }.reserved_bits(level, m, nxe);
        let rsvd_leaf = Entry(u64::MAX).reserved_bits(level, m, nxe);
        for i in 0..512 {
            let Some(v) = raw(i) else { continue };
            if let Some(e) = d.entries.get_mut(i) {
                *e = v;
            }
            let mask = if v & bits::P == 0 {
                if v == 0 {
                    continue;
                }
                &mut d.junk
            } else {
                let leaf = Entry(v).is_leaf(level);
                if v & if leaf { rsvd_leaf } else { rsvd_table } != 0 {
                    &mut d.reserved
                } else if leaf {
                    &mut d.leaf
                } else {
                    &mut d.table
                }
            };
            if let Some(x) = mask.get_mut(i / 64) {
                *x |= 1u64 << (i % 64);
            }
        }
        d
    }

    fn entry(&self, i: usize) -> u64 {
        self.entries.get(i).copied().unwrap_or(0)
    }
}

/// Leaves of one table delivered together ([`TableEvent::Leaves`]): entries `i` of
/// the table whose bit is set in the mask, each a present leaf without reserved bits.
#[derive(Clone, Debug)]
pub struct Leaves {
    decoded: Arc<Decoded>,
    pub level: Level,
    /// The table's machine address.
    pub table: Maddr,
    /// The VA of the table's entry 0 (bits 63:48 clear).
    pub va_base: u64,
    /// Rights accumulated by the entries above the table (each leaf folds in its own).
    pub rights: Rights,
    mask: [u64; 8],
    opts: WalkOptions,
}

impl Leaves {
    /// Number of leaves.
    #[inline]
    pub fn count(&self) -> u64 {
        self.mask.iter().map(|w| u64::from(w.count_ones())).sum()
    }
    /// Bit `i % 64` of word `i / 64`: entry `i` is one of these leaves.
    pub fn mask(&self) -> &[u64; 8] {
        &self.mask
    }
    /// The raw entry `i` of the table.
    pub fn entry(&self, i: usize) -> Entry {
        Entry(self.decoded.entry(i))
    }
    /// The leaf at entry `i` (which must be set in the mask).
    #[inline]
    pub fn leaf(&self, i: usize) -> Leaf {
        let e = self.entry(i);
        let va = self.va_base | ((i as u64) << self.level.shift());
        Leaf {
            va: Vaddr::canonicalize(va),
            page: Maddr(e.addr(self.level, self.opts.maxphyaddr)),
            level: self.level,
            entry: e,
            rights: self.rights.through(e, self.opts.nxe),
        }
    }
    /// Call `f` on each leaf in VA order until it breaks.
    #[inline]
    pub fn try_for_each(&self, mut f: impl FnMut(&Leaf) -> ControlFlow<()>) -> ControlFlow<()> {
        let (level, shift, nxe) = (self.level, self.level.shift(), self.opts.nxe);
        let frame = addr_mask(self.opts.maxphyaddr) & !(level.page_size() - 1);
        for (w, &bits) in self.mask.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                let i = w * 64 + b.trailing_zeros() as usize;
                b &= b - 1;
                let e = Entry(self.decoded.entry(i));
                let leaf = Leaf {
                    va: Vaddr::canonicalize(self.va_base | ((i as u64) << shift)),
                    page: Maddr(e.0 & frame),
                    level,
                    entry: e,
                    rights: self.rights.through(e, nxe),
                };
                f(&leaf)?;
            }
        }
        ControlFlow::Continue(())
    }
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
    opts: WalkOptions,
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
            opts,
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
        let opts = self.opts;
        match mem.page(table.mfn()) {
            Ok(p) => {
                let d = Arc::new(Decoded::new(level, opts, |i| Some(p.entry(i))));
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
                Ok(Arc::new(Decoded::new(level, opts, |i| part.get(i).copied().flatten())))
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
        let mut run = Leaves { decoded: Arc::clone(&d), level, table, va_base, rights, mask: [0; 8], opts: self.opts };
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
            return self.sink.event(ev);
        }
        let r = rights.through(e, self.opts.nxe);
        let next = Maddr(e.addr(level, self.opts.maxphyaddr));
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

/// [`enumerate`] in parallel: the same events in the same order, the same summary
/// (see [`enumerate_with`]).
pub fn enumerate_par<F>(mem: &dyn PhysMem, root: Maddr, opts: WalkOptions, f: F) -> Summary
where
    F: FnMut(Event<'_>) -> ControlFlow<()>,
{
    enumerate_with(mem, root, opts, &EnumerateOptions::default(), f)
}

/// L1 tables per parallel task: a run of L2 entries holding this many L1 tables (at
/// most 64 × 512 + 512 leaves, 1.3 MiB of buffered leaves) is one task.
const TASK_L1_TABLES: usize = 16;

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

/// [`enumerate_tables`] with options: the events of [`enumerate_tables`] (the
/// leaves of a table at once), in the same order, and the same [`Summary`]; `f` runs
/// on the calling thread only.
///
/// The calling thread reads the L4 and L3 tables itself; each L2 table is cut into
/// runs of entries holding [`TASK_L1_TABLES`] L1 tables that rayon's threads expand
/// into buffers, which the calling thread hands to `f` in
/// VA order — or expands itself, straight to `f`, when a run it needs next has not
/// been started. At most a few runs per thread are in flight, so memory stays flat
/// however many mappings the root has; resident memory is bounded by
/// `o.resident_limit`. If `f` returns `Break`, the enumeration stops (the summary then
/// counts what was delivered and possibly some more).
pub fn enumerate_tables_with<F>(
    mem: &dyn PhysMem,
    root: Maddr,
    opts: WalkOptions,
    o: &EnumerateOptions<'_>,
    mut f: F,
) -> Summary
where
    F: FnMut(TableEvent<'_>) -> ControlFlow<()>,
{
    let root = Maddr(root.0 & !0xfff);
    let limit = resident::limit_from_now(o.resident_limit);
    let resident = || Resident::new(limit, resident::ENUMERATE_EVERY);
    let pool = if o.parallel && rayon::current_thread_index().is_none() { workers() } else { None };
    let parallel = pool.is_some();
    if !parallel && o.progress.is_none() {
        let mut e = Enumerator::new(mem, opts, Direct(&mut f), resident());
        let _ = e.table(Level::L4, root, 0, Rights::ALL);
        e.summary.distinct_tables = e.seen.len() as u64;
        return e.summary;
    }
    let total = if o.progress.is_some() { count_l2_tables(mem, root, opts) } else { 0 };
    match pool {
        Some(p) => p.in_place_scope(|scope| plan(scope, mem, root, opts, &mut f, parallel, limit, o.progress, total)),
        None => rayon::in_place_scope(|scope| plan(scope, mem, root, opts, &mut f, parallel, limit, o.progress, total)),
    }
}

/// The calling thread's part of [`enumerate_with`], inside a rayon scope.
#[allow(clippy::too_many_arguments)]
fn plan<'s, 'm: 's, F>(
    scope: &rayon::Scope<'s>,
    mem: &'m dyn PhysMem,
    root: Maddr,
    opts: WalkOptions,
    f: &mut F,
    parallel: bool,
    limit: Option<u64>,
    progress: Option<&dyn Fn(Progress)>,
    total: u64,
) -> Summary
where
    F: FnMut(TableEvent<'_>) -> ControlFlow<()>,
{
    let plan = Plan {
        scope,
        mem,
        opts,
        f,
        parallel,
        limit,
        queue: VecDeque::new(),
        in_flight: 0,
        max_in_flight: 2 * rayon::current_num_threads() + 2,
        spare: Vec::new(),
        stop: Arc::new(AtomicBool::new(false)),
        summary: Summary::default(),
        seen: Vec::new(),
        progress,
        done: Progress { done: 0, total, leaves: 0 },
    };
    let mut e = Enumerator::new(mem, opts, plan, Resident::new(limit, resident::ENUMERATE_EVERY));
    let mut flow = e.table(Level::L4, root, 0, Rights::ALL);
    let Enumerator { mut summary, mut seen, sink: mut plan, .. } = e;
    while flow.is_continue() && !plan.queue.is_empty() {
        flow = plan.deliver_front();
    }
    if flow.is_break() {
        plan.stop.store(true, Ordering::Relaxed);
    } else if let Some(p) = plan.progress {
        // The end: everything delivered.
        plan.done.total = plan.done.total.max(plan.done.done);
        plan.done.done = plan.done.total;
        p(plan.done);
    }
    summary.add(&plan.summary);
    seen.extend(plan.seen.drain(..));
    summary.distinct_tables = seen.len() as u64;
    summary
}

/// The workers of parallel enumerations: one fewer than rayon's default, since the
/// calling thread expands tables too (two cores: one worker and the caller).
fn workers() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = rayon::current_num_threads().saturating_sub(1);
        if n == 0 {
            return None;
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("xenwalk-enumerate-{i}")).build().ok()
    })
    .as_ref()
}

/// Present L3 entries that lead to an L2 table, under the present L4 entries.
fn count_l2_tables(mem: &dyn PhysMem, root: Maddr, opts: WalkOptions) -> u64 {
    let usable = |e: Entry, level: Level| {
        e.present() && e.reserved_bits(level, opts.maxphyaddr, opts.nxe) == 0 && !e.is_leaf(level)
    };
    let Ok(l4) = mem.page(root.mfn()) else { return 1 };
    let mut n = 0;
    for i in 0..512 {
        let e = Entry(l4.entry(i));
        if !usable(e, Level::L4) {
            continue;
        }
        match mem.page(Maddr(e.addr(Level::L4, opts.maxphyaddr)).mfn()) {
            Ok(l3) => n += (0..512).filter(|&j| usable(Entry(l3.entry(j)), Level::L3)).count() as u64,
            Err(_) => n += 1,
        }
    }
    n
}

/// Events of one task: the runs of leaves, and anything else with the number of
/// runs before it.
#[derive(Default)]
struct Buf {
    runs: Vec<Leaves>,
    others: Vec<(usize, Event<'static>)>,
}

impl Buf {
    fn clear(&mut self) {
        self.runs.clear();
        self.others.clear();
    }

    fn leaves(&self) -> u64 {
        self.runs.iter().map(Leaves::count).sum()
    }

    /// Hand the events to `f` in their order.
    fn replay<F>(&self, f: &mut F) -> ControlFlow<()>
    where
        F: FnMut(TableEvent<'_>) -> ControlFlow<()>,
    {
        let mut others = self.others.iter().peekable();
        for (n, run) in self.runs.iter().enumerate() {
            while let Some((_, ev)) = others.next_if(|(at, _)| *at == n) {
                f(TableEvent::Other(*ev))?;
            }
            f(TableEvent::Leaves(run))?;
        }
        for (_, ev) in others {
            f(TableEvent::Other(*ev))?;
        }
        ControlFlow::Continue(())
    }
}

/// An event that is not a leaf, detached from the enumeration's borrows.
fn detached(ev: Event<'_>) -> Option<Event<'static>> {
    match ev {
        Event::Leaf(_) => None,
        Event::Unreadable { level, table, va, error, partial } => {
            Some(Event::Unreadable { level, table, va, error, partial })
        }
        Event::Reserved { level, va, entry_maddr, entry, bits } => {
            Some(Event::Reserved { level, va, entry_maddr, entry, bits })
        }
    }
}

/// A task's sink: events into its buffer; stops when the enumeration was stopped.
struct BufSink<'s> {
    buf: Buf,
    stop: &'s AtomicBool,
}

impl Sink for BufSink<'_> {
    fn event(&mut self, ev: Event<'_>) -> ControlFlow<()> {
        if let Some(e) = detached(ev) {
            self.buf.others.push((self.buf.runs.len(), e));
        }
        self.go_on()
    }
    fn leaves(&mut self, run: &Leaves) -> ControlFlow<()> {
        self.buf.runs.push(run.clone());
        self.go_on()
    }
}

impl BufSink<'_> {
    fn go_on(&self) -> ControlFlow<()> {
        if self.stop.load(Ordering::Relaxed) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// The part of an L2 table one task expands.
#[derive(Clone, Debug)]
struct Job {
    table: Maddr,
    va: u64,
    rights: Rights,
    range: std::ops::Range<usize>,
}

/// Expand `job` into `buf`.
fn run_job(mem: &dyn PhysMem, opts: WalkOptions, limit: Option<u64>, stop: &AtomicBool, job: &Job, buf: Buf) -> Done {
    let sink = BufSink { buf, stop };
    let mut e = Enumerator::new(mem, opts, sink, Resident::new(limit, resident::ENUMERATE_EVERY));
    let _ = e.entries(Level::L2, job.table, job.va, job.rights, job.range.clone());
    let seen = e.seen.into_iter().collect();
    Done { buf: e.sink.buf, summary: e.summary, seen }
}

/// What a task found.
struct Done {
    buf: Buf,
    summary: Summary,
    seen: Vec<u64>,
}

/// Something waiting to be handed to `f`, in VA order.
enum Pending {
    Leaves(Leaves),
    Other(Event<'static>),
    /// A task: its result comes through `rx` unless the calling thread claims it
    /// first and runs it itself; `last` when it ends an L2 table.
    Task {
        job: Job,
        claimed: Arc<AtomicBool>,
        rx: Receiver<Done>,
        last: bool,
    },
    /// A task the calling thread ran ahead while waiting for an earlier one.
    Ready {
        done: Done,
        last: bool,
    },
}

/// The calling thread's side of a parallel enumeration: it walks L4 and L3 itself,
/// hands L2 tables out in runs, and delivers everything in order.
struct Plan<'a, 's, 'm, F> {
    scope: &'a rayon::Scope<'s>,
    mem: &'m dyn PhysMem,
    opts: WalkOptions,
    f: &'a mut F,
    parallel: bool,
    limit: Option<u64>,
    queue: VecDeque<Pending>,
    in_flight: usize,
    max_in_flight: usize,
    spare: Vec<Buf>,
    stop: Arc<AtomicBool>,
    /// Counts and tables of delivered tasks.
    summary: Summary,
    seen: Vec<u64>,
    progress: Option<&'a dyn Fn(Progress)>,
    done: Progress,
}

/// Events queued behind a task before the calling thread waits for it.
const MAX_QUEUED: usize = 4096;

impl<F> Plan<'_, '_, '_, F>
where
    F: FnMut(TableEvent<'_>) -> ControlFlow<()>,
{
    /// Hand the oldest pending item to `f`.
    fn deliver_front(&mut self) -> ControlFlow<()> {
        match self.queue.pop_front() {
            None => ControlFlow::Continue(()),
            Some(Pending::Leaves(l)) => (self.f)(TableEvent::Leaves(&l)),
            Some(Pending::Other(e)) => (self.f)(TableEvent::Other(e)),
            Some(Pending::Ready { done, last }) => {
                self.in_flight -= 1;
                let flow = self.replay(done);
                if last {
                    self.report();
                }
                flow
            }
            Some(Pending::Task { job, claimed, rx, last }) => {
                self.in_flight -= 1;
                let flow = if claimed.swap(true, Ordering::AcqRel) {
                    // A worker has it: help with later tasks until it is done. A
                    // closed channel means the task panicked; the scope re-raises it.
                    let done = loop {
                        match rx.try_recv() {
                            Ok(done) => break done,
                            Err(TryRecvError::Disconnected) => return ControlFlow::Break(()),
                            Err(TryRecvError::Empty) => {
                                if !self.help() {
                                    match rx.recv() {
                                        Ok(done) => break done,
                                        Err(_) => return ControlFlow::Break(()),
                                    }
                                }
                            }
                        }
                    };
                    self.replay(done)
                } else {
                    // Not started yet: run it here, straight to `f`.
                    self.run_here(&job)
                };
                if last {
                    self.report();
                }
                flow
            }
        }
    }

    /// Hand a task's buffered events to `f`.
    fn replay(&mut self, mut done: Done) -> ControlFlow<()> {
        self.summary.add(&done.summary);
        self.seen.append(&mut done.seen);
        self.done.leaves += done.buf.leaves();
        let flow = done.buf.replay(self.f);
        done.buf.clear();
        self.spare.push(done.buf);
        flow
    }

    /// Run the first queued task no worker has started, into a buffer. False if
    /// there is none.
    fn help(&mut self) -> bool {
        let found = self.queue.iter().position(|p| match p {
            Pending::Task { claimed, .. } => !claimed.swap(true, Ordering::AcqRel),
            _ => false,
        });
        let Some(i) = found else { return false };
        let Some(Pending::Task { job, last, .. }) = self.queue.get(i) else { return false };
        let (job, last) = (job.clone(), *last);
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        let done = run_job(self.mem, self.opts, self.limit, &self.stop, &job, buf);
        if let Some(slot) = self.queue.get_mut(i) {
            *slot = Pending::Ready { done, last };
        }
        true
    }

    /// Expand `job` on the calling thread, straight to `f`.
    fn run_here(&mut self, job: &Job) -> ControlFlow<()> {
        let resident = Resident::new(self.limit, resident::ENUMERATE_EVERY);
        let mut leaves = 0u64;
        let f = &mut *self.f;
        let mut count = |ev: TableEvent<'_>| {
            if let TableEvent::Leaves(l) = ev {
                leaves += l.count();
            }
            f(ev)
        };
        let mut e = Enumerator::new(self.mem, self.opts, Direct(&mut count), resident);
        let flow = e.entries(Level::L2, job.table, job.va, job.rights, job.range.clone());
        let (summary, seen) = (e.summary, e.seen);
        self.summary.add(&summary);
        self.seen.extend(seen);
        self.done.leaves += leaves;
        flow
    }

    fn report(&mut self) {
        self.done.done += 1;
        self.done.total = self.done.total.max(self.done.done);
        if let Some(p) = self.progress {
            p(self.done);
        }
    }

    /// Expand the L2 table at `table` here, straight to `f` (not parallel).
    fn inline(&mut self, table: Maddr, va: u64, rights: Rights) -> ControlFlow<()> {
        let flow = self.run_here(&Job { table, va, rights, range: 0..512 });
        self.report();
        flow
    }

    /// Runs of the L2 table's entries holding about [`TASK_L1_TABLES`] L1 tables each
    /// (the whole table if its page cannot be read here).
    fn runs(&self, table: Maddr) -> Vec<std::ops::Range<usize>> {
        let Ok(page) = self.mem.page(table.mfn()) else { return std::iter::once(0..512).collect() };
        let mut runs = Vec::new();
        let (mut start, mut tables) = (0, 0);
        for i in 0..512 {
            let e = Entry(page.entry(i));
            if e.present() && !e.is_leaf(Level::L2) {
                tables += 1;
            }
            if tables >= TASK_L1_TABLES {
                runs.push(start..i + 1);
                (start, tables) = (i + 1, 0);
            }
        }
        if start < 512 {
            runs.push(start..512);
        }
        runs
    }
}

impl<'s, 'm: 's, F> Sink for Plan<'_, 's, 'm, F>
where
    F: FnMut(TableEvent<'_>) -> ControlFlow<()>,
{
    fn event(&mut self, ev: Event<'_>) -> ControlFlow<()> {
        if self.queue.is_empty() {
            return (self.f)(TableEvent::Other(ev));
        }
        let Some(e) = detached(ev) else { return ControlFlow::Continue(()) };
        self.queue.push_back(Pending::Other(e));
        while self.queue.len() > MAX_QUEUED {
            self.deliver_front()?;
        }
        ControlFlow::Continue(())
    }

    fn leaves(&mut self, run: &Leaves) -> ControlFlow<()> {
        self.done.leaves += run.count();
        if self.queue.is_empty() {
            return (self.f)(TableEvent::Leaves(run));
        }
        self.queue.push_back(Pending::Leaves(run.clone()));
        while self.queue.len() > MAX_QUEUED {
            self.deliver_front()?;
        }
        ControlFlow::Continue(())
    }

    fn split(&mut self, below: Level, table: Maddr, va: u64, rights: Rights) -> Option<ControlFlow<()>> {
        if below != Level::L2 {
            return None;
        }
        if !self.parallel {
            return Some(self.inline(table, va, rights));
        }
        let runs = self.runs(table);
        let count = runs.len();
        for (k, range) in runs.into_iter().enumerate() {
            let job = Job { table, va, rights, range };
            let (tx, rx) = mpsc::sync_channel(1);
            let claimed = Arc::new(AtomicBool::new(false));
            let mut buf = self.spare.pop().unwrap_or_default();
            buf.clear();
            let (mem, opts, limit, stop) = (self.mem, self.opts, self.limit, Arc::clone(&self.stop));
            let (mine, theirs) = (job.clone(), Arc::clone(&claimed));
            self.scope.spawn(move |_| {
                if theirs.swap(true, Ordering::AcqRel) {
                    return; // the calling thread ran it
                }
                let _ = tx.send(run_job(mem, opts, limit, &stop, &mine, buf));
            });
            self.queue.push_back(Pending::Task { job, claimed, rx, last: k + 1 == count });
            self.in_flight += 1;
            while self.in_flight > self.max_in_flight || self.queue.len() > MAX_QUEUED {
                if let ControlFlow::Break(()) = self.deliver_front() {
                    return Some(ControlFlow::Break(()));
                }
            }
        }
        Some(ControlFlow::Continue(()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Machine, PageTables, XEN_TABLE, xen};
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
