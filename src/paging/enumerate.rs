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
    let mut e = Enumerator::new(mem, opts, Direct(&mut f), Resident::new(None, u32::MAX));
    let _ = e.table(Level::L4, Maddr(root.0 & !0xfff), 0, Rights::ALL);
    e.summary.distinct_tables = e.seen.len() as u64;
    e.summary
}

/// Where an [`Enumerator`] sends what it finds.
trait Sink {
    fn event(&mut self, ev: Event<'_>) -> ControlFlow<()>;
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
    F: FnMut(Event<'_>) -> ControlFlow<()>,
{
    #[inline]
    fn event(&mut self, ev: Event<'_>) -> ControlFlow<()> {
        (self.0)(ev)
    }
}

struct Enumerator<'m, S> {
    mem: &'m dyn PhysMem,
    opts: WalkOptions,
    summary: Summary,
    seen: HashSet<u64>,
    sink: S,
    resident: Resident,
}

/// The 512 entries of a table, with the ones the dump cannot supply marked.
enum Entries<'m> {
    Page(crate::mem::Page<'m>),
    Partial(Box<[Option<u64>; 512]>),
}

impl<'m, S: Sink> Enumerator<'m, S> {
    fn new(mem: &'m dyn PhysMem, opts: WalkOptions, sink: S, resident: Resident) -> Self {
        Enumerator { mem, opts, summary: Summary::default(), seen: HashSet::new(), sink, resident }
    }

    fn table(&mut self, level: Level, table: Maddr, va_base: u64, rights: Rights) -> ControlFlow<()> {
        self.entries(level, table, va_base, rights, 0..512)
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
        let mem = self.mem;
        self.resident.tick(mem, table);
        let entries = match mem.page(table.mfn()) {
            Ok(p) => Entries::Page(p),
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
                    self.sink.event(Event::Unreadable { level, table, va, error, partial: any })?;
                }
                if !any {
                    return ControlFlow::Continue(());
                }
                Entries::Partial(part)
            }
        };
        for i in range {
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
                self.sink.event(ev)?;
                continue;
            }
            let r = rights.through(e, self.opts.nxe);
            let next = e.addr(level, self.opts.maxphyaddr);
            match level.below() {
                Some(below) if !e.is_leaf(level) => match self.sink.split(below, Maddr(next), va, r) {
                    Some(flow) => flow?,
                    None => self.table(below, Maddr(next), va, r)?,
                },
                _ => {
                    let leaf = Leaf { va: Vaddr::canonicalize(va), page: Maddr(next), level, entry: e, rights: r };
                    self.summary.leaves.bump(level);
                    self.summary.mapped_bytes = self.summary.mapped_bytes.saturating_add(level.page_size());
                    self.sink.event(Event::Leaf(&leaf))?;
                }
            }
        }
        ControlFlow::Continue(())
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
/// the same [`Summary`]; `f` runs on the calling thread only.
///
/// The calling thread reads the L4 and L3 tables itself; each L2 table is cut into
/// runs of entries holding [`TASK_L1_TABLES`] L1 tables that rayon's threads expand
/// into buffers, which the calling thread hands to `f` in
/// VA order — or expands itself, straight to `f`, when a run it needs next has not
/// been started. At most a few runs per thread are in flight, so memory stays flat
/// however many mappings the root has; resident memory is bounded by
/// `o.resident_limit`. If `f` returns `Break`, the enumeration stops (the summary then
/// counts what was delivered and possibly some more).
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
    F: FnMut(Event<'_>) -> ControlFlow<()>,
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

/// Events of one task: the leaves, and anything else with the number of leaves
/// before it.
#[derive(Default)]
struct Buf {
    leaves: Vec<Leaf>,
    others: Vec<(usize, Event<'static>)>,
}

impl Buf {
    fn clear(&mut self) {
        self.leaves.clear();
        self.others.clear();
    }

    /// Hand the events to `f` in their order.
    fn replay<F>(&self, f: &mut F) -> ControlFlow<()>
    where
        F: FnMut(Event<'_>) -> ControlFlow<()>,
    {
        let mut others = self.others.iter().peekable();
        for (n, leaf) in self.leaves.iter().enumerate() {
            while let Some((_, ev)) = others.next_if(|(at, _)| *at == n) {
                f(*ev)?;
            }
            f(Event::Leaf(leaf))?;
        }
        for (_, ev) in others {
            f(*ev)?;
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
        match ev {
            Event::Leaf(l) => self.buf.leaves.push(*l),
            other => {
                if let Some(e) = detached(other) {
                    self.buf.others.push((self.buf.leaves.len(), e));
                }
            }
        }
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
    Leaf(Leaf),
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
    F: FnMut(Event<'_>) -> ControlFlow<()>,
{
    /// Hand the oldest pending item to `f`.
    fn deliver_front(&mut self) -> ControlFlow<()> {
        match self.queue.pop_front() {
            None => ControlFlow::Continue(()),
            Some(Pending::Leaf(l)) => (self.f)(Event::Leaf(&l)),
            Some(Pending::Other(e)) => (self.f)(e),
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
        self.done.leaves += done.buf.leaves.len() as u64;
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
        let mut count = |ev: Event<'_>| {
            if let Event::Leaf(_) = ev {
                leaves += 1;
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
    F: FnMut(Event<'_>) -> ControlFlow<()>,
{
    fn event(&mut self, ev: Event<'_>) -> ControlFlow<()> {
        if self.queue.is_empty() {
            if let Event::Leaf(_) = ev {
                self.done.leaves += 1;
            }
            return (self.f)(ev);
        }
        let pending = match ev {
            Event::Leaf(l) => {
                self.done.leaves += 1;
                Pending::Leaf(*l)
            }
            other => match detached(other) {
                Some(e) => Pending::Other(e),
                None => return ControlFlow::Continue(()),
            },
        };
        self.queue.push_back(pending);
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
