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

use super::{V2mError, VaReadError, Xen};
use crate::addr::{Maddr, Vaddr};
use crate::mem::{PhysMem, ReadError};
use std::collections::BTreeMap;

mod domain;
mod domain_state;
mod frames;
mod state;
mod vcpu;
mod vcpu_state;

use vcpu::Listed;

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

/// Why inference gives no offset for a key. Its text is what `info` prints after
/// "not inferred:".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InferError {
    /// Inference could not start at all (no symbols, unreadable `idle_vcpu`).
    #[error(transparent)]
    NotStarted(StartError),
    /// Inference ran and refused the key: what was tried.
    #[error("{0}")]
    Refused(String),
    /// The key is not one of [`COVERED`].
    #[error("not covered (inference establishes {})", COVERED.join(", "))]
    NotCovered,
}

/// Why inference could not start: what every invariant starts from is missing or
/// unreadable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("inference needs xen-syms (idle_vcpu, domain_list)")]
    NoSyms,
    #[error("xen-syms has no idle_vcpu")]
    NoIdleVcpu,
    #[error("idle_pg_table's machine address is unknown")]
    NoIdleRoot,
    /// The pointer `idle_vcpu[cpu]` is unreadable.
    #[error("idle_vcpu[{cpu}]: {err}")]
    IdleVcpuSlot { cpu: u64, err: VaReadError },
    /// `idle_vcpu[cpu]` points at no readable vCPU page.
    #[error("idle_vcpu[{cpu}] = {va:#x}: {err}")]
    IdleVcpu { cpu: u64, va: u64, err: ObjectError },
    #[error("idle_vcpu[0] is NULL: Xen had not started its scheduler")]
    NoScheduler,
    #[error("xen-syms has no domain_list")]
    NoDomainList,
    /// The pointer `domain_list` is unreadable.
    #[error("domain_list: {0}")]
    DomainListSlot(VaReadError),
    /// `domain_list` points at no readable domain page.
    #[error("domain_list = {va:#x}: {err}")]
    DomainList { va: u64, err: ObjectError },
    /// An entry of `idle_pg_table` that every Xen-built L4 shares is unreadable.
    #[error("idle_pg_table slot {slot}: {err}")]
    XenSlot { slot: usize, err: ReadError },
    #[error("idle_pg_table slot {slot} is not present")]
    XenSlotAbsent { slot: usize },
}

/// Why a heap object (a `struct domain` or `struct vcpu`) could not be read as a
/// whole page.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("not page-aligned (Xen allocates domains and vCPUs as whole pages)")]
    Unaligned,
    #[error("not in the direct map")]
    NotDirectMap,
    #[error(transparent)]
    Maddr(#[from] V2mError),
    #[error(transparent)]
    Read(#[from] ReadError),
}

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
    start: Option<StartError>,
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
    pub fn get(&self, key: &str) -> Result<&Inference, InferError> {
        if let Some(i) = self.found.get(key) {
            return Ok(i);
        }
        if let Some(why) = &self.start {
            return Err(InferError::NotStarted(why.clone()));
        }
        if let Some(why) = self.refused.get(key) {
            return Err(InferError::Refused(why.clone()));
        }
        Err(InferError::NotCovered)
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
    pub fn start_error(&self) -> Option<&StartError> {
        self.start.as_ref()
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
    fn read(xen: &'a Xen, mem: &'a dyn PhysMem) -> Result<Machine<'a>, StartError> {
        let syms = xen.syms.as_ref().ok_or(StartError::NoSyms)?;
        let iv = syms.lookup("idle_vcpu").ok_or(StartError::NoIdleVcpu)?;
        let idle_root = xen.idle_root().ok_or(StartError::NoIdleRoot)?;
        let root = Some(idle_root);
        let nr = (iv.size / 8).clamp(1, 1 << 16);
        let mut idle = Vec::new();
        for i in 0..nr {
            let p = xen
                .read_va_u64(mem, root, Vaddr(iv.addr + i * 8))
                .map_err(|err| StartError::IdleVcpuSlot { cpu: i, err })?;
            if p == 0 {
                break;
            }
            idle.push(Machine::object_in(xen, mem, Vaddr(p)).map_err(|err| StartError::IdleVcpu {
                cpu: i,
                va: p,
                err,
            })?);
        }
        if idle.is_empty() {
            return Err(StartError::NoScheduler);
        }
        let nr_cpu_ids =
            syms.addr("nr_cpu_ids").and_then(|a| xen.read_va_u64(mem, root, Vaddr(a)).ok()).map(|v| v & 0xffff_ffff);
        let head = match syms.addr("domain_list") {
            Some(a) => match xen.read_va_u64(mem, root, Vaddr(a)) {
                Ok(0) => None,
                Ok(p) => {
                    Some(Machine::object_in(xen, mem, Vaddr(p)).map_err(|err| StartError::DomainList { va: p, err })?)
                }
                Err(err) => return Err(StartError::DomainListSlot(err)),
            },
            None => return Err(StartError::NoDomainList),
        };
        let l = xen.layout();
        let mut slots: Vec<usize> =
            [l.xen_virt_start, l.directmap_start].iter().map(|v| ((v >> 39) & 511) as usize).collect();
        slots.dedup();
        let mut xen_slots = Vec::new();
        for s in slots {
            let e =
                mem.read_u64(Maddr(idle_root.0 + s as u64 * 8)).map_err(|err| StartError::XenSlot { slot: s, err })?;
            if e & 1 == 0 {
                return Err(StartError::XenSlotAbsent { slot: s });
            }
            xen_slots.push((s, e));
        }
        Ok(Machine { xen, mem, idle, idle_vcpu_sym: iv.addr, nr_cpu_ids, idle_root, head, xen_slots })
    }

    /// A page-aligned object in the direct map, read to the end of its page.
    fn object_in(xen: &Xen, mem: &dyn PhysMem, va: Vaddr) -> Result<Obj, ObjectError> {
        if va.0 & 0xfff != 0 {
            return Err(ObjectError::Unaligned);
        }
        if !matches!(xen.region(va).map(|r| r.name), Some("directmap" | "directmap_high")) {
            return Err(ObjectError::NotDirectMap);
        }
        let ma = xen.virt_to_maddr(va)?;
        let mut bytes = vec![0u8; 4096];
        mem.read(ma, &mut bytes)?;
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

    /// `nr_cpu_ids`, or the idle vCPUs' count where it is unreadable.
    fn nr_cpus(&self) -> u64 {
        self.nr_cpu_ids.unwrap_or(self.idle.len() as u64)
    }

    /// Every step in the order it establishes [`COVERED`]'s keys: each later one
    /// reads what the earlier ones found.
    fn infer(self, out: &mut Inferred) {
        // 1.–4. (domain.rs) The links between domains and their vCPUs, then the
        //    listed domains' ids and vCPU counts.
        let Some((links, idle_dom)) = self.links(out) else { return };
        let listed = self.domain_list(links, out);
        self.domain_id(&idle_dom, &listed, out);
        let max_vcpus = self.max_vcpus(links, &idle_dom, &listed, out);
        let doms = self.with_vcpus(links, listed, max_vcpus);

        // 5.–9. (vcpu.rs) What each vCPU holds: its ids, its links, its roots.
        let cx = Listed::new(&self, &doms);
        self.vcpu_ids(&cx, out);
        self.vcpu_next_in_list(&cx, out);
        let cr3 = self.arch_cr3(&cx, out);
        let tables = self.guest_tables(&cx, cr3, out);
        self.monitor_table(&cx, cr3, &tables, out);

        // 10. (state.rs) What the domains and vCPUs hold: flags, counts, the frame
        //    table, the p2m.
        self.infer_state(&idle_dom, &doms, out);
    }
}
