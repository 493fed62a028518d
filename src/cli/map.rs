//! `xenwalk map DUMP [ROOT]`: a picture of one address space — the 512 L4 slots with
//! Xen's regions, what each maps by page size, to scale on a log axis — as a
//! terminal table, `--svg FILE`, `--html FILE` (self-contained) or `--json`.

use super::walk::{View, WalkArgs, choose_root, hvm_view};
use super::{OpenArgs, Session, XenArgs};
use crate::paging::WalkOptions;
use crate::paging::root::{self, RootInput, RootProblem};
use crate::parse::{self, Expr};
use crate::render::json;
use crate::render::map::{self as draw, RegionLabel, Title};
use anyhow::{Context, Result};
use clap::Args;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("root").args(["cr3", "cr3_mfn", "cpu", "domain"]))]
pub struct MapArgs {
    /// The dump.
    pub dump: PathBuf,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
    /// Root: a CR3 value, or with --xen-syms a symbol or `*expression`.
    #[arg(long, value_name = "CR3", value_parser = Expr::parse)]
    pub cr3: Option<Expr>,
    /// Root as the L4 table's machine frame number.
    #[arg(long, value_name = "MFN", value_parser = parse::hex_u64)]
    pub cr3_mfn: Option<u64>,
    /// Root from this CPU's CR3 in the notes.
    #[arg(long, value_name = "N")]
    pub cpu: Option<usize>,
    /// Root from a domain's vCPU (with --xen-syms): a domain id, or `idle`.
    #[arg(long, value_name = "D")]
    pub domain: Option<String>,
    /// The vCPU of --domain (default 0).
    #[arg(long, value_name = "V", requires = "domain")]
    pub vcpu: Option<u32>,
    /// Which root of the vCPU (guest, user, monitor, cr3).
    #[arg(long, value_enum, requires = "domain")]
    pub table: Option<crate::xen::domains::TableKind>,
    /// Write the picture as SVG to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Write the picture as one self-contained HTML file (hover details) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// JSON Lines on stdout: map_slot, map_cell, map_summary.
    #[arg(long)]
    pub json: bool,
    /// Physical-address width: entry bits 51:N are reserved.
    #[arg(long, value_name = "N", default_value_t = 52, value_parser = clap::value_parser!(u8).range(32..=52))]
    pub maxphyaddr: u8,
}

pub(super) fn run(m: MapArgs) -> Result<ExitCode> {
    let MapArgs { dump, open, xen, cr3, cr3_mfn, cpu, domain, vcpu, table, svg, html, json: as_json, maxphyaddr } = m;
    let a = WalkArgs {
        dump: Some(dump),
        open,
        xen,
        cr3,
        cr3_mfn,
        cpu,
        domain,
        vcpu,
        table,
        va: Vec::new(),
        va_file: None,
        json: as_json,
        long: false,
        style: super::walk::Style::Table,
        leaves: false,
        brief: false,
        maxphyaddr,
    };
    let path = a.dump.as_deref().context("no dump")?;
    let s = Session::open(path, &a.open, &a.xen)?;
    let opts = WalkOptions { maxphyaddr, ..WalkOptions::default() };
    let hvm = hvm_view(&a, &s)?;
    let (root, view) = match &hvm {
        Some((gp, cr3, src)) => (
            root::resolve(gp, RootInput::Cr3(*cr3), src.clone(), None, opts),
            View { mem: gp, xen: None, p2m: Some(gp.p2m) },
        ),
        None => (choose_root(&a, &s, opts)?, View { mem: s.dump.mem.as_ref(), xen: s.xen.as_ref(), p2m: None }),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if as_json {
        serde_json::to_writer(&mut out, &json::RootLine::new(&root))?;
        writeln!(out)?;
    }
    if let Some(p) = root.problem.filter(RootProblem::blocks_walks) {
        let d = crate::diagnose::root_diagnosis(&root, &p);
        out.flush()?;
        let next = d.next.as_ref().map(|n| format!("; next: {}", super::next::command(n, None))).unwrap_or_default();
        eprintln!("xenwalk: cannot map this root: {}: {}{next}", d.reason.code(), d.explanation);
        return Ok(ExitCode::from(1));
    }
    let map = crate::paging::map::build(view.mem, root.maddr, opts);
    let (mem, xen, root_maddr) = (view.mem, view.xen, root.maddr);
    let labeler = move |va: crate::addr::Vaddr| -> Option<RegionLabel> {
        match (xen, view.p2m.is_some()) {
            (Some(x), false) => x.region_in(mem, root_maddr, va).map(|r| RegionLabel { name: r.name, what: r.what }),
            // An HVM guest's own space: its halves.
            _ => Some(if va.0 >> 47 == 0 {
                RegionLabel { name: "lower_half", what: "lower half (user space in most kernels)" }
            } else {
                RegionLabel { name: "upper_half", what: "upper half (kernel space in most kernels)" }
            }),
        }
    };
    let dump_name = s.dump.path.display().to_string();
    let xen_name = xen.map(|x| format!("Xen {}.{}", x.layout().major, x.layout().minor));
    let root_name = format!("L4 at {} ({})", root.maddr, root.source);
    let title = Title { dump: &dump_name, root: &root_name, xen: xen_name.as_deref() };
    let write_file = |file: &PathBuf, body: String, what: &str| -> Result<()> {
        std::fs::write(file, body).with_context(|| format!("{}: cannot write the {what}", file.display()))?;
        super::note(format_args!("wrote {} ({what}, {} present slots)", file.display(), map.slots.len()));
        Ok(())
    };
    if let Some(f) = &svg {
        write_file(f, draw::svg(&map, &title, &labeler), "SVG")?;
    }
    if let Some(f) = &html {
        write_file(f, draw::html(&map, &title, &labeler), "HTML page")?;
    }
    if as_json {
        draw::json(&mut out, &map, &labeler)?;
    } else {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .or_else(|| terminal_size::terminal_size().map(|(w, _)| usize::from(w.0)))
            .unwrap_or(120);
        writeln!(out, "root: {root_name}")?;
        draw::text(&mut out, &map, &labeler, width)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
