//! The command line: flag definitions, turning them into a plan, and exit codes.
//! Everything else lives in the library; these files are glue.
//!
//! Exit codes: 0 every VA translated (or the listing/info completed); 1 at least one VA
//! did not translate, or the root cannot be walked (a result, not an error); 2 bad
//! usage or bad input (including one bad line in a VA list; the other lines still run).

mod brief;
mod diff;
mod explain;
mod info;
mod map;
mod next;
mod p2m;
mod progress;
mod walk;
mod xen;

use crate::dump::{Dump, FormatHint, OpenOptions};
use crate::parse;
use crate::xen::symbols::XenSyms;
use crate::xen::{Xen, XenOptions};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

pub use walk::WalkArgs;

/// Walk and explain x86-64 page tables in Xen crash dumps and machine memory images.
///
/// With --va, each address is walked through all four levels and every entry is
/// explained; a walk that stops says why (absent page, zero table, frame number given
/// as CR3, ...). Without --va, every mapping of the root is listed.
#[derive(Parser, Debug)]
#[command(
    name = "xenwalk",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit status: 0 all translated, 1 some VA did not translate, 2 bad usage or input.\n\
                  Values are hexadecimal, with or without 0x (`_` separators allowed); with \
                  --xen-syms, addresses may be symbols: idle_pg_table, stack_base+0x8."
)]
pub struct Cli {
    /// Colour human output: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, global = true, default_value_t = crate::render::color::When::Auto)]
    pub color: crate::render::color::When,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub walk: WalkArgs,
    /// No warnings, notes or progress on stderr: errors only.
    #[arg(long, global = true)]
    pub quiet: bool,
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether `--quiet` was given.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A warning or note on stderr (`xenwalk: {msg}`), unless `--quiet`.
pub(crate) fn note(msg: std::fmt::Arguments<'_>) {
    if !quiet() {
        eprintln!("xenwalk: {msg}");
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Describe a dump: format, memory ranges, notes, per-CPU registers, and with
    /// --xen-syms the hypervisor (version, layout, xen_phys_start, PDX, build-id).
    Info(info::InfoArgs),
    /// List every root the dump lets us resolve: idle_pg_table, per-CPU XPTI roots,
    /// and each CPU's CR3 from the notes.
    Tables(xen::TablesArgs),
    /// Translate hypervisor virtual addresses as Xen's __virt_to_maddr does, and
    /// cross-check each against a walk of the idle root.
    V2m(xen::V2mArgs),
    /// Translate machine addresses to the hypervisor's virtual addresses
    /// (__maddr_to_virt: the direct map; the image for image pages), checked by walks.
    M2v(xen::M2vArgs),
    /// List every domain and vCPU from the hypervisor's own lists, with their roots
    /// (guest_table, guest_table_user, monitor_table, the HVM guest's CR3).
    Domains(xen::DomainsArgs),
    /// Read the M2P (machine_to_phys_mapping) and the frame table for machine frames:
    /// the guest pfn, the owner, the page's state and type.
    M2p(xen::M2pArgs),
    /// Read a PV guest's p2m (its linear list, or the frame-list-list in shared info
    /// or dom0's CRASH_INFO) and check it against the M2P.
    P2m(xen::P2mArgs),
    /// Decode one raw page-table entry value (as printed in a console log), without a
    /// dump: flags in words, frame, large page, reserved bits, the mask to apply.
    Explain(explain::ExplainArgs),
    /// Compare two roots slot by slot: shared table pages, equal content, or the
    /// ranges that differ.
    Diff(diff::DiffArgs),
    /// A picture of one address space: the 512 L4 slots with Xen's regions and what
    /// each maps by page size (terminal table, --svg, --html, --json).
    Map(map::MapArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these definitions.
    Man,
}

/// How to open the dump.
#[derive(Args, Debug, Clone)]
pub struct OpenArgs {
    /// Dump format; by default detected from the file's magic.
    #[arg(long, value_enum, default_value_t = FormatHint::Auto)]
    pub format: FormatHint,
    /// Machine address of the first byte of a raw image.
    #[arg(long, value_name = "MADDR", value_parser = parse::hex_u64, default_value = "0")]
    pub base: u64,
    /// Use the dump's memory even if its notes are corrupt (they are then ignored).
    #[arg(long)]
    pub skip_bad_notes: bool,
}

/// What we know about the hypervisor.
#[derive(Args, Debug, Clone, Default)]
pub struct XenArgs {
    /// The hypervisor's ELF with symbols (Debian: xen-hypervisor-*-dbg's xen-syms);
    /// DWARF is not needed.
    #[arg(long, value_name = "FILE")]
    pub xen_syms: Option<PathBuf>,
    /// Xen version whose memory layout to use (MAJOR.MINOR), overriding the notes and
    /// xen-syms.
    #[arg(long, value_name = "X.Y", value_parser = parse_version)]
    pub xen_version: Option<(u32, u32)>,
    /// Machine address of the hypervisor image's base, overriding the CRASH_INFO note
    /// and discovery.
    #[arg(long, value_name = "MADDR", value_parser = parse::hex_u64)]
    pub xen_phys_start: Option<u64>,
    /// Go on (with a warning) when xen-syms does not match the dump.
    #[arg(long)]
    pub allow_mismatch: bool,
}

fn parse_version(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s.split_once('.').ok_or_else(|| format!("'{s}': expected MAJOR.MINOR, e.g. 4.17"))?;
    let b = b.split('.').next().unwrap_or(b);
    Ok((a.parse().map_err(|_| format!("'{s}': bad major"))?, b.parse().map_err(|_| format!("'{s}': bad minor"))?))
}

/// An opened dump and, when there is reason to, the hypervisor in it.
pub(crate) struct Session {
    pub dump: Dump,
    pub xen: Option<Xen>,
}

impl Session {
    /// Open the dump, load xen-syms, and work out the hypervisor when the dump is
    /// Xen's (notes), symbols are given, or a version is forced.
    pub fn open(path: &Path, o: &OpenArgs, x: &XenArgs) -> Result<Session> {
        let dump = Dump::open(path, OpenOptions { format: o.format, base: o.base, skip_bad_notes: o.skip_bad_notes })
            .with_context(|| path.display().to_string())?;
        for w in &dump.warnings {
            note(format_args!("warning: {}: {w}", path.display()));
        }
        let syms = match &x.xen_syms {
            Some(p) => Some(XenSyms::load(p).with_context(|| format!("{} (--xen-syms)", p.display()))?),
            None => None,
        };
        let wanted = syms.is_some() || x.xen_version.is_some() || x.xen_phys_start.is_some() || Xen::dump_is_xen(&dump);
        let xen = wanted
            .then(|| Xen::new(&dump, syms, &XenOptions { version: x.xen_version, xen_phys_start: x.xen_phys_start }));
        if let Some(xen) = &xen {
            let syms = xen.syms.as_ref().map(|s| s.path.display().to_string()).unwrap_or_default();
            let mut problems: Vec<String> = Vec::new();
            if let Some(c) = xen.image_check.as_ref().filter(|c| !c.ok) {
                if c.unverifiable {
                    note(format_args!("warning: {}: {}", path.display(), c.problems.join("; ")));
                } else {
                    problems.extend(c.problems.iter().cloned());
                }
            }
            if let (Some(ci), Some(v)) =
                (&dump.notes.xen_crash_info, xen.syms.as_ref().and_then(|s| s.version.as_ref()))
            {
                if (ci.major, ci.minor) != (u64::from(v.major), u64::from(v.minor)) {
                    problems.push(format!("the dump's CRASH_INFO says Xen {}.{}, xen-syms is {v}", ci.major, ci.minor));
                }
            }
            if !problems.is_empty() {
                let msg =
                    format!("{syms} does not match the hypervisor in {}: {}", path.display(), problems.join("; "));
                if !x.allow_mismatch {
                    anyhow::bail!("{msg} (--allow-mismatch to go on anyway)");
                }
                note(format_args!("WARNING: {msg}"));
            }
            if let (Some(d), None) = (&xen.discovery, &xen.xen_phys_start) {
                note(format_args!("warning: {}: xen_phys_start not found: {}", path.display(), d.why));
            }
        }
        Ok(Session { dump, xen })
    }

    /// Evaluate an address expression: hex, or (with --xen-syms) an expression over
    /// the hypervisor's symbols and structures.
    pub fn resolve(&self, e: &parse::Expr) -> Result<u64, String> {
        match e {
            parse::Expr::Value(v) => Ok(*v),
            parse::Expr::Symbolic(text) => {
                let Some(xen) = self.xen.as_ref().filter(|x| x.syms.is_some()) else {
                    return Err(format!("'{text}' looks like a symbol expression: pass --xen-syms to use symbols"));
                };
                let ctx = crate::xen::expr::Ctx { xen, mem: self.dump.mem.as_ref(), root: xen.idle_root() };
                crate::xen::expr::eval(text, &ctx, self.dump.notes.vmcoreinfo_xen.as_deref()).map_err(|e| e.to_string())
            }
        }
    }
}

/// Parse the command line, run, and map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::render::color::init(cli.color);
    QUIET.store(cli.quiet, Ordering::Relaxed);
    let r = match cli.command {
        Some(Command::Info(a)) => info::run(a),
        Some(Command::Tables(a)) => xen::tables(a),
        Some(Command::V2m(a)) => xen::v2m(a),
        Some(Command::M2v(a)) => xen::m2v(a),
        Some(Command::Domains(a)) => xen::domains(a),
        Some(Command::M2p(a)) => xen::m2p(a),
        Some(Command::P2m(a)) => xen::p2m(a),
        Some(Command::Explain(a)) => explain::run(a),
        Some(Command::Diff(a)) => diff::run(a),
        Some(Command::Map(a)) => map::run(a),
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "xenwalk", &mut io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = io::stdout().lock();
            match clap_mangen::Man::new(cmd).render(&mut out) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => Err(e.into()),
            }
        }
        None => walk::run(cli.walk),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
                    || c.downcast_ref::<serde_json::Error>()
                        .is_some_and(|j| j.io_error_kind() == Some(io::ErrorKind::BrokenPipe))
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("xenwalk: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
