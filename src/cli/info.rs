//! `xenwalk info DUMP`.

use super::DumpArgs;
use super::OutputArgs;
use crate::render::{human, json};
use anyhow::Result;
use clap::Args;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub input: DumpArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub(super) fn run(a: InfoArgs, ui: super::Ui) -> Result<ExitCode> {
    let s = a.input.open(ui)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.output.json {
        let mut line = json::InfoLine::new(&s.dump);
        line.xen = s.xen.as_ref().map(|x| json::XenInfo::new(x, s.dump.notes.vmcoreinfo_xen.as_deref(), &*s.dump.mem));
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
