//! The root options shared by walks, listings and `map`, turned into the library's
//! [`RootSpec`]; and the library's typed root errors turned into sentences that
//! name this command line's flags.

use crate::paging::WalkOptions;
use crate::parse::{self, Expr};
use crate::session::{AddressSpace, DomainSel, Implicit, ResolveError, RootError, RootSpec, Session};
use crate::xen::domains::TableKind;
use clap::Args;

/// Which root of a vCPU (`--table`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TableArg {
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

impl From<TableArg> for TableKind {
    fn from(t: TableArg) -> TableKind {
        match t {
            TableArg::Guest => TableKind::Guest,
            TableArg::User => TableKind::User,
            TableArg::Monitor => TableKind::Monitor,
            TableArg::Cr3 => TableKind::Cr3,
        }
    }
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
    #[arg(long, value_name = "D", value_parser = parse_domain)]
    pub domain: Option<DomainSel>,
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
    pub table: Option<TableArg>,
}

fn parse_domain(s: &str) -> Result<DomainSel, String> {
    if s == "idle" {
        return Ok(DomainSel::Idle);
    }
    s.parse().map(DomainSel::Id).map_err(|_| format!("'{s}': a domain id or `idle`"))
}

impl RootArgs {
    /// The library's description of the root these options ask for.
    pub fn spec(&self) -> RootSpec {
        let table = self.table.map(TableKind::from);
        if let Some(e) = &self.cr3 {
            RootSpec::Cr3(e.clone())
        } else if let Some(m) = self.cr3_mfn {
            RootSpec::Mfn(crate::addr::Mfn(m))
        } else if let Some(cpu) = self.cpu {
            RootSpec::Cpu(cpu)
        } else if let Some(domain) = self.domain {
            RootSpec::Domain { domain, vcpu: self.vcpu.unwrap_or(0), table: table.unwrap_or(TableKind::Guest) }
        } else if self.vcpu.is_some() || table.is_some() {
            RootSpec::CoreVcpu { vcpu: self.vcpu.unwrap_or(0) as usize, table }
        } else {
            RootSpec::Default
        }
    }

    /// The address space these options choose, with a note when it was chosen by
    /// default; errors in this command line's words.
    pub fn space<'s>(&self, s: &'s Session, opts: WalkOptions, ui: super::Ui) -> anyhow::Result<AddressSpace<'s>> {
        let spec = self.spec();
        let space = s.space(&spec, opts).map_err(|e| root_error(s, &spec, e))?;
        match &space.implicit {
            Some(Implicit::Cpu { cpu, cr3, source }) => ui.note(format_args!(
                "no root given: using CR3 {cr3:#x} of CPU {cpu} from the {source} (choose with --cpu N, --cr3 or --cr3-mfn)"
            )),
            Some(Implicit::CoreVcpu { vcpu, cr3, what }) => ui.note(format_args!(
                "no root given: using CR3 {cr3:#x} of vCPU {vcpu} from .xen_prstatus ({what}; choose with --vcpu N, --cr3 or --cr3-mfn)"
            )),
            None => {}
        }
        Ok(space)
    }
}

/// An expression's error, in this command line's words.
pub fn resolve_error(e: &ResolveError) -> String {
    match e {
        ResolveError::NeedsSymbols { text } => {
            format!("'{text}' looks like a symbol expression: pass --xen-syms to use symbols")
        }
        ResolveError::Eval(e) => e.to_string(),
    }
}

/// An error of `--cr3 EXPR`, in this command line's words.
pub fn cr3_error(e: &RootError) -> Option<anyhow::Error> {
    Some(match e {
        RootError::Resolve(r) => anyhow::anyhow!("--cr3: {}", resolve_error(r)),
        RootError::NeedsXen => anyhow::anyhow!("--cr3 with a symbol needs --xen-syms"),
        RootError::NotLinear { va, why } => anyhow::anyhow!("--cr3 {:#x}: {why}", va.0),
        _ => return None,
    })
}

/// The CR3 value of `--cr3 EXPR` (the library's rule, [`Session::cr3_value`]),
/// errors in this command line's words.
pub fn cr3_value(s: &Session, e: &Expr) -> anyhow::Result<u64> {
    s.cr3_value(e).map_err(|e| cr3_error(&e).unwrap_or_else(|| e.into()))
}

/// A root error, in this command line's words.
fn root_error(s: &Session, spec: &RootSpec, e: RootError) -> anyhow::Error {
    if let Some(e) = cr3_error(&e) {
        return e;
    }
    let path = s.path().display();
    let info = || super::next::command(&crate::diagnose::Next::Info, None);
    let d = match spec {
        RootSpec::Domain { domain, .. } => domain.to_string(),
        _ => String::new(),
    };
    let m = match e {
        RootError::NeedsSymbols => return anyhow::anyhow!("--domain needs --xen-syms"),
        RootError::NoGuestCr3 { domain, vcpu } => return anyhow::anyhow!("domain {domain} vCPU {vcpu}: no guest CR3"),
        RootError::Domains(e) => super::domain_error(&e),
        RootError::P2m(e) => e.to_string(),
        RootError::NoSuchDomain { found, .. } => format!(
            "--domain {d}: no such domain (found: {})",
            found.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ),
        RootError::NoSuchVcpu { vcpu, have, .. } => format!("--domain {d} --vcpu {vcpu}: the domain has vCPUs {have:?}"),
        RootError::NoSuchRoot { domain, vcpu, what, kind } => {
            format!("domain {domain} vCPU {vcpu} has no {what} ({kind} guest)")
        }
        RootError::TableNeedsVcpu => "--table picks a root of a vCPU: give --domain D [--vcpu V] (with --xen-syms), or an xl dump-core guest core".into(),
        RootError::VcpuNeedsCore => "--vcpu without --domain picks a vCPU of an xl dump-core guest core; for a whole machine give --domain D --vcpu V (with --xen-syms)".into(),
        RootError::CpuInGuestCore { cpu } => format!(
            "--cpu {cpu}: an xl dump-core guest core has vCPU contexts, not CPU notes: use --vcpu N"
        ),
        RootError::NoSuchCpu { cpu, have, problems } => {
            if have.is_empty() && !problems.is_empty() {
                format!("--cpu {cpu}: no usable per-CPU note ({}); pass --cr3 or --cr3-mfn", problems.join("; "))
            } else if have.is_empty() {
                format!("--cpu {cpu}: the dump has no per-CPU notes; pass --cr3 or --cr3-mfn")
            } else {
                let have: Vec<String> = have.iter().map(ToString::to_string).collect();
                format!("--cpu {cpu}: the dump's notes describe CPUs {} only; next: {}", have.join(", "), info())
            }
        }
        RootError::NoCr3 { cpu } => {
            format!("CPU {cpu}: the dump's notes have no CR3 for it (NT_PRSTATUS only); pass --cr3")
        }
        RootError::NoSuchCoreVcpu { vcpu, have } => {
            format!("--vcpu {vcpu}: .xen_prstatus holds {have} vCPU context(s) (0..{have})")
        }
        RootError::Cr3NotDecoded { vcpu } => format!("vCPU {vcpu}: the CR3 of a 32-bit guest is not decoded; pass --cr3"),
        RootError::MfnInHvmCore { mfn } => format!(
            "--cr3-mfn {:#x}: an HVM guest core holds guest-physical frames only (.xen_pfn, no p2m); give the guest's CR3 as --cr3 {:#x}, or --vcpu N",
            mfn.0,
            mfn.maddr().0
        ),
        RootError::HvmCoreTable { table } => format!(
            "--table {}: an HVM guest core holds the guest's own CR3 only (the monitor table is Xen's: give the whole machine with --domain)",
            table.name()
        ),
        RootError::NoUserL4 { vcpu } => {
            format!("vCPU {vcpu} has no user L4 (ctrlreg[1] is 0: the guest never set one); use --table guest")
        }
        RootError::PvMonitor => "--table monitor: a PV guest has no monitor table; use --table guest or user".into(),
        RootError::NoRoot => format!(
            "no root: pass --cr3 VALUE or --cr3-mfn FRAME (this dump has no CPU notes with CR3), or --xen-syms for idle_pg_table; next: {}",
            info()
        ),
        other => other.to_string(),
    };
    anyhow::anyhow!("{path}: {m}")
}
