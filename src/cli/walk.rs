//! `xenwalk DUMP [ROOT] [--va VA ...]`: walks, and the whole-space listing.

use super::progress::Bar;
use super::{OpenArgs, Session, XenArgs, brief};
use crate::addr::Vaddr;
use crate::diagnose::{self, Translation};
use crate::mem::Absent;
use crate::mem::xlcore::GuestKind;
use crate::paging::enumerate::{self, Coalescer, EnumerateOptions, Event, Progress, Range};
use crate::paging::root::{self, Root, RootInput, RootProblem};
use crate::paging::{Translator, Walk, WalkOptions};
use crate::parse::{self, Expr};
use crate::render::{human, json};
use crate::xen::domains::TableKind;
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

/// Which address space: the root options shared by walks, listings and `map`.
#[derive(Args, Debug, Default)]
#[command(group = clap::ArgGroup::new("root").args(["cr3", "cr3_mfn", "cpu", "domain"]))]
pub struct RootArgs {
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
    /// Take the root from a domain's vCPU (with --xen-syms): a domain id, or `idle`.
    #[arg(long, value_name = "D")]
    pub domain: Option<String>,
    /// The vCPU: of --domain (default 0), or in an xl dump-core guest core the vCPU
    /// whose context (ctrlreg[3]: a PV guest's kernel L4, an HVM guest's CR3) is the
    /// root (without any root option a core uses vCPU 0).
    #[arg(long, value_name = "V")]
    pub vcpu: Option<u32>,
    /// Which root of the vCPU: guest (PV kernel L4), user (PV user L4), monitor (HVM
    /// monitor table), cr3 (what Xen loads). Default: guest. With --domain, or in an
    /// xl dump-core guest core (guest: ctrlreg[3], user: ctrlreg[1], cr3: the one the
    /// context's VGCF_in_kernel flag selects).
    #[arg(long, value_enum, conflicts_with_all = ["cr3", "cr3_mfn", "cpu"])]
    pub table: Option<crate::xen::domains::TableKind>,
}

#[derive(Args, Debug)]
pub struct WalkArgs {
    /// The dump: ELF core (Xen kexec vmcore, QEMU dump-guest-memory), kdump-compressed
    /// file (makedumpfile, QEMU -z/-l/-s; plain or flattened) or raw image.
    #[arg(required = true)]
    pub dump: Option<PathBuf>,
    #[command(flatten)]
    pub open: OpenArgs,
    #[command(flatten)]
    pub xen: XenArgs,
    #[command(flatten)]
    pub root: RootArgs,
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
    /// For pipelines: a walk prints `VA MADDR` (`VA -` if it does not translate), a
    /// listing `VA MADDR SIZE` per range, in hex with 0x, and nothing else.
    #[arg(long, conflicts_with_all = ["json", "long", "style"])]
    pub brief: bool,
    /// Physical-address width of the machine: entry bits 51:N are reserved.
    #[arg(long, value_name = "N", default_value_t = 52, value_parser = clap::value_parser!(u8).range(32..=52))]
    pub maxphyaddr: u8,
}

/// Choose the root from the flags, the symbols or the dump's notes.
pub(super) fn choose_root(a: &RootArgs, s: &Session, opts: WalkOptions) -> Result<Root> {
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
        let Some(kernel) = v.cr3 else {
            bail!("{path}: vCPU {n}: the CR3 of a 32-bit guest is not decoded; pass --cr3");
        };
        // VGCF_in_kernel (xen/include/public/arch-x86/xen.h, 4.17): the vCPU was in
        // guest kernel mode, so Xen loads the kernel L4 for it, else the user L4.
        let in_kernel = v.flags & (1 << 2) != 0;
        let (cr3, what) = match (g.kind(), a.table.unwrap_or(TableKind::Guest)) {
            (GuestKind::Hvm, TableKind::Guest | TableKind::Cr3) => (kernel, "HVM guest CR3, guest-physical"),
            (GuestKind::Hvm, t) => bail!(
                "{path}: --table {}: an HVM guest core holds the guest's own CR3 only (the monitor table is Xen's: give the whole machine with --domain)",
                t.name()
            ),
            (GuestKind::Pv, TableKind::Guest) => (kernel, "PV kernel L4, machine address"),
            (GuestKind::Pv, TableKind::Cr3) if in_kernel => (kernel, "PV kernel L4 (in kernel mode), machine address"),
            (GuestKind::Pv, TableKind::User | TableKind::Cr3) => match v.user_cr3 {
                Some(u) => (u, "PV user L4, ctrlreg[1], machine address"),
                None => bail!(
                    "{path}: vCPU {n} has no user L4 (ctrlreg[1] is 0: the guest never set one); use --table guest"
                ),
            },
            (GuestKind::Pv, TableKind::Monitor) => {
                bail!("{path}: --table monitor: a PV guest has no monitor table; use --table guest or user")
            }
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
            bail!(
                "{path}: --cpu {cpu}: the dump's notes describe CPUs {} only; next: {}",
                have.join(", "),
                super::next::command(&crate::diagnose::Next::Info, None)
            );
        };
        let (Some(cr3), Some(src)) = (c.cr3, c.regs_source) else {
            bail!("{path}: CPU {cpu}: the dump's notes have no CR3 for it (NT_PRSTATUS only); pass --cr3");
        };
        let pcide = c.cr4.map(|cr4| cr4 & (1 << 17) != 0);
        if implicit {
            super::note(format_args!(
                "no root given: using CR3 {cr3:#x} of CPU {cpu} from the {} (choose with --cpu N, --cr3 or --cr3-mfn)",
                src.describe()
            ));
        }
        Ok(root::resolve(mem, RootInput::Cr3(cr3), format!("CPU {cpu}, {}", src.describe()), pcide, opts))
    };
    let idle = s.xen.as_ref().and_then(|x| x.idle_root());
    if a.table.is_some() && a.domain.is_none() && dump.guest_core().is_none() {
        bail!(
            "{path}: --table picks a root of a vCPU: give --domain D [--vcpu V] (with --xen-syms), or an xl dump-core guest core"
        );
    }
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
    } else if let Some(d) = &a.domain {
        domain_root(s, d, a.vcpu.unwrap_or(0), a.table.unwrap_or(TableKind::Guest), opts)?
    } else if let Some(n) = a.vcpu {
        if dump.guest_core().is_none() {
            bail!(
                "{path}: --vcpu without --domain picks a vCPU of an xl dump-core guest core; for a whole machine give --domain D --vcpu V (with --xen-syms)"
            );
        }
        vcpu_root(n as usize, false)?
    } else if dump.guest_core().is_some() {
        vcpu_root(0, a.table.is_none())?
    } else if let Some(idle) = idle {
        root::resolve(mem, RootInput::Cr3(idle.0), "idle_pg_table (xen-syms + xen_phys_start)".into(), None, opts)
    } else if let Some(first) = dump.notes.cpus.iter().find(|c| c.cr3.is_some()) {
        cpu_root(first.cpu, true)?
    } else {
        bail!(
            "{path}: no root: pass --cr3 VALUE or --cr3-mfn FRAME (this dump has no CPU notes with CR3), or --xen-syms for idle_pg_table; next: {}",
            super::next::command(&crate::diagnose::Next::Info, None)
        );
    };
    // A root outside the image is bad input, not a per-address result.
    if let Some(RootProblem::Absent(why @ Absent::OutsideImage { .. })) = root.problem {
        bail!("{path}: root {} (from {}): the L4 table is {why}", root.maddr, root.source);
    }
    Ok(root)
}

#[cold]
fn unreachable_hvm(name: &str) -> Result<Root> {
    bail!("{name}: an HVM guest's own tables are walked through its p2m (internal: see hvm_view)")
}

/// An HVM/PVH guest's own address space: its guest-physical memory through the host
/// p2m, and the guest's CR3 (`arch.hvm.guest_cr[3]`), for `--domain D [--vcpu V]
/// [--table guest]` on an HVM domain. `None` for every other root.
pub(super) fn hvm_view<'a>(
    a: &RootArgs,
    s: &'a Session,
) -> Result<Option<(crate::xen::hvm::GuestPhys<'a>, u64, String)>> {
    use crate::xen::domains::{self, TableKind};
    let (Some(d), Some(x)) = (&a.domain, s.xen.as_ref()) else { return Ok(None) };
    if a.table.unwrap_or(TableKind::Guest) != TableKind::Guest || d == "idle" || x.syms.is_none() {
        return Ok(None);
    }
    let Ok(id) = d.parse::<u16>() else { return Ok(None) };
    let f = domains::Fields::new(x, s.dump.mem.as_ref(), s.dump.notes.vmcoreinfo_xen.as_deref());
    let all = domains::domains(&f).map_err(|e| anyhow::anyhow!("{}: {e}", s.dump.path.display()))?;
    let Some(dom) = all.domains.iter().find(|x| x.id == id && x.kind.is_hvm()) else { return Ok(None) };
    let v = a.vcpu.unwrap_or(0);
    let vc = dom.vcpu(v).ok_or_else(|| anyhow::anyhow!("{}: domain {id} has no vCPU {v}", s.dump.path.display()))?;
    let cr3 = vc.guest_cr3.ok_or_else(|| anyhow::anyhow!("domain {id} vCPU {v}: no guest CR3"))?;
    let p2m = crate::xen::hvm::HostP2m::of(&f, dom).map_err(|e| anyhow::anyhow!("{}: {e}", s.dump.path.display()))?;
    let src = format!("domain {id} vCPU {v} guest CR3 (guest-physical, through the {} p2m)", p2m.kind());
    Ok(Some((crate::xen::hvm::GuestPhys { mem: s.dump.mem.as_ref(), p2m }, cr3, src)))
}

/// The root the options choose and the memory its walks read: an HVM guest's own
/// space through its p2m (`hvm`, from [`hvm_view`]), else the machine's.
pub(super) fn root_and_view<'a>(
    a: &RootArgs,
    s: &'a Session,
    hvm: Option<&'a (crate::xen::hvm::GuestPhys<'a>, u64, String)>,
    opts: WalkOptions,
) -> Result<(Root, View<'a>)> {
    Ok(match hvm {
        Some((gp, cr3, src)) => (
            root::resolve(gp, RootInput::Cr3(*cr3), src.clone(), None, opts),
            View { mem: gp, xen: None, p2m: Some(gp.p2m) },
        ),
        None => (choose_root(a, s, opts)?, View { mem: s.dump.mem.as_ref(), xen: s.xen.as_ref(), p2m: None }),
    })
}

/// The root of `--domain D --vcpu V --table T`.
fn domain_root(s: &Session, d: &str, v: u32, table: crate::xen::domains::TableKind, opts: WalkOptions) -> Result<Root> {
    use crate::xen::domains::{self, DomKind, TableKind};
    let path = s.dump.path.display();
    let x = s.xen.as_ref().filter(|x| x.syms.is_some()).context("--domain needs --xen-syms")?;
    let f = domains::Fields::new(x, s.dump.mem.as_ref(), s.dump.notes.vmcoreinfo_xen.as_deref());
    let all = domains::domains(&f).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    let want_idle = d == "idle";
    let id: Option<u16> = if want_idle {
        None
    } else {
        Some(d.parse().map_err(|_| anyhow::anyhow!("--domain {d}: a domain id or `idle`"))?)
    };
    let Some(dom) = all
        .domains
        .iter()
        .find(|x| if want_idle { x.kind == DomKind::Idle } else { Some(x.id) == id && x.kind != DomKind::Idle })
    else {
        let ids: Vec<String> = all
            .domains
            .iter()
            .map(|x| if x.kind == DomKind::Idle { "idle".into() } else { x.id.to_string() })
            .collect();
        bail!("{path}: --domain {d}: no such domain (found: {})", ids.join(", "));
    };
    let Some(vc) = dom.vcpu(v) else {
        bail!(
            "{path}: --domain {d} --vcpu {v}: the domain has vCPUs {:?}",
            dom.vcpus.iter().map(|x| x.id).collect::<Vec<_>>()
        );
    };
    let name = format!("domain {d} vCPU {v}");
    let by_mfn = |m: Option<crate::addr::Mfn>, what: &str| -> Result<Root> {
        let m = m.ok_or_else(|| anyhow::anyhow!("{path}: {name} has no {what} ({} guest)", dom.kind.name()))?;
        Ok(root::resolve(s.dump.mem.as_ref(), RootInput::Mfn(m.0), format!("{name} {what}"), None, opts))
    };
    match table {
        // hvm_view() takes this case before choose_root() runs.
        TableKind::Guest if dom.kind.is_hvm() => unreachable_hvm(&name),
        TableKind::Guest => by_mfn(vc.guest_table, "guest_table"),
        TableKind::User => by_mfn(vc.guest_table_user, "guest_table_user"),
        TableKind::Monitor => by_mfn(vc.monitor_table, "monitor_table"),
        TableKind::Cr3 => {
            Ok(root::resolve(s.dump.mem.as_ref(), RootInput::Cr3(vc.cr3), format!("{name} arch.cr3"), None, opts))
        }
    }
}

/// VAs of a full (not `--brief`) walk translated together: enough for the
/// translator's grouped loads, few enough records (270 bytes each) to stay small.
const WALK_BATCH: usize = 4096;

pub(super) fn run(a: WalkArgs) -> Result<ExitCode> {
    let Some(path) = a.dump.as_deref() else { bail!("no dump file given (see --help)") };
    let s = Session::open(path, &a.open, &a.xen)?;
    let opts = WalkOptions { maxphyaddr: a.maxphyaddr, ..WalkOptions::default() };
    let hvm = hvm_view(&a.root, &s)?;
    let (root, view) = root_and_view(&a.root, &s, hvm.as_ref(), opts)?;
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
    let mut out = BufWriter::with_capacity(64 << 10, stdout.lock());
    if a.brief {
        return if vas.is_empty() && va_list.is_none() {
            brief::list(view.mem, &root, opts, a.leaves, &mut out)
        } else {
            brief::walks(&s, view.mem, &root, opts, &vas, va_list, &mut out)
        };
    }
    if a.json {
        serde_json::to_writer(&mut out, &json::RootLine::new(&root))?;
        writeln!(out)?;
    } else if a.style == Style::Table {
        human::root(&mut out, &root, a.long, view.xen, Some(view.mem))?;
    }

    if vas.is_empty() && va_list.is_none() {
        let code = list(&mut out, &view, &root, opts, &a)?;
        out.flush()?;
        return Ok(code);
    }

    let mut any_failed = false;
    let mut bad_input = false;
    let mut translator = Translator::new(view.mem, root.maddr, opts);
    // VAs go through the translator's batch API a few thousand at a time (its
    // grouped loads and, when tables do not fit, VA-ordered windows); the records
    // are explained and printed in input order, exactly as one by one.
    let mut batch: Vec<Vaddr> = Vec::with_capacity(WALK_BATCH);
    let mut walks: Vec<Option<Walk>> = Vec::with_capacity(WALK_BATCH);
    let mut flush = |out: &mut dyn Write, batch: &mut Vec<Vaddr>| -> Result<()> {
        walks.clear();
        walks.resize(batch.len(), None);
        translator.translate_batch(batch, |i, w| {
            if let Some(slot) = walks.get_mut(i) {
                *slot = Some(*w);
            }
        });
        batch.clear();
        for w in walks.iter().flatten() {
            let mut t = diagnose::explain(view.mem, &root, *w, opts);
            if let (Some(x), Some(w)) = (view.xen, &t.walk) {
                if t.diagnosis.is_some() || a.long {
                    t.pitfalls.extend(x.pointer_pitfalls(view.mem, root.maddr, w));
                }
            }
            any_failed |= !t.translated();
            emit_walk(out, &t, &root, &a, &view)?;
        }
        Ok(())
    };
    batch.extend(vas.iter().map(|&va| Vaddr(va)));
    if let Some((name, reader)) = va_list {
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("{name}: line {}: cannot read", n + 1))?;
            match parse::va_line(&line).map(|r| r.and_then(|e| s.resolve(&e))) {
                None => {}
                Some(Ok(va)) => {
                    batch.push(Vaddr(va));
                    if batch.len() >= WALK_BATCH {
                        flush(&mut out, &mut batch)?;
                    }
                }
                Some(Err(e)) => {
                    // Everything before the bad line is printed before its error.
                    flush(&mut out, &mut batch)?;
                    out.flush()?;
                    eprintln!("xenwalk: error: {name}:{}: {e}; skipped", n + 1);
                    bad_input = true;
                }
            }
        }
    }
    flush(&mut out, &mut batch)?;
    out.flush()?;
    Ok(if bad_input {
        ExitCode::from(2)
    } else if any_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What walks read: the dump's machine memory (with the hypervisor's annotations),
/// or an HVM guest's guest-physical memory through its host p2m.
pub(super) struct View<'a> {
    pub mem: &'a dyn crate::mem::PhysMem,
    pub xen: Option<&'a crate::xen::Xen>,
    pub p2m: Option<crate::xen::hvm::HostP2m<'a>>,
}

fn emit_walk(out: &mut dyn Write, t: &Translation, root: &Root, a: &WalkArgs, v: &View<'_>) -> Result<()> {
    // Spell the diagnosis' next command against this invocation.
    let filled;
    let t = match t.diagnosis.as_ref().and_then(|d| d.next.as_ref()) {
        Some(n) if a.style != Style::Xen => {
            let mut c = t.clone();
            if let Some(d) = c.diagnosis.as_mut() {
                d.next_command = Some(super::next::command(n, Some(t.va)));
            }
            filled = c;
            &filled
        }
        _ => t,
    };
    // The second dimension of an HVM guest walk: each guest table and the final guest
    // frame, through the host p2m.
    let dim2: Vec<json::P2mStepJson> = match (&v.p2m, &t.walk) {
        (Some(p2m), Some(w)) => {
            let mut frames: Vec<(String, u64)> = w.steps().map(|s| (format!("{} table", s.level), s.table.0)).collect();
            if let Some(m) = w.mapping() {
                frames.push(("data".into(), m.maddr.0));
            }
            frames
                .into_iter()
                .map(|(what, gpa)| {
                    let hit = p2m.translate(crate::addr::Gfn(gpa >> 12));
                    json::P2mStepJson {
                        what,
                        gpa: crate::addr::Maddr(gpa),
                        maddr: hit.mfn.map(|m| crate::addr::Maddr(m.maddr().0 | (gpa & 0xfff))),
                        p2m_type: hit.p2m_type,
                        stop: hit.stop,
                    }
                })
                .collect()
        }
        _ => Vec::new(),
    };
    if a.json {
        let mut line = json::WalkLine::new(t, root, a.maxphyaddr);
        if v.p2m.is_some() {
            line.p2m = Some(dim2.clone());
        }
        if let Some(x) = v.xen {
            line.region = x.region_in(v.mem, root.maddr, t.va).map(|r| r.name);
            line.symbol = x.syms.as_ref().and_then(|sy| sy.name_of(t.va));
            line.section = x.syms.as_ref().and_then(|sy| sy.section_of(t.va)).map(|sec| sec.name.clone());
            let mem = v.mem;
            let kind = x.root_kind(mem, root.maddr);
            line.root_kind = Some(kind);
            let m2p = match (kind, x.idle_root()) {
                (crate::xen::RootKind::PvGuest, Some(r)) => Some(crate::xen::p2m::M2p::new(x, mem, r)),
                _ => None,
            };
            for l in &mut line.levels {
                l.table_name = x.describe_table(l.table);
                if let (Some(m), Some(next)) = (&m2p, l.next_mfn) {
                    l.m2p_pfn = Some(match m.get(next) {
                        Ok(crate::xen::p2m::M2pEntry::Pfn(p)) => Some(p),
                        _ => None,
                    });
                }
            }
        }
        serde_json::to_writer(&mut *out, &line)?;
        writeln!(out)?;
    } else if a.style == Style::Xen {
        let lines = match v.xen {
            Some(x) => x.show_page_walk(v.mem, root.maddr, t.va),
            None => bail!("--style xen needs the hypervisor: pass --xen-syms (for max_page and the M2P)"),
        };
        for l in lines {
            writeln!(out, "{l}")?;
        }
    } else {
        writeln!(out)?;
        human::walk(out, t, a.maxphyaddr, a.long, v.xen, v.mem, v.p2m.is_some())?;
        if !dim2.is_empty() {
            writeln!(out, "   through the p2m (guest-physical -> machine):")?;
            for d in &dim2 {
                match (d.maddr, &d.stop) {
                    (Some(m), _) => {
                        writeln!(out, "     {:<9} gpa {} -> maddr {m} ({})", d.what, d.gpa, d.p2m_type.unwrap_or("?"))?
                    }
                    (None, Some(why)) => writeln!(out, "     {:<9} gpa {} -> not mapped: {why}", d.what, d.gpa)?,
                    (None, None) => writeln!(out, "     {:<9} gpa {} -> ?", d.what, d.gpa)?,
                }
            }
            if let Some(last) = dim2.last().filter(|d| d.what == "data") {
                if let Some(m) = last.maddr {
                    writeln!(out, "=> machine address {m}")?;
                }
            }
        }
    }
    Ok(())
}

/// The whole address space of `root`, streamed.
fn list(out: &mut dyn Write, v: &View<'_>, root: &Root, opts: WalkOptions, a: &WalkArgs) -> Result<ExitCode> {
    if let Some(p) = root.problem.filter(RootProblem::blocks_walks) {
        let d = diagnose::root_diagnosis(root, &p);
        let next_command = d.next.as_ref().map(|n| super::next::command(n, None));
        if a.json {
            let line = json::StopLine {
                kind: "stop",
                level: d.level.number(),
                reason: d.reason.code(),
                explanation: d.explanation,
                suggestion: d.suggestion,
                next_command,
            };
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)?;
        } else {
            writeln!(out, "=> cannot walk this root: {}", d.reason.code())?;
            writeln!(out, "   why: {}", d.explanation)?;
            if let Some(s) = d.suggestion {
                writeln!(out, "   {}", crate::render::color::hint(&format!("try: {s}")))?;
            }
            if let Some(c) = next_command {
                writeln!(out, "   {}", crate::render::color::hint(&format!("next: {c}")))?;
            }
        }
        return Ok(ExitCode::from(1));
    }
    let xen = v.xen;
    if !a.json {
        human::ranges_header(out, xen.is_some())?;
    }
    let mut coalescer = Coalescer::default();
    let mut ranges = 0u64;
    let mut io_err: Option<io::Error> = None;
    let mut emit = |out: &mut dyn Write, r: &Range| -> io::Result<()> {
        ranges += 1;
        let region = xen.and_then(|x| x.region_in(v.mem, root.maddr, r.va)).map(|r| r.name);
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
    let bar = Bar::new();
    let progress = |p: Progress| bar.update(p);
    let o = EnumerateOptions {
        progress: if bar.enabled() { Some(&progress) } else { None },
        ..EnumerateOptions::default()
    };
    let summary = enumerate::enumerate_with(v.mem, root.maddr, opts, &o, |ev| {
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
    bar.finish();
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
