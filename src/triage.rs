//! Triage: what a Xen developer reads first in a crash dump, joined into one report.
//!
//! What happened (the build, each CPU's registers as symbols), who was running
//! (each CPU's CR3 named as a root: the idle table, a per-CPU XPTI root, a vCPU's
//! kernel or user L4, a monitor table, or unknown), and named consistency checks,
//! each with a status. The report is data: the CLI prints it for people and as JSON
//! lines for CI, and turns the number of findings into the exit code.
//!
//! Nothing here scans the whole dump: it reads the notes, the domain lists and the
//! few pages each root names, so it stays fast on a dump of any size.

use crate::addr::{Maddr, Mfn, Vaddr, hex_opt};
use crate::session::Session;
use crate::xen::Xen;
use crate::xen::domains::{self, DomKind, Domains};
use serde::Serialize;
use std::collections::HashSet;

/// The L4 slots every Xen-built 64-bit PV L4 copies from `idle_pg_table`: 256–271
/// but 258 (the table's own linear map) and 260 (the domain's per-domain L3)
/// (reference §2.1, `init_xen_l4_slots`, `X:xen/arch/x86/mm.c@4.17.0`).
const PV_SHARED_SLOTS: [usize; 14] = [256, 257, 259, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271];
/// The same for an L4 in use as a user table: slot 256 (the read-only M2P) is
/// zapped there with `VMASST_TYPE_m2p_strict`, and an L4 only ever used as a user
/// table never got it without (reference §4.5, 4.6+).
const PV_USER_SHARED_SLOTS: [usize; 13] = [257, 259, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271];
/// The Xen slots an HVM monitor table shares with `idle_pg_table`: 257 and 261–271
/// (256, the read-only M2P, is empty in monitor tables; reference §2.1).
const MONITOR_SHARED_SLOTS: [usize; 12] = [257, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271];
/// `PGT_l4_page_table`: type 4 in `type_info` bits 63:61 (`X:xen/arch/x86/include/asm/mm.h@4.17.0`).
const PGT_L4: u64 = 4;

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The hypervisor build, when known.
    pub build: Option<Build>,
    /// Each CPU the notes describe.
    pub cpus: Vec<CpuReport>,
    /// Every check run, in order, findings and all.
    pub checks: Vec<Check>,
    /// The console log, parsed, when one was given.
    pub console: Option<crate::console::Console>,
}

impl Report {
    /// How many checks found something.
    pub fn findings(&self) -> usize {
        self.checks.iter().filter(|c| c.status == Status::Finding).count()
    }
}

/// What the dump says about the hypervisor build.
#[derive(Clone, Debug, Serialize)]
pub struct Build {
    pub version: Option<String>,
    pub build_id: Option<String>,
    /// From the CRASH_INFO note, when the dump is Xen's own.
    #[serde(serialize_with = "hex_opt")]
    pub tainted: Option<u64>,
    /// Whether Xen wrote the dump itself (CRASH_INFO present) or it is a picture of
    /// the machine (QEMU, a raw image).
    pub crash_note: bool,
}

/// One CPU: where it was and what it ran.
#[derive(Clone, Debug, Serialize)]
pub struct CpuReport {
    pub cpu: usize,
    #[serde(serialize_with = "hex_opt")]
    pub rip: Option<u64>,
    /// `symbol+offset` of RIP, from xen-syms.
    pub rip_symbol: Option<String>,
    #[serde(serialize_with = "hex_opt")]
    pub rsp: Option<u64>,
    /// The last page-fault address.
    #[serde(serialize_with = "hex_opt")]
    pub cr2: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub cr3: Option<u64>,
    /// What the CR3 is.
    pub root: RootId,
    /// `per_cpu(curr_vcpu)`: the vCPU whose state this CPU holds (Xen switches
    /// lazily: an idle CPU keeps the last guest vCPU's, and its CR3).
    pub curr_vcpu: Option<CurrVcpu>,
    /// CR2 walked from this CPU's CR3, when both are known and CR2 is not 0.
    pub cr2_walk: Option<Fault>,
}

/// A vCPU named by where it is: its domain and id (the idle domain's as `idle`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CurrVcpu {
    #[serde(serialize_with = "crate::addr::hex")]
    pub addr: u64,
    /// The domain id; `None` when the pointer is no vCPU of a listed domain.
    pub domain: Option<u16>,
    pub vcpu: Option<u32>,
    pub idle: bool,
}

/// The last fault address walked from the CPU's own root.
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    #[serde(serialize_with = "crate::addr::hex")]
    pub va: u64,
    /// Where it translates; `None` when the walk stops.
    #[serde(serialize_with = "hex_opt")]
    pub maddr: Option<u64>,
    /// The hypervisor region of the VA (`directmap`, `guest`, …), when Xen is known.
    pub region: Option<&'static str>,
    /// The stop's reason code (as `stop.reason` of a walk) and level.
    pub reason: Option<&'static str>,
    pub level: Option<u8>,
    pub explanation: Option<String>,
}

/// What a CR3 is, as far as the dump tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RootId {
    /// `idle_pg_table`: the CPU ran Xen's idle vCPU (or Xen itself at boot).
    Idle,
    /// `per_cpu(root_pgt, cpu)`: the XPTI shadow L4 of that CPU.
    Xpti { cpu: usize },
    /// A vCPU's root: which table of which vCPU.
    Vcpu { domain: u16, vcpu: u32, table: &'static str },
    /// No root the dump names; why, when something is known.
    Unknown { why: String },
    /// The notes give no CR3 for this CPU.
    None,
}

/// One check's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Consistent.
    Ok,
    /// Something is inconsistent, missing or unexplained.
    Finding,
    /// Could not be run (what it needs is not known); `what` says why.
    Skipped,
}

/// A named check and what it found. `check` names are stable (CI keys on them).
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    /// What it is about: a domain, a vCPU, a CPU, or the whole machine.
    pub subject: String,
    pub what: String,
}

fn check(check: &'static str, status: Status, subject: impl Into<String>, what: impl Into<String>) -> Check {
    Check { check, status, subject: subject.into(), what: what.into() }
}

/// One root a vCPU holds.
struct VcpuRoot {
    domain: u16,
    vcpu: u32,
    kind: DomKind,
    table: &'static str,
    mfn: Mfn,
}

fn vcpu_roots(doms: &Domains) -> Vec<VcpuRoot> {
    let mut out = Vec::new();
    for d in doms.domains.iter().filter(|d| d.kind != DomKind::Idle) {
        for v in &d.vcpus {
            let mut push = |table, m: Option<Mfn>| {
                if let Some(mfn) = m {
                    out.push(VcpuRoot { domain: d.id, vcpu: v.id, kind: d.kind, table, mfn });
                }
            };
            push("guest_table", v.guest_table);
            push("guest_table_user", v.guest_table_user);
            push("monitor_table", v.monitor_table);
        }
    }
    out
}

/// Triage the session's dump, with Xen's console log when there is one.
pub fn triage(s: &Session, console: Option<crate::console::Console>) -> Report {
    let x = s.xen.as_ref().filter(|x| x.syms.is_some());
    let mem = s.mem();
    let build = s.xen.as_ref().map(|x| Build {
        version: x.version.as_ref().map(|v| v.value.to_string()),
        build_id: x.syms.as_ref().and_then(|s| s.build_id_hex()),
        tainted: s.dump.notes.xen_crash_info.as_ref().and_then(|c| c.tainted),
        crash_note: s.dump.notes.xen_crash_info.is_some(),
    });
    let mut checks = Vec::new();
    let doms = match x {
        Some(_) => match s.domains() {
            Ok(d) => {
                if d.problems.is_empty() {
                    let nv: usize = d.domains.iter().map(|d| d.vcpus.len()).sum();
                    checks.push(check(
                        "domain_lists",
                        Status::Ok,
                        "machine",
                        format!("{} domains, {nv} vCPUs read without a problem", d.domains.len()),
                    ));
                }
                for p in &d.problems {
                    checks.push(check("domain_lists", Status::Finding, "machine", p.what.clone()));
                }
                Some(d)
            }
            Err(e) => {
                checks.push(check("domain_lists", Status::Skipped, "machine", e.to_string()));
                None
            }
        },
        None => {
            checks.push(check("domain_lists", Status::Skipped, "machine", "needs xen-syms (--xen-syms)"));
            None
        }
    };
    let roots = doms.as_ref().map(vcpu_roots).unwrap_or_default();
    let known = crate::xen::roots::known_roots(&s.dump, s.xen.as_ref());
    let idle = x.and_then(Xen::idle_root);

    // Who was running: each CPU's CR3 named.
    let mut cpus = Vec::new();
    for c in &s.dump.notes.cpus {
        let root = match c.cr3 {
            None => RootId::None,
            Some(cr3) => {
                let l4 = Maddr(cr3 & 0x000f_ffff_ffff_f000);
                if Some(l4) == idle {
                    RootId::Idle
                } else if let Some(k) = known.iter().find(|k| k.l4 == Some(l4) && k.name.ends_with("root_pgt")) {
                    RootId::Xpti { cpu: k.cpu.unwrap_or(0) }
                } else if let Some(r) = roots.iter().find(|r| r.mfn.maddr() == l4) {
                    RootId::Vcpu { domain: r.domain, vcpu: r.vcpu, table: r.table }
                } else {
                    RootId::Unknown {
                        why: match (&x, &doms) {
                            (None, _) => "no xen-syms: roots cannot be named".into(),
                            (_, None) => "the domain lists could not be read".into(),
                            _ => format!(
                                "not idle_pg_table, no CPU's XPTI root, no vCPU's guest, user or monitor table ({} vCPU roots known)",
                                roots.len()
                            ),
                        },
                    }
                }
            }
        };
        // CR2: walked from the CPU's own CR3, as the MMU would have (PCID bits
        // stripped when CR4.PCIDE says they are a PCID).
        let cr2_walk = match (c.cr2, c.cr3) {
            (Some(cr2), Some(cr3)) if cr2 != 0 => {
                let opts = crate::paging::WalkOptions::default();
                let pcide = c.cr4.map(|v| v >> 17 & 1 != 0);
                let root = crate::paging::resolve(
                    mem,
                    crate::paging::RootInput::Cr3(cr3),
                    format!("CPU {} CR3", c.cpu),
                    pcide,
                    opts,
                );
                let t = crate::diagnose::translate(mem, &root, Vaddr(cr2), opts);
                let mapping = t.walk.as_ref().and_then(|w| w.mapping());
                Some(Fault {
                    va: cr2,
                    maddr: mapping.map(|m| m.maddr.0),
                    region: s.xen.as_ref().and_then(|x| x.region(Vaddr(cr2))).map(|r| r.name),
                    reason: t.diagnosis.as_ref().map(|d| d.reason.code()),
                    level: t.diagnosis.as_ref().map(|d| d.level as u8),
                    explanation: t.diagnosis.map(|d| d.explanation),
                })
            }
            _ => None,
        };
        let curr_vcpu = x.and_then(|x| x.per_cpu_u64(mem, "curr_vcpu", c.cpu)).filter(|&p| p != 0).map(|p| {
            let hit = doms.as_ref().and_then(|d| {
                d.domains.iter().find_map(|dom| dom.vcpus.iter().find(|v| v.addr.0 == p).map(|v| (dom, v)))
            });
            CurrVcpu {
                addr: p,
                domain: hit.map(|(d, _)| d.id),
                vcpu: hit.map(|(_, v)| v.id),
                idle: hit.is_some_and(|(d, _)| d.kind == DomKind::Idle),
            }
        });
        cpus.push(CpuReport {
            cpu: c.cpu,
            curr_vcpu,
            rip: c.rip,
            rip_symbol: c.rip.and_then(|r| x?.syms.as_ref()?.name_of(Vaddr(r))),
            rsp: c.rsp,
            cr2: c.cr2,
            cr3: c.cr3,
            root,
            cr2_walk,
        });
    }
    for c in &cpus {
        let subject = format!("CPU {}", c.cpu);
        match &c.root {
            RootId::Unknown { why } => checks.push(check(
                "cpu_root_known",
                Status::Finding,
                subject,
                format!("CR3 {:#x} is no root the dump names: {why}", c.cr3.unwrap_or(0)),
            )),
            RootId::None => checks.push(check("cpu_root_known", Status::Skipped, subject, "the notes give no CR3")),
            _ => checks.push(check("cpu_root_known", Status::Ok, subject, describe_root(&c.root))),
        }
        // The root loaded is the one of the vCPU whose state the CPU holds.
        if let (RootId::Vcpu { domain, vcpu, .. }, Some(cv)) = (&c.root, &c.curr_vcpu) {
            let subject = format!("CPU {}", c.cpu);
            if cv.domain == Some(*domain) && cv.vcpu == Some(*vcpu) {
                checks.push(check(
                    "cpu_root_of_curr_vcpu",
                    Status::Ok,
                    subject,
                    format!("curr_vcpu is domain {domain} vCPU {vcpu}, whose root CR3 holds"),
                ));
            } else {
                checks.push(check(
                    "cpu_root_of_curr_vcpu",
                    Status::Finding,
                    subject,
                    format!(
                        "CR3 is domain {domain} vCPU {vcpu}'s, but curr_vcpu is {}",
                        match (cv.domain, cv.vcpu) {
                            (Some(d), Some(v)) if cv.idle => format!("the idle vCPU {v} (domain {d:#x})"),
                            (Some(d), Some(v)) => format!("domain {d} vCPU {v}"),
                            _ => format!("{:#x}, no vCPU of a listed domain", cv.addr),
                        }
                    ),
                ));
            }
        }
        // The page CR3 names must be in the dump for any walk from it.
        if let Some(cr3) = c.cr3 {
            let l4 = Mfn((cr3 & 0x000f_ffff_ffff_f000) >> 12);
            if let Err(e) = mem.page(l4) {
                checks.push(check(
                    "root_pages_present",
                    Status::Finding,
                    format!("CPU {}", c.cpu),
                    format!("its L4 {} is not in the dump: {e}", l4.maddr()),
                ));
            }
        }
    }

    // Every vCPU root: present, an L4 Xen built (its Xen slots equal idle's), owned
    // by its domain as an L4 in the frame table.
    if let (Some(x), Some(idle)) = (x, idle) {
        let f = domains::Fields::new(x, mem, s.dump.notes.vmcoreinfo_xen.as_deref());
        let idle_page = mem.page(idle.mfn()).ok();
        let (mut ok_slots, mut ok_owner, mut absent) = (0usize, 0usize, 0usize);
        for r in &roots {
            let subject = format!("domain {} vCPU {} {}", r.domain, r.vcpu, r.table);
            let page = match mem.page(r.mfn) {
                Ok(p) => p,
                Err(e) => {
                    absent += 1;
                    checks.push(check(
                        "root_pages_present",
                        Status::Finding,
                        subject,
                        format!("its L4 {} is not in the dump: {e}", r.mfn.maddr()),
                    ));
                    continue;
                }
            };
            let (name, slots): (&'static str, &[usize]) = match r.table {
                "monitor_table" => ("monitor_maps_xen", &MONITOR_SHARED_SLOTS),
                "guest_table_user" => ("pv_root_xen_slots", &PV_USER_SHARED_SLOTS),
                _ => ("pv_root_xen_slots", &PV_SHARED_SLOTS),
            };
            if let Some(ip) = &idle_page {
                let differ: Vec<usize> = slots.iter().copied().filter(|&i| page.entry(i) != ip.entry(i)).collect();
                if differ.is_empty() {
                    ok_slots += 1;
                } else {
                    checks.push(check(
                        name,
                        Status::Finding,
                        subject.clone(),
                        format!(
                            "L4 {}: Xen slots {} differ from idle_pg_table's",
                            r.mfn.maddr(),
                            differ.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
            // Guest L4s are the guest's own pages, typed L4 by Xen's validation;
            // monitor tables come from the paging pool and are not checked here.
            if r.kind.is_pv() {
                match crate::xen::p2m::page_owner(&f, r.mfn) {
                    Ok(o) => {
                        let typed = o.type_info >> 61 == PGT_L4;
                        if typed && o.owner_id == Some(r.domain) {
                            ok_owner += 1;
                        } else {
                            checks.push(check(
                                "vcpu_root_owned_l4",
                                Status::Finding,
                                subject,
                                format!(
                                    "frame {:#x}: type {}, owner {}: not an L4 of domain {}",
                                    r.mfn.0,
                                    o.page_type,
                                    o.owner_id.map_or("none".to_string(), |i| i.to_string()),
                                    r.domain
                                ),
                            ));
                        }
                    }
                    Err(e) => checks.push(check("vcpu_root_owned_l4", Status::Skipped, subject, e.to_string())),
                }
            }
        }
        if !roots.is_empty() {
            checks.push(check(
                "vcpu_roots",
                if absent == 0 { Status::Ok } else { Status::Finding },
                "machine",
                format!(
                    "{} vCPU roots: {ok_slots} share idle_pg_table's Xen slots, {ok_owner} PV roots are L4s their domain owns, {absent} not in the dump",
                    roots.len()
                ),
            ));
        }
    }
    // M2P and each PV domain's own p2m agree on its roots: M2P[mfn] is a pfn whose
    // p2m entry is that mfn again (the round trip `p2m --check` does for every frame).
    if let (Some(x), Some(doms), Some(idle)) = (x, &doms, idle) {
        let f = domains::Fields::new(x, mem, s.dump.notes.vmcoreinfo_xen.as_deref());
        let m2p = crate::xen::p2m::M2p::new(x, mem, idle);
        for d in doms.domains.iter().filter(|d| d.kind.is_pv()) {
            let subject = format!("domain {}", d.id);
            let fll = if d.id == 0 {
                s.dump.notes.xen_crash_info.as_ref().and_then(|c| c.dom0_pfn_to_mfn_frame_list_list)
            } else {
                None
            };
            let p2m = match crate::xen::p2m::PvP2m::open(&f, d.shared_info, fll) {
                Ok(p) => p,
                Err(e) => {
                    checks.push(check("root_m2p_p2m", Status::Skipped, subject, format!("its p2m: {e}")));
                    continue;
                }
            };
            let mut seen = HashSet::new();
            let (mut ok, mut bad) = (0usize, Vec::new());
            for r in roots.iter().filter(|r| r.domain == d.id && r.table != "monitor_table") {
                if !seen.insert(r.mfn.0) {
                    continue;
                }
                // A lookup's answer in words: the entry, or why there is none.
                fn said<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<T, E>) -> String {
                    r.map_or_else(|e| e.to_string(), |e| format!("{e:?}"))
                }
                let root = format!("vCPU {} {}", r.vcpu, r.table);
                match m2p.get(r.mfn) {
                    Ok(crate::xen::p2m::M2pEntry::Pfn(pfn)) => match p2m.get(pfn) {
                        Ok(e) if e.mfn() == Some(r.mfn) => ok += 1,
                        other => bad.push(format!(
                            "{root}: M2P says pfn {pfn} for frame {:#x}, whose p2m entry is {}",
                            r.mfn.0,
                            said(other)
                        )),
                    },
                    other => bad.push(format!("{root}: M2P of frame {:#x} is {}", r.mfn.0, said(other))),
                }
            }
            if bad.is_empty() {
                checks.push(check(
                    "root_m2p_p2m",
                    Status::Ok,
                    subject.clone(),
                    format!("its {ok} root frames: M2P gives a pfn the p2m maps back to the same frame"),
                ));
            }
            for b in bad {
                checks.push(check("root_m2p_p2m", Status::Finding, subject.clone(), b));
            }
        }
    }
    // Which page-table pages of each PV domain the dump lacks (filtered by
    // makedumpfile, not captured), counted per domain, with what the dump says.
    if let Some(doms) = &doms {
        for d in doms.domains.iter().filter(|d| d.kind.is_pv()) {
            let mut seen = HashSet::new();
            let mut absent: Vec<(Mfn, crate::mem::ReadError)> = Vec::new();
            for r in roots.iter().filter(|r| r.domain == d.id && r.table != "monitor_table") {
                pv_tables(mem, r.mfn, &mut seen, &mut absent);
            }
            let subject = format!("domain {}", d.id);
            if absent.is_empty() {
                checks.push(check(
                    "page_tables_present",
                    Status::Ok,
                    subject,
                    format!("all {} page-table pages of its vCPU roots are in the dump", seen.len()),
                ));
            } else {
                let first = &absent[0];
                let owner = |m: Mfn| {
                    let f = domains::Fields::new(x?, mem, s.dump.notes.vmcoreinfo_xen.as_deref());
                    crate::xen::p2m::page_owner(&f, m).ok().and_then(|o| o.owner_id)
                };
                checks.push(check(
                    "page_tables_present",
                    Status::Finding,
                    subject,
                    format!(
                        "{} of its {} page-table pages are not in the dump: {}; the first, frame {:#x}: {}",
                        absent.len(),
                        seen.len(),
                        absent_summary(&absent, owner),
                        first.0.0,
                        first.1
                    ),
                ));
            }
        }
    }
    if let Some(con) = &console {
        console_walks(s, x, con, &mut checks);
    }
    Report { build, cpus, checks, console }
}

/// Each `Pagetable walk from` block of the console redone in the dump by Xen's own
/// rules ([`Xen::page_walk_as_xen`]) from the CR3 printed before it (else the
/// panicking CPU's, else CPU 0's, from the notes), compared line by line: entry and
/// pfn columns.
fn console_walks(s: &Session, x: Option<&Xen>, con: &crate::console::Console, checks: &mut Vec<Check>) {
    let cpu_cr3 = |cpu: u32| s.dump.notes.cpu(cpu as usize).and_then(|c| c.cr3);
    let panic_cpu = con.panics.first().and_then(|p| p.cpu).unwrap_or(0);
    for w in &con.walks {
        let subject = format!("console line {}", w.line);
        let Some(x) = x else {
            checks.push(check(
                "console_walk",
                Status::Skipped,
                subject,
                "needs xen-syms (--xen-syms) for Xen's pfn column",
            ));
            continue;
        };
        let (cr3, from) = match (w.cr3, cpu_cr3(panic_cpu)) {
            (Some(c), _) => (c, "the cr3 printed before it".to_string()),
            (None, Some(c)) => (c, format!("CPU {panic_cpu}'s CR3 in the notes")),
            (None, None) => {
                checks.push(check(
                    "console_walk",
                    Status::Skipped,
                    subject,
                    format!("walk from {:#x}: no cr3 before it in the log, none in the notes", w.va),
                ));
                continue;
            }
        };
        let ours = x.page_walk_as_xen(s.mem(), Maddr(cr3 & 0x000f_ffff_ffff_f000), Vaddr(w.va));
        let mut differ: Option<String> = None;
        for (i, c) in w.steps.iter().enumerate() {
            let name = format!("L{}[{:#05x}]", c.level, c.index);
            let Some(o) = ours.steps.get(i) else {
                differ = Some(format!("{name}: the dump's walk ends before it"));
                break;
            };
            match &o.entry {
                Err(e) => {
                    differ = Some(format!("{name}: the dump lacks that table ({e})"));
                    break;
                }
                Ok(entry) if *entry != c.entry => {
                    let why = if i == 0 {
                        "a different root, or the L4 changed after the message"
                    } else {
                        "the table changed after the message"
                    };
                    differ = Some(format!("{name}: the console says {:#018x}, the dump {entry:#018x}: {why}", c.entry));
                    break;
                }
                Ok(_) => {}
            }
            if let (Some(cp), crate::xen::XenPfn::Value(op)) = (c.pfn, o.pfn) {
                if cp != op {
                    differ = Some(format!(
                        "{name}: pfn column {cp:#x} on the console, {op:#x} in the dump: the M2P changed after the message"
                    ));
                    break;
                }
            }
        }
        if differ.is_none() && !w.cut_short && ours.steps.len() > w.steps.len() {
            differ = Some(format!("the dump's walk goes on after the console's {} lines", w.steps.len()));
        }
        let head = format!("walk from {:#x} ({} lines, from {from} {cr3:#x})", w.va, w.steps.len());
        match differ {
            None => checks.push(check(
                "console_walk",
                Status::Ok,
                subject,
                format!(
                    "{head}: the dump gives the same entries and pfns{}",
                    if w.cut_short { " as far as the log goes" } else { "" }
                ),
            )),
            Some(d) => checks.push(check("console_walk", Status::Finding, subject, format!("{head}: {d}"))),
        }
    }
}

/// Every table page of a PV guest's own part of the L4 at `l4` (slots 0–255 and
/// 272–511: Xen's are idle_pg_table's, shared), each counted once in `seen`; those the
/// dump cannot give go to `absent` with why. Bounded by the distinct frames, however
/// the tables alias one another.
/// What removed the absent pages, counted by kind: the kdump writer's dump level in
/// words (makedumpfile(8) `-d`), whose page the frame table says they are, and how
/// many the dump never captured.
fn absent_summary(absent: &[(Mfn, crate::mem::ReadError)], owner: impl Fn(Mfn) -> Option<u16>) -> String {
    use crate::mem::Absent;
    let mut parts = Vec::new();
    let excluded: Vec<&(Mfn, crate::mem::ReadError)> =
        absent.iter().filter(|(_, e)| matches!(e.absent(), Some(Absent::Excluded { .. }))).collect();
    if let Some((m, e)) = excluded.first() {
        let level = match e.absent() {
            Some(Absent::Excluded { dump_level: Some(l) }) => format!("dump level {l}: {}", dump_level_words(l)),
            _ => "dump level unknown".into(),
        };
        let whose = match owner(*m) {
            Some(0) => "dom0's own pages (frame table)".to_string(),
            Some(d) => format!(
                "pages domain {d} owns (frame table), which makedumpfile's Xen mode (-X) drops whatever the level: it keeps only Xen's and dom0's"
            ),
            None => "pages of no owner the frame table names".into(),
        };
        parts.push(format!("{} excluded by the kdump writer ({level}), {whose}", excluded.len()));
    }
    let mut rest: std::collections::BTreeMap<&'static str, usize> = std::collections::BTreeMap::new();
    for (_, e) in absent.iter().filter(|(_, e)| !matches!(e.absent(), Some(Absent::Excluded { .. }))) {
        *rest.entry(e.absent().map_or("malformed", |a| a.code())).or_default() += 1;
    }
    for (code, n) in rest {
        parts.push(format!("{n} {}", code.replace('_', " ")));
    }
    parts.join(", ")
}

/// A makedumpfile dump level in words: bit 0 zero pages, 1 cache pages, 2 private
/// cache pages, 3 user-process pages, 4 free pages (`makedumpfile(8)`, 1.7).
fn dump_level_words(level: u32) -> String {
    let names = ["zero", "cache", "private cache", "user data", "free"];
    let w: Vec<&str> = names.iter().enumerate().filter(|(i, _)| level >> i & 1 != 0).map(|(_, n)| *n).collect();
    if w.is_empty() { "no page kind excluded".into() } else { format!("{} pages excluded", w.join(", ")) }
}

fn pv_tables(
    mem: &dyn crate::mem::PhysMem,
    l4: Mfn,
    seen: &mut HashSet<u64>,
    absent: &mut Vec<(Mfn, crate::mem::ReadError)>,
) {
    const FRAME: u64 = 0x000f_ffff_ffff_f000;
    let mut stack: Vec<(Mfn, u8)> = vec![(l4, 4)];
    while let Some((mfn, level)) = stack.pop() {
        if !seen.insert(mfn.0) {
            continue;
        }
        let page = match mem.page(mfn) {
            Ok(p) => p,
            Err(e) => {
                absent.push((mfn, e));
                continue;
            }
        };
        if level == 1 {
            continue;
        }
        for i in 0..512 {
            if level == 4 && (256..272).contains(&i) {
                continue;
            }
            let e = page.entry(i);
            // Present, and a table (not a large page: PS at L3 and L2).
            if e & 1 == 0 || (level < 4 && e & 0x80 != 0) {
                continue;
            }
            stack.push((Mfn((e & FRAME) >> 12), level - 1));
        }
    }
}

/// The root in words, as the report and the checks say it.
pub fn describe_root(r: &RootId) -> String {
    match r {
        RootId::Idle => "idle_pg_table (the idle vCPU, or Xen itself)".into(),
        RootId::Xpti { cpu } => format!("CPU {cpu}'s XPTI root (per_cpu root_pgt)"),
        RootId::Vcpu { domain, vcpu, table } => {
            let what = match *table {
                "guest_table" => "kernel L4 (guest_table)",
                "guest_table_user" => "user L4 (guest_table_user)",
                _ => "monitor table",
            };
            format!("domain {domain} vCPU {vcpu}, {what}")
        }
        RootId::Unknown { why } => format!("unknown: {why}"),
        RootId::None => "no CR3 in the notes".into(),
    }
}
