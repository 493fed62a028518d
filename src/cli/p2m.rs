//! `xenwalk p2m CORE [FRAME...]`: a PV guest's p2m, from an `xl dump-core` core alone
//! (the whole-machine p2m of a domain is `xen::p2m`, which hands cores to this).

use super::Session;
use crate::addr::{Mfn, Pfn};
use crate::mem::xlcore::{GuestKind, XlCore};
use crate::render::json::P2mLine;
use anyhow::{Result, bail};
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

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

/// What `xenwalk p2m` is asked on an xl dump-core core.
pub(super) struct CoreP2mArgs<'a> {
    pub frames: &'a [u64],
    pub mfn: bool,
    pub json: bool,
}

/// `xenwalk p2m CORE [FRAME...] [--mfn]`: the p2m of an xl dump-core core.
pub(super) fn run(s: &Session, core: &XlCore, a: CoreP2mArgs<'_>) -> Result<ExitCode> {
    let path = s.dump.path.display();
    if core.kind() == GuestKind::Hvm {
        bail!(
            "{path}: an HVM guest core records guest-physical frames only (.xen_pfn): it has no machine frames, \
             so no p2m (walks of it are in guest-physical addresses)"
        );
    }
    let mut out = BufWriter::new(io::stdout().lock());
    if a.json {
        crate::render::json::header(&mut out, "p2m")?;
    }
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
    for &f in a.frames {
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
