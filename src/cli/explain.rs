//! `xenwalk explain ENTRY`: decode one raw entry value, as printed in a Xen or Linux
//! console log, without any dump.

use super::{OutputArgs, PagingArgs};
use crate::paging::entry::{Entry, Level, addr_mask, bits};
use crate::parse;
use crate::render::size_name;
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::io::{self, Write};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The raw 64-bit entry (hex, as in `L3[0x141] = 000000003fc6a063`).
    #[arg(value_parser = parse::hex_u64)]
    pub entry: u64,
    /// The level it was read at (4..1); without it, every level is shown.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub level: Option<u8>,
    #[command(flatten)]
    pub paging: PagingArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Serialize)]
struct ExplainLine {
    #[serde(rename = "type")]
    kind: &'static str,
    level: u8,
    #[serde(serialize_with = "crate::addr::hex")]
    entry: u64,
    present: bool,
    leaf: bool,
    flags: Vec<String>,
    /// The address bits, correctly masked.
    address: Option<crate::addr::Maddr>,
    page_size: Option<u64>,
    #[serde(serialize_with = "crate::addr::hex")]
    reserved: u64,
    /// The mask a walker must apply at this level.
    #[serde(serialize_with = "crate::addr::hex")]
    mask: u64,
    /// What a walker that masks only bits 11:0 would take as the address.
    #[serde(serialize_with = "crate::addr::hex")]
    naive_address: u64,
    words: Vec<String>,
}

fn level_of(n: u8) -> Level {
    match n {
        4 => Level::L4,
        3 => Level::L3,
        2 => Level::L2,
        _ => Level::L1,
    }
}

pub(super) fn run(a: ExplainArgs) -> Result<ExitCode> {
    let e = Entry(a.entry);
    let levels: Vec<u8> = match a.level {
        Some(l) => vec![l],
        None => vec![4, 3, 2, 1],
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if a.output.json {
        crate::render::json::header(&mut out, "explain")?;
    }
    for (i, n) in levels.into_iter().enumerate() {
        if i > 0 && !a.output.json {
            writeln!(out)?;
        }
        let level = level_of(n);
        let present = e.present();
        let leaf = present && e.is_leaf(level);
        let mask = e.frame_mask(level, a.paging.maxphyaddr);
        let reserved = if present { e.reserved_bits(level, a.paging.maxphyaddr, true) } else { 0 };
        let line = ExplainLine {
            kind: "explain",
            level: n,
            entry: a.entry,
            present,
            leaf,
            flags: e.flag_names(level),
            address: present.then(|| crate::addr::Maddr(e.addr(level, a.paging.maxphyaddr))),
            page_size: leaf.then(|| level.page_size()),
            reserved,
            mask,
            naive_address: a.entry & !0xfff,
            words: e.explain_bits(level),
        };
        if a.output.json {
            serde_json::to_writer(&mut out, &line)?;
            writeln!(out)?;
            continue;
        }
        writeln!(out, "as an {} entry ({}): {:#018x}", level.name(), level.intel_name(), a.entry)?;
        if !present {
            writeln!(out, "  not present (P=0): the CPU ignores every other bit; software may keep data in them")?;
            if a.entry != 0 {
                writeln!(out, "  frame bits read {:#x}", a.entry & addr_mask(a.paging.maxphyaddr))?;
            }
            continue;
        }
        writeln!(out, "  flags: {}", line.flags.join(" "))?;
        for w in &line.words {
            writeln!(out, "    {w}")?;
        }
        match (leaf, line.address) {
            (true, Some(ad)) => {
                writeln!(out, "  maps a {} page at {ad} (mfn {:#x})", size_name(level.page_size()), ad.0 >> 12)?
            }
            (false, Some(ad)) => writeln!(
                out,
                "  points to the {} table at {ad} (mfn {:#x})",
                level.below().map(|l| l.name()).unwrap_or("?"),
                ad.0 >> 12
            )?,
            _ => {}
        }
        writeln!(out, "  a walker must mask with {mask:#018x}")?;
        if line.naive_address != e.addr(level, a.paging.maxphyaddr) {
            let why = if a.entry & bits::NX != 0 {
                "NX (bit 63)"
            } else if leaf && level != Level::L1 && e.has(bits::PAT_LARGE) {
                "the large-page PAT bit (12)"
            } else {
                "software bits 62:52"
            };
            writeln!(out, "  masking only bits 11:0 would give {:#x}: {why} left in the address", line.naive_address)?;
        }
        if reserved != 0 {
            writeln!(out, "  RESERVED bits set: {reserved:#x}: the CPU raises #PF with PFEC.RSVD on this entry")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
