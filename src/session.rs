//! A dump and what is known about the hypervisor in it, and the address spaces a
//! program can ask for.
//!
//! This is the library's front door: [`Session::open`] opens a dump, loads
//! `xen-syms` when given, works out the hypervisor (version, layout,
//! `xen_phys_start`) and checks that the two belong together; [`Session::space`]
//! turns a [`RootSpec`] — a CR3 value or expression, an L4 frame, a CPU's CR3 from the
//! notes, a domain's vCPU, a guest core's vCPU, or "whatever the dump suggests" — into
//! an [`AddressSpace`]: the [`Root`] and the memory its walks read (the machine's, or an
//! HVM guest's guest-physical memory through Xen's p2m). The command line is a thin
//! layer over these calls; a Python module or a gdb script would make the same ones.
//!
//! Errors are typed and name facts; the CLI turns them into sentences that name its
//! flags. Warnings are returned as data ([`Session::warnings`]), never printed here.

use crate::addr::{Gpa, Maddr, Mfn, Vaddr};
use crate::dump::{Dump, OpenError, OpenOptions};
use crate::mem::xlcore::GuestKind;
use crate::mem::{Absent, PhysMem};
use crate::paging::WalkOptions;
use crate::paging::root::{self, Root, RootInput, RootProblem};
use crate::parse::Expr;
use crate::xen::domains::{self, DomKind, DomainError, DomainInfo, TableKind};
use crate::xen::expr::ExprError;
use crate::xen::hvm::{GuestMemory, GuestPhys, HostP2m, HvmCore};
use crate::xen::p2m::P2mError;
use crate::xen::profile::{Profile, ProfileError};
use crate::xen::symbols::{SymsError, XenSyms};
use crate::xen::{Xen, XenOptions};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to open a dump and what is known about its hypervisor beforehand.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// Format, base of a raw image, tolerance of corrupt notes.
    pub open: OpenOptions,
    /// The hypervisor's ELF with symbols (DWARF optional).
    pub xen_syms: Option<PathBuf>,
    /// Forced version and `xen_phys_start`.
    pub xen: XenOptions,
    /// Go on when xen-syms does not match the dump (the mismatch becomes a warning).
    pub allow_mismatch: bool,
    /// Profiles (files, or directories searched by build-id) with the struct
    /// layouts of a stripped xen-syms' build; each must match the build.
    pub profiles: Vec<PathBuf>,
}

/// Why a session cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The dump cannot be opened or is malformed.
    #[error("{}", path.display())]
    Dump {
        path: PathBuf,
        #[source]
        source: OpenError,
    },
    /// The xen-syms file cannot be used.
    #[error("{}", path.display())]
    Syms {
        path: PathBuf,
        #[source]
        source: SymsError,
    },
    /// A profile cannot be used (unreadable, or of another build).
    #[error("profile {}", path.display())]
    Profile {
        path: PathBuf,
        #[source]
        source: ProfileError,
    },
    /// xen-syms is not the hypervisor in the dump (and mismatches are not allowed).
    #[error("{} does not match the hypervisor in {}: {}", syms.display(), dump.display(), problems.join("; "))]
    Mismatch { syms: PathBuf, dump: PathBuf, problems: Vec<String> },
}

/// Something worth saying about an opened session that does not stop it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionWarning {
    /// The dump opened with a problem (corrupt notes skipped, ...).
    Dump(String),
    /// xen-syms could not be checked against the image (e.g. the pages are absent).
    Unverifiable(Vec<String>),
    /// xen-syms does not match, and mismatches were allowed.
    Mismatch { syms: PathBuf, problems: Vec<String> },
    /// xen_phys_start could not be found: image addresses cannot be translated.
    NoPhysStart { why: String },
}

impl SessionWarning {
    /// The warning as one line, with the dump's path (`path`) where it names it.
    pub fn describe(&self, path: &Path) -> String {
        let p = path.display();
        match self {
            SessionWarning::Dump(w) => format!("warning: {p}: {w}"),
            SessionWarning::Unverifiable(problems) => format!("warning: {p}: {}", problems.join("; ")),
            SessionWarning::Mismatch { syms, problems } => {
                format!("WARNING: {} does not match the hypervisor in {p}: {}", syms.display(), problems.join("; "))
            }
            SessionWarning::NoPhysStart { why } => format!("warning: {p}: xen_phys_start not found: {why}"),
        }
    }
}

/// An opened dump and, when there is reason to, the hypervisor in it.
pub struct Session {
    pub dump: Dump,
    pub xen: Option<Xen>,
    /// What opening noticed (in the order found).
    pub warnings: Vec<SessionWarning>,
}

impl Session {
    /// Open the dump, load xen-syms, and work out the hypervisor when the dump is
    /// Xen's (its notes say so), symbols are given, or a version or base is forced.
    pub fn open(path: &Path, o: &SessionOptions) -> Result<Session, SessionError> {
        let dump = Dump::open(path, o.open).map_err(|source| SessionError::Dump { path: path.into(), source })?;
        let mut warnings: Vec<SessionWarning> = dump.warnings.iter().cloned().map(SessionWarning::Dump).collect();
        let syms = match &o.xen_syms {
            Some(p) => Some(XenSyms::load(p).map_err(|source| SessionError::Syms { path: p.clone(), source })?),
            None => None,
        };
        let mut xo = o.xen.clone();
        for p in &o.profiles {
            let prof = Profile::for_build(p, syms.as_ref())
                .map_err(|source| SessionError::Profile { path: p.clone(), source })?;
            xo.offsets.profiles.push(Arc::new(prof));
        }
        let wanted = syms.is_some() || xo.version.is_some() || xo.xen_phys_start.is_some() || Xen::dump_is_xen(&dump);
        let xen = wanted.then(|| Xen::new(&dump, syms, &xo));
        if let Some(xen) = &xen {
            let mut problems: Vec<String> = Vec::new();
            if let Some(c) = xen.image_check.as_ref().filter(|c| !c.ok) {
                if c.unverifiable {
                    warnings.push(SessionWarning::Unverifiable(c.problems.clone()));
                } else {
                    problems.extend(c.problems.iter().cloned());
                }
            }
            if let (Some(ci), Some(v)) =
                (&dump.notes.xen_crash_info, xen.syms.as_ref().and_then(|s| s.version.as_ref()))
            {
                if (ci.major, ci.minor) != (u64::from(v.major), u64::from(v.minor)) {
                    problems.push(format!("the dump's CRASH_INFO says Xen {}.{}, xen-syms is {v}", ci.major, ci.minor));
                }
            }
            if !problems.is_empty() {
                let syms = xen.syms.as_ref().map(|s| s.path.clone()).unwrap_or_default();
                if !o.allow_mismatch {
                    return Err(SessionError::Mismatch { syms, dump: path.into(), problems });
                }
                warnings.push(SessionWarning::Mismatch { syms, problems });
            }
            if let (Some(d), None) = (&xen.discovery, &xen.xen_phys_start) {
                warnings.push(SessionWarning::NoPhysStart { why: d.why.clone() });
            }
        }
        Ok(Session { dump, xen, warnings })
    }

    /// The dump's path.
    pub fn path(&self) -> &Path {
        &self.dump.path
    }

    /// The machine memory of the dump.
    pub fn mem(&self) -> &dyn PhysMem {
        self.dump.mem.as_ref()
    }

    /// The hypervisor, when its symbols are known.
    fn xen_with_syms(&self) -> Option<&Xen> {
        self.xen.as_ref().filter(|x| x.syms.is_some())
    }

    /// Evaluate an address expression: a value, or an expression over the
    /// hypervisor's symbols and structures (needs xen-syms).
    pub fn resolve(&self, e: &Expr) -> Result<u64, ResolveError> {
        match e {
            Expr::Value(v) => Ok(*v),
            Expr::Symbolic(text) => {
                let Some(xen) = self.xen_with_syms() else {
                    return Err(ResolveError::NeedsSymbols { text: text.clone() });
                };
                let ctx = crate::xen::expr::Ctx { xen, mem: self.mem(), root: xen.idle_root() };
                crate::xen::expr::eval(text, &ctx, self.dump.notes.vmcoreinfo_xen.as_deref())
                    .map_err(ResolveError::Eval)
            }
        }
    }

    /// The CR3 value an expression gives: a value as it is; `*expr`, the value stored
    /// at the object (`*idle_vcpu[0]->arch.cr3`); otherwise the object itself is the
    /// L4 (`idle_pg_table`), and its machine address is the value.
    pub fn cr3_value(&self, e: &Expr) -> Result<u64, RootError> {
        match e {
            Expr::Value(v) => Ok(*v),
            Expr::Symbolic(t) if t.starts_with('*') => self.resolve(e).map_err(RootError::Resolve),
            sym => {
                let va = self.resolve(sym).map_err(RootError::Resolve)?;
                let x = self.xen.as_ref().ok_or(RootError::NeedsXen)?;
                x.virt_to_maddr(Vaddr(va))
                    .map(|m| m.0)
                    .map_err(|e| RootError::NotLinear { va: Vaddr(va), why: e.to_string() })
            }
        }
    }

    /// The domains and vCPUs, read from the hypervisor's lists.
    pub fn domains(&self) -> Result<domains::Domains, RootError> {
        let x = self.xen_with_syms().ok_or(RootError::NeedsSymbols)?;
        let f = domains::Fields::new(x, self.mem(), self.dump.notes.vmcoreinfo_xen.as_deref());
        domains::domains(&f).map_err(RootError::Domains)
    }

    /// The address space `spec` names. A root whose L4 lies wholly outside the image
    /// is an error; every other problem of the root is kept in [`Root::problem`] for
    /// the walks to diagnose.
    pub fn space(&self, spec: &RootSpec, opts: WalkOptions) -> Result<AddressSpace<'_>, RootError> {
        let space = self.space_unchecked(spec, opts)?;
        if let Some((RootProblem::Absent(why @ Absent::OutsideImage { .. }), Some(l4), from)) = space.root_problem() {
            return Err(RootError::OutsideImage { l4, from: from.to_string(), why });
        }
        Ok(space)
    }

    fn space_unchecked(&self, spec: &RootSpec, opts: WalkOptions) -> Result<AddressSpace<'_>, RootError> {
        let machine = |root: Root| AddressSpace::machine(root, self.xen.as_ref());
        let mem = self.mem();
        Ok(match spec {
            RootSpec::Cr3(e) => {
                let value = self.cr3_value(e)?;
                match self.hvm_core() {
                    // An HVM core's only addresses are guest-physical: a CR3 given for
                    // it is the guest's own (a gpa), read through the core's `.xen_pfn`.
                    Some(g) => hvm_core_space(g, value, "--cr3 (HVM guest core: guest-physical)".into(), None, opts),
                    None => machine(root::resolve(mem, RootInput::Cr3(value), "--cr3".into(), None, opts)),
                }
            }
            RootSpec::Mfn(m) => {
                if self.hvm_core().is_some() {
                    return Err(RootError::MfnInHvmCore { mfn: *m });
                }
                machine(root::resolve(mem, RootInput::Mfn(*m), "--cr3-mfn".into(), None, opts))
            }
            RootSpec::Cpu(cpu) => machine(self.cpu_root(*cpu, opts)?),
            RootSpec::Domain { domain, vcpu, table } => self.domain_space(*domain, *vcpu, *table, opts)?,
            RootSpec::CoreVcpu { vcpu, table } => {
                if self.dump.guest_core().is_none() {
                    return Err(if table.is_some() { RootError::TableNeedsVcpu } else { RootError::VcpuNeedsCore });
                }
                self.core_vcpu_root(*vcpu, table.unwrap_or(TableKind::Guest), opts)?.0
            }
            RootSpec::Default => {
                if self.dump.guest_core().is_some() {
                    let (mut s, cr3, what) = self.core_vcpu_root(0, TableKind::Guest, opts)?;
                    s.implicit = Some(Implicit::CoreVcpu { vcpu: 0, cr3, what });
                    s
                } else if let Some(idle) = self.xen.as_ref().and_then(|x| x.idle_root()) {
                    let src = "idle_pg_table (xen-syms + xen_phys_start)".to_string();
                    machine(root::resolve(mem, RootInput::Cr3(idle.0), src, None, opts))
                } else if let Some((first, cr3)) = self.dump.notes.cpus.iter().find_map(|c| Some((c, c.cr3?))) {
                    let mut s = machine(self.cpu_root(first.cpu, opts)?);
                    s.implicit = Some(Implicit::Cpu {
                        cpu: first.cpu,
                        cr3,
                        source: first.regs_source.map(|r| r.describe().to_string()).unwrap_or_default(),
                    });
                    s
                } else {
                    return Err(RootError::NoRoot);
                }
            }
        })
    }

    /// The dump's `xl dump-core` core when it is an HVM guest's: memory by guest
    /// frame, with no machine address in it.
    pub fn hvm_core(&self) -> Option<&crate::mem::xlcore::XlCore> {
        self.dump.guest_core().filter(|g| g.kind() == GuestKind::Hvm)
    }

    /// CPU `cpu`'s CR3 from the dump's notes.
    fn cpu_root(&self, cpu: usize, opts: WalkOptions) -> Result<Root, RootError> {
        let dump = &self.dump;
        if dump.guest_core().is_some() {
            return Err(RootError::CpuInGuestCore { cpu });
        }
        let Some(c) = dump.notes.cpu(cpu) else {
            let have: Vec<usize> = dump.notes.cpus.iter().map(|c| c.cpu).collect();
            return Err(RootError::NoSuchCpu { cpu, have, problems: dump.notes.problems.clone() });
        };
        let (Some(cr3), Some(src)) = (c.cr3, c.regs_source) else {
            return Err(RootError::NoCr3 { cpu });
        };
        // CR4.PCIDE (bit 17): bits 11:0 of CR3 are a PCID (SDM Vol. 3A §4.10.1).
        let pcide = c.cr4.map(|cr4| cr4 & (1 << 17) != 0);
        Ok(root::resolve(self.mem(), RootInput::Cr3(cr3), format!("CPU {cpu}, {}", src.describe()), pcide, opts))
    }

    /// vCPU `n`'s root in an `xl dump-core` guest core, with what it is: a PV
    /// guest's L4 in the core's machine frames, an HVM guest's CR3 in its
    /// guest-physical memory (the core's pages by guest frame; no p2m).
    fn core_vcpu_root(
        &self,
        n: usize,
        table: TableKind,
        opts: WalkOptions,
    ) -> Result<(AddressSpace<'_>, u64, &'static str), RootError> {
        let Some(g) = self.dump.guest_core() else { return Err(RootError::VcpuNeedsCore) };
        let vcpus = &g.summary().vcpus;
        let Some(v) = vcpus.get(n) else {
            return Err(RootError::NoSuchCoreVcpu { vcpu: n, have: vcpus.len() });
        };
        let Some(kernel) = v.cr3 else { return Err(RootError::Cr3NotDecoded { vcpu: n }) };
        // VGCF_in_kernel (xen/include/public/arch-x86/xen.h, 4.17): the vCPU was in
        // guest kernel mode, so Xen loads the kernel L4 for it, else the user L4.
        let in_kernel = v.flags & (1 << 2) != 0;
        let (cr3, what) = match (g.kind(), table) {
            (GuestKind::Hvm, TableKind::Guest | TableKind::Cr3) => (kernel, "HVM guest CR3, guest-physical"),
            (GuestKind::Hvm, t) => return Err(RootError::HvmCoreTable { table: t }),
            (GuestKind::Pv, TableKind::Guest) => (kernel, "PV kernel L4, machine address"),
            (GuestKind::Pv, TableKind::Cr3) if in_kernel => (kernel, "PV kernel L4 (in kernel mode), machine address"),
            (GuestKind::Pv, TableKind::User | TableKind::Cr3) => match v.user_cr3 {
                Some(u) => (u, "PV user L4, ctrlreg[1], machine address"),
                None => return Err(RootError::NoUserL4 { vcpu: n }),
            },
            (GuestKind::Pv, TableKind::Monitor) => return Err(RootError::PvMonitor),
        };
        let pcide = v.cr4.map(|cr4| cr4 & (1 << 17) != 0);
        let src = format!("vCPU {n}, .xen_prstatus ({what})");
        let space = match g.kind() {
            GuestKind::Hvm => hvm_core_space(g, cr3, src, pcide, opts),
            GuestKind::Pv => AddressSpace::machine(
                root::resolve(self.mem(), RootInput::Cr3(cr3), src, pcide, opts),
                self.xen.as_ref(),
            ),
        };
        Ok((space, cr3, what))
    }

    /// `domain`'s vCPU `v`: one of its roots in machine memory, or for an HVM/PVH
    /// guest's own tables (`TableKind::Guest`) its CR3 in guest-physical memory read
    /// through Xen's p2m (the two-dimensional walk).
    fn domain_space(
        &self,
        domain: DomainSel,
        v: u32,
        table: TableKind,
        opts: WalkOptions,
    ) -> Result<AddressSpace<'_>, RootError> {
        let all = self.domains()?;
        let Some(dom) = all.domains.iter().find(|x| match domain {
            DomainSel::Idle => x.kind == DomKind::Idle,
            DomainSel::Id(id) => x.id == id && x.kind != DomKind::Idle,
        }) else {
            let found = all.domains.iter().map(DomainSel::of).collect();
            return Err(RootError::NoSuchDomain { domain, found });
        };
        let Some(vc) = dom.vcpu(v) else {
            return Err(RootError::NoSuchVcpu { domain, vcpu: v, have: dom.vcpus.iter().map(|x| x.id).collect() });
        };
        let name = format!("domain {domain} vCPU {v}");
        let mem = self.mem();
        let machine = |root: Root| AddressSpace::machine(root, self.xen.as_ref());
        let by_mfn = |m: Option<Mfn>, what: &'static str| -> Result<AddressSpace<'_>, RootError> {
            let m = m.ok_or(RootError::NoSuchRoot { domain, vcpu: v, what, kind: dom.kind.name() })?;
            Ok(machine(root::resolve(mem, RootInput::Mfn(m), format!("{name} {what}"), None, opts)))
        };
        match table {
            TableKind::Guest if dom.kind.is_hvm() => self.hvm_guest_space(dom, v, opts),
            TableKind::Guest => by_mfn(vc.guest_table, "guest_table"),
            TableKind::User => by_mfn(vc.guest_table_user, "guest_table_user"),
            TableKind::Monitor => by_mfn(vc.monitor_table, "monitor_table"),
            TableKind::Cr3 => {
                Ok(machine(root::resolve(mem, RootInput::Cr3(vc.cr3), format!("{name} arch.cr3"), None, opts)))
            }
        }
    }

    /// An HVM/PVH guest's own address space: its guest-physical memory through the
    /// host p2m, and the guest's CR3 (`arch.hvm.guest_cr[3]`).
    fn hvm_guest_space(&self, dom: &DomainInfo, v: u32, opts: WalkOptions) -> Result<AddressSpace<'_>, RootError> {
        let x = self.xen_with_syms().ok_or(RootError::NeedsSymbols)?;
        let id = dom.id;
        let vc = dom.vcpu(v).ok_or(RootError::NoSuchVcpu {
            domain: DomainSel::Id(id),
            vcpu: v,
            have: dom.vcpus.iter().map(|x| x.id).collect(),
        })?;
        let cr3 = vc.guest_cr3.ok_or(RootError::NoGuestCr3 { domain: id, vcpu: v })?;
        let f = domains::Fields::new(x, self.mem(), self.dump.notes.vmcoreinfo_xen.as_deref());
        let p2m = HostP2m::of(&f, dom).map_err(RootError::P2m)?;
        let src = format!("domain {id} vCPU {v} guest CR3 (guest-physical, through the {} p2m)", p2m.kind());
        let guest = GuestMemory::P2m(GuestPhys { mem: self.mem(), p2m });
        let root = root::resolve_in(&guest, RootInput::Cr3(cr3), src, None, opts);
        Ok(AddressSpace::guest(root, guest))
    }
}

/// Which address space: every way a root can be given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootSpec {
    /// A CR3 value (PCID, no-flush and LAM bits are stripped and reported), or an
    /// expression: `*expr` reads the value, a plain symbol names the L4 itself.
    Cr3(Expr),
    /// The L4 table's machine frame.
    Mfn(Mfn),
    /// A CPU's CR3 from the dump's notes.
    Cpu(usize),
    /// A domain's vCPU, found through the hypervisor's lists (needs xen-syms).
    Domain { domain: DomainSel, vcpu: u32, table: TableKind },
    /// A vCPU context of an `xl dump-core` guest core (`table`: which of its roots;
    /// by default the kernel L4 / the HVM guest's CR3).
    CoreVcpu { vcpu: usize, table: Option<TableKind> },
    /// None given: a guest core's vCPU 0, else `idle_pg_table` when the symbols
    /// and `xen_phys_start` are known, else the first CPU with a CR3 in the notes.
    Default,
}

/// A domain, by id or the idle domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainSel {
    Id(u16),
    Idle,
}

impl DomainSel {
    fn of(d: &DomainInfo) -> DomainSel {
        if d.kind == DomKind::Idle { DomainSel::Idle } else { DomainSel::Id(d.id) }
    }
}

impl fmt::Display for DomainSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainSel::Id(id) => write!(f, "{id}"),
            DomainSel::Idle => f.write_str("idle"),
        }
    }
}

/// A root chosen without being asked for, and where it came from: worth a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Implicit {
    /// CPU `cpu`'s CR3 from the notes (`source`: which note).
    Cpu { cpu: usize, cr3: u64, source: String },
    /// vCPU `vcpu` of a guest core (`what`: which of its roots).
    CoreVcpu { vcpu: usize, cr3: u64, what: &'static str },
}

/// A root and the memory its walks read.
pub struct AddressSpace<'s> {
    pub kind: SpaceKind<'s>,
    /// Set when the root was chosen by default rather than asked for.
    pub implicit: Option<Implicit>,
}

/// The two kinds of address space, by the kind of address their tables hold.
pub enum SpaceKind<'s> {
    /// Tables in machine memory (Xen's, a PV guest's, a monitor table): walks read
    /// the dump, and their addresses are machine addresses.
    Machine {
        root: Root,
        /// The hypervisor, for annotations.
        xen: Option<&'s Xen>,
    },
    /// An HVM/PVH guest's own tables: walks read its guest-physical memory
    /// (`Walk<Gpa>`); the machine addresses behind them come from the host p2m, when
    /// there is one ([`GuestMemory::machine`]). Xen's layout does not apply.
    Guest { root: Root<Gpa>, mem: GuestMemory<'s> },
}

impl<'s> AddressSpace<'s> {
    fn machine(root: Root, xen: Option<&'s Xen>) -> AddressSpace<'s> {
        AddressSpace { kind: SpaceKind::Machine { root, xen }, implicit: None }
    }

    fn guest(root: Root<Gpa>, mem: GuestMemory<'s>) -> AddressSpace<'s> {
        AddressSpace { kind: SpaceKind::Guest { root, mem }, implicit: None }
    }

    /// The root of a machine-memory space (`None` for a guest's own tables).
    pub fn machine_root(&self) -> Option<&Root> {
        match &self.kind {
            SpaceKind::Machine { root, .. } => Some(root),
            SpaceKind::Guest { .. } => None,
        }
    }

    /// The host p2m of a guest's own space.
    pub fn p2m(&self) -> Option<HostP2m<'s>> {
        match &self.kind {
            SpaceKind::Guest { mem, .. } => mem.p2m(),
            SpaceKind::Machine { .. } => None,
        }
    }

    /// The root's problem, whatever the kind of space.
    fn root_problem(&self) -> Option<(RootProblem<Maddr>, Option<Maddr>, &str)> {
        match &self.kind {
            SpaceKind::Machine { root, .. } => root.problem.map(|p| (p, Some(root.maddr), root.source.as_str())),
            SpaceKind::Guest { .. } => None,
        }
    }
}

/// Why an address space cannot be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    #[error(transparent)]
    Resolve(ResolveError),
    /// A symbol was given as the root, but the hypervisor is unknown.
    #[error("a symbol as the root needs the hypervisor's symbols (xen-syms)")]
    NeedsXen,
    /// Domains and vCPUs are read through the hypervisor's symbols.
    #[error("domains and vCPUs need the hypervisor's symbols (xen-syms)")]
    NeedsSymbols,
    #[error("{va:#x}: {why}")]
    NotLinear { va: Vaddr, why: String },
    /// The hypervisor's domain list cannot be read.
    #[error(transparent)]
    Domains(DomainError),
    /// An HVM guest's host p2m cannot be read.
    #[error(transparent)]
    P2m(P2mError),
    #[error("no such domain {domain} (found: {})", list(found))]
    NoSuchDomain { domain: DomainSel, found: Vec<DomainSel> },
    #[error("domain {domain} has no vCPU {vcpu} (it has vCPUs {have:?})")]
    NoSuchVcpu { domain: DomainSel, vcpu: u32, have: Vec<u32> },
    #[error("domain {domain} vCPU {vcpu} has no {what} ({kind} guest)")]
    NoSuchRoot { domain: DomainSel, vcpu: u32, what: &'static str, kind: &'static str },
    #[error("domain {domain} vCPU {vcpu}: no guest CR3")]
    NoGuestCr3 { domain: u16, vcpu: u32 },
    /// A table kind without a vCPU, in a dump that is not a guest core.
    #[error("a vCPU's table needs a domain (with xen-syms) or an xl dump-core guest core")]
    TableNeedsVcpu,
    /// A vCPU context without a domain, in a dump that is not a guest core.
    #[error("vCPU contexts without a domain come from xl dump-core guest cores")]
    VcpuNeedsCore,
    #[error("an xl dump-core guest core has vCPU contexts, not CPU notes (asked for CPU {cpu})")]
    CpuInGuestCore { cpu: usize },
    #[error("the dump's notes have no CPU {cpu} (they describe CPUs {have:?})")]
    NoSuchCpu { cpu: usize, have: Vec<usize>, problems: Vec<String> },
    #[error("CPU {cpu}: the dump's notes have no CR3 for it (NT_PRSTATUS only)")]
    NoCr3 { cpu: usize },
    #[error(".xen_prstatus holds {have} vCPU context(s), not {vcpu}")]
    NoSuchCoreVcpu { vcpu: usize, have: usize },
    #[error("vCPU {vcpu}: the CR3 of a 32-bit guest is not decoded")]
    Cr3NotDecoded { vcpu: usize },
    /// A machine frame given as the root of an HVM guest core, which has none.
    #[error("{mfn} is a machine frame, and an HVM guest core holds guest-physical frames only")]
    MfnInHvmCore { mfn: Mfn },
    #[error("an HVM guest core holds the guest's own CR3 only, not its {} table", table.name())]
    HvmCoreTable { table: TableKind },
    #[error("vCPU {vcpu} has no user L4 (ctrlreg[1] is 0: the guest never set one)")]
    NoUserL4 { vcpu: usize },
    #[error("a PV guest has no monitor table")]
    PvMonitor,
    #[error("no root: the dump has no CPU notes with CR3, and no idle_pg_table is known")]
    NoRoot,
    #[error("root {l4} (from {from}): the L4 table is {why}")]
    OutsideImage { l4: Maddr, from: String, why: Absent },
}

fn list(v: &[DomainSel]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The guest's own tables from CR3 `cr3` in an HVM guest core: its pages by guest
/// frame, no p2m and so no machine address.
fn hvm_core_space(
    g: &crate::mem::xlcore::XlCore,
    cr3: u64,
    src: String,
    pcide: Option<bool>,
    opts: WalkOptions,
) -> AddressSpace<'_> {
    let mem = GuestMemory::Core(HvmCore(g));
    AddressSpace::guest(root::resolve_in(&mem, RootInput::Cr3(cr3), src, pcide, opts), mem)
}

/// Why an address expression has no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A symbolic expression, but no symbols.
    #[error("'{text}' looks like a symbol expression: symbols need the hypervisor's xen-syms")]
    NeedsSymbols { text: String },
    /// The expression does not evaluate (syntax, unknown symbol, unreadable pointer).
    #[error(transparent)]
    Eval(ExprError),
}
