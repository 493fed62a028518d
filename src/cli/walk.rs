//! `xenwalk DUMP [ROOT] [--va VA ...]`: walks, and the whole-space listing.

use super::{OpenArgs, Session, XenArgs};
use crate::addr::Vaddr;
use crate::diagnose::{self, Translation};
use crate::mem::Absent;
use crate::mem::xlcore::GuestKind;
use crate::paging::WalkOptions;
use crate::paging::enumerate::{self, Coalescer, Event, Range};
use crate::paging::root::{self, Root, RootInput, RootProblem};
use crate::parse::{self, Expr};
use crate::render::{human, json};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{self, BufRead, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

/// How a walk is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Style {
    /// xenwalk's table with flags, rights and diagnosis.
    #[default]
    Table,
    /// Exactly Xen's own show_page_walk() console lines, to diff against a crash log.
    Xen,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("root").args(["cr3", "cr3_mfn", "cpu", "vcpu"]))]
pub struct WalkArgs {
    /// The dump: ELF core (Xen kexec vmcore, QEMU dump-guest-memory), kdump-compressed
    /// file (makedumpfile, QEMU -z/-l/-s; plain or flattened) or raw image.
    #[arg(required = true)]
    pub dump: Option<PathBuf>,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
    /// Root of the address space: a CR3 value (PCID bits 11:0 and bit 63 are stripped
    /// and reported), or with --xen-syms an image symbol such as idle_pg_table.
    #[arg(long, value_name = "CR3", value_parser = Expr::parse)]
    pub cr3: Option<Expr>,
    /// Root of the address space as the L4 table's machine frame number.
    #[arg(long, value_name = "MFN", value_parser = parse::hex_u64)]
    pub cr3_mfn: Option<u64>,
    /// Take the root from this CPU's CR3 in the dump's notes. Without any root
    /// option: idle_pg_table with --xen-syms, else CPU 0's CR3 from the notes.
    #[arg(long, value_name = "N")]
    pub cpu: Option<usize>,
    /// Take the root from this vCPU's context in an xl dump-core guest core
    /// (ctrlreg[3]: a PV guest's kernel L4, an HVM guest's CR3). Without any root
    /// option an xl core uses vCPU 0.
    #[arg(long, value_name = "N")]
    pub vcpu: Option<usize>,
    /// Virtual address to translate (repeatable); with --xen-syms also `symbol` or
    /// `symbol+0x10`.
    #[arg(long = "va", value_name = "VA", value_parser = Expr::parse)]
    pub va: Vec<Expr>,
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
    /// How to print walks.
    #[arg(long, value_enum, default_value_t = Style::Table, conflicts_with_all = ["json", "long"])]
    pub style: Style,
    /// When listing, one line per leaf (no coalescing, Accessed/Dirty shown).
    #[arg(long)]
    pub leaves: bool,
    /// Physical-address width of the machine: entry bits 51:N are reserved.
    #[arg(long, value_name = "N", default_value_t = 52, value_parser = clap::value_parser!(u8).range(32..=52))]
    pub maxphyaddr: u8,
}

/// Choose the root from the flags, the symbols or the dump's notes.
fn choose_root(a: &WalkArgs, s: &Session, opts: WalkOptions) -> Result<Root> {
    let dump = &s.dump;
    let path = dump.path.display();
    let mem = dump.mem.as_ref();
    let vcpu_root = |n: usize, implicit: bool| -> Result<Root> {
        let Some(g) = dump.guest_core() else {
            bail!(
                "{path}: --vcpu {n}: vCPU contexts come from xl dump-core guest cores; this dump has CPUs: use --cpu N"
            );
        };
        let vcpus = &g.summary().vcpus;
        let Some(v) = vcpus.get(n) else {
            bail!("{path}: --vcpu {n}: .xen_prstatus holds {} vCPU context(s) (0..{})", vcpus.len(), vcpus.len());
        };
        let Some(cr3) = v.cr3 else {
            bail!("{path}: vCPU {n}: the CR3 of a 32-bit guest is not decoded; pass --cr3");
        };
        let what = match g.kind() {
            GuestKind::Pv => "PV kernel L4, machine address",
            GuestKind::Hvm => "HVM guest CR3, guest-physical",
        };
        if implicit {
            eprintln!(
                "xenwalk: no root given: using CR3 {cr3:#x} of vCPU {n} from .xen_prstatus ({what}; choose with --vcpu N, --cr3 or --cr3-mfn)"
            );
        }
        let pcide = v.cr4.map(|cr4| cr4 & (1 << 17) != 0);
        Ok(root::resolve(mem, RootInput::Cr3(cr3), format!("vCPU {n}, .xen_prstatus ({what})"), pcide, opts))
    };
    let cpu_root = |cpu: usize, implicit: bool| -> Result<Root> {
        if dump.guest_core().is_some() {
            bail!("{path}: --cpu {cpu}: an xl dump-core guest core has vCPU contexts, not CPU notes: use --vcpu N");
        }
        let Some(c) = dump.notes.cpu(cpu) else {
            let have: Vec<String> = dump.notes.cpus.iter().map(|c| c.cpu.to_string()).collect();
            if have.is_empty() && !dump.notes.problems.is_empty() {
                bail!(
                    "{path}: --cpu {cpu}: no usable per-CPU note ({}); pass --cr3 or --cr3-mfn",
                    dump.notes.problems.join("; ")
                );
            }
            if have.is_empty() {
                bail!("{path}: --cpu {cpu}: the dump has no per-CPU notes; pass --cr3 or --cr3-mfn");
            }
            bail!("{path}: --cpu {cpu}: the dump's notes describe CPUs {} only", have.join(", "));
        };
        let (Some(cr3), Some(src)) = (c.cr3, c.regs_source) else {
            bail!("{path}: CPU {cpu}: the dump's notes have no CR3 for it (NT_PRSTATUS only); pass --cr3");
        };
        let pcide = c.cr4.map(|cr4| cr4 & (1 << 17) != 0);
        if implicit {
            eprintln!(
                "xenwalk: no root given: using CR3 {cr3:#x} of CPU {cpu} from the {} (choose with --cpu N, --cr3 or --cr3-mfn)",
                src.describe()
            );
        }
        Ok(root::resolve(mem, RootInput::Cr3(cr3), format!("CPU {cpu}, {}", src.describe()), pcide, opts))
    };
    let idle = s.xen.as_ref().and_then(|x| x.idle_root());
    let root = if let Some(e) = &a.cr3 {
        let value = match e {
            Expr::Value(v) => *v,
            // `*expr`: the value stored there is the CR3 (`*idle_vcpu[0]->arch.cr3`).
            Expr::Symbolic(t) if t.starts_with('*') => s.resolve(e).map_err(|m| anyhow::anyhow!("--cr3: {m}"))?,
            // Otherwise the object itself is the L4 (`idle_pg_table`).
            sym => {
                let va = s.resolve(sym).map_err(|m| anyhow::anyhow!("--cr3: {m}"))?;
                let x = s.xen.as_ref().context("--cr3 with a symbol needs --xen-syms")?;
                x.virt_to_maddr(Vaddr(va)).map_err(|m| anyhow::anyhow!("--cr3 {va:#x}: {m}"))?.0
            }
        };
        root::resolve(mem, RootInput::Cr3(value), "--cr3".into(), None, opts)
    } else if let Some(m) = a.cr3_mfn {
        root::resolve(mem, RootInput::Mfn(m), "--cr3-mfn".into(), None, opts)
    } else if let Some(cpu) = a.cpu {
        cpu_root(cpu, false)?
    } else if let Some(n) = a.vcpu {
        vcpu_root(n, false)?
    } else if dump.guest_core().is_some() {
        vcpu_root(0, true)?
    } else if let Some(idle) = idle {
        root::resolve(mem, RootInput::Cr3(idle.0), "idle_pg_table (xen-syms + xen_phys_start)".into(), None, opts)
    } else if let Some(first) = dump.notes.cpus.iter().find(|c| c.cr3.is_some()) {
        cpu_root(first.cpu, true)?
    } else {
        bail!(
            "{path}: no root: pass --cr3 VALUE or --cr3-mfn FRAME (this dump has no CPU notes with CR3), or --xen-syms for idle_pg_table"
        );
    };
    // A root outside the image is bad input, not a per-address result.
    if let Some(RootProblem::Absent(why @ Absent::OutsideImage { .. })) = root.problem {
        bail!("{path}: root {} (from {}): the L4 table is {why}", root.maddr, root.source);
    }
    Ok(root)
}

pub(super) fn run(a: WalkArgs) -> Result<ExitCode> {
    let Some(path) = a.dump.as_deref() else { bail!("no dump file given (see --help)") };
    let s = Session::open(path, &a.open, &a.xen)?;
    let opts = WalkOptions { maxphyaddr: a.maxphyaddr, ..WalkOptions::default() };
    let root = choose_root(&a, &s, opts)?;
    // Resolve --va before printing anything: a bad one is bad usage.
    let mut vas = Vec::with_capacity(a.va.len());
    for e in &a.va {
        vas.push(s.resolve(e).map_err(|m| anyhow::anyhow!("--va: {m}"))?);
    }
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
    } else if a.style == Style::Table {
        human::root(&mut out, &root, a.long, s.xen.as_ref())?;
    }

    if vas.is_empty() && va_list.is_none() {
        let code = list(&mut out, &s, &root, opts, &a)?;
        out.flush()?;
        return Ok(code);
    }

    let mut any_failed = false;
    let mut bad_input = false;
    let mut one = |out: &mut dyn Write, va: u64| -> Result<()> {
        let mut t = diagnose::translate(s.dump.mem.as_ref(), &root, Vaddr(va), opts);
        if let (Some(x), Some(w)) = (&s.xen, &t.walk) {
            if t.diagnosis.is_some() || a.long {
                t.pitfalls.extend(x.pointer_pitfalls(s.dump.mem.as_ref(), root.maddr, w));
            }
        }
        any_failed |= !t.translated();
        emit_walk(out, &t, &root, &a, &s)
    };
    for &va in &vas {
        one(&mut out, va)?;
    }
    if let Some((name, reader)) = va_list {
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("{name}: line {}: cannot read", n + 1))?;
            match parse::va_line(&line).map(|r| r.and_then(|e| s.resolve(&e))) {
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

fn emit_walk(out: &mut dyn Write, t: &Translation, root: &Root, a: &WalkArgs, s: &Session) -> Result<()> {
    if a.json {
        let mut line = json::WalkLine::new(t, root, a.maxphyaddr);
        if let Some(x) = &s.xen {
            line.region = x.region_in(s.dump.mem.as_ref(), root.maddr, t.va).map(|r| r.name);
            line.symbol = x.syms.as_ref().and_then(|sy| sy.name_of(t.va));
            line.section = x.syms.as_ref().and_then(|sy| sy.section_of(t.va)).map(|sec| sec.name.clone());
            for l in &mut line.levels {
                l.table_name = x.describe_table(l.table);
            }
        }
        serde_json::to_writer(&mut *out, &line)?;
        writeln!(out)?;
    } else if a.style == Style::Xen {
        let lines = match &s.xen {
            Some(x) => x.show_page_walk(s.dump.mem.as_ref(), root.maddr, t.va),
            None => bail!("--style xen needs the hypervisor: pass --xen-syms (for max_page and the M2P)"),
        };
        for l in lines {
            writeln!(out, "{l}")?;
        }
    } else {
        writeln!(out)?;
        human::walk(out, t, a.maxphyaddr, a.long, s.xen.as_ref(), s.dump.mem.as_ref())?;
    }
    Ok(())
}

/// The whole address space of `root`, streamed.
fn list(out: &mut dyn Write, s: &Session, root: &Root, opts: WalkOptions, a: &WalkArgs) -> Result<ExitCode> {
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
    let xen = s.xen.as_ref();
    if !a.json {
        human::ranges_header(out, xen.is_some())?;
    }
    let mut coalescer = Coalescer::default();
    let mut ranges = 0u64;
    let mut io_err: Option<io::Error> = None;
    let mut emit = |out: &mut dyn Write, r: &Range| -> io::Result<()> {
        ranges += 1;
        let region = xen.and_then(|x| x.region_in(s.dump.mem.as_ref(), root.maddr, r.va)).map(|r| r.name);
        let syms = xen.and_then(|x| x.syms.as_ref()).filter(|_| region == Some("xen_image"));
        let symbol = syms.and_then(|sy| sy.name_of(r.va));
        let section = syms.and_then(|sy| sy.section_of(r.va)).map(|sec| sec.name.clone());
        if a.json {
            let mut line = json::MappingLine::new(r);
            line.region = region;
            line.symbol = symbol;
            line.section = section;
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)
        } else {
            let label = region.map(|reg| {
                let mut l = reg.to_string();
                if let Some(sec) = &section {
                    l.push_str(&format!(": {sec}"));
                }
                if let Some(sym) = &symbol {
                    l.push_str(&format!(" {sym}"));
                }
                l
            });
            human::range(out, r, label.as_deref())
        }
    };
    let summary = enumerate::enumerate(s.dump.mem.as_ref(), root.maddr, opts, |ev| {
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
