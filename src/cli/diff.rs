//! `xenwalk diff DUMP --cr3 A --cr3 B`: two address spaces compared L4 slot by slot:
//! shared (the very same table pages), equal in content (different pages, the same
//! mappings), or different (with the ranges only one side maps, or maps differently).

use super::DumpArgs;
use super::OutputArgs;
use crate::addr::{Maddr, Vaddr};
use crate::paging::WalkOptions;
use crate::paging::enumerate::{Coalescer, Event, Range, enumerate};
use crate::paging::root::{self, RootInput};
use crate::paging::slot::{OneSlot, SLOT_ROOT};
use crate::parse::Expr;
use crate::render::size_name;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::ops::ControlFlow;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    pub input: DumpArgs,
    /// A root: a CR3 value or, with --xen-syms, an expression (`idle_pg_table`,
    /// `*domain_list->vcpu[0]->arch.cr3`). Give two roots in all, with --cr3 or --cpu.
    #[arg(long, value_name = "CR3", value_parser = Expr::parse)]
    pub cr3: Vec<Expr>,
    /// A root from that CPU's CR3 in the notes.
    #[arg(long, value_name = "N")]
    pub cpu: Vec<usize>,
    /// List every differing range (default: the first 8 per slot).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How one slot compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    /// The same entry: the same table pages, the same flags.
    Shared,
    /// Different entries, the same mappings.
    EqualContent,
    Different,
    OnlyA,
    OnlyB,
}

#[derive(Serialize)]
struct SlotLine {
    #[serde(rename = "type")]
    kind: &'static str,
    slot: usize,
    va: Vaddr,
    /// The slot's region in A's and in B's address space (they differ above slot
    /// 271 when one root is a PV guest's: the guest's own half there).
    region_a: Option<&'static str>,
    region_b: Option<&'static str>,
    #[serde(serialize_with = "crate::addr::hex")]
    a_entry: u64,
    #[serde(serialize_with = "crate::addr::hex")]
    b_entry: u64,
    status: SlotStatus,
    /// Ranges mapped only by A / only by B / by both but differently (page, flags).
    only_a: u64,
    only_b: u64,
    changed: u64,
}

#[derive(Serialize)]
struct RangeLine {
    #[serde(rename = "type")]
    kind: &'static str,
    slot: usize,
    /// `only_a`, `only_b` or `changed`.
    side: &'static str,
    va: Vaddr,
    size: u64,
    a_maddr: Option<Maddr>,
    b_maddr: Option<Maddr>,
    a_flags: Option<Vec<String>>,
    b_flags: Option<Vec<String>>,
}

/// The coalesced ranges one slot maps.
fn slot_ranges(mem: &dyn crate::mem::PhysMem, slot: usize, entry: u64) -> Vec<Range> {
    let view = OneSlot::new(mem, slot, entry);
    let mut co = Coalescer::default();
    let mut v = Vec::new();
    enumerate(&view, SLOT_ROOT, WalkOptions::default(), |ev| {
        if let Event::Leaf(l) = ev {
            if let Some(r) = co.push(l) {
                v.push(r);
            }
        }
        ControlFlow::Continue(())
    });
    v.extend(co.finish());
    v
}

/// Per-page comparison of two range lists of one slot: (only A, only B, changed),
/// as coalesced VA runs.
fn compare(a: &[Range], b: &[Range]) -> Vec<RangeLine> {
    // Split both into (va, size, maddr, attrs) pieces at every boundary either side has.
    let mut cuts: Vec<u64> = a.iter().chain(b).flat_map(|r| [r.va.0, r.va.0.wrapping_add(r.size)]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let find = |rs: &[Range], va: u64| -> Option<Range> {
        let i = rs.partition_point(|r| r.va.0.wrapping_add(r.size) <= va);
        rs.get(i).filter(|r| r.va.0 <= va).copied()
    };
    let mut out: Vec<RangeLine> = Vec::new();
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let (ra, rb) = (find(a, lo), find(b, lo));
        let at = |r: &Range| Maddr(r.maddr.0 + (lo - r.va.0));
        let side = match (&ra, &rb) {
            (None, None) => continue,
            (Some(_), None) => "only_a",
            (None, Some(_)) => "only_b",
            (Some(x), Some(y)) => {
                if at(x) == at(y) && x.attrs == y.attrs && x.rights == y.rights && x.page_size == y.page_size {
                    continue;
                }
                "changed"
            }
        };
        // Extend the previous run when it continues.
        if let Some(prev) = out.last_mut() {
            let contiguous = prev.side == side && prev.va.0.wrapping_add(prev.size) == lo;
            let follows = |p: Option<Maddr>, r: &Option<Range>| match (p, r) {
                (Some(pm), Some(rr)) => pm.0 + prev.size == at(rr).0,
                (None, None) => true,
                _ => false,
            };
            if contiguous && follows(prev.a_maddr, &ra) && follows(prev.b_maddr, &rb) {
                prev.size += hi - lo;
                continue;
            }
        }
        out.push(RangeLine {
            kind: "range_diff",
            slot: 0,
            side,
            va: Vaddr(lo),
            size: hi - lo,
            a_maddr: ra.as_ref().map(at),
            b_maddr: rb.as_ref().map(at),
            a_flags: ra.map(|r| r.attrs.flag_names(r.level)),
            b_flags: rb.map(|r| r.attrs.flag_names(r.level)),
        });
    }
    out
}

pub(super) fn run(a: DiffArgs, ui: super::Ui) -> Result<ExitCode> {
    let s = a.input.open(ui)?;
    let mem = s.dump.mem.as_ref();
    let path = s.dump.path.display().to_string();
    let mut roots: Vec<(Maddr, String)> = Vec::new();
    for e in &a.cr3 {
        let v = super::root::cr3_value(&s, e)?;
        let name = match e {
            Expr::Value(v) => format!("CR3 {v:#x}"),
            Expr::Symbolic(t) => t.clone(),
        };
        roots.push((Maddr(v), name));
    }
    for &cpu in &a.cpu {
        let c = s.dump.notes.cpu(cpu).and_then(|c| c.cr3).with_context(|| {
            format!(
                "{path}: --cpu {cpu}: no CR3 in the notes (give the root with --cr3); next: {}",
                super::next::command(&crate::diagnose::Next::Info, None)
            )
        })?;
        roots.push((Maddr(c), format!("CPU {cpu}")));
    }
    if roots.len() != 2 {
        bail!("diff compares two roots: give two of --cr3/--cpu (got {})", roots.len());
    }
    let mut resolved = Vec::new();
    for (v, name) in &roots {
        let r = root::resolve(mem, RootInput::Cr3(v.0), name.clone(), None, WalkOptions::default());
        if let Some(p) = r.problem.filter(crate::paging::RootProblem::blocks_walks) {
            let d = crate::diagnose::root_diagnosis(&r, &p);
            bail!("{path}: {name}: {} ({})", d.explanation, d.reason.code());
        }
        resolved.push(r);
    }
    let (ra, rb) = (resolved[0].maddr, resolved[1].maddr);
    let pa = mem.page(ra.mfn()).map_err(|e| anyhow::anyhow!("{path}: {}: {e}", roots[0].1))?;
    let pb = mem.page(rb.mfn()).map_err(|e| anyhow::anyhow!("{path}: {}: {e}", roots[1].1))?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.output.json {
        crate::render::json::header(&mut out, "diff")?;
    }
    if !a.output.json {
        writeln!(out, "A: {} (L4 at {ra})", roots[0].1)?;
        writeln!(out, "B: {} (L4 at {rb})", roots[1].1)?;
    }
    let mut differing = 0;
    let mut run: Option<Run> = None;
    for slot in 0..512usize {
        let (ea, eb) = (pa.entry(slot), pb.entry(slot));
        let (pa_, pb_) = (ea & 1 != 0, eb & 1 != 0);
        if !pa_ && !pb_ {
            continue;
        }
        let va = Vaddr::canonicalize((slot as u64) << 39);
        let region_a = s.xen.as_ref().and_then(|x| x.region_in(mem, ra, va)).map(|r| r.name);
        let region_b = s.xen.as_ref().and_then(|x| x.region_in(mem, rb, va)).map(|r| r.name);
        let (status, ranges) = if ea == eb {
            (SlotStatus::Shared, Vec::new())
        } else {
            let xa = if pa_ { slot_ranges(mem, slot, ea) } else { Vec::new() };
            let xb = if pb_ { slot_ranges(mem, slot, eb) } else { Vec::new() };
            let d = compare(&xa, &xb);
            let st = match (pa_, pb_) {
                (true, false) => SlotStatus::OnlyA,
                (false, true) => SlotStatus::OnlyB,
                _ if d.is_empty() => SlotStatus::EqualContent,
                _ => SlotStatus::Different,
            };
            (st, d)
        };
        let count = |side: &str| ranges.iter().filter(|r| r.side == side).count() as u64;
        if status != SlotStatus::Shared {
            differing += 1;
        }
        if a.output.json {
            let line = SlotLine {
                kind: "slot_diff",
                slot,
                va,
                region_a,
                region_b,
                a_entry: ea,
                b_entry: eb,
                status,
                only_a: count("only_a"),
                only_b: count("only_b"),
                changed: count("changed"),
            };
            serde_json::to_writer(&mut out, &line)?;
            writeln!(out)?;
            for mut r in ranges {
                r.slot = slot;
                serde_json::to_writer(&mut out, &r)?;
                writeln!(out)?;
            }
            continue;
        }
        let what = match status {
            SlotStatus::Shared => "shared (the same entry: the same table pages)".to_string(),
            SlotStatus::EqualContent => "equal in content (different table pages, the same mappings)".to_string(),
            SlotStatus::OnlyA => format!("only in A ({})", ranges_n(ranges.len() as u64)),
            SlotStatus::OnlyB => format!("only in B ({})", ranges_n(ranges.len() as u64)),
            SlotStatus::Different => format!(
                "different: {} only in A, {} only in B, {} mapped differently",
                ranges_n(count("only_a")),
                ranges_n(count("only_b")),
                ranges_n(count("changed"))
            ),
        };
        let region = match (region_a, region_b) {
            (Some(x), Some(y)) if x != y => format!("[{x}|{y}]"),
            (Some(x), _) | (None, Some(x)) => format!("[{x}]"),
            (None, None) => String::new(),
        };
        // Runs of slots with the same verdict and no detail (shared, equal, or a guest
        // kernel's preallocated empty L3 tables) are one line, not hundreds.
        let quiet = match status {
            SlotStatus::Shared | SlotStatus::EqualContent => true,
            SlotStatus::OnlyA | SlotStatus::OnlyB => ranges.is_empty(),
            SlotStatus::Different => false,
        };
        if quiet {
            let what = if ranges.is_empty() && matches!(status, SlotStatus::OnlyA | SlotStatus::OnlyB) {
                format!(
                    "only in {}, maps nothing (its tables are empty)",
                    if status == SlotStatus::OnlyA { "A" } else { "B" }
                )
            } else {
                what
            };
            match &mut run {
                Some(r) if r.last + 1 == slot && r.what == what && r.region == region => r.last = slot,
                _ => {
                    flush_run(&mut out, run.take())?;
                    run = Some(Run { first: slot, last: slot, what, region });
                }
            }
            continue;
        }
        flush_run(&mut out, run.take())?;
        writeln!(out, "slot {slot:<8} {va:#018x} {region:<26} {what}")?;
        if matches!(status, SlotStatus::Different) {
            let limit = if a.all { usize::MAX } else { 8 };
            for r in ranges.iter().take(limit) {
                let side = |m: Option<Maddr>, f: &Option<Vec<String>>| match (m, f) {
                    (Some(m), Some(f)) => format!("{m} {}", f.join(" ")),
                    _ => "-".into(),
                };
                writeln!(
                    out,
                    "    {:#018x} +{:<9} {:<8} A: {:<40} B: {}",
                    r.va.0,
                    size_name(r.size),
                    r.side,
                    side(r.a_maddr, &r.a_flags),
                    side(r.b_maddr, &r.b_flags)
                )?;
            }
            if ranges.len() > limit {
                writeln!(out, "    ... {} more (--all)", ranges.len() - limit)?;
            }
        }
    }
    if !a.output.json {
        flush_run(&mut out, run.take())?;
        writeln!(out, "{differing} slots differ")?;
    }
    out.flush()?;
    // As diff(1): 0 when the address spaces are the same, 1 when they differ.
    Ok(if differing == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn ranges_n(n: u64) -> String {
    if n == 1 { "1 range".into() } else { format!("{n} ranges") }
}

/// Consecutive slots with the same verdict.
struct Run {
    first: usize,
    last: usize,
    what: String,
    region: String,
}

fn flush_run(out: &mut impl Write, run: Option<Run>) -> io::Result<()> {
    let Some(r) = run else { return Ok(()) };
    let va = Vaddr::canonicalize((r.first as u64) << 39);
    if r.first == r.last {
        writeln!(out, "slot {:<8} {va:#018x} {:<26} {}", r.first, r.region, r.what)
    } else {
        let slots = format!("{}-{}", r.first, r.last);
        writeln!(
            out,
            "slots {slots:<7} {va:#018x} {:<26} {}",
            r.region,
            r.what.replace("maps nothing (its tables", "map nothing (their tables")
        )
    }
}
