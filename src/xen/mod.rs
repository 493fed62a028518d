//! Xen knowledge: the hypervisor's symbols, its virtual layout per version, where its
//! image sits in machine memory (`xen_phys_start`), its own address translation
//! (`__virt_to_maddr` with PDX compression), and the roots it keeps.
//!
//! Everything here works from symbols alone (no DWARF), because that is what people
//! have: Debian's `xen-syms` has a symbol table and nothing more.

pub mod annotate;
pub mod domains;
pub mod dwarf;
pub mod expr;
pub mod hvm;
pub mod image;
pub mod infer;
pub mod layout;
pub mod offsets;
pub mod p2m;
pub mod profile;
pub mod roots;
pub mod symbols;

use crate::addr::{Maddr, Mfn, Vaddr};
use crate::dump::Dump;
use crate::mem::{PhysMem, ReadError};
use crate::paging::{Level, WalkOptions, walk};
use layout::{Layout, Region};
use serde::Serialize;
use symbols::{XenSyms, XenVersion};

/// Where a value came from; `xenwalk info` shows it for every value used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A command-line option.
    Option,
    /// Xen's CRASH_INFO note.
    CrashInfo,
    /// Decoded from `xen-syms`.
    XenSyms,
    /// Found by matching `xen-syms`' bytes against the dump.
    Discovered,
    /// Read from the dump through the symbols.
    Dump,
    /// The dump's VMCOREINFO_XEN note.
    Vmcoreinfo,
    /// DWARF in `xen-syms`.
    Dwarf,
    /// A profile (`--profile`).
    Profile,
    /// xenwalk's built-in table for this build-id.
    Builtin,
    /// Inferred from the dump's own structures (`xen::infer`).
    Inferred,
    /// Nothing said otherwise.
    Default,
}

impl Source {
    pub fn describe(&self) -> &'static str {
        match self {
            Source::Option => "command line",
            Source::CrashInfo => "Xen CRASH_INFO note",
            Source::XenSyms => "xen-syms",
            Source::Discovered => "discovered: xen-syms' .rodata matched in the dump",
            Source::Dump => "read from the dump",
            Source::Vmcoreinfo => "VMCOREINFO_XEN note",
            Source::Dwarf => "DWARF",
            Source::Profile => "profile",
            Source::Builtin => "built-in table for this build-id",
            Source::Inferred => "inferred from the dump (xenwalk info lists the evidence)",
            Source::Default => "default",
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// What the user told us about the hypervisor.
#[derive(Clone, Debug, Default)]
pub struct XenOptions {
    /// `--xen-version MAJOR.MINOR`.
    pub version: Option<(u32, u32)>,
    /// `--xen-phys-start`.
    pub xen_phys_start: Option<u64>,
    /// Where struct offsets come from (`--offsets-from`, `--offset`, `--profile`).
    pub offsets: offsets::OffsetConfig,
}

/// PDX mask-compression variables (`X:xen/common/pdx.c@4.17.0`; reference §3.5),
/// read from the dump through the symbols; the identity without them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Pdx {
    pub hole_shift: u64,
    #[serde(serialize_with = "crate::addr::hex")]
    pub ma_va_bottom_mask: u64,
    #[serde(serialize_with = "crate::addr::hex")]
    pub ma_top_mask: u64,
    #[serde(serialize_with = "crate::addr::hex")]
    pub pfn_hole_mask: u64,
    #[serde(serialize_with = "crate::addr::hex")]
    pub pfn_top_mask: u64,
    #[serde(serialize_with = "crate::addr::hex")]
    pub pfn_pdx_bottom_mask: u64,
}

impl Pdx {
    /// No compression: pdx = pfn.
    pub const IDENTITY: Pdx = Pdx {
        hole_shift: 0,
        ma_va_bottom_mask: u64::MAX,
        ma_top_mask: 0,
        pfn_hole_mask: 0,
        pfn_top_mask: 0,
        pfn_pdx_bottom_mask: u64::MAX,
    };

    /// Direct-map offset of a machine address (`maddr_to_directmapoff`).
    pub fn maddr_to_off(&self, ma: u64) -> u64 {
        (ma & self.ma_va_bottom_mask) | ((ma & self.ma_top_mask) >> self.hole_shift)
    }
    /// Machine address of a direct-map offset (`directmapoff_to_maddr`).
    pub fn off_to_maddr(&self, off: u64) -> u64 {
        (off & self.ma_va_bottom_mask) | (off.wrapping_shl(self.hole_shift as u32) & self.ma_top_mask)
    }
    /// Whether a machine address falls in the compressed-out hole (no direct map).
    pub fn in_hole(&self, ma: u64) -> bool {
        (ma >> 12) & self.pfn_hole_mask != 0
    }
}

/// Why a hypervisor VA has no machine address by formula.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum V2mError {
    #[error("{va} is in {region}, which is not linearly mapped: only the direct map and the image are")]
    NotLinear { va: Vaddr, region: &'static str },
    #[error(
        "{va} is in the image slot but outside the image itself (_start..__2M_rwdata_end): stubs, livepatch and the executable fixmap are not linear"
    )]
    OutsideImage { va: Vaddr },
    /// The image's machine address is unknown (CLI: `--xen-syms` to discover it, or
    /// `--xen-phys-start`).
    #[error("xen_phys_start is unknown: pass --xen-syms (to discover it) or --xen-phys-start")]
    NoPhysStart,
    #[error("{va} is not a hypervisor address")]
    NotXen { va: Vaddr },
}

/// Why 8 bytes at a hypervisor VA (or an M2P entry) could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VaReadError {
    /// The walk of the root does not translate `va`: it stops at `level`.
    #[error("the walk stops at {level}")]
    WalkStops { va: Vaddr, level: Level },
    /// The walk neither translates `va` nor says where it stops.
    #[error("no walk")]
    NoWalk { va: Vaddr },
    /// `va` is not linear for Xen's own formula and there is no root to walk.
    #[error("no root to walk")]
    NoRoot { va: Vaddr },
    /// The M2P entry of `mfn` lies beyond the address space.
    #[error("mfn too large")]
    MfnTooLarge { mfn: Mfn },
    /// The machine address the VA translates to is not in the dump.
    #[error(transparent)]
    Memory(#[from] ReadError),
}

/// The hypervisor as seen in one dump.
pub struct Xen {
    pub syms: Option<XenSyms>,
    pub version: Option<Sourced<XenVersion>>,
    pub layout: Sourced<Layout>,
    pub xen_phys_start: Option<Sourced<u64>>,
    /// How discovery went, when it ran.
    pub discovery: Option<image::Discovery>,
    pub pdx: Sourced<Pdx>,
    /// Whether `xen-syms` matches the image in the dump, and why not.
    pub image_check: Option<image::ImageCheck>,
    /// Where struct offsets come from.
    pub offsets: offsets::OffsetConfig,
    /// Offsets inferred from the dump, once asked for ([`Xen::inferred`]).
    inferred: std::sync::OnceLock<infer::Inferred>,
}

impl Xen {
    /// Whether the dump says it is Xen's (a Xen note) without any symbols.
    pub fn dump_is_xen(dump: &Dump) -> bool {
        dump.notes.xen_crash_info.is_some() || dump.notes.vmcoreinfo_xen.is_some()
    }

    /// Work out what can be known about the hypervisor in `dump`.
    pub fn new(dump: &Dump, syms: Option<XenSyms>, opts: &XenOptions) -> Xen {
        let crash_version = dump.notes.xen_crash_info.as_ref().map(|c| XenVersion {
            major: c.major as u32,
            minor: c.minor as u32,
            extra: None,
        });
        let version = if let Some((major, minor)) = opts.version {
            Some(Sourced { value: XenVersion { major, minor, extra: None }, source: Source::Option })
        } else if let Some(v) = crash_version {
            Some(Sourced { value: v, source: Source::CrashInfo })
        } else {
            syms.as_ref().and_then(|s| s.version.clone()).map(|v| Sourced { value: v, source: Source::XenSyms })
        };

        let mut xen = Xen {
            syms,
            version,
            layout: Sourced { value: Layout::for_version(4, 17, false), source: Source::Default },
            xen_phys_start: None,
            discovery: None,
            pdx: Sourced { value: Pdx::IDENTITY, source: Source::Default },
            image_check: None,
            offsets: opts.offsets.clone(),
            inferred: std::sync::OnceLock::new(),
        };
        if let Some(v) = &xen.version {
            xen.layout =
                Sourced { value: Layout::for_version(v.value.major, v.value.minor, false), source: v.source.clone() };
        }
        // The image's place: option, note, then discovery.
        let from_note = dump.notes.xen_crash_info.as_ref().and_then(|c| c.xen_phys_start);
        if let Some(x) = opts.xen_phys_start {
            xen.xen_phys_start = Some(Sourced { value: x, source: Source::Option });
        } else if let Some(x) = from_note {
            xen.xen_phys_start = Some(Sourced { value: x, source: Source::CrashInfo });
        } else if let Some(s) = &xen.syms {
            let d = image::discover(dump.mem.as_ref(), s);
            if let Some(x) = d.chosen {
                xen.xen_phys_start = Some(Sourced { value: x, source: Source::Discovered });
            }
            xen.discovery = Some(d);
        }
        if let (Some(s), Some(x)) = (&xen.syms, &xen.xen_phys_start) {
            xen.image_check = Some(image::check(dump.mem.as_ref(), s, x.value));
        }
        // BIGMEM: the frame table's base, read from `_frame_table.0`'s value (the
        // variable VMCOREINFO_XEN calls `frame_table`).
        if let Some(ft) = xen.read_sym_u64(dump.mem.as_ref(), "_frame_table.0") {
            if ft == 0xffff_8300_0000_0000 {
                let (ma, mi) = (xen.layout.value.major, xen.layout.value.minor);
                xen.layout.value = Layout::for_version(ma, mi, true);
            }
        }
        // PDX variables.
        let names = [
            "pfn_pdx_hole_shift",
            "ma_va_bottom_mask",
            "ma_top_mask",
            "pfn_hole_mask",
            "pfn_top_mask",
            "pfn_pdx_bottom_mask",
        ];
        let vals: Vec<Option<u64>> = names.iter().map(|n| xen.read_sym_u64(dump.mem.as_ref(), n)).collect();
        if let [Some(a), Some(b), Some(c), Some(d), Some(e), Some(f)] = vals[..] {
            xen.pdx = Sourced {
                value: Pdx {
                    hole_shift: a,
                    ma_va_bottom_mask: b,
                    ma_top_mask: c,
                    pfn_hole_mask: d,
                    pfn_top_mask: e,
                    pfn_pdx_bottom_mask: f,
                },
                source: Source::Dump,
            };
        }
        xen
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout.value
    }

    /// Machine address of an image VA by the image formula, if `xen_phys_start` is
    /// known: PA = VA − XEN_VIRT_START + xen_phys_start (reference §3.2).
    pub fn image_maddr(&self, va: Vaddr) -> Option<Maddr> {
        let xvs = self.xen_virt_start();
        let (va, x) = (va.0, self.xen_phys_start.as_ref()?.value);
        (va >= xvs && va - xvs < (1 << 30)).then(|| Maddr(va - xvs + x))
    }

    /// `XEN_VIRT_START`: from the symbols when loaded, else the layout's.
    pub fn xen_virt_start(&self) -> u64 {
        self.syms.as_ref().and_then(|s| s.xen_virt_start()).unwrap_or(self.layout().xen_virt_start)
    }

    /// The image's linear part, `_start`..`__2M_rwdata_end` (or `_end`), if known.
    fn image_span(&self) -> Option<(u64, u64)> {
        let s = self.syms.as_ref()?;
        let start = s.addr("_start")?;
        let end = s.addr("__2M_rwdata_end").or_else(|| s.addr("_end"))?;
        Some((start, end))
    }

    /// Read a u64 variable of the image through the image formula.
    pub fn read_sym_u64(&self, mem: &dyn PhysMem, name: &str) -> Option<u64> {
        let va = self.syms.as_ref()?.addr(name)?;
        mem.read_u64(self.image_maddr(Vaddr(va))?).ok()
    }

    /// `per_cpu(name, cpu)`: the u64 per-CPU variable `per_cpu__<name>` of `cpu`,
    /// `*(&per_cpu__name + __per_cpu_offset[cpu])` (reference §3.4); `None` for a CPU
    /// without a per-CPU area (`INVALID_PERCPU_AREA`, `X:xen/arch/x86/percpu.c@4.17.0`)
    /// or what the dump cannot give.
    pub fn per_cpu_u64(&self, mem: &dyn PhysMem, name: &str, cpu: usize) -> Option<u64> {
        let syms = self.syms.as_ref()?;
        let offs = syms.lookup("__per_cpu_offset")?;
        if cpu as u64 >= offs.size / 8 {
            return None;
        }
        let var = syms.addr(&format!("per_cpu__{name}"))?;
        let off = mem.read_u64(self.image_maddr(Vaddr(offs.addr + cpu as u64 * 8))?).ok()?;
        let invalid = syms.addr("__per_cpu_start").map(|p| 0x8000_0000_0000_0000u64.wrapping_sub(p));
        if Some(off) == invalid {
            return None;
        }
        self.read_va_u64(mem, self.idle_root(), Vaddr(var.wrapping_add(off))).ok()
    }

    /// `__virt_to_maddr`: the hypervisor's own formula (direct map with PDX, or the
    /// image), without walking (`X:xen/arch/x86/include/asm/x86_64/page.h@4.17.0`).
    pub fn virt_to_maddr(&self, va: Vaddr) -> Result<Maddr, V2mError> {
        let l = self.layout();
        if va.0 >= l.directmap_start && va.0 < l.directmap_end {
            return Ok(Maddr(self.pdx.value.off_to_maddr(va.0 - l.directmap_start)));
        }
        let xvs = self.xen_virt_start();
        if va.0 >= xvs && va.0 - xvs < (1 << 30) {
            if let Some((s, e)) = self.image_span() {
                if va.0 < s || va.0 >= e {
                    return Err(V2mError::OutsideImage { va });
                }
            }
            return self.image_maddr(va).ok_or(V2mError::NoPhysStart);
        }
        match l.region(va) {
            Some(r) => Err(V2mError::NotLinear { va, region: r.name }),
            None => Err(V2mError::NotXen { va }),
        }
    }

    /// `__maddr_to_virt`: the direct-map VA of a machine address.
    pub fn maddr_to_virt(&self, ma: Maddr) -> Option<Vaddr> {
        let l = self.layout();
        if self.pdx.value.in_hole(ma.0) {
            return None;
        }
        let va = l.directmap_start.checked_add(self.pdx.value.maddr_to_off(ma.0))?;
        (va < l.directmap_end).then_some(Vaddr(va))
    }

    /// The image VA of a machine address inside the image, if any.
    pub fn image_va_of(&self, ma: Maddr) -> Option<Vaddr> {
        let x = self.xen_phys_start.as_ref()?.value;
        let (s, e) = self.image_span()?;
        let va = ma.0.checked_sub(x)?.checked_add(self.xen_virt_start())?;
        (va >= s && va < e).then_some(Vaddr(va))
    }

    /// The region of `va`.
    pub fn region(&self, va: Vaddr) -> Option<&Region> {
        self.layout().region(va)
    }

    /// "region: symbol+off (section)" for a VA, as far as known; with a root, the
    /// region as that root maps it (see [`Xen::region_in`]).
    pub fn describe_va(&self, va: Vaddr, in_root: Option<(&dyn PhysMem, Maddr)>) -> Option<String> {
        let region = match in_root {
            Some((mem, root)) => self.region_in(mem, root, va)?,
            None => self.region(va)?,
        };
        let mut s = region.name.to_string();
        if let Some(syms) = &self.syms {
            if let Some(name) = syms.name_of(va) {
                s.push_str(": ");
                s.push_str(&name);
            }
            if let Some(sec) = syms.section_of(va) {
                s.push_str(&format!(" ({})", sec.name));
            }
        }
        Some(s)
    }

    /// What a table page at `ma` is to the hypervisor: a static table of the image
    /// (`idle_pg_table`, `l3_xenmap`, …) and/or its direct-map alias.
    pub fn describe_table(&self, ma: Maddr) -> Option<String> {
        let page = Maddr(ma.0 & !0xfff);
        if let (Some(va), Some(syms)) = (self.image_va_of(page), &self.syms) {
            if let Some(name) = syms.name_of(va) {
                return Some(name);
            }
        }
        self.maddr_to_virt(page).map(|va| format!("heap, Xen sees it at {va}"))
    }

    /// Struct offsets and sizes for this build, from the sources asked (the dump's
    /// VMCOREINFO_XEN text is one of them).
    pub fn offsets<'a>(&'a self, vmcoreinfo: Option<&str>) -> offsets::Offsets<'a> {
        offsets::Offsets::with_config(self.syms.as_ref(), vmcoreinfo, &self.offsets)
    }

    /// As [`Xen::offsets`], with inference from `mem` (the dump this `Xen` was made
    /// from) as the last source, run once, when a key no other source knows is asked.
    pub fn offsets_in<'a>(&'a self, vmcoreinfo: Option<&str>, mem: &'a dyn PhysMem) -> offsets::Offsets<'a> {
        self.offsets(vmcoreinfo).with_inference(self, mem)
    }

    /// The offsets inferred from `mem`, computed on first use.
    pub fn inferred(&self, mem: &dyn PhysMem) -> &infer::Inferred {
        self.inferred.get_or_init(|| infer::Inferred::run(self, mem))
    }

    /// The idle root: `idle_pg_table` through the image formula.
    pub fn idle_root(&self) -> Option<Maddr> {
        let va = self.syms.as_ref()?.addr("idle_pg_table")?;
        self.image_maddr(Vaddr(va))
    }

    /// Cross-check of the formula against a walk of `root`: the machine address a
    /// walk gives for `va`, when it translates.
    pub fn walk_maddr(&self, mem: &dyn PhysMem, root: Maddr, va: Vaddr) -> Result<Maddr, VaReadError> {
        let w = walk(mem, root, va, WalkOptions::default());
        match (w.mapping(), w.stop()) {
            (Some(m), _) => Ok(m.maddr),
            (None, Some(s)) => Err(VaReadError::WalkStops { va, level: s.level }),
            _ => Err(VaReadError::NoWalk { va }),
        }
    }

    /// Read 8 bytes at a hypervisor VA: by formula where Xen's own is linear, else by
    /// walking `root`.
    pub fn read_va_u64(&self, mem: &dyn PhysMem, root: Option<Maddr>, va: Vaddr) -> Result<u64, VaReadError> {
        let ma = match self.virt_to_maddr(va) {
            Ok(ma) => ma,
            Err(_) => self.walk_maddr(mem, root.ok_or(VaReadError::NoRoot { va })?, va)?,
        };
        Ok(mem.read_u64(ma)?)
    }
}

/// `INVALID_M2P_ENTRY` (`X:xen/arch/x86/include/asm/mm.h@4.17.0`).
pub const INVALID_M2P_ENTRY: u64 = u64::MAX;
/// `SHARED_M2P_ENTRY`: a page owned by `dom_cow`.
pub const SHARED_M2P_ENTRY: u64 = u64::MAX - 1;

impl Xen {
    /// `mfn_valid()` as far as the dump tells: below `max_page` and outside the PDX
    /// hole (`X:xen/common/pdx.c@4.17.0`); `None` without `max_page`.
    pub fn mfn_valid(&self, mem: &dyn PhysMem, mfn: Mfn) -> Option<bool> {
        let max_page = self.read_sym_u64(mem, "max_page")?;
        Some(mfn.0 < max_page && mfn.0 & self.pdx.value.pfn_hole_mask == 0)
    }

    /// `hvm_funcs.name` ("VMX", "SVM"): which hardware virtualisation Xen set up,
    /// read through the first member of `struct hvm_function_table` (a `const char
    /// *`, first in every release); `None` without symbols, without HVM support or
    /// when unreadable.
    pub fn hvm_name(&self, mem: &dyn PhysMem) -> Option<String> {
        let root = self.idle_root();
        let p = self.read_va_u64(mem, root, Vaddr(self.syms.as_ref()?.addr("hvm_funcs")?)).ok()?;
        if p == 0 {
            return None;
        }
        let b = self.read_va_u64(mem, root, Vaddr(p)).ok()?.to_le_bytes();
        let s: String = b.iter().take_while(|&&c| c != 0).map(|&c| c as char).collect();
        (!s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric())).then_some(s)
    }

    /// `machine_to_phys_mapping[mfn]`, read through `root` (the read-write M2P at
    /// `RDWR_MPT_VIRT_START` is mapped in every root Xen builds, reference §5.1).
    pub fn m2p(&self, mem: &dyn PhysMem, root: Maddr, mfn: Mfn) -> Result<u64, VaReadError> {
        let va = mfn
            .0
            .checked_mul(8)
            .and_then(|o| o.checked_add(self.layout().rdwr_m2p_start))
            .ok_or(VaReadError::MfnTooLarge { mfn })?;
        let ma = self.walk_maddr(mem, root, Vaddr(va))?;
        Ok(mem.read_u64(ma)?)
    }

    /// The walk Xen's `show_page_walk()` makes for `va` from `root`
    /// (`X:xen/arch/x86/x86_64/traps.c@4.17.0`), as data: its rules are not the
    /// MMU's — it takes frames as `entry & PADDR_MASK & PAGE_MASK` (a large page's PAT
    /// bit included), prints the M2P value of each entry's frame (or
    /// `INVALID_M2P_ENTRY` when `!mfn_valid`), ignores reserved bits, and stops at a
    /// non-present entry, an invalid frame or a large page — so it is kept apart from
    /// the walker. [`crate::render::xen_style`] prints it line for line as Xen does.
    /// Where the dump lacks a value Xen had, the step says so.
    pub fn page_walk_as_xen(&self, mem: &dyn PhysMem, root: Maddr, va: Vaddr) -> XenPageWalk {
        use crate::paging::{Outcome, StopKind};
        // The typed walker reads the levels; Xen's rules only decide what it prints
        // and where it stops (`show_page_walk`, `X:xen/arch/x86/x86_64/mm.c@4.17.0`):
        // after an entry that is not present, a superpage, or whose frame is not
        // `mfn_valid` (where the typed walker would read on). Up to that cut both read
        // the same entries: the typed walker's only other stop, reserved bits at or
        // above MAXPHYADDR, names a frame past any machine's `max_page`, which Xen
        // stops at too.
        let mut out = XenPageWalk { va, steps: Vec::new() };
        let w = walk(mem, root, va, WalkOptions::default());
        let m2p_valid = self.read_sym_u64(mem, "machine_to_phys_mapping_valid").map(|v| v & 0xff != 0);
        for s in w.steps() {
            let e = s.entry.0;
            let mfn = (e & 0x000f_ffff_ffff_f000) >> 12;
            let valid = self.mfn_valid(mem, Mfn(mfn));
            let pfn = match (valid, m2p_valid) {
                (Some(true), Some(true) | None) => match self.m2p(mem, root, Mfn(mfn)) {
                    Ok(p) => XenPfn::Value(p),
                    Err(_) => XenPfn::Unknown,
                },
                (Some(false), _) | (_, Some(false)) => XenPfn::Value(INVALID_M2P_ENTRY),
                (None, _) => XenPfn::Unknown,
            };
            let level = s.level;
            let pse = level != Level::L4 && level != Level::L1 && e & crate::paging::entry::bits::PS != 0;
            out.steps.push(XenPageWalkStep { level, index: usize::from(s.index), entry: Ok(e), pfn, pse });
            if e & 1 == 0 || pse || valid == Some(false) {
                return out;
            }
        }
        // The level whose table the dump lacks: Xen would have read it.
        if let Outcome::Stopped(stop) = &w.outcome {
            if let StopKind::Unreadable(err) = stop.kind {
                let index = va.index_at(stop.level.shift());
                out.steps.push(XenPageWalkStep {
                    level: stop.level,
                    index,
                    entry: Err(err),
                    pfn: XenPfn::Unknown,
                    pse: false,
                });
            }
        }
        out
    }

    /// For each table a walk read, what code *inside Xen* reads if it uses that
    /// table's machine address as a pointer (the classic "zeros after the second
    /// level", reference §9 pitfall 2): the VA equal to the maddr, walked from the
    /// same root — instead of the direct-map alias it should have used.
    pub fn pointer_pitfalls(&self, mem: &dyn PhysMem, root: Maddr, w: &crate::paging::Walk) -> Vec<String> {
        let mut out = Vec::new();
        for s in w.steps().filter(|s| s.level != crate::paging::Level::L4) {
            let t = s.table;
            let Some(alias) = self.maddr_to_virt(t) else {
                continue;
            };
            let wrong = walk(mem, root, Vaddr(t.0), WalkOptions::default());
            let what = match (wrong.mapping(), wrong.stop()) {
                (Some(m), _) => {
                    format!("reads machine address {} instead (whatever this root maps at VA {})", m.maddr, Vaddr(t.0))
                }
                (None, Some(st)) => {
                    format!("faults: VA {} is not mapped in this root (the walk stops at {})", Vaddr(t.0), st.level)
                }
                _ => continue,
            };
            out.push(format!(
                "the {} table is at machine address {t}; Xen reaches it at {alias} (__maddr_to_virt). Code that uses {t} itself as a pointer {what}",
                s.level
            ));
        }
        out
    }
}

/// Slots 272–511 of a 64-bit PV root: the guest's own (reference §2.1).
pub const GUEST_PV_REGION: Region = Region {
    name: "guest_pv",
    start: 0xffff_8800_0000_0000,
    end: u64::MAX,
    what: "guest-owned in this root (a 64-bit PV guest's mappings; the direct map continues only in idle and HVM roots)",
};

impl Xen {
    /// The region of `va` in the address space of `root`: above slot 271 the idle
    /// and monitor tables map the direct map, PV roots map the guest's own memory.
    pub fn region_in(&self, mem: &dyn PhysMem, root: Maddr, va: Vaddr) -> Option<&Region> {
        let r = self.region(va)?;
        if !matches!(r.name, "directmap_high" | "guest_top") {
            return Some(r);
        }
        let slot = va.index_at(39) as u64 * 8;
        let here = mem.read_u64(Maddr((root.0 & !0xfff) + slot)).ok();
        let idle = self.idle_root().and_then(|i| mem.read_u64(i.wrapping_add(slot)).ok());
        match (here, idle) {
            (Some(h), Some(i)) if h != i && r.name == "directmap_high" => Some(&GUEST_PV_REGION),
            _ => Some(r),
        }
    }
}

/// Xen's own `show_page_walk()` of one VA ([`Xen::page_walk_as_xen`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenPageWalk {
    pub va: Vaddr,
    /// The lines after the header, one per level read (none for a non-canonical VA).
    pub steps: Vec<XenPageWalkStep>,
}

/// One `Ln[idx] = entry pfn` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenPageWalkStep {
    pub level: crate::paging::Level,
    pub index: usize,
    /// The entry, or why the dump cannot give it.
    pub entry: Result<u64, crate::mem::ReadError>,
    /// The M2P's value for the entry's frame, as Xen prints it.
    pub pfn: XenPfn,
    /// A large page (`(PSE)`).
    pub pse: bool,
}

/// The second column of a `show_page_walk()` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenPfn {
    /// What Xen prints: the M2P entry, or `INVALID_M2P_ENTRY`.
    Value(u64),
    /// The dump does not let us know it.
    Unknown,
}

/// What kind of L4 a root is (reference §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootKind {
    /// `idle_pg_table`.
    Idle,
    /// A 64-bit PV guest's L4: Xen-built (slot 258 maps itself) with the guest's own
    /// mappings above slot 271. Its entries hold machine frames.
    PvGuest,
    /// An HVM vCPU's monitor table: slot 256 empty, 260 present, no guest mappings.
    Monitor,
    /// Another Xen-built L4 (slot 258 maps itself).
    XenBuilt,
    /// A shadow L4 (slot 259 maps itself).
    Shadow,
    /// Nothing Xen recognisably built.
    Other,
}

impl RootKind {
    pub fn describe(self) -> &'static str {
        match self {
            RootKind::Idle => "idle_pg_table",
            RootKind::PvGuest => "a 64-bit PV guest's L4: its entries hold machine frames (pfns from the M2P)",
            RootKind::Monitor => "an HVM vCPU's monitor table (Xen only, no guest mappings)",
            RootKind::XenBuilt => "an L4 Xen built (slot 258 maps it onto itself)",
            RootKind::Shadow => "a shadow L4 (slot 259 maps it onto itself)",
            RootKind::Other => "not an L4 Xen recognisably built (no self-map at slot 258)",
        }
    }
}

impl Xen {
    /// Recognise `root` by its Xen slots.
    pub fn root_kind(&self, mem: &dyn PhysMem, root: Maddr) -> RootKind {
        let root = Maddr(root.0 & !0xfff);
        let idle = self.idle_root();
        if Some(root) == idle {
            return RootKind::Idle;
        }
        let Ok(page) = mem.page(root.mfn()) else { return RootKind::Other };
        let e = |i: usize| page.entry(i);
        let points_to_self = |i: usize| e(i) & 1 != 0 && e(i) & 0x000f_ffff_ffff_f000 == root.0;
        if points_to_self(258) {
            let idle_page = idle.and_then(|i| mem.page(i.mfn()).ok());
            let guest_above = match &idle_page {
                Some(ip) => (272..512).any(|i| e(i) != ip.entry(i)),
                None => (272..512).any(|i| e(i) != 0),
            };
            if e(256) & 1 == 0 && e(260) & 1 != 0 && !guest_above {
                RootKind::Monitor
            } else if guest_above || (0..256).any(|i| e(i) & 1 != 0) {
                RootKind::PvGuest
            } else {
                RootKind::XenBuilt
            }
        } else if points_to_self(259) {
            RootKind::Shadow
        } else {
            RootKind::Other
        }
    }
}
