//! Every root a dump lets us name: `idle_pg_table`, each CPU's XPTI `root_pgt`, each
//! CPU's CR3 from the notes, and VMCOREINFO_XEN's `pgd_l4`, each with a look at its
//! L4 page. What `xenwalk tables` lists, and what triage matches CR3s against.

use super::Xen;
use crate::addr::{Maddr, Vaddr};
use crate::dump::Dump;
use crate::paging::WalkOptions;
use crate::paging::root::{self, L4Check, RootInput};
use crate::parse;
use serde::Serialize;

/// One root the dump names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KnownRoot {
    /// `idle_pg_table`, `CPU 1 root_pgt`, `CPU 0 CR3`, `VMCOREINFO pgd_l4`.
    pub name: String,
    /// Where its value came from.
    pub source: String,
    pub cpu: Option<usize>,
    /// The L4 table, when known.
    pub l4: Option<Maddr>,
    /// A look at the L4 page (`None`: not in the dump, or no L4).
    pub check: Option<L4Check>,
    /// Why there is no L4, or what to know about it.
    pub note: Option<String>,
}

/// Every root `dump` (with the hypervisor `xen`, when known) lets us name.
pub fn known_roots(dump: &Dump, xen: Option<&Xen>) -> Vec<KnownRoot> {
    let mem = dump.mem.as_ref();
    let opts = WalkOptions::default();
    let mut lines: Vec<KnownRoot> = Vec::new();
    let check = |ma: Maddr| root::resolve(mem, RootInput::Cr3(ma.0), String::new(), None, opts).check;
    let idle = xen.and_then(|x| x.idle_root());
    if let Some(x) = xen {
        match idle {
            Some(r) => lines.push(KnownRoot {
                name: "idle_pg_table".into(),
                source: format!(
                    "symbol idle_pg_table + xen_phys_start ({})",
                    x.xen_phys_start.as_ref().map(|v| v.source.describe()).unwrap_or("?")
                ),
                cpu: None,
                l4: Some(r),
                check: check(r),
                note: None,
            }),
            None => lines.push(KnownRoot {
                name: "idle_pg_table".into(),
                source: "xen-syms".into(),
                cpu: None,
                l4: None,
                check: None,
                note: Some(if x.syms.is_none() { "needs xen-syms".into() } else { "xen_phys_start unknown".into() }),
            }),
        }
        lines.extend(per_cpu_roots(dump, x));
    }
    for c in &dump.notes.cpus {
        let Some(cr3) = c.cr3 else { continue };
        let l4 = Maddr(cr3 & 0x000f_ffff_ffff_f000);
        let mut note = Vec::new();
        if Some(l4) == idle {
            note.push("= idle_pg_table".to_string());
        }
        if cr3 & 0xfff != 0 {
            note.push(format!("PCID/flags {:#x} in CR3", cr3 & 0xfff));
        }
        lines.push(KnownRoot {
            name: format!("CPU {} CR3", c.cpu),
            source: c.regs_source.map(|r| r.describe()).unwrap_or("notes").to_string(),
            cpu: Some(c.cpu),
            l4: Some(l4),
            check: check(l4),
            note: (!note.is_empty()).then(|| note.join("; ")),
        });
    }
    if let Some(text) = &dump.notes.vmcoreinfo_xen {
        if let Some(v) = text.lines().find_map(|l| l.strip_prefix("SYMBOL(pgd_l4)=")) {
            if let (Ok(va), Some(x)) = (parse::hex_u64(v), xen) {
                let l4 = x.virt_to_maddr(Vaddr(va)).ok();
                lines.push(KnownRoot {
                    name: "VMCOREINFO pgd_l4".into(),
                    source: format!("VMCOREINFO_XEN SYMBOL(pgd_l4)={v}"),
                    cpu: None,
                    l4,
                    check: l4.and_then(check),
                    note: None,
                });
            }
        }
    }
    lines
}

/// `per_cpu(root_pgt, cpu)` for every CPU with a per-CPU area: the XPTI roots
/// (reference §3.4). `per_cpu(x, cpu)` = `*(&per_cpu__x + __per_cpu_offset[cpu])`;
/// unused slots hold `INVALID_PERCPU_AREA` = 0x8000000000000000 − `__per_cpu_start`
/// (`X:xen/arch/x86/percpu.c@4.17.0`).
fn per_cpu_roots(dump: &Dump, x: &Xen) -> Vec<KnownRoot> {
    let mem = dump.mem.as_ref();
    let opts = WalkOptions::default();
    let mut v = Vec::new();
    let Some(syms) = &x.syms else { return v };
    let (Some(offs), Some(root_pgt)) = (syms.lookup("__per_cpu_offset"), syms.addr("per_cpu__root_pgt")) else {
        return v;
    };
    let invalid = syms.addr("__per_cpu_start").map(|p| 0x8000_0000_0000_0000u64.wrapping_sub(p));
    let n = (offs.size / 8).clamp(1, 4096);
    let idle = x.idle_root();
    for cpu in 0..n {
        let Some(off) = x.image_maddr(Vaddr(offs.addr + cpu * 8)).and_then(|ma| mem.read_u64(ma).ok()) else {
            continue;
        };
        if Some(off) == invalid || (cpu > 0 && off == 0) {
            continue;
        }
        let va = Vaddr(root_pgt.wrapping_add(off));
        let ptr = match x.read_va_u64(mem, idle, va) {
            Ok(p) => p,
            Err(e) => {
                v.push(KnownRoot {
                    name: format!("CPU {cpu} root_pgt"),
                    source: "per_cpu(root_pgt)".into(),
                    cpu: Some(cpu as usize),
                    l4: None,
                    check: None,
                    note: Some(format!("cannot read per_cpu(root_pgt) at {va}: {e}")),
                });
                continue;
            }
        };
        let (l4, note) = if ptr == 0 {
            (
                None,
                Some(
                    "NULL: no XPTI root (XPTI is off: the default on CPUs not vulnerable to Meltdown, e.g. AMD)"
                        .to_string(),
                ),
            )
        } else {
            match x.virt_to_maddr(Vaddr(ptr)) {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };
        v.push(KnownRoot {
            name: format!("CPU {cpu} root_pgt"),
            source: "per_cpu(root_pgt) (XPTI)".into(),
            cpu: Some(cpu as usize),
            l4,
            check: l4.and_then(|m| root::resolve(mem, RootInput::Cr3(m.0), String::new(), None, opts).check),
            note,
        });
    }
    v
}
