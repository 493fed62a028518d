//! Parallel whole-space enumeration ([`enumerate_par`], [`enumerate_tables_with`]): the
//! calling thread walks L4 and L3, L2 tables are cut into jobs that rayon's threads
//! expand into buffers, and everything is delivered in VA order on the calling thread.

use super::{Direct, EnumerateOptions, Enumerator, Event, Leaves, Progress, Sink, Summary, TableEvent, enumerate_with};
use crate::addr::Maddr;
use crate::mem::PhysMem;
use crate::mem::resident::{self, Resident};
use crate::paging::desc::PagingDesc;
use crate::paging::entry::{Entry, Level, Rights};
use crate::paging::walk::WalkOptions;
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, OnceLock};

/// [`enumerate`](super::enumerate) in parallel: the same events in the same order, the same summary
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

/// [`enumerate_tables`](super::enumerate_tables) with options: the events of
/// [`enumerate_tables`](super::enumerate_tables) (the leaves of a table at once), in
/// the same order, and the same [`Summary`]; `f` runs on the calling thread only.
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
    let desc = PagingDesc::x86_64(opts);
    let usable = |e: Entry, level: Level| {
        let d = desc.level(level);
        e.0 & desc.present != 0 && d.reserved(e.0) == 0 && !d.is_leaf(e.0)
    };
    let Ok(l4) = mem.page(root.mfn()) else { return 1 };
    let mut n = 0;
    for i in 0..512 {
        let e = Entry(l4.entry(i));
        if !usable(e, Level::L4) {
            continue;
        }
        match mem.page(Maddr(desc.level(Level::L4).addr(e.0)).mfn()) {
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
