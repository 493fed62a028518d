//! `xenwalk domains` and `m2p`: the hypervisor's domains and vCPUs with their roots,
//! and machine frames' owners and pfns.

use super::DumpArgs;
use super::OutputArgs;
use super::xen::xen_of;
use crate::parse;
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DomainsArgs {
    #[command(flatten)]
    pub input: DumpArgs,
    #[command(flatten)]
    pub output: OutputArgs,
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

pub(super) fn domains(a: DomainsArgs, ui: super::Ui) -> Result<ExitCode> {
    let s = a.input.open(ui)?;
    let x = xen_of(&s)?;
    let f = crate::xen::domains::Fields::new(x, s.dump.mem.as_ref(), s.dump.notes.vmcoreinfo_xen.as_deref());
    let found = crate::xen::domains::domains(&f)
        .map_err(|e| anyhow::anyhow!("{}: {}", s.dump.path.display(), super::domain_error(&e)))?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.output.json {
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
        if a.output.json {
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
        if a.output.json {
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
    #[command(flatten)]
    pub input: DumpArgs,
    /// Machine frame numbers (hex).
    #[arg(required = true, value_parser = parse::hex_u64)]
    pub mfn: Vec<u64>,
    #[command(flatten)]
    pub output: OutputArgs,
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

pub(super) fn m2p(a: M2pArgs, ui: super::Ui) -> Result<ExitCode> {
    let s = a.input.open(ui)?;
    let x = xen_of(&s)?;
    let mem = s.dump.mem.as_ref();
    let root = x.idle_root().context("the M2P is read through idle_pg_table: pass --xen-syms")?;
    let m2p = crate::xen::p2m::M2p::new(x, mem, root);
    let f = crate::xen::domains::Fields::new(x, mem, s.dump.notes.vmcoreinfo_xen.as_deref());
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.output.json {
        crate::render::json::header(&mut out, "m2p")?;
    }
    let mut ok = true;
    for mfn in a.mfn {
        let mfn = crate::addr::Mfn(mfn);
        let e = m2p.get(mfn);
        let p = crate::xen::p2m::page_owner(&f, mfn);
        ok &= e.is_ok();
        if a.output.json {
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
