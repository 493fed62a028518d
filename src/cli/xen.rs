//! `xenwalk tables`, `v2m`, `m2v`: the hypervisor's roots and its own translations.

use super::OutputArgs;
use super::{DumpArgs, Session};
use crate::addr::{Maddr, Vaddr};
use crate::parse::{self, Expr};
use crate::xen::Xen;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct TablesArgs {
    #[command(flatten)]
    pub input: DumpArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct V2mArgs {
    #[command(flatten)]
    pub input: DumpArgs,
    /// Hypervisor virtual addresses: hex, `symbol` or `symbol+0x10`.
    #[arg(required = true, value_parser = Expr::parse)]
    pub va: Vec<Expr>,
    /// Root to cross-check against (default: idle_pg_table): a CR3 value or, as for
    /// walks, an expression.
    #[arg(long, value_name = "CR3", value_parser = Expr::parse)]
    pub cr3: Option<Expr>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct M2vArgs {
    #[command(flatten)]
    pub input: DumpArgs,
    /// Machine addresses (hex).
    #[arg(required = true, value_parser = parse::hex_u64)]
    pub maddr: Vec<u64>,
    /// Root to cross-check against (default: idle_pg_table): a CR3 value or, as for
    /// walks, an expression.
    #[arg(long, value_name = "CR3", value_parser = Expr::parse)]
    pub cr3: Option<Expr>,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub(super) fn xen_of(s: &Session) -> Result<&Xen> {
    s.xen.as_ref().context(format!(
        "{}: no hypervisor information: pass --xen-syms (or --xen-version for the layout alone)",
        s.dump.path.display()
    ))
}

/// The root to cross-check with: --cr3 (read as for walks), else the idle table.
fn check_root(s: &Session, cr3: Option<&Expr>) -> Result<Option<Maddr>> {
    Ok(match cr3 {
        Some(e) => {
            let v = super::root::cr3_value(s, e)?;
            Some(Maddr(v & 0x000f_ffff_ffff_f000))
        }
        None => s.xen.as_ref().and_then(|x| x.idle_root()),
    })
}

pub(super) fn tables(a: TablesArgs, ui: super::Ui) -> Result<ExitCode> {
    let s = a.input.open(ui)?;
    let lines = crate::xen::roots::known_roots(&s.dump, s.xen.as_ref());
    if lines.is_empty() {
        bail!("{}: no root can be resolved: the dump has no CPU notes; pass --xen-syms", s.dump.path.display());
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.output.json {
        crate::render::json::header(&mut out, "tables")?;
    }
    for l in &lines {
        if a.output.json {
            serde_json::to_writer(&mut out, &crate::render::json::TableLine { kind: "table", root: l })?;
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

pub(super) fn v2m(a: V2mArgs, ui: super::Ui) -> Result<ExitCode> {
    let s = a.input.open(ui)?;
    let x = xen_of(&s)?;
    let mem = s.dump.mem.as_ref();
    let root = check_root(&s, a.cr3.as_ref())?;
    let mut vas = Vec::new();
    for e in &a.va {
        vas.push(super::resolve(&s, e).map_err(|m| anyhow::anyhow!("{m}"))?);
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.output.json {
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
        if a.output.json {
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

pub(super) fn m2v(a: M2vArgs, ui: super::Ui) -> Result<ExitCode> {
    let s = a.input.open(ui)?;
    let x = xen_of(&s)?;
    let mem = s.dump.mem.as_ref();
    let root = check_root(&s, a.cr3.as_ref())?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.output.json {
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
        if a.output.json {
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
