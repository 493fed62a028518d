//! `xenwalk profile XEN-SYMS [-o FILE]`: the struct layouts xenwalk reads, from a
//! xen-syms with DWARF, for its stripped twin (`--profile`).

use crate::xen::offsets::Offsets;
use crate::xen::profile;
use crate::xen::symbols::XenSyms;
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// A xen-syms built with debug info (Debian: the -dbg package's).
    pub xen_syms: PathBuf,
    /// Write the profile to FILE (default: stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub(super) fn run(a: ProfileArgs, ui: super::Ui) -> Result<ExitCode> {
    let path = a.xen_syms.display().to_string();
    let syms = XenSyms::load(&a.xen_syms).with_context(|| path.clone())?;
    let keys = Offsets::known_keys();
    let sizes = Offsets::known_sizes();
    let p = profile::from_dwarf(&syms, &keys, &sizes).map_err(|e| {
        anyhow::anyhow!(
            "{path}: {e}: a profile is written from a xen-syms built with debug info (Debian: xen-hypervisor-*-dbg)"
        )
    })?;
    if p.build_id.is_empty() {
        anyhow::bail!("{path}: no build-id note: a profile is matched to its build by the build-id");
    }
    let mut text = serde_json::to_string_pretty(&p)?;
    text.push('\n');
    match &a.output {
        Some(f) => {
            std::fs::write(f, &text).with_context(|| format!("{}: cannot write", f.display()))?;
            ui.note(format_args!(
                "wrote {} ({} offsets, {} sizes, {} missing; build-id {})",
                f.display(),
                p.offsets.len(),
                p.sizes.len(),
                p.missing.len(),
                p.build_id
            ));
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
