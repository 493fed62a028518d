//! `xenwalk map DUMP [ROOT]`: a picture of one address space — the 512 L4 slots with
//! Xen's regions, what each maps by page size, to scale on a log axis — as a
//! terminal table, `--svg FILE`, `--html FILE` (self-contained) or `--json`.

use super::DumpArgs;
use super::root::RootArgs;
use super::walk::View;
use super::{OutputArgs, PagingArgs};
use crate::paging::WalkOptions;
use crate::paging::root::RootProblem;
use crate::render::json;
use crate::render::map::{self as draw, RegionLabel, Title};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct MapArgs {
    #[command(flatten)]
    pub input: DumpArgs,
    #[command(flatten)]
    pub root: RootArgs,
    /// Write the picture as SVG to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Write the picture as one self-contained HTML file (hover details) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub paging: PagingArgs,
    #[command(flatten)]
    pub list: super::ListArgs,
}

pub(super) fn run(m: MapArgs, ui: super::Ui) -> Result<ExitCode> {
    let MapArgs { input, root, svg, html, output, paging, list } = m;
    let (as_json, maxphyaddr) = (output.json, paging.maxphyaddr);
    let s = input.open(ui)?;
    let opts = WalkOptions { maxphyaddr, ..WalkOptions::default() };
    let space = root.space(&s, opts, ui)?;
    let Some((root, view)) = View::of(&space, &s) else {
        bail!(
            "map draws tables in machine memory; a guest's own tables are listed by `xenwalk DUMP` with the same \
             root (their machine side goes through the p2m), or drawn from Xen's side with --table monitor"
        );
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if as_json {
        serde_json::to_writer(&mut out, &json::RootLine::new(root))?;
        writeln!(out)?;
    }
    if let Some(p) = root.problem.filter(RootProblem::blocks_walks) {
        let d = crate::diagnose::root_diagnosis(root, &p);
        out.flush()?;
        let next = d.next.as_ref().map(|n| format!("; next: {}", super::next::command(n, None))).unwrap_or_default();
        eprintln!("xenwalk: cannot map this root: {}: {}{next}", d.reason.code(), d.explanation);
        return Ok(ExitCode::from(1));
    }
    let map = crate::paging::map::build(view.mem, root.maddr, opts, list.limit());
    let (mem, xen, root_maddr) = (view.mem, view.xen, root.maddr);
    let labeler = move |va: crate::addr::Vaddr| -> Option<RegionLabel> {
        match xen {
            Some(x) => x.region_in(mem, root_maddr, va).map(|r| RegionLabel { name: r.name, what: r.what }),
            // No hypervisor: the halves of the space.
            None => Some(if va.0 >> 47 == 0 {
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
        ui.note(format_args!("wrote {} ({what}, {} present slots)", file.display(), map.slots.len()));
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
    Ok(super::leaf_limit_exit(&mut out, map.leaf_limit_reached)?)
}
