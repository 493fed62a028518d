//! `xenwalk DUMP [ROOT] [--va VA ...]`: walks, and the whole-space listing.

use super::progress::Bar;
use super::root::RootArgs;
use super::{DumpArgs, Session, brief};
use super::{OutputArgs, PagingArgs};
use crate::addr::{Gpa, Vaddr};
use crate::diagnose::{self, Translation};
use crate::paging::enumerate::{self, Coalescer, EnumerateOptions, Event, Progress, Range};
use crate::paging::root::{Root, RootProblem};
use crate::paging::{Translator, Walk, WalkOptions};
use crate::parse::{self, Expr};
use crate::render::{human, json};
use crate::session::{AddressSpace, SpaceKind};
use crate::xen::annotate;
use crate::xen::hvm::{GuestCoalescer, GuestMemory};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{self, BufRead, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

/// How a walk is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Style {
    /// xenwalk's table with flags, rights and diagnosis.
    #[default]
    Table,
    /// Exactly Xen's own show_page_walk() console lines, to diff against a crash log.
    Xen,
}

#[derive(Args, Debug)]
pub struct WalkArgs {
    #[command(flatten)]
    pub input: DumpArgs,
    #[command(flatten)]
    pub root: RootArgs,
    /// Virtual address to translate (repeatable); with --xen-syms also `symbol` or
    /// `symbol+0x10`.
    #[arg(long = "va", value_name = "VA", value_parser = Expr::parse)]
    pub va: Vec<Expr>,
    /// File with one VA per line (`-` for stdin); `#` starts a comment; the first
    /// token of a line is used, so `info tlb`-style listings work.
    #[arg(long, value_name = "FILE")]
    pub va_file: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Explain every bit of every entry, with Intel's level names.
    #[arg(long, conflicts_with = "json")]
    pub long: bool,
    /// How to print walks.
    #[arg(long, value_enum, default_value_t = Style::Table, conflicts_with_all = ["json", "long"])]
    pub style: Style,
    /// When listing, one line per leaf (no coalescing, Accessed/Dirty shown).
    #[arg(long)]
    pub leaves: bool,
    /// For pipelines: a walk prints `VA MADDR` (`VA -` if it does not translate), a
    /// listing `VA MADDR SIZE` per range, in hex with 0x, and nothing else.
    #[arg(long, conflicts_with_all = ["json", "long", "style"])]
    pub brief: bool,
    /// With --brief, of a guest's own tables (an HVM/PVH --domain, an HVM guest
    /// core): print the guest-physical address in place of the machine address.
    #[arg(long, requires = "brief")]
    pub gpa: bool,
    #[command(flatten)]
    pub paging: PagingArgs,
    #[command(flatten)]
    pub list: super::ListArgs,
}

/// VAs of a full (not `--brief`) walk translated together: enough for the
/// translator's grouped loads, few enough records (270 bytes each) to stay small.
const WALK_BATCH: usize = 4096;

pub(super) fn run(a: WalkArgs, ui: super::Ui) -> Result<ExitCode> {
    let s = a.input.open(ui)?;
    let opts = WalkOptions { maxphyaddr: a.paging.maxphyaddr, ..WalkOptions::default() };
    let space = a.root.space(&s, opts, ui)?;
    // Resolve --va before printing anything: a bad one is bad usage.
    let mut vas = Vec::with_capacity(a.va.len());
    for e in &a.va {
        vas.push(super::resolve(&s, e).map_err(|m| anyhow::anyhow!("--va: {m}"))?);
    }
    // Open the VA list before printing anything: a missing list is bad input.
    let va_list: Option<(String, Box<dyn BufRead>)> = match &a.va_file {
        None => None,
        Some(file) if file.as_os_str() == "-" => Some(("<stdin>".into(), Box::new(io::stdin().lock()))),
        Some(file) => {
            let name = file.display().to_string();
            let f = std::fs::File::open(file).with_context(|| format!("{name}: cannot open VA list"))?;
            Some((name, Box::new(io::BufReader::new(f))))
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 << 10, stdout.lock());
    let (root, view) = match &space.kind {
        SpaceKind::Machine { root, xen } => (root, View { mem: s.mem(), xen: *xen }),
        SpaceKind::Guest { root, mem } => return guest(&s, root, mem, &vas, va_list, &a, &mut out, ui),
    };
    if a.gpa {
        bail!(
            "--gpa: this root's tables hold machine addresses; --gpa is for a guest's own tables \
             (--domain D of an HVM/PVH guest, or an HVM xl dump-core core)"
        );
    }
    if a.brief {
        return if vas.is_empty() && va_list.is_none() {
            brief::list(view.mem, root, opts, a.leaves, a.list.limit(), &mut out, ui)
        } else {
            brief::walks(&s, view.mem, root, opts, &vas, va_list, &mut out)
        };
    }
    if a.output.json {
        serde_json::to_writer(&mut out, &json::RootLine::new(root))?;
        writeln!(out)?;
    } else if a.style == Style::Table {
        human::root(&mut out, root, a.long, &annotate::root(view.xen, Some(view.mem), root))?;
    }

    if vas.is_empty() && va_list.is_none() {
        let code = list(&mut out, &view, root, opts, &a, ui)?;
        out.flush()?;
        return Ok(code);
    }

    let mut any_failed = false;
    let mut bad_input = false;
    let mut translator = Translator::new(view.mem, root.maddr, opts);
    let annotate_opts = annotate::AnnotateOptions { maxphyaddr: a.paging.maxphyaddr, pitfalls_always: a.long };
    // VAs go through the translator's batch API a few thousand at a time (its
    // grouped loads and, when tables do not fit, VA-ordered windows); the records
    // are explained and printed in input order, exactly as one by one.
    let mut batch: Vec<Vaddr> = Vec::with_capacity(WALK_BATCH);
    let mut walks: Vec<Option<Walk>> = Vec::with_capacity(WALK_BATCH);
    let mut flush = |out: &mut dyn Write, batch: &mut Vec<Vaddr>| -> Result<()> {
        walks.clear();
        walks.resize(batch.len(), None);
        translator.translate_batch(batch, |i, w| {
            if let Some(slot) = walks.get_mut(i) {
                *slot = Some(*w);
            }
        });
        batch.clear();
        for w in walks.iter().flatten() {
            let t = diagnose::explain(view.mem, root, *w, opts);
            any_failed |= !t.translated();
            let notes = annotate::walk(view.xen, view.mem, root, &t, annotate_opts);
            emit_walk(out, &t, &notes, root, &a, &view, ui)?;
        }
        Ok(())
    };
    batch.extend(vas.iter().map(|&va| Vaddr(va)));
    if let Some((name, reader)) = va_list {
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("{name}: line {}: cannot read", n + 1))?;
            match parse::va_line(&line).map(|r| r.and_then(|e| super::resolve(&s, &e))) {
                None => {}
                Some(Ok(va)) => {
                    batch.push(Vaddr(va));
                    if batch.len() >= WALK_BATCH {
                        flush(&mut out, &mut batch)?;
                    }
                }
                Some(Err(e)) => {
                    // Everything before the bad line is printed before its error.
                    flush(&mut out, &mut batch)?;
                    out.flush()?;
                    eprintln!("xenwalk: error: {name}:{}: {e}; skipped", n + 1);
                    bad_input = true;
                }
            }
        }
    }
    flush(&mut out, &mut batch)?;
    out.flush()?;
    Ok(super::va_exit(bad_input, any_failed))
}

/// What walks of a machine-memory space read: the dump's machine memory, with the
/// hypervisor's annotations.
pub(super) struct View<'a> {
    pub mem: &'a dyn crate::mem::PhysMem,
    pub xen: Option<&'a crate::xen::Xen>,
}

impl<'a> View<'a> {
    /// The machine view of `space`, or `None` for a guest's own tables.
    pub fn of(space: &'a AddressSpace<'a>, s: &'a Session) -> Option<(&'a Root, View<'a>)> {
        match &space.kind {
            SpaceKind::Machine { root, xen } => Some((root, View { mem: s.mem(), xen: *xen })),
            SpaceKind::Guest { .. } => None,
        }
    }
}

fn emit_walk(
    out: &mut dyn Write,
    t: &Translation,
    notes: &annotate::WalkNotes,
    root: &Root,
    a: &WalkArgs,
    v: &View<'_>,
    ui: super::Ui,
) -> Result<()> {
    // Spell the diagnosis' next command against this invocation.
    let filled;
    let t = match t.diagnosis.as_ref().and_then(|d| d.next.as_ref()) {
        Some(n) if a.style != Style::Xen => {
            let mut c = t.clone();
            if let Some(d) = c.diagnosis.as_mut() {
                d.next_command = Some(super::next::command(n, Some(t.va)));
            }
            filled = c;
            &filled
        }
        _ => t,
    };
    if a.output.json {
        serde_json::to_writer(&mut *out, &json::WalkLine::annotated(t, root, a.paging.maxphyaddr, notes))?;
        writeln!(out)?;
    } else if a.style == Style::Xen {
        let lines = match v.xen {
            Some(x) => crate::render::xen_style::lines(&x.page_walk_as_xen(v.mem, root.maddr, t.va)),
            None => bail!("--style xen needs the hypervisor: pass --xen-syms (for max_page and the M2P)"),
        };
        for l in lines {
            writeln!(out, "{l}")?;
        }
    } else {
        writeln!(out)?;
        let style = human::WalkStyle { maxphyaddr: a.paging.maxphyaddr, long: a.long, paint: ui.paint };
        human::walk(out, t, notes, style)?;
    }
    Ok(())
}

/// The whole address space of `root`, streamed.
fn list(
    out: &mut dyn Write,
    v: &View<'_>,
    root: &Root,
    opts: WalkOptions,
    a: &WalkArgs,
    ui: super::Ui,
) -> Result<ExitCode> {
    if let Some(p) = root.problem.filter(RootProblem::blocks_walks) {
        let d = diagnose::root_diagnosis(root, &p);
        let next_command = d.next.as_ref().map(|n| super::next::command(n, None));
        if a.output.json {
            let stop = json::StopJson { next_command, ..json::StopJson::of(&d) };
            let line = json::StopLine { kind: "stop", stop };
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)?;
        } else {
            writeln!(out, "=> cannot walk this root: {}", d.reason.code())?;
            writeln!(out, "   why: {}", d.explanation)?;
            if let Some(s) = d.suggestion {
                writeln!(out, "   {}", ui.paint.hint(&format!("try: {s}")))?;
            }
            if let Some(c) = next_command {
                writeln!(out, "   {}", ui.paint.hint(&format!("next: {c}")))?;
            }
        }
        return Ok(ExitCode::from(1));
    }
    let xen = v.xen;
    if !a.output.json {
        human::ranges_header(out, xen.is_some())?;
    }
    let mut coalescer = Coalescer::default();
    let mut ranges = 0u64;
    let mut io_err: Option<io::Error> = None;
    let mut emit = |out: &mut dyn Write, r: &Range| -> io::Result<()> {
        ranges += 1;
        let region = xen.and_then(|x| x.region_in(v.mem, root.maddr, r.va)).map(|r| r.name);
        let syms = xen.and_then(|x| x.syms.as_ref()).filter(|_| region == Some("xen_image"));
        let symbol = syms.and_then(|sy| sy.name_of(r.va));
        let section = syms.and_then(|sy| sy.section_of(r.va)).map(|sec| sec.name.clone());
        if a.output.json {
            let mut line = json::MappingLine::new(r);
            line.region = region;
            line.symbol = symbol;
            line.section = section;
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)
        } else {
            let label = region.map(|reg| {
                let mut l = reg.to_string();
                if let Some(sec) = &section {
                    l.push_str(&format!(": {sec}"));
                }
                if let Some(sym) = &symbol {
                    l.push_str(&format!(" {sym}"));
                }
                l
            });
            human::range(out, r, label.as_deref())
        }
    };
    let bar = Bar::new(ui.quiet);
    let progress = |p: Progress| bar.update(p);
    let o = EnumerateOptions {
        progress: if bar.enabled() { Some(&progress) } else { None },
        ..EnumerateOptions::default()
    };
    let mut limit = a.list.limit();
    let summary = enumerate::enumerate_with(v.mem, root.maddr, opts, &o, |ev| {
        let res = match &ev {
            Event::Leaf(leaf) => {
                limit.take()?;
                if a.leaves {
                    emit(out, &Range::single(leaf))
                } else {
                    match coalescer.push(leaf) {
                        Some(r) => emit(out, &r),
                        None => Ok(()),
                    }
                }
            }
            other => {
                // Keep the listing in VA order: close the open range first.
                let closed = coalescer.finish().map(|r| emit(out, &r)).unwrap_or(Ok(()));
                closed.and_then(|()| {
                    if a.output.json { json::event_line(out, other) } else { human::event(out, other, ui.paint) }
                })
            }
        };
        match res {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                io_err = Some(e);
                ControlFlow::Break(())
            }
        }
    });
    bar.finish();
    if let Some(e) = io_err {
        return Err(e.into());
    }
    if let Some(r) = coalescer.finish() {
        emit(out, &r)?;
    }
    if a.output.json {
        serde_json::to_writer(
            &mut *out,
            &json::SummaryLine {
                kind: "summary",
                root: Some(root.maddr),
                root_gpa: None,
                ranges,
                leaf_limit_reached: limit.reached(),
                summary: &summary,
            },
        )?;
        writeln!(out)?;
    } else {
        human::summary(out, &summary, ranges)?;
    }
    Ok(super::leaf_limit_exit(out, limit.reached())?)
}

/// Fill in a diagnosis' next command against this invocation.
fn with_next<A: crate::addr::PhysAddr>(t: Translation<A>) -> Translation<A> {
    let mut t = t;
    let va = t.va;
    if let Some(d) = t.diagnosis.as_mut() {
        if let Some(n) = &d.next {
            d.next_command = Some(super::next::command(n, Some(va)));
        }
    }
    t
}

/// Walks and the listing of a guest's own tables (an HVM/PVH guest through Xen's p2m,
/// an HVM guest core without one): `Walk<Gpa>`s, their machine side through the p2m.
/// `--brief` prints the machine address, `--brief --gpa` the guest-physical one.
#[allow(clippy::too_many_arguments)]
fn guest(
    s: &Session,
    root: &Root<Gpa>,
    mem: &GuestMemory<'_>,
    vas: &[u64],
    va_list: Option<(String, Box<dyn BufRead>)>,
    a: &WalkArgs,
    out: &mut dyn Write,
    ui: super::Ui,
) -> Result<ExitCode> {
    if a.style == Style::Xen {
        bail!("--style xen needs the hypervisor's own tables: a guest's tables are not Xen's (use --table monitor)");
    }
    let opts = WalkOptions { maxphyaddr: a.paging.maxphyaddr, ..WalkOptions::default() };
    if vas.is_empty() && va_list.is_none() {
        let code = guest_list(root, mem, opts, a, out, ui)?;
        out.flush()?;
        return Ok(code);
    }
    if a.output.json {
        serde_json::to_writer(&mut *out, &json::RootLine::guest(root, mem))?;
        writeln!(out)?;
    } else if !a.brief {
        human::guest_root(out, root, a.long, &mem.machine(root.maddr))?;
    }
    let (mut any_failed, mut bad_input) = (false, false);
    let mut one = |out: &mut dyn Write, va: u64| -> Result<()> {
        let t = with_next(diagnose::translate(mem, root, Vaddr(va), opts));
        let g = annotate::guest_walk(mem, root, &t, a.paging.maxphyaddr);
        if a.brief {
            let answer = if a.gpa {
                t.walk.as_ref().and_then(|w| w.mapping()).map(|m| m.maddr.0)
            } else {
                g.maddr().map(|m| m.0)
            };
            // The exit status says whether the VA translates, as without --brief.
            any_failed |= !t.translated();
            brief::line(out, &[Some(va), answer])?;
            return Ok(());
        }
        any_failed |= !t.translated();
        if a.output.json {
            serde_json::to_writer(&mut *out, &json::WalkLine::guest(&t, root, a.paging.maxphyaddr, &g))?;
            writeln!(out)?;
        } else {
            writeln!(out)?;
            let style = human::WalkStyle { maxphyaddr: a.paging.maxphyaddr, long: a.long, paint: ui.paint };
            human::guest_walk(out, &t, &g, style)?;
        }
        Ok(())
    };
    for &va in vas {
        one(out, va)?;
    }
    if let Some((name, reader)) = va_list {
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("{name}: line {}: cannot read", n + 1))?;
            match parse::va_line(&line).map(|r| r.and_then(|e| super::resolve(s, &e))) {
                None => {}
                Some(Ok(va)) => one(out, va)?,
                Some(Err(e)) => {
                    out.flush()?;
                    eprintln!("xenwalk: error: {name}:{}: {e}; skipped", n + 1);
                    bad_input = true;
                }
            }
        }
    }
    out.flush()?;
    Ok(super::va_exit(bad_input, any_failed))
}

/// The listing of a guest's own tables: ranges coalesced by machine contiguity
/// through the p2m, the gpa range beside, pages the p2m cannot answer said so.
fn guest_list(
    root: &Root<Gpa>,
    mem: &GuestMemory<'_>,
    opts: WalkOptions,
    a: &WalkArgs,
    out: &mut dyn Write,
    ui: super::Ui,
) -> Result<ExitCode> {
    if let Some(p) = root.problem.filter(RootProblem::blocks_walks) {
        let d = diagnose::root_diagnosis(root, &p);
        let next_command = d.next.as_ref().map(|n| super::next::command(n, None));
        if a.brief {
            eprintln!("xenwalk: root {} cannot be walked: {}: {}", root.maddr, d.reason.code(), d.explanation);
        } else if a.output.json {
            serde_json::to_writer(&mut *out, &json::RootLine::guest(root, mem))?;
            writeln!(out)?;
            let stop = json::StopJson { next_command, ..json::StopJson::of(&d) };
            serde_json::to_writer(&mut *out, &json::StopLine { kind: "stop", stop })?;
            writeln!(out)?;
        } else {
            human::guest_root(out, root, a.long, &mem.machine(root.maddr))?;
            writeln!(out, "=> cannot walk this root: {}", d.reason.code())?;
            writeln!(out, "   why: {}", d.explanation)?;
            if let Some(s) = d.suggestion {
                writeln!(out, "   {}", ui.paint.hint(&format!("try: {s}")))?;
            }
        }
        return Ok(ExitCode::from(1));
    }
    if a.output.json {
        serde_json::to_writer(&mut *out, &json::RootLine::guest(root, mem))?;
        writeln!(out)?;
    } else if !a.brief {
        human::guest_root(out, root, a.long, &mem.machine(root.maddr))?;
        if mem.p2m().is_none() {
            writeln!(out, "  (no p2m in this dump: machine addresses are unknown)")?;
        }
        human::guest_ranges_header(out)?;
    }
    let mut co = GuestCoalescer::new(a.leaves);
    let mut ranges = 0u64;
    let mut res: io::Result<()> = Ok(());
    let mut emit = |out: &mut dyn Write, r: crate::xen::hvm::GuestRange| -> io::Result<()> {
        ranges += 1;
        if a.brief {
            let addr = if a.gpa { Some(r.gpa.0) } else { r.maddr.map(|m| m.0) };
            brief::line(out, &[Some(r.va.0), addr, Some(r.size)])
        } else if a.output.json {
            serde_json::to_writer(&mut *out, &json::MappingLine::guest(&r))?;
            writeln!(out)
        } else {
            human::guest_range(out, &r)
        }
    };
    let mut limit = a.list.limit();
    let summary = enumerate::enumerate_in(mem, root.maddr, opts, |ev| {
        match &ev {
            Event::Leaf(_) if limit.take().is_break() => return ControlFlow::Break(()),
            Event::Leaf(leaf) => co.push(mem, leaf, |r| {
                if res.is_ok() {
                    res = emit(out, r);
                }
            }),
            other => {
                if let Some(r) = co.finish() {
                    if res.is_ok() {
                        res = emit(out, r);
                    }
                }
                if !a.brief && res.is_ok() {
                    let r = if a.output.json {
                        json::guest_event_line(out, other, mem)
                    } else {
                        human::event(out, other, ui.paint)
                    };
                    if let Err(e) = r {
                        res = Err(e);
                    }
                }
            }
        }
        if res.is_ok() { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    });
    res?;
    if let Some(r) = co.finish() {
        emit(out, r)?;
    }
    if a.brief {
        let (unreadable, reserved) = (summary.unreadable_tables, summary.reserved_entries);
        if unreadable + reserved > 0 {
            ui.note(format_args!(
                "note: {unreadable} table(s) the dump lacks and {reserved} entr(ies) with reserved bits are not in a \
                 --brief listing (the full listing shows them)"
            ));
        }
    } else if a.output.json {
        let line = json::SummaryLine {
            kind: "summary",
            root: mem.machine(root.maddr).maddr(),
            root_gpa: Some(root.maddr),
            ranges,
            leaf_limit_reached: limit.reached(),
            summary: &summary,
        };
        serde_json::to_writer(&mut *out, &line)?;
        writeln!(out)?;
    } else {
        human::summary(out, &summary, ranges)?;
    }
    Ok(super::leaf_limit_exit(out, limit.reached())?)
}
