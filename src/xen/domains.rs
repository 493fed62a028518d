//! Domains and vCPUs, read from the hypervisor's own lists: `domain_list` (every
//! domain, sorted by id, NULL-terminated), each domain's `vcpu[]`, and `idle_vcpu[]`
//! for the idle domain (`X:xen/include/xen/sched.h@4.17.0`; reference §6).
//!
//! Struct offsets come from [`Offsets`] (DWARF, VMCOREINFO_XEN, built-in table), so this
//! works with Debian's DWARF-less xen-syms. Every pointer is checked before it is
//! followed; the lists are walked with a bound and cycle detection, and a broken link
//! becomes a [`Problem`] rather than a panic or a hang.

use super::offsets::{OffsetError, Offsets};
use super::{VaReadError, Xen};
use crate::addr::{Maddr, Mfn, Vaddr};
use crate::mem::PhysMem;
use serde::Serialize;
use std::collections::HashSet;

/// Upper bound on domains followed (Xen's domid space is 15 bits).
pub const MAX_DOMAINS: usize = 0x8000;
/// Upper bound on vCPUs per domain (HVM_MAX_VCPUS is 128 in 4.17; PV up to 8192).
pub const MAX_VCPUS: u64 = 8192;

/// `XEN_DOMCTL_CDF_hvm` (bit 0 of `d->options`, 4.13+; `X:xen/include/public/domctl.h@4.17.0`).
const CDF_HVM: u64 = 1 << 0;
/// `XEN_DOMCTL_CDF_hap` (bit 1).
const CDF_HAP: u64 = 1 << 1;
/// `DOMID_IDLE`.
pub const DOMID_IDLE: u16 = 0x7fff;

/// What kind of guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DomKind {
    Pv64,
    Pv32,
    /// HVM, with emulated legacy devices.
    Hvm,
    /// PVH: HVM without the legacy devices.
    Pvh,
    /// HVM or PVH: `arch.emulation_flags` could not be read.
    HvmOrPvh,
    Idle,
}

impl DomKind {
    pub fn name(self) -> &'static str {
        match self {
            DomKind::Pv64 => "PV 64-bit",
            DomKind::Pv32 => "PV 32-bit",
            DomKind::Hvm => "HVM",
            DomKind::Pvh => "PVH",
            DomKind::HvmOrPvh => "HVM/PVH",
            DomKind::Idle => "idle",
        }
    }
    pub fn is_pv(self) -> bool {
        matches!(self, DomKind::Pv64 | DomKind::Pv32)
    }
    /// HVM, PVH or either.
    pub fn is_hvm(self) -> bool {
        matches!(self, DomKind::Hvm | DomKind::Pvh | DomKind::HvmOrPvh)
    }
}

/// The legacy devices an HVM guest has and a PVH guest lacks: `XEN_X86_EMU_HPET` (1),
/// `PM` (2), `RTC` (3), `PIC` (5), `VGA` (6), `PIT` (8) (`X:xen/include/public/arch-x86/xen.h@4.17.0`).
/// Xen accepts for HVM domUs either all emulations or only the LAPIC (PVH), and
/// LAPIC|IOAPIC|VPCI for a PVH dom0 (`emulation_flags_ok`, `X:xen/arch/x86/domain.c@4.17.0`).
const EMU_LEGACY: u64 = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 8);

/// HVM or PVH from `arch.emulation_flags`.
pub fn hvm_kind(emulation_flags: Option<u64>) -> DomKind {
    match emulation_flags {
        Some(f) if f & EMU_LEGACY == 0 => DomKind::Pvh,
        Some(_) => DomKind::Hvm,
        None => DomKind::HvmOrPvh,
    }
}

/// One vCPU and its roots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VcpuInfo {
    pub addr: Vaddr,
    pub id: u32,
    /// The physical CPU it last ran on (or runs on).
    pub processor: u32,
    /// `is_running`: state is loaded on `processor` now.
    pub running: bool,
    /// `runstate.state`: 0 running, 1 runnable, 2 blocked, 3 offline.
    pub runstate: u32,
    /// `arch.flags` bit 0 (`TF_kernel_mode`): a PV vCPU in guest-kernel mode.
    pub kernel_mode: bool,
    /// `arch.guest_table`: mfn of the PV guest-kernel L4.
    pub guest_table: Option<Mfn>,
    /// `arch.guest_table_user`: mfn of the PV guest-user L4.
    pub guest_table_user: Option<Mfn>,
    /// `arch.hvm.monitor_table`: mfn of an HVM vCPU's monitor L4.
    pub monitor_table: Option<Mfn>,
    /// `arch.cr3`: what Xen loads into CR3 for this vCPU (PCID bits included).
    #[serde(serialize_with = "crate::addr::hex")]
    pub cr3: u64,
    /// `arch.hvm.guest_cr[3]`: the HVM guest's own CR3 (guest-physical).
    #[serde(serialize_with = "crate::addr::hex_opt")]
    pub guest_cr3: Option<u64>,
}

impl VcpuInfo {
    pub fn runstate_name(&self) -> &'static str {
        match self.runstate {
            0 => "running",
            1 => "runnable",
            2 => "blocked",
            3 => "offline",
            _ => "?",
        }
    }
}

/// One domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomainInfo {
    pub addr: Vaddr,
    pub id: u16,
    pub kind: DomKind,
    /// HAP (EPT/NPT) for HVM.
    pub hap: bool,
    pub max_vcpus: u32,
    pub tot_pages: u32,
    pub max_pages: u32,
    pub is_dying: u32,
    /// Hypervisor VA of the shared-info page.
    pub shared_info: Vaddr,
    /// `arch.p2m`: the host p2m (used for HVM/PVH).
    pub p2m: Vaddr,
    pub vcpus: Vec<VcpuInfo>,
}

/// Something wrong found while walking the lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub what: String,
}

/// Everything `domains` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Domains {
    pub domains: Vec<DomainInfo>,
    pub problems: Vec<Problem>,
}

/// Why a pointer read from a hypervisor structure cannot be followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PointerError {
    #[error("NULL")]
    Null,
    /// Outside the direct map and the image, in `region` (`None`: non-canonical or in
    /// no region xenwalk knows).
    #[error("points outside the direct map and the image ({})", region.unwrap_or("non-canonical"))]
    Outside { region: Option<&'static str> },
    #[error("points nowhere the dump holds: {error}")]
    Unreadable { error: VaReadError },
}

/// Why a field, a domain or the domain list cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    #[error(transparent)]
    Offset(#[from] OffsetError),
    #[error(transparent)]
    Read(#[from] VaReadError),
    #[error(transparent)]
    Pointer(#[from] PointerError),
    /// The pointer field `key` holds `pointer`, which cannot be followed.
    #[error("{key} = {pointer}: {error}")]
    PointerField { key: String, pointer: Vaddr, error: PointerError },
    /// No symbols are loaded (CLI: pass `--xen-syms`).
    #[error("domains need --xen-syms")]
    NoSymbols,
    #[error("xen-syms has no domain_list")]
    NoDomainList,
    /// The variable `domain_list` itself cannot be read.
    #[error("domain_list: {0}")]
    DomainList(VaReadError),
}

/// Reads fields of hypervisor structures.
pub struct Fields<'a> {
    pub xen: &'a Xen,
    pub mem: &'a dyn PhysMem,
    pub offs: Offsets<'a>,
    pub root: Option<Maddr>,
}

impl<'a> Fields<'a> {
    pub fn new(xen: &'a Xen, mem: &'a dyn PhysMem, vmcoreinfo: Option<&str>) -> Fields<'a> {
        Fields { xen, mem, offs: xen.offsets_in(vmcoreinfo, mem), root: xen.idle_root() }
    }

    /// Read `size` bytes (1, 2, 4, 8) of field `key` of the object at `base`.
    pub fn field(&self, base: Vaddr, key: &str, size: u64) -> Result<u64, DomainError> {
        let off = self.offs.offset(key)?.value;
        Ok(self.read(Vaddr(base.0.wrapping_add(off)), size)?)
    }

    /// Read `size` bytes at a hypervisor VA.
    pub fn read(&self, va: Vaddr, size: u64) -> Result<u64, VaReadError> {
        let v = self.xen.read_va_u64(self.mem, self.root, va)?;
        Ok(match size {
            1 => v & 0xff,
            2 => v & 0xffff,
            4 => v & 0xffff_ffff,
            _ => v,
        })
    }

    /// A pointer field: must be a canonical hypervisor VA in the direct map (where
    /// Xen allocates domains and vCPUs) or the image, and readable.
    pub fn pointer(&self, base: Vaddr, key: &str) -> Result<Vaddr, DomainError> {
        let p = Vaddr(self.field(base, key, 8)?);
        self.check_pointer(p).map_err(|error| DomainError::PointerField { key: key.to_string(), pointer: p, error })?;
        Ok(p)
    }

    fn check_pointer(&self, p: Vaddr) -> Result<(), PointerError> {
        if p.0 == 0 {
            return Err(PointerError::Null);
        }
        let region = self.xen.region(p).map(|r| r.name);
        if !matches!(region, Some("directmap" | "directmap_high" | "xen_image")) {
            return Err(PointerError::Outside { region });
        }
        self.read(p, 8).map(|_| ()).map_err(|error| PointerError::Unreadable { error })
    }
}

fn mfn_or_none(v: u64) -> Option<Mfn> {
    (v != 0 && v >> 40 == 0).then_some(Mfn(v))
}

fn read_vcpu(f: &Fields<'_>, v: Vaddr, hvm: bool) -> Result<VcpuInfo, DomainError> {
    Ok(VcpuInfo {
        addr: v,
        id: f.field(v, "vcpu.vcpu_id", 4)? as u32,
        processor: f.field(v, "vcpu.processor", 4)? as u32,
        running: f.field(v, "vcpu.is_running", 1)? != 0,
        runstate: f.field(v, "vcpu.runstate.state", 4)? as u32,
        kernel_mode: !hvm && f.field(v, "vcpu.arch.flags", 8)? & 1 != 0,
        guest_table: mfn_or_none(f.field(v, "vcpu.arch.guest_table", 8)?),
        guest_table_user: if hvm { None } else { mfn_or_none(f.field(v, "vcpu.arch.guest_table_user", 8)?) },
        monitor_table: if hvm { mfn_or_none(f.field(v, "vcpu.arch.hvm.monitor_table", 8)?) } else { None },
        cr3: f.field(v, "vcpu.arch.cr3", 8)?,
        guest_cr3: if hvm {
            let off = f.offs.offset("vcpu.arch.hvm.guest_cr")?.value + 3 * 8;
            Some(f.read(Vaddr(v.0 + off), 8)?)
        } else {
            None
        },
    })
}

fn read_domain(f: &Fields<'_>, d: Vaddr, problems: &mut Vec<Problem>) -> Result<DomainInfo, DomainError> {
    let id = f.field(d, "domain.domain_id", 2)? as u16;
    let options = f.field(d, "domain.options", 4)?;
    let hvm = options & CDF_HVM != 0;
    let kind = if id == DOMID_IDLE {
        DomKind::Idle
    } else if hvm {
        hvm_kind(f.field(d, "domain.arch.emulation_flags", 4).ok())
    } else if f.field(d, "domain.arch.pv.is_32bit", 1)? != 0 {
        DomKind::Pv32
    } else {
        DomKind::Pv64
    };
    let max_vcpus = f.field(d, "domain.max_vcpus", 4)? as u32;
    let mut info = DomainInfo {
        addr: d,
        id,
        kind,
        hap: hvm && options & CDF_HAP != 0,
        max_vcpus,
        tot_pages: f.field(d, "domain.tot_pages", 4)? as u32,
        max_pages: f.field(d, "domain.max_pages", 4)? as u32,
        is_dying: f.field(d, "domain.is_dying", 4)? as u32,
        shared_info: Vaddr(f.field(d, "domain.shared_info", 8)?),
        p2m: Vaddr(f.field(d, "domain.arch.p2m", 8)?),
        vcpus: Vec::new(),
    };
    if u64::from(max_vcpus) > MAX_VCPUS {
        problems.push(Problem { what: format!("domain {id} at {d}: max_vcpus {max_vcpus} is absurd; vCPUs not read") });
        return Ok(info);
    }
    if max_vcpus == 0 {
        return Ok(info);
    }
    let array = match f.pointer(d, "domain.vcpu") {
        Ok(a) => a,
        Err(e @ DomainError::Offset(_)) => return Err(e),
        Err(e) => {
            problems.push(Problem { what: format!("domain {id} at {d}: {e}") });
            return Ok(info);
        }
    };
    for i in 0..u64::from(max_vcpus) {
        let slot = Vaddr(array.0 + i * 8);
        let v = match f.read(slot, 8) {
            Ok(0) => continue, // not (yet) created
            Ok(v) => Vaddr(v),
            Err(e) => {
                problems.push(Problem { what: format!("domain {id}: vcpu[{i}] at {slot}: {e}") });
                continue;
            }
        };
        if let Err(e) = f.check_pointer(v) {
            problems.push(Problem { what: format!("domain {id}: vcpu[{i}] = {v} {e}") });
            continue;
        }
        match read_vcpu(f, v, hvm) {
            Ok(vi) => {
                if u64::from(vi.id) != i {
                    problems.push(Problem { what: format!("domain {id}: vcpu[{i}] at {v} says vcpu_id {}", vi.id) });
                }
                match f.field(v, "vcpu.domain", 8) {
                    Ok(back) if back != d.0 => problems.push(Problem {
                        what: format!("domain {id}: vcpu[{i}] at {v} belongs to domain {:#x}, not {d}", back),
                    }),
                    _ => {}
                }
                info.vcpus.push(vi);
            }
            // Missing knowledge, not a broken dump: no vCPU of any domain can be read.
            Err(e @ DomainError::Offset(_)) => return Err(e),
            Err(e) => problems.push(Problem { what: format!("domain {id}: vcpu[{i}] at {v}: {e}") }),
        }
    }
    Ok(info)
}

/// Walk `domain_list`, then the idle domain through `idle_vcpu[0]`.
pub fn domains(f: &Fields<'_>) -> Result<Domains, DomainError> {
    let syms = f.xen.syms.as_ref().ok_or(DomainError::NoSymbols)?;
    let list = syms.addr("domain_list").ok_or(DomainError::NoDomainList)?;
    let mut out = Domains::default();
    let mut seen = HashSet::new();
    let mut p = Vaddr(f.read(Vaddr(list), 8).map_err(DomainError::DomainList)?);
    let mut prev_id: Option<u16> = None;
    while p.0 != 0 {
        if out.domains.len() >= MAX_DOMAINS {
            out.problems.push(Problem { what: format!("more than {MAX_DOMAINS} domains on domain_list: stopped") });
            break;
        }
        if !seen.insert(p.0) {
            out.problems.push(Problem {
                what: format!(
                    "domain_list loops: {p} is reached twice (after domain {})",
                    prev_id.map_or("?".into(), |i| i.to_string())
                ),
            });
            break;
        }
        if let Err(e) = f.check_pointer(p) {
            out.problems.push(Problem { what: format!("domain_list link {p} {e}") });
            break;
        }
        match read_domain(f, p, &mut out.problems) {
            Ok(d) => {
                if prev_id.is_some_and(|pi| d.id <= pi) {
                    out.problems.push(Problem {
                        what: format!("domain_list is not sorted: domain {} after {}", d.id, prev_id.unwrap_or(0)),
                    });
                }
                prev_id = Some(d.id);
                out.domains.push(d);
            }
            // An offset no source knows is missing knowledge, not a finding about
            // this dump: the caller says which and how to give it.
            Err(e @ DomainError::Offset(_)) => return Err(e),
            Err(e) => {
                out.problems.push(Problem { what: format!("domain at {p}: {e}") });
                break;
            }
        }
        p = match f.field(p, "domain.next_in_list", 8) {
            Ok(n) => Vaddr(n),
            Err(e @ DomainError::Offset(_)) => return Err(e),
            Err(e) => {
                out.problems.push(Problem { what: format!("domain at {p}: next_in_list: {e}") });
                break;
            }
        };
    }
    // The idle domain is on no list: reach it through idle_vcpu[0]->domain.
    if let Some(iv) = syms.addr("idle_vcpu") {
        let idle = f.read(Vaddr(iv), 8).map(Vaddr).map_err(DomainError::from).and_then(|v| {
            f.check_pointer(v)?;
            f.pointer(v, "vcpu.domain")
        });
        match idle {
            Ok(d) => match read_domain(f, d, &mut out.problems) {
                Ok(di) => out.domains.push(di),
                Err(e @ DomainError::Offset(_)) => return Err(e),
                Err(e) => out.problems.push(Problem { what: format!("idle domain at {d}: {e}") }),
            },
            Err(e @ DomainError::Offset(_)) => return Err(e),
            Err(e) => out.problems.push(Problem { what: format!("idle_vcpu[0]: {e}") }),
        }
    }
    Ok(out)
}

/// Which root of a vCPU to walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// PV: the guest-kernel L4 (`arch.guest_table`); HVM: the guest's own CR3
    /// (`arch.hvm.guest_cr[3]`), walked through the p2m.
    Guest,
    /// PV: the guest-user L4 (`arch.guest_table_user`).
    User,
    /// HVM: Xen's monitor table (`arch.hvm.monitor_table`).
    Monitor,
    /// What Xen loads into CR3 for the vCPU (`arch.cr3`).
    Cr3,
}

impl TableKind {
    /// The option value (`--table NAME`).
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Guest => "guest",
            TableKind::User => "user",
            TableKind::Monitor => "monitor",
            TableKind::Cr3 => "cr3",
        }
    }
}

impl DomainInfo {
    /// The vCPU with id `v`.
    pub fn vcpu(&self, v: u32) -> Option<&VcpuInfo> {
        self.vcpus.iter().find(|x| x.id == v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hvm_or_pvh_from_emulation_flags() {
        assert_eq!(hvm_kind(Some(1)), DomKind::Pvh, "PVH domU: LAPIC only");
        assert_eq!(hvm_kind(Some(1 | 1 << 4 | 1 << 10)), DomKind::Pvh, "PVH dom0: LAPIC, IOAPIC, VPCI");
        assert_eq!(hvm_kind(Some(0x3ff & !(1 << 10))), DomKind::Hvm, "HVM: every emulation but VPCI");
        assert_eq!(hvm_kind(None), DomKind::HvmOrPvh);
    }
}
