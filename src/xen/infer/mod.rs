//! Struct offsets read from the machine itself, for a build no other source knows
//! (a stripped `xen-syms` of a build without a profile or a built-in table).
//!
//! Nothing here assumes a layout. Every value is the one member offset, among all
//! the offsets a page-sized object has, that satisfies at least two invariants every
//! Xen release keeps; when none or several do, the key is refused with what was
//! tried, never guessed. The starting points are three symbols every build has:
//!
//! - `idle_vcpu[]`: one idle vCPU per CPU, `idle_vcpu[cpu]->vcpu_id == cpu` and
//!   `->processor == cpu`, linked in order by `next_in_list`
//!   (`X:xen/common/sched/core.c@4.17.0` `sched_init_vcpu`, `vcpu_create`);
//! - the idle domain, which is on no list: `idle_domain->vcpu = idle_vcpu` and
//!   `idle_domain->max_vcpus = nr_cpu_ids` (`scheduler_init`, same file, 4.12–4.20),
//!   `domain_id == DOMID_IDLE` (0x7fff, `X:xen/include/public/xen.h`);
//! - `domain_list`: the live domains sorted by id (`domain_create`,
//!   `X:xen/common/domain.c@4.17.0`), each `d->vcpu[i]->domain == d` and
//!   `->vcpu_id == i`;
//! - the idle vCPUs run on `idle_pg_table` (`arch.cr3 == __pa(idle_pg_table)`,
//!   `X:xen/arch/x86/domain.c@4.17.0` `arch_vcpu_create`); a PV vCPU's
//!   `guest_table`/`guest_table_user` name L4s that Xen validated, whose Xen slots
//!   (`init_xen_l4_slots`) equal `idle_pg_table`'s.
//!
//! x86 allocates every `struct domain` and `struct vcpu` as one xenheap page
//! (`alloc_domain_struct`, `alloc_vcpu_struct`, `BUILD_BUG_ON(sizeof > PAGE_SIZE)`,
//! `X:xen/arch/x86/domain.c@4.17.0`), so each object is read as a whole page and
//! every candidate offset lies in it.

use super::Xen;
use crate::addr::{Maddr, Vaddr};
use crate::mem::PhysMem;
use std::collections::BTreeMap;

mod state;

/// `DOMID_IDLE` (`X:xen/include/public/xen.h@4.17.0`).
const DOMID_IDLE: u64 = 0x7fff;
/// `DOMID_FIRST_RESERVED`: no live domain has an id at or above it.
const DOMID_FIRST_RESERVED: u64 = 0x7ff0;
/// At most this many domains are followed along a candidate `next_in_list`.
const MAX_CHAIN: usize = 4096;
/// At most this many vCPUs per domain are read (`HVM_MAX_VCPUS` is 128, PV's 8192
/// is never met in practice; more is a broken dump).
const MAX_VCPUS: u64 = 8192;

/// At most this many vCPUs of listed domains are read in all (16 MiB of pages).
const MAX_TOTAL_VCPUS: u64 = 4096;

/// At most this many members may hold a field's values by coincidence for the
/// layout fact every release keeps to break the tie; more is no evidence at all.
const MAX_TIE: usize = 4;

/// The keys inference can establish, in the order it establishes them.
pub const COVERED: &[&str] = &[
    "vcpu.domain",
    "domain.vcpu",
    "domain.next_in_list",
    "domain.domain_id",
    "domain.max_vcpus",
    "vcpu.vcpu_id",
    "vcpu.processor",
    "vcpu.next_in_list",
    "vcpu.arch.cr3",
    "vcpu.arch.guest_table",
    "vcpu.arch.guest_table_user",
    "vcpu.arch.hvm.monitor_table",
    "page_info.count_info",
    "page_info.u.inuse.type_info",
    "page_info.v.inuse._domain",
    "domain.tot_pages",
    "domain.xenheap_pages",
    "domain.max_pages",
    "domain.shared_info",
    "domain.options",
    "domain.is_dying",
    "domain.arch.emulation_flags",
    "domain.arch.pv.is_32bit",
    "domain.arch.p2m",
    "p2m_domain.domain",
    "p2m_domain.phys_table",
    "p2m_domain.ept",
    "vcpu.runstate.state",
    "vcpu.is_running",
    "vcpu.arch.flags",
    "vcpu.arch.hvm.guest_cr",
];

/// One inferred offset and the invariants that confirmed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inference {
    pub value: u64,
    /// One line per invariant that holds at this offset (and at no other).
    pub evidence: Vec<String>,
}

/// What inference established in one dump, and why the rest was refused.
#[derive(Clone, Debug, Default)]
pub struct Inferred {
    found: BTreeMap<&'static str, Inference>,
    /// Struct sizes established with the members (`page_info`: the frame table's stride).
    sizes: BTreeMap<&'static str, Inference>,
    refused: BTreeMap<&'static str, String>,
    /// Why inference could not start at all (no symbols, unreadable `idle_vcpu`).
    start: Option<String>,
}

impl Inferred {
    /// Infer every key of [`COVERED`] from `mem`.
    pub fn run(xen: &Xen, mem: &dyn PhysMem) -> Inferred {
        let mut out = Inferred::default();
        match Machine::read(xen, mem) {
            Ok(m) => m.infer(&mut out),
            Err(why) => out.start = Some(why),
        }
        out
    }

    /// The inferred offset of `key`, or why there is none.
    pub fn get(&self, key: &str) -> Result<&Inference, String> {
        if let Some(i) = self.found.get(key) {
            return Ok(i);
        }
        if let Some(why) = &self.start {
            return Err(why.clone());
        }
        if let Some(why) = self.refused.get(key) {
            return Err(why.clone());
        }
        Err(format!("not covered (inference establishes {})", COVERED.join(", ")))
    }

    /// The inferred size of struct `name`, if inference established it.
    pub fn size(&self, name: &str) -> Option<&Inference> {
        self.sizes.get(name)
    }

    /// Every inferred key, in key order.
    pub fn found(&self) -> impl Iterator<Item = (&'static str, &Inference)> {
        self.found.iter().map(|(k, v)| (*k, v))
    }

    /// Every covered key inference refused, with why.
    pub fn refused(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.refused.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// Why inference could not start, if it could not.
    pub fn start_error(&self) -> Option<&str> {
        self.start.as_deref()
    }
}

/// What a frame is, for the invariants that need a Xen-built L4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum L4State {
    XenBuilt,
    /// The dump's writer left the page out: no evidence either way.
    Filtered,
    Not,
}

/// A heap object read from its start to the end of its page.
#[derive(Clone)]
struct Obj {
    va: Vaddr,
    bytes: Vec<u8>,
}

impl Obj {
    fn get(&self, off: u64, size: usize) -> Option<u64> {
        let o = usize::try_from(off).ok()?;
        let b = self.bytes.get(o..o.checked_add(size)?)?;
        let mut w = [0u8; 8];
        w[..size].copy_from_slice(b);
        Some(u64::from_le_bytes(w))
    }
    fn u64(&self, off: u64) -> Option<u64> {
        self.get(off, 8)
    }
    fn u32(&self, off: u64) -> Option<u64> {
        self.get(off, 4)
    }
    fn u16(&self, off: u64) -> Option<u64> {
        self.get(off, 2)
    }
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// A listed domain's vCPUs as inference sees them: (index in its array, object).
struct Dom {
    obj: Obj,
    vcpus: Vec<(u64, Obj)>,
}

/// What the symbols lead to before any offset is known.
struct Machine<'a> {
    xen: &'a Xen,
    mem: &'a dyn PhysMem,
    /// `idle_vcpu[0..n]`, one per CPU.
    idle: Vec<Obj>,
    idle_vcpu_sym: u64,
    nr_cpu_ids: Option<u64>,
    idle_root: Maddr,
    /// The first domain on `domain_list`, if any.
    head: Option<Obj>,
    /// `idle_pg_table`'s entries in the slots every Xen-built L4 shares.
    xen_slots: Vec<(usize, u64)>,
}

/// ", but for N the dump's writer filtered out", when some were.
fn filtered_txt(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", but for {n} the dump's writer filtered out (no evidence either way)")
    }
}

fn uniq(c: &[u64]) -> String {
    c.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")
}

impl<'a> Machine<'a> {
    fn read(xen: &'a Xen, mem: &'a dyn PhysMem) -> Result<Machine<'a>, String> {
        let syms = xen.syms.as_ref().ok_or("inference needs xen-syms (idle_vcpu, domain_list)")?;
        let iv = syms.lookup("idle_vcpu").ok_or("xen-syms has no idle_vcpu")?;
        let idle_root = xen.idle_root().ok_or("idle_pg_table's machine address is unknown")?;
        let root = Some(idle_root);
        let nr = (iv.size / 8).clamp(1, 1 << 16);
        let mut idle = Vec::new();
        for i in 0..nr {
            let p = xen.read_va_u64(mem, root, Vaddr(iv.addr + i * 8)).map_err(|e| format!("idle_vcpu[{i}]: {e}"))?;
            if p == 0 {
                break;
            }
            idle.push(Machine::object_in(xen, mem, Vaddr(p)).map_err(|e| format!("idle_vcpu[{i}] = {p:#x}: {e}"))?);
        }
        if idle.is_empty() {
            return Err("idle_vcpu[0] is NULL: Xen had not started its scheduler".into());
        }
        let nr_cpu_ids =
            syms.addr("nr_cpu_ids").and_then(|a| xen.read_va_u64(mem, root, Vaddr(a)).ok()).map(|v| v & 0xffff_ffff);
        let head = match syms.addr("domain_list") {
            Some(a) => match xen.read_va_u64(mem, root, Vaddr(a)) {
                Ok(0) => None,
                Ok(p) => {
                    Some(Machine::object_in(xen, mem, Vaddr(p)).map_err(|e| format!("domain_list = {p:#x}: {e}"))?)
                }
                Err(e) => return Err(format!("domain_list: {e}")),
            },
            None => return Err("xen-syms has no domain_list".into()),
        };
        let l = xen.layout();
        let mut slots: Vec<usize> =
            [l.xen_virt_start, l.directmap_start].iter().map(|v| ((v >> 39) & 511) as usize).collect();
        slots.dedup();
        let mut xen_slots = Vec::new();
        for s in slots {
            let e =
                mem.read_u64(Maddr(idle_root.0 + s as u64 * 8)).map_err(|e| format!("idle_pg_table slot {s}: {e}"))?;
            if e & 1 == 0 {
                return Err(format!("idle_pg_table slot {s} is not present"));
            }
            xen_slots.push((s, e));
        }
        Ok(Machine { xen, mem, idle, idle_vcpu_sym: iv.addr, nr_cpu_ids, idle_root, head, xen_slots })
    }

    /// A page-aligned object in the direct map, read to the end of its page.
    fn object_in(xen: &Xen, mem: &dyn PhysMem, va: Vaddr) -> Result<Obj, String> {
        if va.0 & 0xfff != 0 {
            return Err("not page-aligned (Xen allocates domains and vCPUs as whole pages)".into());
        }
        if !matches!(xen.region(va).map(|r| r.name), Some("directmap" | "directmap_high")) {
            return Err("not in the direct map".into());
        }
        let ma = xen.virt_to_maddr(va).map_err(|e| e.to_string())?;
        let mut bytes = vec![0u8; 4096];
        mem.read(ma, &mut bytes).map_err(|e| e.to_string())?;
        Ok(Obj { va, bytes })
    }

    fn object(&self, va: u64) -> Option<Obj> {
        Machine::object_in(self.xen, self.mem, Vaddr(va)).ok()
    }

    /// Whether the page at `ma` is an L4 Xen built: its shared Xen slots equal
    /// `idle_pg_table`'s.
    fn xen_l4(&self, ma: u64) -> bool {
        self.l4_state(ma) == L4State::XenBuilt
    }

    /// As [`Machine::xen_l4`], telling apart a page the dump's writer left out (a
    /// kdump file lists it as existing but filtered it: makedumpfile's `-X` drops
    /// every page of a domain other than dom0, its L4s included) from a page that is
    /// not such an L4. A filtered page is no evidence either way.
    fn l4_state(&self, ma: u64) -> L4State {
        if ma & 0xfff != 0 || ma >> 52 != 0 {
            return L4State::Not;
        }
        for &(s, e) in &self.xen_slots {
            match self.mem.read_u64(Maddr(ma + s as u64 * 8)) {
                Ok(v) if v == e => {}
                Err(err) if matches!(err.absent(), Some(crate::mem::Absent::Excluded { .. })) => {
                    return L4State::Filtered;
                }
                _ => return L4State::Not,
            }
        }
        L4State::XenBuilt
    }

    fn slots_text(&self) -> String {
        self.xen_slots.iter().map(|(s, _)| s.to_string()).collect::<Vec<_>>().join(" and ")
    }

    fn infer(self, out: &mut Inferred) {
        let n = self.idle.len() as u64;
        // 1. vcpu.domain and domain.vcpu, together: every idle vCPU points at one
        //    page (the idle domain), whose vcpu member is &idle_vcpu.
        let mut pairs = Vec::new();
        for k in (0..4096).step_by(8) {
            let Some(p) = self.idle[0].u64(k) else { break };
            if p == 0 || self.idle.iter().any(|v| v.u64(k) != Some(p) || v.va.0 == p) {
                continue;
            }
            let Some(d) = self.object(p) else { continue };
            for k2 in (0..d.len()).step_by(8) {
                if d.u64(k2) == Some(self.idle_vcpu_sym) {
                    pairs.push((k, k2, p));
                }
            }
        }
        // With a domain on domain_list, its vCPU array must point back at it too.
        if let Some(h) = &self.head {
            pairs.retain(|&(k, k2, _)| {
                h.u64(k2)
                    .and_then(|a| self.xen.read_va_u64(self.mem, Some(self.idle_root), Vaddr(a)).ok())
                    .is_some_and(|v0| v0 != 0 && self.object(v0).is_some_and(|v| v.u64(k) == Some(h.va.0)))
            });
        }
        let (vcpu_domain, domain_vcpu, idle_dom) = match pairs.as_slice() {
            [(k, k2, p)] => (*k, *k2, *p),
            [] => {
                let why = format!(
                    "no member of the {n} idle vCPUs points at one page whose own member holds &idle_vcpu ({:#x})",
                    self.idle_vcpu_sym
                );
                for key in COVERED {
                    out.refused.insert(key, why.clone());
                }
                return;
            }
            many => {
                let why = format!(
                    "ambiguous: {} (vcpu.domain, domain.vcpu) pairs fit: {}",
                    many.len(),
                    many.iter().map(|(a, b, _)| format!("({a}, {b})")).collect::<Vec<_>>().join(", ")
                );
                for key in COVERED {
                    out.refused.insert(key, why.clone());
                }
                return;
            }
        };
        let head_txt =
            if self.head.is_some() { "; domain_list's first domain: its vCPU 0 points back at it" } else { "" };
        out.found.insert(
            "vcpu.domain",
            Inference {
                value: vcpu_domain,
                evidence: vec![
                    format!("all {n} idle vCPUs hold the same heap page {idle_dom:#x} here (the idle domain)"),
                    format!("that page holds &idle_vcpu at +{domain_vcpu} (idle_domain->vcpu = idle_vcpu){head_txt}"),
                ],
            },
        );
        out.found.insert(
            "domain.vcpu",
            Inference {
                value: domain_vcpu,
                evidence: vec![
                    format!("the idle domain {idle_dom:#x} holds &idle_vcpu here, at no other offset"),
                    format!("idle_vcpu[*] point at that domain from +{vcpu_domain}{head_txt}"),
                ],
            },
        );
        let Some(idle_dom) = self.object(idle_dom) else { return };

        // The vCPUs of a domain object, through domain.vcpu; `count` entries.
        let vcpus_of = |d: &Obj, count: u64| -> Option<Vec<(u64, Obj)>> {
            let a = d.u64(domain_vcpu)?;
            let mut v = Vec::new();
            for i in 0..count.min(MAX_VCPUS) {
                let p = self.xen.read_va_u64(self.mem, Some(self.idle_root), Vaddr(a + i * 8)).ok()?;
                if p == 0 {
                    continue;
                }
                let o = self.object(p)?;
                if o.u64(vcpu_domain) != Some(d.va.0) {
                    return None;
                }
                v.push((i, o));
            }
            Some(v)
        };
        // A struct domain: its vCPU 0 points back at it.
        let is_domain = |d: &Obj| vcpus_of(d, 1).is_some_and(|v| !v.is_empty());

        // 2. domain.next_in_list: from domain_list, a chain of domains ending in NULL.
        let mut doms: Vec<Obj> = Vec::new();
        if let Some(h) = &self.head {
            let mut chains: Vec<(u64, Vec<u64>)> = Vec::new();
            let mut lone = 0;
            for k in (0..h.len()).step_by(8) {
                if k == domain_vcpu {
                    continue;
                }
                let mut chain = vec![h.va.0];
                let mut cur = h.u64(k);
                let ok = loop {
                    match cur {
                        Some(0) => break true,
                        Some(p) if chain.len() < MAX_CHAIN && !chain.contains(&p) => match self.object(p) {
                            Some(o) if is_domain(&o) => {
                                chain.push(p);
                                cur = o.u64(k);
                            }
                            _ => break false,
                        },
                        _ => break false,
                    }
                };
                if ok && chain.len() >= 2 {
                    chains.push((k, chain));
                } else if ok {
                    lone += 1;
                }
            }
            match chains.as_slice() {
                [(k, chain)] => {
                    out.found.insert(
                        "domain.next_in_list",
                        Inference {
                            value: *k,
                            evidence: vec![
                                format!(
                                    "from domain_list it links {} distinct heap pages and ends in NULL",
                                    chain.len()
                                ),
                                format!(
                                    "each is a struct domain: its vCPU 0 points back at it (+{vcpu_domain}); no other member links two"
                                ),
                            ],
                        },
                    );
                    doms = chain.iter().filter_map(|&p| self.object(p)).collect();
                }
                [] => {
                    out.refused.insert(
                        "domain.next_in_list",
                        format!(
                            "domain_list holds one domain: its next_in_list is NULL, like {lone} other pointer members (needs a second domain, or VMCOREINFO_XEN)"
                        ),
                    );
                    // Every candidate ends the list here, so the list is this one domain.
                    doms = self.object(h.va.0).into_iter().collect();
                }
                many => {
                    out.refused.insert(
                        "domain.next_in_list",
                        format!(
                            "ambiguous: members at {} each link domains",
                            uniq(&many.iter().map(|c| c.0).collect::<Vec<_>>())
                        ),
                    );
                    doms = self.object(h.va.0).into_iter().collect();
                }
            }
        } else {
            out.refused.insert("domain.next_in_list", "domain_list is empty".into());
        }

        // 3. domain.domain_id: DOMID_IDLE in the idle domain; listed ids increase.
        if doms.is_empty() {
            out.refused.insert(
                "domain.domain_id",
                "only the idle domain exists: DOMID_IDLE alone is one invariant, not two".into(),
            );
        } else {
            let c: Vec<u64> = (0..idle_dom.len())
                .step_by(2)
                .filter(|&o| {
                    idle_dom.u16(o) == Some(DOMID_IDLE) && {
                        let ids: Vec<Option<u64>> = doms.iter().map(|d| d.u16(o)).collect();
                        ids.iter().all(|i| i.is_some_and(|i| i < DOMID_FIRST_RESERVED))
                            && ids.windows(2).all(|w| w[0] < w[1])
                    }
                })
                .collect();
            match c.as_slice() {
                [o] => {
                    out.found.insert(
                        "domain.domain_id",
                        Inference {
                            value: *o,
                            evidence: vec![
                                "the idle domain holds DOMID_IDLE (0x7fff) here".into(),
                                format!(
                                    "the {} listed domain(s) hold ids below DOMID_FIRST_RESERVED, increasing along domain_list ({})",
                                    doms.len(),
                                    doms.iter().filter_map(|d| d.u16(*o)).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
                                ),
                            ],
                        },
                    );
                }
                [] => {
                    out.refused.insert(
                        "domain.domain_id",
                        "no u16 member holds DOMID_IDLE in the idle domain and valid ids in the listed ones".into(),
                    );
                }
                many => {
                    out.refused.insert("domain.domain_id", format!("ambiguous: u16 members at {} fit", uniq(many)));
                }
            }
        }

        // 4. domain.max_vcpus: nr_cpu_ids in the idle domain; each listed domain's
        //    vCPU array holds that many slots of its own vCPUs.
        let want = self.nr_cpu_ids.unwrap_or(n);
        let c: Vec<u64> = (0..idle_dom.len())
            .step_by(4)
            .filter(|&o| {
                idle_dom.u32(o) == Some(want)
                    && doms.iter().all(|d| {
                        d.u32(o).is_some_and(|m| {
                            (1..=MAX_VCPUS).contains(&m)
                                && vcpus_of(d, m).is_some_and(|v| v.first().is_some_and(|(i, _)| *i == 0))
                        })
                    })
            })
            .collect();
        let max_vcpus = match c.as_slice() {
            [o] => {
                let mut evidence = vec![format!(
                    "the idle domain holds nr_cpu_ids ({want}) here (idle_domain->max_vcpus = nr_cpu_ids)"
                )];
                if doms.is_empty() {
                    evidence.push(format!("no other u32 member of the idle domain holds {want}"));
                    // One invariant only: say so rather than claim two.
                    out.refused.insert(
                        "domain.max_vcpus",
                        format!("only the idle domain exists: {want} at +{o} is one invariant, not two"),
                    );
                    None
                } else {
                    evidence.push(format!(
                        "each listed domain's vCPU array holds that many slots of vCPUs that point back at it ({})",
                        doms.iter().filter_map(|d| d.u32(*o)).map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
                    ));
                    out.found.insert("domain.max_vcpus", Inference { value: *o, evidence });
                    Some(*o)
                }
            }
            [] => {
                out.refused.insert(
                    "domain.max_vcpus",
                    format!("no u32 member holds nr_cpu_ids ({want}) in the idle domain and a vCPU count in every listed one"),
                );
                None
            }
            many => {
                out.refused.insert("domain.max_vcpus", format!("ambiguous: u32 members at {} fit", uniq(many)));
                None
            }
        };
        // The listed domains with their vCPUs (all of them when max_vcpus is known,
        // else vCPU 0 alone).
        // Every vCPU is kept as a page: a hostile dump (thousands of domains of
        // 8192 vCPUs) must not make that unbounded, so the whole machine's vCPUs
        // share one budget and the domains past it are read with vCPU 0 alone.
        let mut budget = MAX_TOTAL_VCPUS;
        let doms: Vec<Dom> = doms
            .into_iter()
            .map(|d| {
                let count = max_vcpus.and_then(|o| d.u32(o)).unwrap_or(1).min(budget.max(1));
                let vcpus = vcpus_of(&d, count).unwrap_or_default();
                budget = budget.saturating_sub(count);
                Dom { obj: d, vcpus }
            })
            .collect();
        let dvcpus = || doms.iter().flat_map(|d| d.vcpus.iter());
        let nd = dvcpus().count();

        // 5. vcpu.vcpu_id and vcpu.processor: idle_vcpu[i] holds i in both.
        let idle_ok = |o: u64| self.idle.iter().enumerate().all(|(i, v)| v.u32(o) == Some(i as u64));
        let ids: Vec<u64> =
            (0..4096).step_by(4).filter(|&o| idle_ok(o) && dvcpus().all(|(i, v)| v.u32(o) == Some(*i))).collect();
        let procs: Vec<u64> = (0..4096)
            .step_by(4)
            .filter(|&o| idle_ok(o) && dvcpus().all(|(_, v)| v.u32(o).is_some_and(|p| p < want)))
            .collect();
        let discriminating = n >= 2 || doms.iter().any(|d| d.vcpus.len() >= 2);
        let idle_txt = format!("idle_vcpu[i] holds i here for all {n} CPUs");
        // Where several members hold the same values in this dump, the layout fact
        // every release keeps breaks the tie: struct vcpu begins `int vcpu_id; int
        // processor;` (`X:xen/include/xen/sched.h@4.0.0` … `@4.20.0`). The evidence
        // says so, and names the members that merely coincide.
        let id_off = match ids.as_slice() {
            _ if !discriminating => {
                out.refused
                    .insert("vcpu.vcpu_id", "one CPU and no domain with two vCPUs: every zero member fits".into());
                None
            }
            [o] => Some((*o, None)),
            many if many.contains(&0) && many.len() <= MAX_TIE => {
                Some((0, Some(many.iter().copied().filter(|&o| o != 0).collect::<Vec<_>>())))
            }
            [] => {
                out.refused.insert(
                    "vcpu.vcpu_id",
                    "no u32 member holds each idle vCPU's CPU and each vCPU's array index".into(),
                );
                None
            }
            many => {
                out.refused.insert("vcpu.vcpu_id", format!("ambiguous: u32 members at {} fit", uniq(many)));
                None
            }
        };
        if let Some((o, tie)) = &id_off {
            let mut evidence = vec![
                idle_txt.clone(),
                format!("each of the {nd} vCPUs of listed domains holds its index in its domain's vCPU array"),
            ];
            if let Some(others) = tie {
                evidence.push(format!(
                    "+{} hold the same values in this dump; struct vcpu begins with vcpu_id in every release",
                    uniq(others)
                ));
            }
            out.found.insert("vcpu.vcpu_id", Inference { value: *o, evidence });
        }
        if let Some((idv, _)) = id_off {
            let rest: Vec<u64> = procs.iter().copied().filter(|&p| p != idv).collect();
            let pick = match rest.as_slice() {
                // With one CPU every processor is 0, as in most zero members: the
                // values cannot place it, only the layout can, and any reading of a
                // member that holds 0 in every vCPU says the same thing here.
                many if n < 2 && want == 1 && many.contains(&(idv + 4)) => Some((idv + 4, Some(Vec::new()))),
                _ if n < 2 => None,
                [p] => Some((*p, None)),
                many if many.contains(&(idv + 4)) && many.len() <= MAX_TIE => {
                    Some((idv + 4, Some(many.iter().copied().filter(|&o| o != idv + 4).collect::<Vec<_>>())))
                }
                _ => None,
            };
            match pick {
                Some((p, tie)) => {
                    let mut evidence = vec![
                        idle_txt.clone(),
                        format!(
                            "each of the {nd} vCPUs of listed domains holds a CPU number below nr_cpu_ids ({want})"
                        ),
                    ];
                    match tie {
                        Some(others) if others.is_empty() => evidence.push(format!(
                            "one CPU (nr_cpu_ids 1): 0 is the only value, held here and in {} other u32 members; struct vcpu begins `int vcpu_id; int processor;` in every release (sched.h 4.0 … 4.20), which places it",
                            rest.len() - 1
                        )),
                        Some(others) => evidence.push(format!(
                            "+{} hold values as fitting in this dump; processor follows vcpu_id in every release",
                            uniq(&others)
                        )),
                        None => {}
                    }
                    out.found.insert("vcpu.processor", Inference { value: p, evidence });
                }
                None if n < 2 => {
                    out.refused.insert(
                        "vcpu.processor",
                        format!("one CPU: every vCPU's processor is 0, as in {} other u32 members", rest.len()),
                    );
                }
                None if rest.is_empty() => {
                    out.refused
                        .insert("vcpu.processor", "no u32 member other than vcpu_id holds each idle vCPU's CPU".into());
                }
                None => {
                    out.refused.insert("vcpu.processor", format!("ambiguous: u32 members at {} fit", uniq(&rest)));
                }
            }
        } else {
            out.refused.insert("vcpu.processor", "needs vcpu.vcpu_id, to tell the two apart".into());
        }

        // 6. vcpu.next_in_list: idle vCPUs in CPU order, each domain's in id order.
        let chain_ok = |vs: &[&Obj], o: u64| {
            vs.windows(2).all(|w| w[0].u64(o) == Some(w[1].va.0)) && vs.last().is_none_or(|l| l.u64(o) == Some(0))
        };
        let idle_refs: Vec<&Obj> = self.idle.iter().collect();
        let c: Vec<u64> = (0..4096)
            .step_by(8)
            .filter(|&o| {
                chain_ok(&idle_refs, o)
                    && doms.iter().all(|d| chain_ok(&d.vcpus.iter().map(|(_, v)| v).collect::<Vec<_>>(), o))
            })
            .collect();
        let longest = doms.iter().map(|d| d.vcpus.len()).max().unwrap_or(0);
        match c.as_slice() {
            [o] if n >= 2 || longest >= 2 => {
                out.found.insert(
                    "vcpu.next_in_list",
                    Inference {
                        value: *o,
                        evidence: vec![
                            format!("idle_vcpu[0..{n}] are linked in CPU order here, the last NULL"),
                            format!(
                                "the vCPUs of each of the {} listed domain(s) are linked in id order, the last NULL",
                                doms.len()
                            ),
                        ],
                    },
                );
            }
            [_] | [] => {
                out.refused.insert(
                    "vcpu.next_in_list",
                    "no member links the idle vCPUs and every domain's vCPUs in order".into(),
                );
            }
            many => {
                out.refused.insert("vcpu.next_in_list", format!("ambiguous: members at {} fit", uniq(many)));
            }
        }

        // 7. vcpu.arch.cr3: __pa(idle_pg_table) in every idle vCPU; an L4 Xen built
        //    in every listed domain's vCPU.
        let slots = self.slots_text();
        let c: Vec<u64> = (0..4096)
            .step_by(8)
            .filter(|&o| {
                self.idle.iter().all(|v| v.u64(o) == Some(self.idle_root.0))
                    && nd > 0
                    && dvcpus().all(|(_, v)| v.u64(o).is_some_and(|c| self.l4_state(c & !0xfff) != L4State::Not))
                    && dvcpus().any(|(_, v)| v.u64(o).is_some_and(|c| self.xen_l4(c & !0xfff)))
            })
            .collect();
        let cr3 = match c.as_slice() {
            [o] => {
                out.found.insert(
                    "vcpu.arch.cr3",
                    Inference {
                        value: *o,
                        evidence: vec![
                            format!("all {n} idle vCPUs hold idle_pg_table's address {} here", self.idle_root),
                            {
                                let filtered = dvcpus()
                                    .filter(|(_, v)| {
                                        v.u64(*o).is_some_and(|c| self.l4_state(c & !0xfff) == L4State::Filtered)
                                    })
                                    .count();
                                format!(
                                    "each of the {nd} vCPUs of listed domains holds an L4 whose Xen slots {slots} equal idle_pg_table's{}",
                                    filtered_txt(filtered)
                                )
                            },
                        ],
                    },
                );
                Some(*o)
            }
            [] if nd == 0 => {
                out.refused.insert(
                    "vcpu.arch.cr3",
                    "no domain has a vCPU: idle_pg_table's address in the idle vCPUs is one invariant, not two".into(),
                );
                None
            }
            [] => {
                out.refused.insert(
                    "vcpu.arch.cr3",
                    "no member holds idle_pg_table in the idle vCPUs and an L4 in the others".into(),
                );
                None
            }
            many => {
                out.refused.insert("vcpu.arch.cr3", format!("ambiguous: members at {} fit", uniq(many)));
                None
            }
        };

        // 8. vcpu.arch.guest_table / guest_table_user: in PV vCPUs, frame numbers of
        //    L4s Xen built; none (or idle_pg_table) in the idle vCPUs. The kernel one
        //    is the one the vCPUs' own cr3 names.
        let idle_mfn = self.idle_root.0 >> 12;
        let c: Vec<u64> = (0..4096)
            .step_by(8)
            .filter(|&o| {
                self.idle.iter().all(|v| matches!(v.u64(o), Some(x) if x == 0 || x == idle_mfn))
                    && dvcpus().any(|(_, v)| v.u64(o).is_some_and(|x| x != 0))
                    && dvcpus().all(|(_, v)| {
                        v.u64(o).is_some_and(|x| x == 0 || (x >> 40 == 0 && self.l4_state(x << 12) != L4State::Not))
                    })
                    && dvcpus().any(|(_, v)| v.u64(o).is_some_and(|x| x != 0 && x >> 40 == 0 && self.xen_l4(x << 12)))
            })
            .collect();
        let cr3_hits = |o: u64| {
            cr3.map_or(0, |c| {
                dvcpus()
                    .filter(|(_, v)| v.u64(o).is_some_and(|x| x != 0 && v.u64(c).map(|c| c >> 12) == Some(x)))
                    .count()
            })
        };
        let mut ranked: Vec<(usize, u64)> = c.iter().map(|&o| (cr3_hits(o), o)).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        let filtered = |o: u64| {
            dvcpus()
                .filter(|(_, v)| v.u64(o).is_some_and(|x| x != 0 && self.l4_state(x << 12) == L4State::Filtered))
                .count()
        };
        let l4_txt = |o: u64| {
            format!(
                "every non-zero value in the {nd} vCPUs of listed domains names an L4 whose Xen slots {slots} equal idle_pg_table's{}",
                filtered_txt(filtered(o))
            )
        };
        let kernel = match ranked.as_slice() {
            [] => {
                let why = if nd == 0 {
                    "no domain has a vCPU".to_string()
                } else {
                    "no member names Xen-built L4s in the listed domains' vCPUs (no PV domain?)".to_string()
                };
                out.refused.insert("vcpu.arch.guest_table", why.clone());
                out.refused.insert("vcpu.arch.guest_table_user", why);
                None
            }
            [(h, o), rest @ ..] if *h > 0 && rest.iter().all(|(h2, _)| h2 < h) => {
                out.found.insert(
                    "vcpu.arch.guest_table",
                    Inference {
                        value: *o,
                        evidence: vec![
                            "0 (or idle_pg_table) in every idle vCPU".into(),
                            l4_txt(*o),
                            format!("it is the L4 in arch.cr3 for {h} of them (kernel mode), more than any other such member"),
                        ],
                    },
                );
                Some(*o)
            }
            _ => {
                let why = if cr3.is_none() {
                    format!("members at {} name L4s; needs vcpu.arch.cr3 to tell the kernel's", uniq(&c))
                } else {
                    format!("ambiguous: members at {} name L4s, none of them more often the vCPUs' cr3", uniq(&c))
                };
                out.refused.insert("vcpu.arch.guest_table", why.clone());
                out.refused.insert("vcpu.arch.guest_table_user", why);
                None
            }
        };
        if let Some(k) = kernel {
            // The user L4 lives only in PV vCPUs (those with a kernel L4): arch.pv
            // and arch.hvm share a union, so an HVM vCPU's monitor table may sit at
            // the same place in other vCPUs.
            let pv_only = |o: u64| {
                dvcpus().all(|(_, v)| match v.u64(o) {
                    Some(0) | None => true,
                    Some(x) => v.u64(k).is_some_and(|g| g != 0 && g != x),
                })
            };
            let others: Vec<u64> = c.iter().copied().filter(|&o| o != k && pv_only(o)).collect();
            match others.as_slice() {
                [o] => {
                    out.found.insert(
                        "vcpu.arch.guest_table_user",
                        Inference {
                            value: *o,
                            evidence: vec![
                                "0 (or idle_pg_table) in every idle vCPU".into(),
                                l4_txt(*o),
                                "only in vCPUs with a kernel L4 (guest_table), a second L4, never the kernel's".into(),
                            ],
                        },
                    );
                }
                [] => {
                    out.refused.insert(
                        "vcpu.arch.guest_table_user",
                        "no second member names L4s in PV vCPUs (no vCPU ran in user mode?)".into(),
                    );
                }
                many => {
                    out.refused.insert(
                        "vcpu.arch.guest_table_user",
                        format!("ambiguous: members at {} name L4s in PV vCPUs", uniq(many)),
                    );
                }
            }
        }

        // 9. vcpu.arch.hvm.monitor_table: in vCPUs without a kernel L4 (HVM, PVH),
        //    the frame of the L4 Xen built for them, which their arch.cr3 names.
        match (kernel, cr3) {
            (Some(k), Some(cr3)) => {
                let hvm: Vec<&Obj> = dvcpus().filter(|(_, v)| v.u64(k) == Some(0)).map(|(_, v)| v).collect();
                let m: Vec<u64> = c
                    .iter()
                    .copied()
                    .filter(|&o| {
                        o != k
                            && !hvm.is_empty()
                            && dvcpus().all(|(_, v)| match v.u64(o) {
                                Some(0) | None => true,
                                Some(x) => v.u64(k) == Some(0) && v.u64(cr3).map(|c| c >> 12) == Some(x),
                            })
                            && hvm.iter().all(|v| v.u64(o).is_some_and(|x| x != 0))
                    })
                    .collect();
                match m.as_slice() {
                    [o] => {
                        out.found.insert(
                            "vcpu.arch.hvm.monitor_table",
                            Inference {
                                value: *o,
                                evidence: vec![
                                    format!(
                                        "each of the {} vCPUs without a kernel L4 (HVM) names here an L4 whose Xen slots {slots} equal idle_pg_table's",
                                        hvm.len()
                                    ),
                                    "it is the L4 in their arch.cr3; 0 in every PV and idle vCPU".into(),
                                ],
                            },
                        );
                    }
                    [] if hvm.is_empty() => {
                        out.refused.insert(
                            "vcpu.arch.hvm.monitor_table",
                            "no HVM vCPU in this dump (every vCPU has a kernel L4)".into(),
                        );
                    }
                    [] => {
                        out.refused.insert(
                            "vcpu.arch.hvm.monitor_table",
                            "no member names, in every HVM vCPU, the Xen-built L4 its arch.cr3 holds".into(),
                        );
                    }
                    many => {
                        out.refused
                            .insert("vcpu.arch.hvm.monitor_table", format!("ambiguous: members at {} fit", uniq(many)));
                    }
                }
            }
            _ => {
                out.refused.insert(
                    "vcpu.arch.hvm.monitor_table",
                    "needs vcpu.arch.guest_table and vcpu.arch.cr3, to tell HVM vCPUs and their root".into(),
                );
            }
        }

        // 10. What the domains and vCPUs hold: flags, counts, the frame table, the p2m.
        self.infer_state(&idle_dom, &doms, out);
    }
}
