//! The command line: flag definitions, turning them into a plan, and exit codes.
//! Everything else lives in the library; this file is glue.
//!
//! Exit codes: 0 every VA translated (or the listing/info completed); 1 at least one VA
//! did not translate, or the root cannot be walked (a result, not an error); 2 bad
//! usage or bad input (including one bad line in a VA list; the other lines still run).

use crate::addr::Vaddr;
use crate::diagnose::{self, Translation};
use crate::dump::{Dump, FormatHint, OpenOptions};
use crate::mem::Absent;
use crate::paging::WalkOptions;
use crate::paging::enumerate::{self, Coalescer, Event, Range};
use crate::paging::root::{self, Root, RootInput, RootProblem};
use crate::parse;
use crate::render::{human, json};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::io::{self, BufRead, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
                  Values are hexadecimal, with or without 0x (`_` separators allowed)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Describe a dump: format, memory ranges, notes, per-CPU registers.
    Info(InfoArgs),
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
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The dump: ELF core (Xen kexec vmcore, QEMU dump-guest-memory), kdump-compressed
    /// file (makedumpfile, QEMU -z/-l/-s; plain or flattened) or raw image.
    pub dump: PathBuf,
    #[command(flatten)]
    pub open: OpenArgs,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("root").args(["cr3", "cr3_mfn", "cpu"]))]
pub struct WalkArgs {
    /// The dump: ELF core (Xen kexec vmcore, QEMU dump-guest-memory), kdump-compressed
    /// file (makedumpfile, QEMU -z/-l/-s; plain or flattened) or raw image.
    #[arg(required = true)]
    pub dump: Option<PathBuf>,
    #[command(flatten)]
    pub open: OpenArgs,
    /// Root of the address space: a CR3 value (PCID bits 11:0 and bit 63 are stripped
    /// and reported).
    #[arg(long, value_name = "CR3", value_parser = parse::hex_u64)]
    pub cr3: Option<u64>,
    /// Root of the address space as the L4 table's machine frame number.
    #[arg(long, value_name = "MFN", value_parser = parse::hex_u64)]
    pub cr3_mfn: Option<u64>,
    /// Take the root from this CPU's CR3 in the dump's notes (default: CPU 0 when the
    /// dump has notes and no root is given).
    #[arg(long, value_name = "N")]
    pub cpu: Option<usize>,
    /// Virtual address to translate (repeatable).
    #[arg(long = "va", value_name = "VA", value_parser = parse::hex_u64)]
    pub va: Vec<u64>,
    /// File with one VA per line (`-` for stdin); `#` starts a comment; the first
    /// token of a line is used, so `info tlb`-style listings work.
    #[arg(long, value_name = "FILE")]
    pub va_file: Option<PathBuf>,
    /// JSON Lines output (schema in README.md).
    #[arg(long)]
    pub json: bool,
    /// Explain every bit of every entry, with Intel's level names.
    #[arg(long, conflicts_with = "json")]
    pub long: bool,
    /// When listing, one line per leaf (no coalescing, Accessed/Dirty shown).
    #[arg(long)]
    pub leaves: bool,
    /// Physical-address width of the machine: entry bits 51:N are reserved.
    #[arg(long, value_name = "N", default_value_t = 52, value_parser = clap::value_parser!(u8).range(32..=52))]
    pub maxphyaddr: u8,
}

/// Parse the command line, run, and map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("xenwalk: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn open(path: &Path, o: &OpenArgs) -> Result<Dump> {
    let dump =
        Dump::open(path, OpenOptions { format: o.format, base: o.base }).with_context(|| path.display().to_string())?;
    for w in &dump.warnings {
        eprintln!("xenwalk: warning: {}: {w}", path.display());
    }
    Ok(dump)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::Info(a)) => info(a),
        None => walk(cli.walk),
    }
}

fn info(a: InfoArgs) -> Result<ExitCode> {
    let dump = open(&a.dump, &a.open)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        serde_json::to_writer(&mut out, &json::InfoLine::new(&dump))?;
        writeln!(out)?;
    } else {
        human::info(&mut out, &dump)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Choose the root from the flags or the dump's notes.
fn choose_root(a: &WalkArgs, dump: &Dump, opts: WalkOptions) -> Result<Root> {
    let path = dump.path.display();
    let cpu_root = |cpu: usize, implicit: bool| -> Result<Root> {
        let Some(c) = dump.notes.cpu(cpu) else {
            let have: Vec<String> = dump.notes.cpus.iter().map(|c| c.cpu.to_string()).collect();
            if have.is_empty() {
                bail!("{path}: --cpu {cpu}: the dump has no per-CPU notes; pass --cr3 or --cr3-mfn");
            }
            bail!("{path}: --cpu {cpu}: the dump's notes describe CPUs {} only", have.join(", "));
        };
        let (Some(cr3), Some(src)) = (c.cr3, c.regs_source) else {
            bail!("{path}: CPU {cpu}: the dump's notes have no CR3 for it (NT_PRSTATUS only); pass --cr3");
        };
        let pcide = c.cr4.map(|cr4| cr4 & (1 << 17) != 0);
        let source = format!("CPU {cpu}, {}", src.describe());
        if implicit {
            eprintln!(
                "xenwalk: no root given: using CR3 {cr3:#x} of CPU {cpu} from the {} (choose with --cpu N, --cr3 or --cr3-mfn)",
                src.describe()
            );
        }
        Ok(root::resolve(dump.mem.as_ref(), RootInput::Cr3(cr3), source, pcide, opts))
    };
    let root = if let Some(v) = a.cr3 {
        root::resolve(dump.mem.as_ref(), RootInput::Cr3(v), "--cr3".into(), None, opts)
    } else if let Some(m) = a.cr3_mfn {
        root::resolve(dump.mem.as_ref(), RootInput::Mfn(m), "--cr3-mfn".into(), None, opts)
    } else if let Some(cpu) = a.cpu {
        cpu_root(cpu, false)?
    } else if let Some(first) = dump.notes.cpus.iter().find(|c| c.cr3.is_some()) {
        cpu_root(first.cpu, true)?
    } else {
        bail!("{path}: no root: pass --cr3 VALUE or --cr3-mfn FRAME (this dump has no CPU notes with CR3)");
    };
    // A root outside the image is bad input, not a per-address result.
    if let Some(RootProblem::Absent(why @ Absent::OutsideImage { .. })) = root.problem {
        bail!("{path}: root {} (from {}): the L4 table is {why}", root.maddr, root.source);
    }
    Ok(root)
}

fn walk(a: WalkArgs) -> Result<ExitCode> {
    let Some(path) = a.dump.as_deref() else { bail!("no dump file given (see --help)") };
    let dump = open(path, &a.open)?;
    let opts = WalkOptions { maxphyaddr: a.maxphyaddr, ..WalkOptions::default() };
    let root = choose_root(&a, &dump, opts)?;
    // Open the VA list before printing anything: a missing list is bad input.
    let va_list: Option<(String, Box<dyn BufRead>)> = match &a.va_file {
        None => None,
        Some(file) if file.as_os_str() == "-" => Some(("<stdin>".into(), Box::new(io::stdin().lock()))),
        Some(file) => {
            let name = file.display().to_string();
            let f = std::fs::File::open(file).with_context(|| format!("{name}: cannot open VA list"))?;
            Some((name, Box::new(io::BufReader::new(f))))
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.json {
        serde_json::to_writer(&mut out, &json::RootLine::new(&root))?;
        writeln!(out)?;
    } else {
        human::root(&mut out, &root, a.long)?;
    }

    if a.va.is_empty() && va_list.is_none() {
        let code = list(&mut out, &dump, &root, opts, &a)?;
        out.flush()?;
        return Ok(code);
    }

    let mut any_failed = false;
    let mut bad_input = false;
    let mut one = |out: &mut dyn Write, va: u64| -> Result<()> {
        let t = diagnose::translate(dump.mem.as_ref(), &root, Vaddr(va), opts);
        any_failed |= !t.translated();
        emit_walk(out, &t, &root, &a)
    };
    for &va in &a.va {
        one(&mut out, va)?;
    }
    if let Some((name, reader)) = va_list {
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("{name}: line {}: cannot read", n + 1))?;
            match parse::va_line(&line) {
                None => {}
                Some(Ok(va)) => one(&mut out, va)?,
                Some(Err(e)) => {
                    out.flush()?;
                    eprintln!("xenwalk: error: {name}:{}: {e}; skipped", n + 1);
                    bad_input = true;
                }
            }
        }
    }
    out.flush()?;
    Ok(if bad_input {
        ExitCode::from(2)
    } else if any_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn emit_walk(out: &mut dyn Write, t: &Translation, root: &Root, a: &WalkArgs) -> Result<()> {
    if a.json {
        serde_json::to_writer(&mut *out, &json::WalkLine::new(t, root, a.maxphyaddr))?;
        writeln!(out)?;
    } else {
        writeln!(out)?;
        human::walk(out, t, a.maxphyaddr, a.long)?;
    }
    Ok(())
}

/// The whole address space of `root`, streamed.
fn list(out: &mut dyn Write, dump: &Dump, root: &Root, opts: WalkOptions, a: &WalkArgs) -> Result<ExitCode> {
    if let Some(p) = root.problem.filter(RootProblem::blocks_walks) {
        let d = diagnose::root_diagnosis(root, &p);
        if a.json {
            let line = json::StopLine {
                kind: "stop",
                level: d.level.number(),
                reason: d.reason.code(),
                explanation: d.explanation,
                suggestion: d.suggestion,
            };
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)?;
        } else {
            writeln!(out, "=> cannot walk this root: {}", d.reason.code())?;
            writeln!(out, "   why: {}", d.explanation)?;
            if let Some(s) = d.suggestion {
                writeln!(out, "   try: {s}")?;
            }
        }
        return Ok(ExitCode::from(1));
    }
    if !a.json {
        human::ranges_header(out)?;
    }
    let mut coalescer = Coalescer::default();
    let mut ranges = 0u64;
    let mut io_err: Option<io::Error> = None;
    let mut emit = |out: &mut dyn Write, r: &Range| -> io::Result<()> {
        ranges += 1;
        if a.json {
            serde_json::to_writer(&mut *out, &json::MappingLine::new(r))?;
            writeln!(out)
        } else {
            human::range(out, r)
        }
    };
    let summary = enumerate::enumerate(dump.mem.as_ref(), root.maddr, opts, |ev| {
        let res = match &ev {
            Event::Leaf(leaf) => {
                if a.leaves {
                    emit(out, &Range::single(leaf))
                } else {
                    match coalescer.push(leaf) {
                        Some(r) => emit(out, &r),
                        None => Ok(()),
                    }
                }
            }
            other => {
                // Keep the listing in VA order: close the open range first.
                let closed = coalescer.finish().map(|r| emit(out, &r)).unwrap_or(Ok(()));
                closed.and_then(|()| if a.json { json::event_line(out, other) } else { human::event(out, other) })
            }
        };
        match res {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                io_err = Some(e);
                ControlFlow::Break(())
            }
        }
    });
    if let Some(e) = io_err {
        return Err(e.into());
    }
    if let Some(r) = coalescer.finish() {
        emit(out, &r)?;
    }
    if a.json {
        serde_json::to_writer(
            &mut *out,
            &json::SummaryLine { kind: "summary", root: root.maddr, ranges, summary: &summary },
        )?;
        writeln!(out)?;
    } else {
        human::summary(out, &summary, ranges)?;
    }
    Ok(ExitCode::SUCCESS)
}
