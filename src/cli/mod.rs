//! The command line: flag definitions, turning them into a plan, and exit codes.
//! Everything else lives in the library; these files are glue.
//!
//! Exit codes: 0 every VA translated (or the listing/info completed); 1 at least one VA
//! did not translate, or the root cannot be walked (a result, not an error); 2 bad
//! usage or bad input (including one bad line in a VA list; the other lines still run).

mod brief;
mod diff;
mod domains;
mod explain;
mod info;
mod map;
mod next;
mod p2m;
mod profile;
mod progress;
mod root;
mod triage;
mod walk;
mod xen;

use crate::dump::{FormatHint, OpenOptions};
use crate::parse;
pub(crate) use crate::session::Session;
use crate::session::{SessionError, SessionOptions};
use crate::xen::XenOptions;
use crate::xen::offsets::{OffsetConfig, OffsetSource};
use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    #[arg(long, value_enum, global = true, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub walk: WalkArgs,
    /// No warnings, notes or progress on stderr: errors only.
    #[arg(long, global = true)]
    pub quiet: bool,
}

/// What every command is told about the terminal and the user's wishes: whether to
/// colour, whether to say anything but errors on stderr. Passed down, never global.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub quiet: bool,
    pub paint: crate::render::color::Paint,
}

impl Ui {
    /// A warning or note on stderr (`xenwalk: {msg}`), unless `--quiet`.
    pub fn note(&self, msg: std::fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("xenwalk: {msg}");
        }
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
    Domains(domains::DomainsArgs),
    /// Read the M2P (machine_to_phys_mapping) and the frame table for machine frames:
    /// the guest pfn, the owner, the page's state and type.
    M2p(domains::M2pArgs),
    /// Read a PV guest's p2m (its linear list, or the frame-list-list in shared info
    /// or dom0's CRASH_INFO) and check it against the M2P.
    P2m(p2m::P2mArgs),
    /// Decode one raw page-table entry value (as printed in a console log), without a
    /// dump: flags in words, frame, large page, reserved bits, the mask to apply.
    Explain(explain::ExplainArgs),
    /// Compare two roots slot by slot: shared table pages, equal content, or the
    /// ranges that differ.
    Diff(diff::DiffArgs),
    /// A picture of one address space: the 512 L4 slots with Xen's regions and what
    /// each maps by page size (terminal table, --svg, --html, --json).
    Map(map::MapArgs),
    /// Write the struct layouts xenwalk reads, from a xen-syms with DWARF, as a profile
    /// for its stripped twin (--profile).
    Profile(profile::ProfileArgs),
    /// Read a crash as a Xen developer would: the build and each CPU's registers, each
    /// CPU's CR3 named as a root, and named consistency checks; exit 0 nothing
    /// inconsistent, 1 findings, 2 bad input.
    Triage(triage::TriageArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these definitions.
    Man,
}

/// When to colour (`--color`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorArg {
    /// On a terminal, unless NO_COLOR is set.
    #[default]
    Auto,
    Always,
    Never,
}

impl From<ColorArg> for crate::render::color::When {
    fn from(c: ColorArg) -> Self {
        use crate::render::color::When;
        match c {
            ColorArg::Auto => When::Auto,
            ColorArg::Always => When::Always,
            ColorArg::Never => When::Never,
        }
    }
}

/// How to interpret the file (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Detect by magic; a file with no known magic and a size that is a whole number
    /// of pages is taken as a raw image.
    #[default]
    Auto,
    /// A flat physical memory image.
    Raw,
    /// An ELF core.
    Elf,
}

impl From<FormatArg> for FormatHint {
    fn from(f: FormatArg) -> FormatHint {
        match f {
            FormatArg::Auto => FormatHint::Auto,
            FormatArg::Raw => FormatHint::Raw,
            FormatArg::Elf => FormatHint::Elf,
        }
    }
}

/// The dump and how to open it, with what is known of its hypervisor: the same
/// definitions for every command that reads a dump.
#[derive(Args, Debug, Clone)]
pub struct DumpArgs {
    /// The dump: ELF core (Xen kexec vmcore, QEMU dump-guest-memory), kdump-compressed
    /// file (makedumpfile, QEMU -z/-l/-s; plain or flattened), xl dump-core guest core
    /// or raw image.
    // An Option only so that the walk's arguments, flattened beside the subcommands,
    // can be absent when a subcommand is given; clap requires it everywhere.
    #[arg(required = true, value_name = "DUMP")]
    pub dump: Option<PathBuf>,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
}

impl DumpArgs {
    /// The dump's path.
    pub fn path(&self) -> Result<&Path> {
        self.dump.as_deref().ok_or_else(|| anyhow::anyhow!("no dump file given (see --help)"))
    }

    /// Open the dump and its hypervisor.
    pub fn open(&self, ui: Ui) -> Result<Session> {
        open_session(self.path()?, &self.open, &self.xen, ui)
    }
}

/// Output for scripts.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// JSON Lines output: one object per line, each with a `type` (schemas in the
    /// README, "JSON output").
    #[arg(long)]
    pub json: bool,
}

/// How much a listing may list.
#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// A listing stops after N leaves and says so (exit 1): every path through the
    /// tables is followed, so tables that alias (a corrupt or hostile dump) can map
    /// all 2^36 pages of the address space.
    #[arg(long, value_name = "N", default_value_t = crate::paging::enumerate::LeafLimit::DEFAULT)]
    pub max_leaves: u64,
}

impl ListArgs {
    pub fn limit(&self) -> crate::paging::enumerate::LeafLimit {
        crate::paging::enumerate::LeafLimit::new(self.max_leaves)
    }
}

/// A listing's exit status by its leaf limit, its output flushed first: 1, said on
/// stderr, when it stopped there; else success.
fn leaf_limit_exit(out: &mut dyn io::Write, limit: Option<u64>) -> io::Result<ExitCode> {
    out.flush()?;
    let Some(max) = limit else { return Ok(ExitCode::SUCCESS) };
    eprintln!(
        "xenwalk: the listing stopped after {max} leaves (--max-leaves {max}): this root maps more, \
         which on a real machine usually means its tables alias (one table under many entries); \
         pass a larger --max-leaves to go on"
    );
    Ok(ExitCode::from(1))
}

/// How the machine's paging is read.
#[derive(Args, Debug, Clone)]
pub struct PagingArgs {
    /// Physical-address width of the machine: entry bits 51:N are reserved.
    #[arg(long, value_name = "N", default_value_t = 52, value_parser = clap::value_parser!(u8).range(32..=52))]
    pub maxphyaddr: u8,
}

/// How to open the dump.
#[derive(Args, Debug, Clone)]
pub struct OpenArgs {
    /// Dump format; by default detected from the file's magic.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
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
    /// Struct layouts for a stripped xen-syms: a profile written by `xenwalk profile`
    /// from its DWARF twin, or a volatility3 ISF JSON file; a directory is searched
    /// for the one of this build (repeatable). A profile of another build is refused.
    #[arg(long, value_name = "FILE|DIR")]
    pub profile: Vec<PathBuf>,
    /// Give one struct member's offset outright, e.g. vcpu.arch.guest_table=2824, or a
    /// struct's size, e.g. page_info=32 (decimal, or hex with 0x); it wins over every
    /// source (repeatable).
    #[arg(long, value_name = "KEY=OFFSET", value_parser = parse_offset)]
    pub offset: Vec<(String, u64)>,
    /// Which sources of struct offsets to ask, in order: a comma list of dwarf,
    /// profile, vmcoreinfo, builtin, infer (default: all, in that order; `infer` reads
    /// them from the dump's own structures).
    #[arg(long, value_name = "LIST", value_parser = parse_sources)]
    pub offsets_from: Option<SourceList>,
}

/// The sources `--offsets-from` names, in order.
#[derive(Clone, Debug)]
pub struct SourceList(pub Vec<OffsetSource>);

fn parse_offset(s: &str) -> Result<(String, u64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("'{s}': expected struct.member=OFFSET or struct=SIZE"))?;
    if k.is_empty() || k.split('.').any(str::is_empty) {
        return Err(format!("'{k}': expected struct.member (e.g. vcpu.arch.guest_table) or a struct's name"));
    }
    let v = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    }
    .map_err(|_| format!("'{v}': an offset in bytes (decimal, or hex with 0x)"))?;
    Ok((k.to_string(), v))
}

fn parse_sources(s: &str) -> Result<SourceList, String> {
    let names = || OffsetSource::ALL.map(OffsetSource::name).join(", ");
    let mut v = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let src = OffsetSource::from_name(name).ok_or_else(|| format!("'{name}': a source is one of {}", names()))?;
        if !v.contains(&src) {
            v.push(src);
        }
    }
    if v.is_empty() {
        return Err(format!("no source given: one or more of {}", names()));
    }
    Ok(SourceList(v))
}

fn parse_version(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s.split_once('.').ok_or_else(|| format!("'{s}': expected MAJOR.MINOR, e.g. 4.17"))?;
    let b = b.split('.').next().unwrap_or(b);
    Ok((a.parse().map_err(|_| format!("'{s}': bad major"))?, b.parse().map_err(|_| format!("'{s}': bad minor"))?))
}

/// Open the dump and its hypervisor as the options say; warnings go to stderr
/// (unless `--quiet`), errors are worded for this command line.
pub(crate) fn open_session(path: &Path, o: &OpenArgs, x: &XenArgs, ui: Ui) -> Result<Session> {
    let opts = SessionOptions {
        open: OpenOptions { format: o.format.into(), base: o.base, skip_bad_notes: o.skip_bad_notes },
        xen_syms: x.xen_syms.clone(),
        xen: XenOptions {
            version: x.xen_version,
            xen_phys_start: x.xen_phys_start,
            offsets: OffsetConfig {
                order: x.offsets_from.clone().map(|l| l.0).unwrap_or_default(),
                overrides: x.offset.iter().cloned().collect(),
                profiles: Vec::new(),
            },
        },
        allow_mismatch: x.allow_mismatch,
        profiles: x.profile.clone(),
    };
    let s = Session::open(path, &opts).map_err(|e| match e {
        SessionError::Syms { path, source } => {
            anyhow::Error::new(source).context(format!("{} (--xen-syms)", path.display()))
        }
        SessionError::Profile { path, source } => {
            anyhow::Error::new(source).context(format!("{} (--profile)", path.display()))
        }
        m @ SessionError::Mismatch { .. } => anyhow::anyhow!("{m} (--allow-mismatch to go on anyway)"),
        other => other.into(),
    })?;
    for w in &s.warnings {
        ui.note(format_args!("{}", w.describe(path)));
    }
    Ok(s)
}

/// A domain-list error, with how to give an offset no source knows.
pub(crate) fn domain_error(e: &crate::xen::domains::DomainError) -> String {
    use crate::xen::domains::DomainError;
    use crate::xen::offsets::OffsetError;
    match e {
        DomainError::Offset(OffsetError::UnknownOffset { key, .. }) => format!(
            "{e}; give it with --offset {key}=N, or a profile of this build with --profile FILE \
             (`xenwalk profile XEN-SYMS` writes one from the build's DWARF)"
        ),
        _ => e.to_string(),
    }
}

/// Evaluate an address expression; the error in this command line's words.
pub(crate) fn resolve(s: &Session, e: &parse::Expr) -> Result<u64, String> {
    s.resolve(e).map_err(|e| root::resolve_error(&e))
}

/// Parse the command line, run, and map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = Ui { quiet: cli.quiet, paint: crate::render::color::Paint::new(cli.color.into()) };
    let r = match cli.command {
        Some(Command::Info(a)) => info::run(a, ui),
        Some(Command::Tables(a)) => xen::tables(a, ui),
        Some(Command::V2m(a)) => xen::v2m(a, ui),
        Some(Command::M2v(a)) => xen::m2v(a, ui),
        Some(Command::Domains(a)) => domains::domains(a, ui),
        Some(Command::M2p(a)) => domains::m2p(a, ui),
        Some(Command::P2m(a)) => p2m::p2m(a, ui),
        Some(Command::Explain(a)) => explain::run(a),
        Some(Command::Diff(a)) => diff::run(a, ui),
        Some(Command::Map(a)) => map::run(a, ui),
        Some(Command::Profile(a)) => profile::run(a, ui),
        Some(Command::Triage(a)) => triage::run(a, ui),
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
        None => walk::run(cli.walk, ui),
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

/// The exit status of a run over VAs (README "Exit status"): 2 when a line of the VA
/// list could not be read (the others still ran), else 1 when a VA did not translate.
fn va_exit(bad_input: bool, any_failed: bool) -> ExitCode {
    if bad_input {
        ExitCode::from(2)
    } else if any_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
