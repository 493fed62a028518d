//! `xenwalk tables`, `v2m`, `m2v`: the hypervisor's roots and its own translations.

use super::{OpenArgs, Session, XenArgs};
use crate::addr::{Maddr, Vaddr};
use crate::paging::WalkOptions;
use crate::paging::root::{self, RootInput};
use crate::parse::{self, Expr};
use crate::xen::Xen;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct TablesArgs {
    /// The dump.
    pub dump: PathBuf,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct V2mArgs {
    /// The dump.
    pub dump: PathBuf,
    /// Hypervisor virtual addresses: hex, `symbol` or `symbol+0x10`.
    #[arg(required = true, value_parser = Expr::parse)]
    pub va: Vec<Expr>,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
    /// Root to cross-check against (default: idle_pg_table).
    #[arg(long, value_name = "CR3", value_parser = parse::hex_u64)]
    pub cr3: Option<u64>,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct M2vArgs {
    /// The dump.
    pub dump: PathBuf,
    /// Machine addresses (hex).
    #[arg(required = true, value_parser = parse::hex_u64)]
    pub maddr: Vec<u64>,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
    /// Root to cross-check against (default: idle_pg_table).
    #[arg(long, value_name = "CR3", value_parser = parse::hex_u64)]
    pub cr3: Option<u64>,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
}

fn xen_of(s: &Session) -> Result<&Xen> {
    s.xen.as_ref().context(format!(
        "{}: no hypervisor information: pass --xen-syms (or --xen-version for the layout alone)",
        s.dump.path.display()
    ))
}

/// The root to cross-check with: --cr3, else the idle table.
fn check_root(s: &Session, cr3: Option<u64>) -> Option<Maddr> {
    cr3.map(|v| Maddr(v & 0x000f_ffff_ffff_f000)).or_else(|| s.xen.as_ref().and_then(|x| x.idle_root()))
}

/// One root `tables` can resolve.
#[derive(Serialize)]
struct TableLine {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    source: String,
    cpu: Option<usize>,
    l4: Option<Maddr>,
    check: Option<crate::paging::root::L4Check>,
    note: Option<String>,
}

pub(super) fn tables(a: TablesArgs) -> Result<ExitCode> {
    let s = Session::open(&a.dump, &a.open, &a.xen)?;
    let mem = s.dump.mem.as_ref();
    let opts = WalkOptions::default();
    let mut lines: Vec<TableLine> = Vec::new();
    let check = |ma: Maddr| root::resolve(mem, RootInput::Cr3(ma.0), String::new(), None, opts).check;
    let idle = s.xen.as_ref().and_then(|x| x.idle_root());
    if let Some(x) = &s.xen {
        match idle {
            Some(r) => lines.push(TableLine {
                kind: "table",
                name: "idle_pg_table".into(),
                source: format!(
                    "symbol idle_pg_table + xen_phys_start ({})",
                    x.xen_phys_start.as_ref().map(|v| v.source.describe()).unwrap_or("?")
                ),
                cpu: None,
                l4: Some(r),
                check: check(r),
                note: None,
            }),
            None => lines.push(TableLine {
                kind: "table",
                name: "idle_pg_table".into(),
                source: "xen-syms".into(),
                cpu: None,
                l4: None,
                check: None,
                note: Some(if x.syms.is_none() { "needs --xen-syms".into() } else { "xen_phys_start unknown".into() }),
            }),
        }
        lines.extend(per_cpu_roots(&s, x));
    }
    for c in &s.dump.notes.cpus {
        let Some(cr3) = c.cr3 else { continue };
        let l4 = Maddr(cr3 & 0x000f_ffff_ffff_f000);
        let mut note = Vec::new();
        if Some(l4) == idle {
            note.push("= idle_pg_table".to_string());
        }
        if cr3 & 0xfff != 0 {
            note.push(format!("PCID/flags {:#x} in CR3", cr3 & 0xfff));
        }
        lines.push(TableLine {
            kind: "table",
            name: format!("CPU {} CR3", c.cpu),
            source: c.regs_source.map(|r| r.describe()).unwrap_or("notes").to_string(),
            cpu: Some(c.cpu),
            l4: Some(l4),
            check: check(l4),
            note: (!note.is_empty()).then(|| note.join("; ")),
        });
    }
    if let Some(text) = &s.dump.notes.vmcoreinfo_xen {
        if let Some(v) = text.lines().find_map(|l| l.strip_prefix("SYMBOL(pgd_l4)=")) {
            if let (Ok(va), Some(x)) = (parse::hex_u64(v), &s.xen) {
                let l4 = x.virt_to_maddr(Vaddr(va)).ok();
                lines.push(TableLine {
                    kind: "table",
                    name: "VMCOREINFO pgd_l4".into(),
                    source: format!("VMCOREINFO_XEN SYMBOL(pgd_l4)={v}"),
                    cpu: None,
                    l4,
                    check: l4.and_then(check),
                    note: None,
                });
            }
        }
    }
    if lines.is_empty() {
        bail!("{}: no root can be resolved: the dump has no CPU notes; pass --xen-syms", s.dump.path.display());
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        crate::render::json::header(&mut out, "tables")?;
    }
    for l in &lines {
        if a.json {
            serde_json::to_writer(&mut out, l)?;
            writeln!(out)?;
        } else {
            let l4 = l.l4.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
            let chk = match &l.check {
                Some(c) => format!(
                    "{} present{}{}",
                    c.present,
                    c.self_map.map(|s| format!(", self-map at {s}")).unwrap_or_default(),
                    if c.plausible() { "" } else { ", NOT an L4?" }
                ),
                None if l.l4.is_some() => "not in the dump".into(),
                None => String::new(),
            };
            writeln!(
                out,
                "{:<22} {:<14} {:<32} ({}){}",
                l.name,
                l4,
                chk,
                l.source,
                l.note.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `per_cpu(root_pgt, cpu)` for every CPU with a per-CPU area: the XPTI roots
/// (reference §3.4). `per_cpu(x, cpu)` = `*(&per_cpu__x + __per_cpu_offset[cpu])`;
/// unused slots hold `INVALID_PERCPU_AREA` = 0x8000000000000000 − `__per_cpu_start`
/// (`X:xen/arch/x86/percpu.c@4.17.0`).
fn per_cpu_roots(s: &Session, x: &Xen) -> Vec<TableLine> {
    let mem = s.dump.mem.as_ref();
    let opts = WalkOptions::default();
    let mut v = Vec::new();
    let Some(syms) = &x.syms else { return v };
    let (Some(offs), Some(root_pgt)) = (syms.lookup("__per_cpu_offset"), syms.addr("per_cpu__root_pgt")) else {
        return v;
    };
    let invalid = syms.addr("__per_cpu_start").map(|p| 0x8000_0000_0000_0000u64.wrapping_sub(p));
    let n = (offs.size / 8).clamp(1, 4096);
    let idle = x.idle_root();
    for cpu in 0..n {
        let Some(off) = x.image_maddr(offs.addr + cpu * 8).and_then(|ma| mem.read_u64(ma).ok()) else {
            continue;
        };
        if Some(off) == invalid || (cpu > 0 && off == 0) {
            continue;
        }
        let va = Vaddr(root_pgt.wrapping_add(off));
        let ptr = match x.read_va_u64(mem, idle, va) {
            Ok(p) => p,
            Err(e) => {
                v.push(TableLine {
                    kind: "table",
                    name: format!("CPU {cpu} root_pgt"),
                    source: "per_cpu(root_pgt)".into(),
                    cpu: Some(cpu as usize),
                    l4: None,
                    check: None,
                    note: Some(format!("cannot read per_cpu(root_pgt) at {va}: {e}")),
                });
                continue;
            }
        };
        let (l4, note) = if ptr == 0 {
            (
                None,
                Some(
                    "NULL: no XPTI root (XPTI is off: the default on CPUs not vulnerable to Meltdown, e.g. AMD)"
                        .to_string(),
                ),
            )
        } else {
            match x.virt_to_maddr(Vaddr(ptr)) {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };
        v.push(TableLine {
            kind: "table",
            name: format!("CPU {cpu} root_pgt"),
            source: "per_cpu(root_pgt) (XPTI)".into(),
            cpu: Some(cpu as usize),
            l4,
            check: l4.and_then(|m| root::resolve(mem, RootInput::Cr3(m.0), String::new(), None, opts).check),
            note,
        });
    }
    v
}

#[derive(Serialize)]
struct V2mLine {
    #[serde(rename = "type")]
    kind: &'static str,
    va: Vaddr,
    symbol: Option<String>,
    region: Option<&'static str>,
    /// By the hypervisor's formula.
    maddr: Option<Maddr>,
    formula_error: Option<String>,
    /// By walking the check root.
    walk_maddr: Option<Maddr>,
    walk_error: Option<String>,
    agree: Option<bool>,
}

pub(super) fn v2m(a: V2mArgs) -> Result<ExitCode> {
    let s = Session::open(&a.dump, &a.open, &a.xen)?;
    let x = xen_of(&s)?;
    let mem = s.dump.mem.as_ref();
    let root = check_root(&s, a.cr3);
    let mut vas = Vec::new();
    for e in &a.va {
        vas.push(s.resolve(e).map_err(|m| anyhow::anyhow!("{m}"))?);
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        crate::render::json::header(&mut out, "v2m")?;
    }
    let mut all_ok = true;
    for va in vas {
        let va = Vaddr(va);
        let f = x.virt_to_maddr(va);
        let w = match root {
            Some(r) => x.walk_maddr(mem, r, va).map_err(|e| e.to_string()),
            None => Err("no root to walk (idle_pg_table unknown; pass --cr3)".into()),
        };
        let agree = match (&f, &w) {
            (Ok(a), Ok(b)) => Some(a == b),
            _ => None,
        };
        all_ok &= agree != Some(false) && (f.is_ok() || w.is_ok());
        let line = V2mLine {
            kind: "v2m",
            va,
            symbol: x.syms.as_ref().and_then(|sy| sy.name_of(va)),
            region: x.region(va).map(|r| r.name),
            maddr: f.as_ref().ok().copied(),
            formula_error: f.as_ref().err().map(|e| e.to_string()),
            walk_maddr: w.as_ref().ok().copied(),
            walk_error: w.as_ref().err().cloned(),
            agree,
        };
        if a.json {
            serde_json::to_writer(&mut out, &line)?;
            writeln!(out)?;
        } else {
            let what = x.describe_va(va, None).map(|d| format!(" ({d})")).unwrap_or_default();
            write!(out, "{va}{what}: ")?;
            match (&f, &w, agree) {
                (Ok(m), Ok(_), Some(true)) => writeln!(out, "{m} (__virt_to_maddr; the walk agrees)")?,
                (Ok(m), Ok(b), _) => writeln!(out, "{m} by __virt_to_maddr, but the walk gives {b}: DISAGREE")?,
                (Ok(m), Err(e), _) => writeln!(out, "{m} (__virt_to_maddr; no walk check: {e})")?,
                (Err(e), Ok(b), _) => writeln!(out, "{b} by walking ({e})")?,
                (Err(e), Err(we), _) => writeln!(out, "no translation: {e}; {we}")?,
            }
        }
    }
    out.flush()?;
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[derive(Serialize)]
struct M2vLine {
    #[serde(rename = "type")]
    kind: &'static str,
    maddr: Maddr,
    /// `__maddr_to_virt`: the direct-map VA.
    directmap: Option<Vaddr>,
    /// The image VA, for machine addresses inside the hypervisor image.
    image: Option<Vaddr>,
    symbol: Option<String>,
    /// Whether walking the check root at `directmap` gives `maddr` back.
    walk_agrees: Option<bool>,
    walk_error: Option<String>,
}

pub(super) fn m2v(a: M2vArgs) -> Result<ExitCode> {
    let s = Session::open(&a.dump, &a.open, &a.xen)?;
    let x = xen_of(&s)?;
    let mem = s.dump.mem.as_ref();
    let root = check_root(&s, a.cr3);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        crate::render::json::header(&mut out, "m2v")?;
    }
    let mut all_ok = true;
    for ma in a.maddr {
        let ma = Maddr(ma);
        let dm = x.maddr_to_virt(ma);
        let image = x.image_va_of(ma);
        let (walk_agrees, walk_error) = match (dm, root) {
            (Some(v), Some(r)) => match x.walk_maddr(mem, r, v) {
                Ok(m) => (Some(m == ma), None),
                Err(e) => (None, Some(e.to_string())),
            },
            (None, _) => (None, Some("no direct-map address (PDX hole or above the direct map)".into())),
            (_, None) => (None, Some("no root to walk".into())),
        };
        all_ok &= dm.is_some() && walk_agrees != Some(false);
        let symbol = image.and_then(|v| x.syms.as_ref().and_then(|sy| sy.name_of(v)));
        if a.json {
            let line = M2vLine { kind: "m2v", maddr: ma, directmap: dm, image, symbol, walk_agrees, walk_error };
            serde_json::to_writer(&mut out, &line)?;
            writeln!(out)?;
        } else {
            write!(out, "{ma}: ")?;
            match dm {
                Some(v) => write!(out, "direct map {v}")?,
                None => write!(out, "no direct-map address")?,
            }
            if let Some(v) = image {
                write!(out, ", image {v}{}", symbol.map(|s| format!(" ({s})")).unwrap_or_default())?;
            }
            match (walk_agrees, walk_error) {
                (Some(true), _) => writeln!(out, " (the walk agrees)")?,
                (Some(false), _) => {
                    writeln!(out, " (the walk of the direct-map address gives something else: DISAGREE)")?
                }
                (None, Some(e)) => writeln!(out, " (no walk check: {e})")?,
                (None, None) => writeln!(out)?,
            }
        }
    }
    out.flush()?;
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[derive(Args, Debug)]
pub struct DomainsArgs {
    /// The dump.
    pub dump: PathBuf,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct DomainLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    domain: &'a crate::xen::domains::DomainInfo,
}

#[derive(Serialize)]
struct ProblemLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    what: &'a str,
}

pub(super) fn domains(a: DomainsArgs) -> Result<ExitCode> {
    let s = Session::open(&a.dump, &a.open, &a.xen)?;
    let x = xen_of(&s)?;
    let f = crate::xen::domains::Fields::new(x, s.dump.mem.as_ref(), s.dump.notes.vmcoreinfo_xen.as_deref());
    let found = crate::xen::domains::domains(&f).map_err(|e| anyhow::anyhow!("{}: {e}", s.dump.path.display()))?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        crate::render::json::header(&mut out, "domains")?;
    }
    let cpu_cr3 = |cr3: u64| -> Option<usize> {
        s.dump
            .notes
            .cpus
            .iter()
            .find(|c| c.cr3.is_some_and(|c3| c3 & 0x000f_ffff_ffff_f000 == cr3 & 0x000f_ffff_ffff_f000))
            .map(|c| c.cpu)
    };
    for d in &found.domains {
        if a.json {
            serde_json::to_writer(&mut out, &DomainLine { kind: "domain", domain: d })?;
            writeln!(out)?;
            continue;
        }
        let name = if d.kind == crate::xen::domains::DomKind::Idle {
            format!("idle domain (id {:#x})", d.id)
        } else {
            format!("domain {} ({})", d.id, d.kind.name())
        };
        writeln!(
            out,
            "{name}{} at {}: {} vCPUs, {} pages (max {}){}",
            if d.hap { ", HAP" } else { "" },
            d.addr,
            d.vcpus.len(),
            d.tot_pages,
            d.max_pages,
            if d.is_dying != 0 { ", dying" } else { "" }
        )?;
        for v in &d.vcpus {
            let mut roots = Vec::new();
            if let Some(m) = v.guest_table {
                roots.push(format!("guest_table mfn {:#x}", m.0));
            }
            if let Some(m) = v.guest_table_user {
                roots.push(format!("guest_table_user mfn {:#x}", m.0));
            }
            if let Some(m) = v.monitor_table {
                roots.push(format!("monitor_table mfn {:#x}", m.0));
            }
            if let Some(g) = v.guest_cr3 {
                roots.push(format!("guest CR3 {g:#x}"));
            }
            roots.push(format!("cr3 {:#x}", v.cr3));
            let loaded = match cpu_cr3(v.cr3) {
                Some(c) if d.kind != crate::xen::domains::DomKind::Idle => format!(" [loaded on CPU {c}]"),
                _ => String::new(),
            };
            writeln!(
                out,
                "  vCPU {} on CPU {}, {}{}{}: {}{loaded}",
                v.id,
                v.processor,
                v.runstate_name(),
                if v.running { " (is_running)" } else { "" },
                if d.kind.is_pv() { if v.kernel_mode { ", kernel mode" } else { ", user mode" } } else { "" },
                roots.join(", ")
            )?;
        }
    }
    for p in &found.problems {
        if a.json {
            serde_json::to_writer(&mut out, &ProblemLine { kind: "problem", what: &p.what })?;
            writeln!(out)?;
        } else {
            writeln!(out, "!! {}", p.what)?;
        }
    }
    out.flush()?;
    Ok(if found.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[derive(Args, Debug)]
pub struct M2pArgs {
    /// The dump.
    pub dump: PathBuf,
    /// Machine frame numbers (hex).
    #[arg(required = true, value_parser = parse::hex_u64)]
    pub mfn: Vec<u64>,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct M2pLine {
    #[serde(rename = "type")]
    kind: &'static str,
    mfn: crate::addr::Mfn,
    m2p: Option<crate::xen::p2m::M2pEntry>,
    m2p_error: Option<String>,
    page: Option<crate::xen::p2m::PageOwner>,
    page_error: Option<String>,
}

pub(super) fn m2p(a: M2pArgs) -> Result<ExitCode> {
    let s = Session::open(&a.dump, &a.open, &a.xen)?;
    let x = xen_of(&s)?;
    let mem = s.dump.mem.as_ref();
    let root = x.idle_root().context("the M2P is read through idle_pg_table: pass --xen-syms")?;
    let m2p = crate::xen::p2m::M2p::new(x, mem, root);
    let f = crate::xen::domains::Fields::new(x, mem, s.dump.notes.vmcoreinfo_xen.as_deref());
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        crate::render::json::header(&mut out, "m2p")?;
    }
    let mut ok = true;
    for mfn in a.mfn {
        let mfn = crate::addr::Mfn(mfn);
        let e = m2p.get(mfn);
        let p = crate::xen::p2m::page_owner(&f, mfn);
        ok &= e.is_ok();
        if a.json {
            let line = M2pLine {
                kind: "m2p",
                mfn,
                m2p: e.as_ref().ok().copied(),
                m2p_error: e.as_ref().err().map(ToString::to_string),
                page: p.as_ref().ok().cloned(),
                page_error: p.as_ref().err().map(ToString::to_string),
            };
            serde_json::to_writer(&mut out, &line)?;
            writeln!(out)?;
            continue;
        }
        write!(out, "mfn {:#x}: ", mfn.0)?;
        match &e {
            Ok(crate::xen::p2m::M2pEntry::Pfn(p)) => write!(out, "pfn {p}")?,
            Ok(crate::xen::p2m::M2pEntry::Invalid) => write!(out, "INVALID_M2P_ENTRY (no guest pfn)")?,
            Ok(crate::xen::p2m::M2pEntry::Shared) => write!(out, "SHARED_M2P_ENTRY (dom_cow)")?,
            Err(e) => write!(out, "M2P unreadable: {e}")?,
        }
        match &p {
            Ok(o) => writeln!(
                out,
                "; page {}, type {}, owner {}",
                o.state,
                o.page_type,
                match (o.owner, o.owner_id) {
                    (Some(_), Some(crate::xen::domains::DOMID_IDLE)) => "the idle domain".to_string(),
                    (Some(_), Some(id)) if id >= 0x7ff0 => format!("special domain {id:#x}"),
                    (Some(_), Some(id)) => format!("domain {id}"),
                    (Some(v), None) => format!("{v} (unreadable)"),
                    (None, _) => "none".to_string(),
                }
            )?,
            Err(e) => writeln!(out, "; frame table: {e}")?,
        }
    }
    out.flush()?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[derive(Args, Debug)]
pub struct P2mArgs {
    /// The dump: a whole machine (with --xen-syms and --domain), or an xl dump-core
    /// guest core (its .xen_p2m table is the p2m).
    pub dump: PathBuf,
    /// Guest frame numbers (hex); with --mfn on a guest core, machine frames. None:
    /// the whole p2m as ranges.
    #[arg(value_parser = parse::hex_u64)]
    pub pfn: Vec<u64>,
    /// The domain (id); needed for a whole-machine dump.
    #[arg(long, value_name = "D")]
    pub domain: Option<u16>,
    /// On an xl dump-core core: the frames are machine frames, answer mfn -> pfn.
    #[arg(long)]
    pub mfn: bool,
    /// Also check the reverse direction over every frame the domain owns (frame table
    /// owner → M2P → p2m).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct P2mLine {
    #[serde(rename = "type")]
    kind: &'static str,
    pfn: crate::addr::Pfn,
    entry: Option<crate::xen::p2m::P2mEntry>,
    error: Option<String>,
    m2p: Option<crate::xen::p2m::M2pEntry>,
    agree: Option<bool>,
}

#[derive(Serialize)]
struct P2mRangeLine {
    #[serde(rename = "type")]
    kind: &'static str,
    pfn: crate::addr::Pfn,
    /// First mfn (null for invalid runs).
    mfn: Option<crate::addr::Mfn>,
    count: u64,
    /// `ram`, `identity`, `foreign`, `invalid` or `unreadable`.
    entry_kind: &'static str,
}

/// Coalesces p2m entries, in frame order, into `p2m_range` runs of one kind whose
/// machine frames continue too, and writes each run as it closes. Used by the PV
/// list and by the EPT and NPT listings; the first write error is kept for
/// `finish`, so it can be fed from callbacks that cannot fail.
struct Runs<'o, W: Write> {
    out: &'o mut W,
    json: bool,
    /// `pfn` (PV) or `gfn` (HVM) in human output.
    label: &'static str,
    cur: Option<P2mRangeLine>,
    err: Option<io::Error>,
}

impl<'o, W: Write> Runs<'o, W> {
    fn new(out: &'o mut W, json: bool, label: &'static str) -> Self {
        Runs { out, json, label, cur: None, err: None }
    }

    /// `count` frames from `first`, mapped from `mfn` on (or to none).
    fn push(&mut self, first: u64, mfn: Option<crate::addr::Mfn>, kind: &'static str, count: u64) {
        if let Some(r) = self.cur.as_mut() {
            let continues = r.entry_kind == kind
                && r.pfn.0 + r.count == first
                && match (r.mfn, mfn) {
                    (Some(a), Some(b)) => a.0 + r.count == b.0,
                    (None, None) => true,
                    _ => false,
                };
            if continues {
                r.count += count;
                return;
            }
        }
        self.flush_run();
        self.cur = Some(P2mRangeLine { kind: "p2m_range", pfn: crate::addr::Pfn(first), mfn, count, entry_kind: kind });
    }

    fn flush_run(&mut self) {
        let Some(r) = self.cur.take() else { return };
        if self.err.is_some() {
            return;
        }
        let last = r.pfn.0 + r.count - 1;
        let res = if self.json {
            serde_json::to_writer(&mut *self.out, &r).map_err(io::Error::from).and_then(|()| writeln!(self.out))
        } else {
            match r.mfn {
                Some(m) => writeln!(
                    self.out,
                    "{l} {:#x}-{last:#x} -> mfn {:#x}-{:#x}  {} pages  {}",
                    r.pfn.0,
                    m.0,
                    m.0 + r.count - 1,
                    r.count,
                    r.entry_kind,
                    l = self.label
                ),
                None => {
                    writeln!(self.out, "{} {:#x}-{last:#x}  {} pages  {}", self.label, r.pfn.0, r.count, r.entry_kind)
                }
            }
        };
        self.err = res.err();
    }

    /// Write the last run; the first write error, if any.
    fn finish(mut self) -> io::Result<()> {
        self.flush_run();
        self.err.map_or(Ok(()), Err)
    }
}

#[derive(Serialize)]
struct AltCheck {
    #[serde(flatten)]
    source: crate::xen::p2m::P2mSource,
    differing: u64,
}

#[derive(Serialize, Default)]
struct P2mSummary {
    #[serde(rename = "type")]
    kind: &'static str,
    domain: u16,
    max_pfn: u64,
    source: Option<crate::xen::p2m::P2mSource>,
    ram: u64,
    invalid: u64,
    identity: u64,
    foreign: u64,
    unreadable: u64,
    /// p2m → M2P: frames whose M2P entry is not their pfn.
    m2p_mismatches: u64,
    /// M2P → p2m over the domain's own frames (with --check).
    reverse_checked: Option<u64>,
    reverse_mismatches: Option<u64>,
    /// Xen-heap frames the domain owns (shared info, grant frames), not checked.
    xen_heap_frames: u64,
    /// Other p2m sources compared entry by entry (with --check).
    alternatives_checked: Vec<AltCheck>,
    mismatch_examples: Vec<String>,
}

pub(super) fn p2m(a: P2mArgs) -> Result<ExitCode> {
    use crate::xen::p2m::{M2p, M2pEntry, P2mEntry, PvP2m};
    let s = Session::open(&a.dump, &a.open, &a.xen)?;
    let path = s.dump.path.display().to_string();
    if let Some(core) = s.dump.guest_core() {
        if a.domain.is_some() || a.check {
            bail!("{path}: an xl dump-core core holds one guest: --domain and --check apply to whole-machine dumps");
        }
        return super::p2m::run(&s, core, super::p2m::CoreP2mArgs { frames: &a.pfn, mfn: a.mfn, json: a.json });
    }
    if a.mfn {
        bail!("{path}: --mfn answers mfn -> pfn from an xl dump-core core; on a whole machine, `xenwalk m2p` does");
    }
    let Some(domain) = a.domain else {
        bail!(
            "{path}: p2m of a whole-machine dump needs --domain D and --xen-syms (`xenwalk domains` lists the domains); \
             without them p2m reads an xl dump-core guest core"
        );
    };
    let x = xen_of(&s)?;
    let mem = s.dump.mem.as_ref();
    let f = crate::xen::domains::Fields::new(x, mem, s.dump.notes.vmcoreinfo_xen.as_deref());
    let all = crate::xen::domains::domains(&f).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    let Some(d) = all.domains.iter().find(|d| d.id == domain && d.kind != crate::xen::domains::DomKind::Idle) else {
        bail!("{path}: --domain {}: no such domain", domain);
    };
    if !d.kind.is_pv() {
        return hvm_p2m(&a, &s, &f, d);
    }
    let crash_fll = if d.id == 0 {
        s.dump.notes.xen_crash_info.as_ref().and_then(|c| c.dom0_pfn_to_mfn_frame_list_list)
    } else {
        None
    };
    let p2m = PvP2m::open(&f, d.shared_info, crash_fll).map_err(|e| anyhow::anyhow!("{path}: domain {}: {e}", d.id))?;
    let root = x.idle_root().context("the M2P is read through idle_pg_table: pass --xen-syms")?;
    let m2p = M2p::new(x, mem, root);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        crate::render::json::header(&mut out, "p2m")?;
    }
    if !a.pfn.is_empty() {
        let mut ok = true;
        for pfn in &a.pfn {
            let pfn = crate::addr::Pfn(*pfn);
            let e = p2m.get(pfn);
            let m = e.as_ref().ok().and_then(|e| e.mfn()).map(|mfn| m2p.get(mfn));
            let agree = m.as_ref().and_then(|r| r.as_ref().ok()).map(|m| *m == M2pEntry::Pfn(pfn));
            ok &= e.is_ok() && agree != Some(false);
            if a.json {
                let line = P2mLine {
                    kind: "p2m",
                    pfn,
                    entry: e.as_ref().ok().copied(),
                    error: e.as_ref().err().map(ToString::to_string),
                    m2p: m.and_then(|r| r.ok()),
                    agree,
                };
                serde_json::to_writer(&mut out, &line)?;
                writeln!(out)?;
            } else {
                match (&e, agree) {
                    (Ok(P2mEntry::Mfn(mfn)), Some(true)) => writeln!(out, "pfn {pfn}: mfn {:#x} (M2P agrees)", mfn.0)?,
                    (Ok(P2mEntry::Mfn(mfn)), _) => writeln!(
                        out,
                        "pfn {pfn}: mfn {:#x}, but M2P[mfn] is {:?}: MISMATCH",
                        mfn.0,
                        m.and_then(|r| r.ok())
                    )?,
                    (Ok(other), _) => writeln!(out, "pfn {pfn}: {other:?}")?,
                    (Err(err), _) => writeln!(out, "pfn {pfn}: {err}")?,
                }
            }
        }
        out.flush()?;
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    // The whole p2m, streamed as runs, checked against the M2P as it goes.
    let mut sum = P2mSummary {
        kind: "p2m_summary",
        domain: d.id,
        max_pfn: p2m.max_pfn,
        source: Some(p2m.source.clone()),
        ..Default::default()
    };
    let kind_of = |e: &Result<P2mEntry, crate::xen::p2m::P2mError>| match e {
        Ok(P2mEntry::Mfn(_)) => "ram",
        Ok(P2mEntry::Identity(_)) => "identity",
        Ok(P2mEntry::Foreign(_)) => "foreign",
        Ok(P2mEntry::Invalid) => "invalid",
        Err(_) => "unreadable",
    };
    let mfn_of = |e: &Result<P2mEntry, crate::xen::p2m::P2mError>| match e {
        Ok(P2mEntry::Mfn(m) | P2mEntry::Identity(m) | P2mEntry::Foreign(m)) => Some(*m),
        _ => None,
    };
    let mut runs = Runs::new(&mut out, a.json, "pfn");
    for pfn in 0..p2m.max_pfn {
        let e = p2m.get(crate::addr::Pfn(pfn));
        let k = kind_of(&e);
        match k {
            "ram" => sum.ram += 1,
            "identity" => sum.identity += 1,
            "foreign" => sum.foreign += 1,
            "invalid" => sum.invalid += 1,
            _ => sum.unreadable += 1,
        }
        if let Ok(P2mEntry::Mfn(mfn)) = &e {
            match m2p.get(*mfn).map_err(|e| e.to_string()) {
                Ok(M2pEntry::Pfn(p)) if p.0 == pfn => {}
                other => {
                    sum.m2p_mismatches += 1;
                    if sum.mismatch_examples.len() < 16 {
                        sum.mismatch_examples.push(format!("pfn {pfn:#x} -> mfn {:#x}, but M2P says {other:?}", mfn.0));
                    }
                }
            }
        }
        runs.push(pfn, mfn_of(&e), k, 1);
    }
    runs.finish()?;
    if a.check {
        // M2P → p2m over every frame the domain owns (frame table), up to max_page.
        let max_page = x.read_sym_u64(mem, "max_page").context("max_page unreadable")?;
        let (mut checked, mut bad) = (0u64, 0u64);
        for mfn in 0..max_page {
            let mfn = crate::addr::Mfn(mfn);
            let Ok(o) = crate::xen::p2m::page_owner(&f, mfn) else { continue };
            if o.owner != Some(d.addr) {
                continue;
            }
            // Xen-heap frames shared with the guest (shared info, grant frames) have
            // no guest pfn in the M2P: not part of the guest's own memory.
            if o.count_info >> 62 & 1 != 0 {
                sum.xen_heap_frames += 1;
                continue;
            }
            checked += 1;
            let good = match m2p.get(mfn) {
                Ok(M2pEntry::Pfn(p)) => p2m.get(p).ok().and_then(|e| e.mfn()) == Some(mfn),
                _ => false,
            };
            if !good {
                bad += 1;
                if sum.mismatch_examples.len() < 32 {
                    sum.mismatch_examples.push(format!(
                        "mfn {:#x} (owned by domain {}): M2P says {:?}, p2m does not map it back",
                        mfn.0,
                        d.id,
                        m2p.get(mfn).map_err(|e| e.to_string())
                    ));
                }
            }
        }
        sum.reverse_checked = Some(checked);
        sum.reverse_mismatches = Some(bad);
        // Every other source the guest publishes must say the same.
        for alt in &p2m.alternatives {
            let mut differ = 0u64;
            for pfn in 0..p2m.max_pfn {
                let pfn = crate::addr::Pfn(pfn);
                if p2m.raw(pfn).ok() != p2m.raw_via(alt, pfn).ok() {
                    differ += 1;
                    if sum.mismatch_examples.len() < 48 {
                        sum.mismatch_examples.push(format!(
                            "pfn {pfn}: {} says {:?}, {alt} says {:?}",
                            p2m.source,
                            p2m.raw(pfn).map_err(|e| e.to_string()),
                            p2m.raw_via(alt, pfn).map_err(|e| e.to_string())
                        ));
                    }
                }
            }
            sum.alternatives_checked.push(AltCheck { source: alt.clone(), differing: differ });
        }
    }
    let consistent = sum.m2p_mismatches == 0
        && sum.reverse_mismatches.unwrap_or(0) == 0
        && sum.unreadable == 0
        && sum.alternatives_checked.iter().all(|c| c.differing == 0);
    if a.json {
        serde_json::to_writer(&mut out, &sum)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "summary: domain {} max_pfn {:#x} via {}: {} ram, {} invalid, {} identity, {} foreign, {} unreadable; p2m->M2P mismatches {}{}",
            d.id,
            sum.max_pfn,
            p2m.source,
            sum.ram,
            sum.invalid,
            sum.identity,
            sum.foreign,
            sum.unreadable,
            sum.m2p_mismatches,
            match (sum.reverse_checked, sum.reverse_mismatches) {
                (Some(c), Some(b)) => format!(
                    "; M2P->p2m over the domain's {c} frames: {b} mismatches ({} Xen-heap frames it owns not checked)",
                    sum.xen_heap_frames
                ),
                _ => String::new(),
            }
        )?;
        for c in &sum.alternatives_checked {
            writeln!(out, "  also published: {}: {} of {} entries differ", c.source, c.differing, sum.max_pfn)?;
        }
        for e in &sum.mismatch_examples {
            writeln!(out, "  mismatch: {e}")?;
        }
    }
    out.flush()?;
    Ok(if consistent { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[derive(Serialize)]
struct EptLevelJson {
    level: u8,
    index: u16,
    entry_maddr: crate::addr::Maddr,
    #[serde(serialize_with = "crate::render::json::hex")]
    entry: u64,
    flags: Vec<String>,
}

#[derive(Serialize)]
struct HvmP2mLine {
    #[serde(rename = "type")]
    kind: &'static str,
    gfn: crate::addr::Gfn,
    mfn: Option<crate::addr::Mfn>,
    page_size: Option<u64>,
    p2m_type: Option<&'static str>,
    stop: Option<String>,
    /// The host p2m's entries, top down (EPT only).
    ept: Vec<EptLevelJson>,
}

/// An HVM/PVH domain's p2m: Xen's own EPT (or x86 table).
fn hvm_p2m(
    a: &P2mArgs,
    s: &Session,
    f: &crate::xen::domains::Fields<'_>,
    d: &crate::xen::domains::DomainInfo,
) -> Result<ExitCode> {
    use crate::xen::hvm::HostP2m;
    let path = s.dump.path.display().to_string();
    let p2m = HostP2m::of(f, d).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    let minor = f.xen.layout().minor;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        crate::render::json::header(&mut out, "p2m")?;
    }
    if !a.pfn.is_empty() {
        let mut ok = true;
        for &g in &a.pfn {
            let gfn = crate::addr::Gfn(g);
            let (hit, ept) = match &p2m {
                HostP2m::Ept(e) => {
                    let w = e.walk(gfn);
                    let steps = w
                        .steps
                        .iter()
                        .map(|st| EptLevelJson {
                            level: st.level,
                            index: st.index,
                            entry_maddr: st.entry_maddr,
                            entry: st.entry,
                            flags: crate::paging::ept::EptEntry(st.entry).flag_names(st.level, minor),
                        })
                        .collect();
                    (p2m.translate(gfn), steps)
                }
                HostP2m::Pt { .. } => (p2m.translate(gfn), Vec::new()),
            };
            ok &= hit.mfn.is_some();
            let line = HvmP2mLine {
                kind: "hvm_p2m",
                gfn,
                mfn: hit.mfn,
                page_size: None,
                p2m_type: hit.p2m_type,
                stop: hit.stop.clone(),
                ept,
            };
            if a.json {
                serde_json::to_writer(&mut out, &line)?;
                writeln!(out)?;
            } else {
                match (hit.mfn, &hit.stop) {
                    (Some(m), _) => {
                        writeln!(out, "gfn {:#x}: mfn {:#x} ({}, {})", g, m.0, hit.p2m_type.unwrap_or("?"), p2m.kind())?
                    }
                    (None, Some(why)) => writeln!(out, "gfn {g:#x}: no mfn: {why}")?,
                    (None, None) => writeln!(out, "gfn {g:#x}: no mfn")?,
                }
                for st in &line.ept {
                    writeln!(
                        out,
                        "  EPT L{} [{:#x}] at {} = {:#018x}  {}",
                        st.level,
                        st.index,
                        st.entry_maddr,
                        st.entry,
                        st.flags.join(" ")
                    )?;
                }
            }
        }
        out.flush()?;
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    // Every leaf in gfn order, coalesced into runs of one type with contiguous mfns.
    let (mut mapped, mut other) = (0u64, 0u64);
    let mut runs = Runs::new(&mut out, a.json, "gfn");
    let mut push = |gfn: crate::addr::Gfn, mfn: Option<crate::addr::Mfn>, kind: &'static str, frames: u64| {
        if mfn.is_some() && kind != "misconfigured" {
            mapped += frames;
        } else {
            other += frames;
        }
        runs.push(gfn.0, mfn, kind, frames);
    };
    let root_desc = match &p2m {
        HostP2m::Ept(ept) => {
            let res = ept.leaves(|gfn, e, frames| {
                let kind: &'static str = if !e.present() {
                    e.p2m_type_name()
                } else if e.misconfig(1, 52).is_some()
                    && (e.mem_type() == 2 || e.mem_type() == 3 || e.write() && !e.read())
                {
                    "misconfigured"
                } else {
                    e.p2m_type_name()
                };
                push(gfn, e.present().then(|| e.mfn()), kind, frames);
            });
            res.map_err(|e| anyhow::anyhow!("{path}: domain {}: EPT root: {e}", d.id))?;
            format!("EPT root {}", ept.root)
        }
        HostP2m::Pt { mem, root } => {
            // NPT (and shadow-mode) p2m: an x86-64 table indexed by gpa; the p2m type
            // is in bits 58:52 of the leaf (`p2m_flags_to_type`, reference "NPT and
            // shadow-mode p2m", X:xen/arch/x86/mm/p2m-pt.c@4.17.0). Entries not present
            // hold no frame and are counted, not listed.
            let mut unreadable = 0u64;
            let sum = crate::paging::enumerate(*mem, *root, crate::paging::WalkOptions::default(), |ev| {
                match ev {
                    crate::paging::Event::Leaf(l) => {
                        let gpa = l.va.0 & 0x0000_ffff_ffff_ffff;
                        let t = ((l.entry.0 >> 52) & 0x7f) as usize;
                        let kind = crate::paging::ept::P2M_TYPES.get(t).copied().unwrap_or("unknown");
                        push(crate::addr::Gfn(gpa >> 12), Some(l.page.mfn()), kind, l.size() >> 12);
                    }
                    crate::paging::Event::Unreadable { .. } => unreadable += 1,
                    crate::paging::Event::Reserved { va, level, .. } => {
                        let frames = level.page_size() >> 12;
                        push(crate::addr::Gfn((va.0 & 0x0000_ffff_ffff_ffff) >> 12), None, "misconfigured", frames);
                    }
                }
                std::ops::ControlFlow::Continue(())
            });
            format!(
                "NPT root {root} ({} tables read, {} not in the dump, {} non-present entries with bits set not listed)",
                sum.tables.l4 + sum.tables.l3 + sum.tables.l2 + sum.tables.l1,
                unreadable,
                sum.not_present_nonzero
            )
        }
    };
    runs.finish()?;
    if !a.json {
        writeln!(
            out,
            "summary: domain {} ({}), {root_desc}: {mapped} frames mapped, {other} in valid non-present or misconfigured entries",
            d.id,
            d.kind.name(),
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
