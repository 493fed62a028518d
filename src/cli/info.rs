//! `xenwalk info DUMP`.

use super::{OpenArgs, XenArgs};
use crate::render::{human, json};
use anyhow::Result;
use clap::Args;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The dump: ELF core (Xen kexec vmcore, QEMU dump-guest-memory), kdump-compressed
    /// file (makedumpfile, QEMU -z/-l/-s; plain or flattened) or raw image.
    pub dump: PathBuf,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(a: InfoArgs) -> Result<ExitCode> {
    let s = super::open_session(&a.dump, &a.open, &a.xen)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        let mut line = json::InfoLine::new(&s.dump);
        line.xen = s.xen.as_ref().map(|x| json::XenInfo::new(x, s.dump.notes.vmcoreinfo_xen.as_deref()));
        serde_json::to_writer(&mut out, &line)?;
        writeln!(out)?;
    } else {
        human::info(&mut out, &s.dump)?;
        if let Some(x) = &s.xen {
            human::xen_info(&mut out, x, &s.dump)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
