//! `xenwalk p2m DUMP [FRAME...]`: a PV guest's p2m, from an `xl dump-core` core alone.

use super::{OpenArgs, Session, XenArgs};
use crate::addr::{Mfn, Pfn};
use crate::mem::xlcore::{GuestKind, XlCore};
use crate::parse;
use crate::render::json::P2mLine;
use anyhow::{Result, bail};
use clap::Args;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct P2mArgs {
    /// An xl dump-core core of a PV guest (its .xen_p2m table is the p2m).
    pub dump: PathBuf,
    /// Guest frames (pfns) to translate, hexadecimal; with --mfn, machine frames.
    /// Without any, every pair is listed, coalesced into runs.
    #[arg(value_name = "FRAME", value_parser = parse::hex_u64)]
    pub frames: Vec<u64>,
    /// The frames are machine frames: answer mfn -> pfn (the inverted p2m).
    #[arg(long)]
    pub mfn: bool,
    #[command(flatten)]
    pub open: OpenArgs,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
}

/// A run of pfns whose mfns are consecutive too.
fn runs(core: &XlCore) -> impl Iterator<Item = (Pfn, Mfn, u64)> + '_ {
    let mut it = core.p2m().peekable();
    std::iter::from_fn(move || {
        let (p0, m0) = it.next()?;
        let mut n = 1u64;
        while let Some(&(p, m)) = it.peek() {
            if p.0 != p0.0 + n || m.0 != m0.0.wrapping_add(n) {
                break;
            }
            n += 1;
            it.next();
        }
        Some((p0, m0, n))
    })
}

pub(super) fn run(a: P2mArgs) -> Result<ExitCode> {
    let s = Session::open(&a.dump, &a.open, &XenArgs::default())?;
    let path = a.dump.display();
    let Some(core) = s.dump.guest_core() else {
        bail!(
            "{path}: p2m reads the .xen_p2m table of an xl dump-core guest core; this dump is {} (the p2m of \
             guests in a whole-machine dump is not read yet)",
            s.dump.format.name()
        );
    };
    if core.kind() == GuestKind::Hvm {
        bail!(
            "{path}: an HVM guest core records guest-physical frames only (.xen_pfn): it has no machine frames, \
             so no p2m (walks of it are in guest-physical addresses)"
        );
    }
    let mut out = BufWriter::new(io::stdout().lock());
    let mut missing = false;
    if a.frames.is_empty() {
        for (pfn, mfn, pages) in runs(core) {
            if a.json {
                serde_json::to_writer(&mut out, &P2mLine::found(pfn, mfn, pages))?;
                writeln!(out)?;
            } else if pages == 1 {
                writeln!(out, "pfn {pfn} -> mfn {mfn}")?;
            } else {
                writeln!(
                    out,
                    "pfn {pfn}-{:#x} -> mfn {mfn}-{:#x}  ({pages} pages)",
                    pfn.0 + pages - 1,
                    mfn.0 + pages - 1
                )?;
            }
        }
    }
    for &f in &a.frames {
        let r = if a.mfn {
            core.mfn_to_pfn(Mfn(f)).map(|p| (p, Mfn(f)))
        } else {
            core.pfn_to_mfn(Pfn(f)).map(|m| (Pfn(f), m))
        };
        let what = if a.mfn { "mfn" } else { "pfn" };
        match r {
            Ok((pfn, mfn)) if a.json => serde_json::to_writer(&mut out, &P2mLine::found(pfn, mfn, 1))?,
            Ok((pfn, mfn)) if a.mfn => write!(out, "mfn {mfn} -> pfn {pfn}")?,
            Ok((pfn, mfn)) => write!(out, "pfn {pfn} -> mfn {mfn}")?,
            Err(e) => {
                missing = true;
                if a.json {
                    serde_json::to_writer(&mut out, &P2mLine::missing(f, a.mfn, e.to_string()))?;
                } else {
                    write!(out, "{what} {f:#x}: {e}")?;
                }
            }
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(if missing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
