//! `xenwalk triage`: the report of [`crate::triage`], for people and for CI; the
//! exit code is the verdict (0 nothing inconsistent, 1 findings, 2 bad input).

use super::{DumpArgs, OutputArgs};
use crate::triage::{Report, RootId, Status, describe_root};
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct TriageArgs {
    #[command(flatten)]
    pub input: DumpArgs,
    /// Xen's serial console log (raw, or with `(XEN)` prefixes, timestamps, colours):
    /// its panic, registers, error codes and every `Pagetable walk from` block, each
    /// walk redone in the dump and compared line by line.
    #[arg(long, value_name = "LOG")]
    pub console: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct Verdict {
    findings: usize,
    checks: usize,
    exit: u8,
}

pub(super) fn run(a: TriageArgs, ui: super::Ui) -> Result<ExitCode> {
    let s = a.input.open(ui)?;
    let console = match &a.console {
        Some(p) => {
            let bytes =
                std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: cannot read the console log: {e}", p.display()))?;
            Some(crate::console::parse(&String::from_utf8_lossy(&bytes)))
        }
        None => None,
    };
    let report = crate::triage::triage(&s, console);
    let findings = report.findings();
    let exit = u8::from(findings > 0);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if a.output.json {
        crate::render::json::header(&mut out, "triage")?;
        if let Some(b) = &report.build {
            serde_json::to_writer(&mut out, &Line { kind: "build", body: b })?;
            writeln!(out)?;
        }
        for c in &report.cpus {
            serde_json::to_writer(&mut out, &Line { kind: "cpu", body: c })?;
            writeln!(out)?;
        }
        if let Some(con) = &report.console {
            serde_json::to_writer(&mut out, &Line { kind: "console", body: con })?;
            writeln!(out)?;
        }
        for c in &report.checks {
            serde_json::to_writer(&mut out, &Line { kind: "check", body: c })?;
            writeln!(out)?;
        }
        let v = Verdict { findings, checks: report.checks.len(), exit };
        serde_json::to_writer(&mut out, &Line { kind: "verdict", body: &v })?;
        writeln!(out)?;
    } else {
        human(&mut out, &report, &a.input, s.dump.path.display().to_string())?;
    }
    out.flush()?;
    Ok(ExitCode::from(exit))
}

fn human(out: &mut dyn Write, r: &Report, input: &DumpArgs, path: String) -> io::Result<()> {
    writeln!(out, "What happened")?;
    match &r.build {
        Some(b) => writeln!(
            out,
            "  Xen {}{}{}; {}",
            b.version.as_deref().unwrap_or("(version unknown)"),
            b.build_id.as_ref().map(|i| format!(", build-id {i}")).unwrap_or_default(),
            b.tainted.map(|t| format!(", tainted {t:#x}")).unwrap_or_default(),
            if b.crash_note {
                "Xen wrote this dump itself (CRASH_INFO)"
            } else {
                "a picture of the machine (no CRASH_INFO: QEMU or a raw image)"
            }
        )?,
        None => writeln!(out, "  not recognised as Xen (no Xen note, no --xen-syms)")?,
    }
    if r.cpus.is_empty() {
        writeln!(out, "  the notes describe no CPU")?;
    }
    for c in &r.cpus {
        let rip = match (c.rip, &c.rip_symbol) {
            (Some(_), Some(s)) => s.clone(),
            (Some(v), None) => format!("{v:#x}"),
            _ => "?".into(),
        };
        writeln!(out, "  CPU {}: RIP {rip}, RSP {}", c.cpu, c.rsp.map_or("?".to_string(), |v| format!("{v:#x}")))?;
    }
    writeln!(out, "Who was running")?;
    for c in &r.cpus {
        writeln!(
            out,
            "  CPU {}: CR3 {} = {}",
            c.cpu,
            c.cr3.map_or("?".to_string(), |v| format!("{v:#x}")),
            describe_root(&c.root)
        )?;
    }
    for c in &r.cpus {
        let Some(f) = &c.cr2_walk else { continue };
        let region = f.region.map(|r| format!(" ({r})")).unwrap_or_default();
        match (f.maddr, &f.explanation) {
            (Some(m), _) => writeln!(
                out,
                "  CPU {}: last page fault (CR2) {:#x}{region}: maps to maddr {m:#x} from this CR3",
                c.cpu, f.va
            )?,
            (None, Some(why)) => writeln!(
                out,
                "  CPU {}: last page fault (CR2) {:#x}{region}: does not translate from this CR3: {why}",
                c.cpu, f.va
            )?,
            (None, None) => writeln!(out, "  CPU {}: last page fault (CR2) {:#x}{region}", c.cpu, f.va)?,
        }
    }
    if let Some(con) = &r.console {
        writeln!(
            out,
            "The console ({} lines{})",
            con.lines,
            con.version.as_ref().map(|v| format!(", Xen {v}")).unwrap_or_default()
        )?;
        for p in &con.panics {
            writeln!(
                out,
                "  line {}: Panic on CPU {}: {}",
                p.line,
                p.cpu.map_or("?".to_string(), |c| c.to_string()),
                p.message.join(" / ")
            )?;
        }
        for k in &con.kernel_panics {
            writeln!(out, "  line {}: a Linux kernel panicked: {}", k.line, k.message)?;
        }
        if let Some(h) = &con.hwdom_crash {
            writeln!(
                out,
                "  line {}: Hardware Dom{} crashed: Xen crashed into the crash kernel on dom{}'s behalf (the crash is the domain's, not Xen's)",
                h.line, h.domain, h.domain
            )?;
        }
        for f in &con.faults {
            writeln!(
                out,
                "  line {}: page fault, error code {:04x}: {}{}",
                f.line,
                f.error_code,
                f.decoded.join(", "),
                f.linear.map(|l| format!(", at {l:#x}")).unwrap_or_default()
            )?;
        }
        for n in &con.notes {
            writeln!(out, "  note: {n}")?;
        }
    }
    writeln!(out, "Consistency checks")?;
    for c in &r.checks {
        let tag = match c.status {
            Status::Ok => "ok      ",
            Status::Finding => "FINDING ",
            Status::Skipped => "skipped ",
        };
        writeln!(out, "  {tag} {}: {}: {}", c.check, c.subject, c.what)?;
    }
    writeln!(out, "Next")?;
    let syms = input.xen.xen_syms.as_ref().map(|p| format!(" --xen-syms {}", p.display())).unwrap_or_default();
    for c in &r.cpus {
        match &c.root {
            RootId::None => {}
            _ => writeln!(
                out,
                "  xenwalk {path}{syms} --cpu {}        # walk CPU {}'s root, entry by entry",
                c.cpu, c.cpu
            )?,
        }
    }
    if !syms.is_empty() {
        writeln!(out, "  xenwalk domains {path}{syms}        # every domain and vCPU with its roots")?;
    }
    let n = r.findings();
    writeln!(
        out,
        "verdict: {n} finding{} in {} checks (exit {})",
        if n == 1 { "" } else { "s" },
        r.checks.len(),
        u8::from(n > 0)
    )
}
