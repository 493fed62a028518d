//! "Why does my walk hit zeros at L3?" — classifying where and why a walk stopped.
//!
//! The walker records facts (entry not present, table unreadable, reserved bits);
//! this module looks around them (the rest of the table page, the root, the entry
//! above, what a mis-masked address would have read) and names the cause with a stable
//! `reason` code, an explanation and, where there is one, the next thing to try.
//! Pitfalls are the ones of reference `xen-x86-64.md` §9.

use crate::addr::size_name;
use crate::addr::{Maddr, PhysAddr, Vaddr};
use crate::mem::{Absent, ReadError, TableMem};
use crate::paging::entry::{Entry, Level, bits};
use crate::paging::root::{Root, RootInput, RootProblem};
use crate::paging::walk::{self, Step, StopKind, Walk, WalkOptions};
use serde::Serialize;

/// Every way a walk can stop. The snake_case names are a stable interface
/// (`stop.reason` in JSON); new reasons may be added, existing ones keep their name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The VA is not canonical; the CPU raises #GP and never walks.
    NonCanonical,
    /// The CR3 value has bits 52–60 set: an entry value used as an address unmasked.
    UnmaskedAddress,
    /// The CR3 value has address bits above MAXPHYADDR.
    Cr3AboveMaxphyaddr,
    /// The CR3 value is a frame number, not an address.
    Cr3IsFrameNumber,
    /// The L4 page is not in the dump.
    Cr3Absent,
    /// The L4 page is in the dump but does not look like an L4.
    Cr3Implausible,
    /// The table the walk needs was not captured (or was filtered out of) the dump.
    TableAbsent,
    /// The table the walk needs lies outside the image or in a hole.
    TableOutsideImage,
    /// The table is in the dump but its data cannot be decoded.
    TableUnreadable,
    /// The whole table page is zero.
    TableZero,
    /// The entry is zero in a table that has other entries: nothing mapped here.
    EntryZero,
    /// The entry is not present but has other bits set.
    NotPresent,
    /// The entry has reserved bits set.
    ReservedBits,
}

impl Reason {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::NonCanonical => "non_canonical",
            Reason::UnmaskedAddress => "unmasked_address",
            Reason::Cr3AboveMaxphyaddr => "cr3_above_maxphyaddr",
            Reason::Cr3IsFrameNumber => "cr3_is_frame_number",
            Reason::Cr3Absent => "cr3_absent",
            Reason::Cr3Implausible => "cr3_implausible",
            Reason::TableAbsent => "table_absent",
            Reason::TableOutsideImage => "table_outside_image",
            Reason::TableUnreadable => "table_unreadable",
            Reason::TableZero => "table_zero",
            Reason::EntryZero => "entry_zero",
            Reason::NotPresent => "not_present",
            Reason::ReservedBits => "reserved_bits",
        }
    }

    /// Every reason, for documentation and tests.
    pub const ALL: [Reason; 13] = [
        Reason::NonCanonical,
        Reason::UnmaskedAddress,
        Reason::Cr3AboveMaxphyaddr,
        Reason::Cr3IsFrameNumber,
        Reason::Cr3Absent,
        Reason::Cr3Implausible,
        Reason::TableAbsent,
        Reason::TableOutsideImage,
        Reason::TableUnreadable,
        Reason::TableZero,
        Reason::EntryZero,
        Reason::NotPresent,
        Reason::ReservedBits,
    ];
}

const CHECK_CR3: &str =
    "check where the CR3 value came from; `xenwalk info DUMP` lists the CR3 of every CPU the dump's notes record";

/// Why a walk stopped, explained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    pub level: Level,
    pub reason: Reason,
    pub explanation: String,
    /// The next thing to try, as flags or a command fragment.
    pub suggestion: Option<String>,
    /// The next command to run, when there is one; the CLI spells it out against the
    /// user's own invocation ([`Diagnosis::next_command`]).
    pub next: Option<Next>,
    /// `next` as a full command line, filled in by the CLI.
    pub next_command: Option<String>,
}

/// The next command a diagnosis points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// The same walk from another root: these root options (`--cr3-mfn 0x3fc6e`).
    Root(String),
    /// Another VA from the same root.
    Va(Vaddr),
    /// Decode the entry that stopped the walk: `xenwalk explain`.
    Explain { entry: u64, level: Level },
    /// The dump's memory map, notes and CPUs: `xenwalk info`.
    Info,
    /// Everything the root maps: the same command without `--va`.
    Listing,
}

/// One VA translated against one root, with its diagnosis when it did not translate
/// (`Translation<Gpa>` for a guest's own tables).
#[derive(Clone, Debug)]
pub struct Translation<A: PhysAddr = Maddr> {
    pub va: Vaddr,
    /// The walk; `None` when the root itself made walking impossible.
    pub walk: Option<Walk<A>>,
    pub diagnosis: Option<Diagnosis>,
    /// Mis-masking pitfalls seen on the way (see [`mask_pitfalls`]).
    pub pitfalls: Vec<String>,
}

impl<A: PhysAddr> Translation<A> {
    pub fn translated(&self) -> bool {
        self.walk.as_ref().is_some_and(|w| w.mapping().is_some())
    }
}

/// Walk `va` from `root` and explain the result.
pub fn translate<A: PhysAddr>(
    mem: &(impl TableMem<A> + ?Sized),
    root: &Root<A>,
    va: Vaddr,
    opts: WalkOptions,
) -> Translation<A> {
    if let Some(p) = root.problem.filter(RootProblem::blocks_walks) {
        let diagnosis = if va.is_canonical() { root_diagnosis(root, &p) } else { non_canonical(va) };
        return Translation { va, walk: None, diagnosis: Some(diagnosis), pitfalls: Vec::new() };
    }
    explain(mem, root, walk::walk_in(mem, root.maddr, va, opts), opts)
}

/// Explain a walk of `root` already made (by [`walk::walk`] or a batched
/// [`crate::paging::Translator`]): the same [`Translation`] as [`translate`].
pub fn explain<A: PhysAddr>(
    mem: &(impl TableMem<A> + ?Sized),
    root: &Root<A>,
    w: Walk<A>,
    opts: WalkOptions,
) -> Translation<A> {
    let va = w.va;
    if let Some(p) = root.problem.filter(RootProblem::blocks_walks) {
        let diagnosis = if va.is_canonical() { root_diagnosis(root, &p) } else { non_canonical(va) };
        return Translation { va, walk: None, diagnosis: Some(diagnosis), pitfalls: Vec::new() };
    }
    let diagnosis = w.stop().map(|_| explain_stop(mem, root, &w, opts));
    let pitfalls = mask_pitfalls(mem, &w, opts);
    Translation { va, walk: Some(w), diagnosis, pitfalls }
}

/// Diagnosis for a root that cannot be walked at all (also used for enumeration).
pub fn root_diagnosis<A: PhysAddr>(root: &Root<A>, p: &RootProblem<A>) -> Diagnosis {
    let l4 = Level::L4;
    let raw = match root.input {
        RootInput::Cr3(v) => v,
        RootInput::Mfn(m) => m.0,
    };
    let d = |reason, explanation: String, suggestion: Option<String>, next: Option<Next>| Diagnosis {
        level: l4,
        reason,
        explanation,
        suggestion,
        next,
        next_command: None,
    };
    match *p {
        RootProblem::UnmaskedBits { bits: b, masked } => d(
            Reason::UnmaskedAddress,
            format!(
                "CR3 {raw:#x} ({}) has bits {} set: it looks like a page-table entry value whose NX and \
                 software bits were not masked off. Masked with 0x000ffffffffff000 the table address is {masked}",
                root.source,
                bit_list(b)
            ),
            Some(format!("--cr3 {masked}")),
            Some(Next::Root(format!("--cr3 {masked}"))),
        ),
        RootProblem::AboveMaxPhys { bits: b } => d(
            Reason::Cr3AboveMaxphyaddr,
            format!(
                "CR3 {raw:#x} ({}) has address bits {} set, above the physical-address width \
                 (MAXPHYADDR); no CPU could load it",
                root.source,
                bit_list(b)
            ),
            Some("check the value, or pass --maxphyaddr if the machine is wider".into()),
            Some(Next::Info),
        ),
        RootProblem::LooksLikeFrame { as_maddr, check } => d(
            Reason::Cr3IsFrameNumber,
            format!(
                "CR3 {raw:#x} ({}) looks like a frame number, not an address: the page at {} is {}, \
                 but {as_maddr} (= {raw:#x} << 12) is a plausible L4 ({} present entries{})",
                root.source,
                root.maddr,
                match root.check {
                    Some(c) => format!("not an L4 ({})", c.why_not()),
                    None => "not in the dump".into(),
                },
                check.present,
                match check.self_map {
                    Some(s) => format!(", slot {s} maps the table onto itself as Xen's L4s do"),
                    None => String::new(),
                }
            ),
            Some(format!("--cr3-mfn {raw:#x}   (or --cr3 {as_maddr})")),
            Some(Next::Root(format!("--cr3-mfn {raw:#x}"))),
        ),
        RootProblem::Absent(why) => d(
            Reason::Cr3Absent,
            format!("the L4 table at {} (CR3 from {}) is not in the dump: {why}", root.maddr, root.source),
            Some(absent_hint(why)),
            absent_next(why),
        ),
        RootProblem::Unreadable(e) => d(
            Reason::Cr3Absent,
            format!("the L4 table at {} (CR3 from {}) cannot be read: {e}", root.maddr, root.source),
            None,
            Some(Next::Info),
        ),
        RootProblem::Implausible(c) => d(
            Reason::Cr3Implausible,
            format!(
                "the page at {} (CR3 from {}) does not look like an L4 table: {}",
                root.maddr,
                root.source,
                c.why_not()
            ),
            Some(CHECK_CR3.into()),
            Some(Next::Info),
        ),
    }
}

fn non_canonical(va: Vaddr) -> Diagnosis {
    let fixed = Vaddr::canonicalize(va.0);
    let mut explanation = format!(
        "{va} is not canonical: with 4-level paging bits 63:47 must all equal bit 47. The CPU raises \
         #GP (or #SS) for it and never walks the tables"
    );
    let (suggestion, to) = if va.0 >> 48 == 0xffff && va.0 & (1 << 47) == 0 {
        let low = Vaddr(va.0 & 0x0000_ffff_ffff_ffff);
        explanation.push_str(&format!(
            ". The 0xffff prefix on a lower-half address is what QEMU's paging dump (`-p`) writes for \
             user addresses; the real address is {low}"
        ));
        (format!("--va {low}"), low)
    } else {
        (format!("--va {fixed}   (bit 47 sign-extended)"), fixed)
    };
    Diagnosis {
        level: Level::L4,
        reason: Reason::NonCanonical,
        explanation,
        suggestion: Some(suggestion),
        next: Some(Next::Va(to)),
        next_command: None,
    }
}

fn bit_list(mask: u64) -> String {
    let v: Vec<String> = (0..64).filter(|b| mask & (1u64 << b) != 0).map(|b| b.to_string()).collect();
    v.join(", ")
}

fn absent_hint(why: Absent) -> String {
    match why {
        Absent::NotCaptured { .. } => {
            "the dump writer left this page out (filtered or not captured): take a dump that keeps \
             page-table pages, e.g. makedumpfile without -X / with a lower dump level"
                .into()
        }
        Absent::Excluded { .. } => "the kdump writer filtered this page out: take the dump with a lower dump level \
             (makedumpfile -d 0 or 1; its Xen -X option drops domain pages) or as an ELF core"
            .into(),
        Absent::NotInGuestCore { hvm: false } => "a guest core holds the guest's own pages only: frames of Xen's \
             slots (L4 256-271) and of other domains are in a dump of the whole machine (Xen's kexec \
             vmcore), not here"
            .into(),
        Absent::NotInGuestCore { hvm: true } => "a guest core holds the guest's RAM only: check that the \
             address is guest RAM"
            .into(),
        Absent::OutsideImage { .. } | Absent::Hole { .. } => {
            "check that the address is RAM in this machine's memory map; if the image starts above \
             0 pass --base"
                .into()
        }
        Absent::NoMachineMemory => "read the core as the guest's own memory: its vCPU's CR3 (`--vcpu N`) \
             or `--cr3` with a guest-physical address; machine addresses are in a dump of the whole machine \
             (Xen's kexec vmcore), with `--domain D`"
            .into(),
        Absent::NotInP2m => "the guest's pointer is stale, or the frame is populate-on-demand or paged out: \
             `xenwalk p2m DUMP --domain D GFN` shows its p2m entry"
            .into(),
    }
}

fn absent_next(why: Absent) -> Option<Next> {
    match why {
        // `info` shows which ranges the dump holds and how the writer marked the rest.
        Absent::NotCaptured { .. } | Absent::Excluded { .. } | Absent::OutsideImage { .. } | Absent::Hole { .. } => {
            Some(Next::Info)
        }
        Absent::NotInGuestCore { .. } => Some(Next::Info),
        Absent::NotInP2m | Absent::NoMachineMemory => None,
    }
}

/// VA range one entry at `level` covers, containing `va`.
fn covered(va: Vaddr, level: Level) -> (Vaddr, Vaddr) {
    let start = va.0 & !(level.span() - 1);
    (Vaddr(start), Vaddr(start + (level.span() - 1)))
}

fn explain_stop<A: PhysAddr>(
    mem: &(impl TableMem<A> + ?Sized),
    root: &Root<A>,
    w: &Walk<A>,
    opts: WalkOptions,
) -> Diagnosis {
    let Some(stop) = w.stop() else {
        return unreachable_diag();
    };
    let level = stop.level;
    let va = w.va;
    // A walk from a page that does not look like an L4 at all: the root is the
    // problem, wherever the walk then stopped.
    if stop.kind != StopKind::NonCanonical {
        if let Some(c) = root.check.filter(|c| !c.plausible()) {
            let l4 = w.step(Level::L4).map(|s| s.entry.0).unwrap_or(0);
            return Diagnosis {
                level: Level::L4,
                reason: Reason::Cr3Implausible,
                explanation: format!(
                    "the page at CR3 {} ({}) does not look like an L4 table: {}. Its entry {:#x} reads \
                     {l4:#018x}, and the walk stopped at {level}",
                    root.maddr,
                    root.source,
                    c.why_not(),
                    va.index_at(Level::L4.shift())
                ),
                suggestion: Some(CHECK_CR3.into()),
                next: Some(Next::Info),
                next_command: None,
            };
        }
    }
    let d = |reason, explanation: String, suggestion: Option<String>, next: Option<Next>| Diagnosis {
        level,
        reason,
        explanation,
        suggestion,
        next,
        next_command: None,
    };
    let above = w.steps().filter(|s| s.level > level).last().copied();
    let via = |a: Option<Step<A>>| match a {
        Some(s) => format!("the {} entry {:#x} = {:#018x} (at {})", s.level, s.index, s.entry.0, s.entry_maddr),
        None => format!("CR3 ({})", root.source),
    };
    match stop.kind {
        StopKind::NonCanonical => non_canonical(va),
        StopKind::Unreadable(err) => {
            let Some(why) = err.absent() else {
                return d(
                    Reason::TableUnreadable,
                    format!("the {level} table at {} cannot be decoded: {err}", stop.table),
                    None,
                    Some(Next::Info),
                );
            };
            if level == Level::L4 {
                return root_diagnosis(root, &RootProblem::Absent(why));
            }
            let (reason, what) = match why {
                Absent::NotCaptured { .. } | Absent::Excluded { .. } | Absent::NotInGuestCore { .. } => {
                    (Reason::TableAbsent, "is not in the dump")
                }
                Absent::OutsideImage { .. } | Absent::Hole { .. } => {
                    (Reason::TableOutsideImage, "lies outside the image")
                }
                Absent::NotInP2m => (Reason::TableOutsideImage, "is a guest frame the p2m does not map"),
                Absent::NoMachineMemory => {
                    (Reason::TableOutsideImage, "is a machine address, which an HVM guest core has none of")
                }
            };
            let mut explanation = format!(
                "the {level} table at {} that {} points to {what}: {}. A tool that reads absent pages \
                 as zeros would show a zero {level} entry here",
                stop.table,
                via(above),
                why
            );
            if reason == Reason::TableOutsideImage {
                explanation.push_str(
                    "; an entry pointing outside the machine's memory is stale or corrupt, holds a guest \
                     frame where a machine frame belongs, or the image is incomplete",
                );
            }
            d(reason, explanation, Some(absent_hint(why)), absent_next(why))
        }
        StopKind::Reserved(rsvd) => {
            let e = w.step(level).map(|s| s.entry).unwrap_or_default();
            let mut parts = Vec::new();
            if level == Level::L4 && rsvd & bits::PS != 0 {
                parts.push("PS (bit 7) is reserved in an L4 entry".to_string());
            }
            let large = rsvd & 0x3fff_e000 & !bits::PAT_LARGE;
            if e.is_leaf(level) && level != Level::L1 && large != 0 {
                parts.push(format!(
                    "bits {} lie inside the {} page's offset and must be zero",
                    bit_list(large),
                    size_name(level.page_size())
                ));
            }
            let high = rsvd & 0x000f_ffff_ffff_f000 & !0x3fff_e000 & !bits::PS;
            if high != 0 {
                parts.push(format!(
                    "bits {} are at or above MAXPHYADDR={} (--maxphyaddr)",
                    bit_list(high),
                    opts.maxphyaddr
                ));
            }
            if rsvd & bits::NX != 0 {
                parts.push("NX (bit 63) is reserved because EFER.NXE is off".to_string());
            }
            let explanation = format!(
                "the {level} entry {:#x} = {:#018x} has reserved bits set ({}): the CPU raises #PF \
                 with PFEC.RSVD here",
                va.index_at(level.shift()),
                e.0,
                parts.join("; ")
            );
            d(
                Reason::ReservedBits,
                explanation,
                Some("the entry is corrupt, or the machine's MAXPHYADDR differs: pass --maxphyaddr N".into()),
                Some(Next::Explain { entry: e.0, level }),
            )
        }
        StopKind::NotPresent => {
            let step = w.step(level).copied();
            let e = step.map(|s| s.entry).unwrap_or_default();
            let index = va.index_at(level.shift());
            let (lo, hi) = covered(va, level);
            if e.0 != 0 {
                return d(
                    Reason::NotPresent,
                    format!(
                        "the {level} entry {index:#x} = {:#018x} at {} is not present (P=0) but not zero: \
                         software keeps data in it (a swapped-out or PROT_NONE page, a guest's or \
                         Xen's own marker). The CPU faults on {lo}-{hi}. Frame bits read {:#x}, other \
                         bits {}",
                        e.0,
                        stop.entry_maddr,
                        e.0 & 0x000f_ffff_ffff_f000,
                        nonpresent_bits(e)
                    ),
                    None,
                    Some(Next::Explain { entry: e.0, level }),
                );
            }
            // A zero entry: is the whole page zero?
            let (zero_page, others) = match mem.page_at(stop.table) {
                Ok(p) => {
                    let others = (0..512).filter(|&i| Entry(p.entry(i)).present()).count();
                    (p.is_zero(), others)
                }
                Err(_) => (false, 0),
            };
            if zero_page {
                return d(
                    Reason::TableZero,
                    format!(
                        "the whole {level} table at {} (all 512 entries) is zero, yet {} points to it. \
                         A real {level} table is rarely empty: the page was likely not captured (a dump \
                         writer that zero-fills missing pages), was freed and scrubbed, or the entry \
                         above is stale",
                        stop.table,
                        via(above)
                    ),
                    Some(
                        "compare with another root or dump; check whether the writer zero-fills filtered pages".into(),
                    ),
                    Some(Next::Info),
                );
            }
            d(
                Reason::EntryZero,
                format!(
                    "the {level} entry {index:#x} at {} is zero in a table with {others} present \
                     entries: a genuinely empty slot. Nothing is mapped at {lo}-{hi} in this address space",
                    stop.entry_maddr
                ),
                Some("list what this root maps: run without --va".into()),
                Some(Next::Listing),
            )
        }
    }
}

#[cold]
fn unreachable_diag() -> Diagnosis {
    Diagnosis {
        level: Level::L4,
        reason: Reason::EntryZero,
        explanation: "internal: no stop to explain".into(),
        suggestion: None,
        next: None,
        next_command: None,
    }
}

fn nonpresent_bits(e: Entry) -> String {
    let low = e.0 & 0xffe;
    let high = e.0 & 0xfff0_0000_0000_0000;
    format!("{:#x} (low) and {:#x} (high)", low, high)
}

/// For every present entry of the walk whose address a careless walker would get
/// wrong (bits 63:52 or a large page's PAT bit not masked), say what it would read.
/// This answers "why does *my* walk hit zeros" when xenwalk's own walk succeeds.
pub fn mask_pitfalls<A: PhysAddr>(mem: &(impl TableMem<A> + ?Sized), w: &Walk<A>, opts: WalkOptions) -> Vec<String> {
    let mut out = Vec::new();
    for s in w.steps() {
        if !s.entry.present() || s.reserved != 0 {
            continue;
        }
        let right = s.entry.addr(s.level, opts.maxphyaddr);
        let leaf = s.entry.is_leaf(s.level);
        let naive = s.entry.0 & !0xfff & if leaf { !(s.level.page_size() - 1) | bits::PAT_LARGE } else { u64::MAX };
        if naive == right {
            continue;
        }
        let mut what = Vec::new();
        if s.entry.has(bits::NX) {
            what.push("NX (bit 63)".to_string());
        }
        let sw = s.entry.0 & 0x7ff0_0000_0000_0000;
        if sw != 0 {
            let n = sw.count_ones();
            what.push(format!("{} {}", if n == 1 { "bit" } else { "bits" }, bit_list(sw)));
        }
        if leaf && s.level != Level::L1 && s.entry.has(bits::PAT_LARGE) {
            what.push("the large-page PAT bit (12)".to_string());
        }
        let target = if leaf { "page" } else { "next table" };
        let there = match mem.locate_at(A::at(naive)) {
            Err(why) => format!("which is {why}: such a walker stops or reads zeros"),
            Ok(()) => match mem.page_at(A::at(naive)) {
                Ok(p) if p.is_zero() => "a zero page: such a walker \"hits zeros\"".to_string(),
                _ => "a different page: such a walker reads the wrong data".to_string(),
            },
        };
        out.push(format!(
            "{} entry {:#018x} has {} set: a walker that masks only bits 11:0 takes {naive:#x} as the \
             {target} instead of {right:#x}, {there}",
            s.level,
            s.entry.0,
            what.join(" and ")
        ));
    }
    out
}

/// Why a read failed, as a short code for JSON.
pub fn read_error_code(e: &ReadError) -> &'static str {
    match e {
        ReadError::Absent { why, .. } | ReadError::GuestAbsent { why, .. } => why.code(),
        ReadError::Malformed { .. } => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Machine, PageTables, XEN_TABLE};
    use crate::paging::root::resolve;

    fn setup() -> (Machine, Root) {
        let mut m = Machine::new(16 << 20);
        let pt = PageTables::new(&mut m);
        pt.map(&mut m, Vaddr(0x40_0000), Maddr(0x1000), Level::L1, bits::P | bits::RW, XEN_TABLE);
        pt.map(&mut m, Vaddr(0x80_0000), Maddr(0x2000), Level::L1, bits::P, XEN_TABLE);
        let root = resolve(&m, RootInput::Cr3(pt.root.0), "test".into(), None, WalkOptions::default());
        (m, root)
    }

    fn reason(m: &Machine, root: &Root, va: u64) -> Option<Reason> {
        translate(m, root, Vaddr(va), WalkOptions::default()).diagnosis.map(|d| d.reason)
    }

    #[test]
    fn absent_and_malformed_tables_are_told_apart() {
        let (mut m, root) = setup();
        assert_eq!(reason(&m, &root, 0x40_0123), None);
        let l1 = PageTables::at(root.maddr).table_of(&m, Vaddr(0x40_0000), Level::L1).unwrap();
        m.uncaptured.insert(l1.mfn().0);
        assert_eq!(reason(&m, &root, 0x40_0123), Some(Reason::TableAbsent));
        m.uncaptured.clear();
        m.malformed.insert(l1.mfn().0);
        assert_eq!(reason(&m, &root, 0x40_0123), Some(Reason::TableUnreadable));
    }

    #[test]
    fn zero_entry_versus_zero_table() {
        let (mut m, root) = setup();
        // Slot 1 of the L2 that maps 0x400000 and 0x800000 is empty: entry_zero.
        assert_eq!(reason(&m, &root, 0x20_0000), Some(Reason::EntryZero));
        // Point an L3 entry at a fresh zero page: table_zero below it.
        let zero = m.alloc();
        let l3 = PageTables::at(root.maddr).table_of(&m, Vaddr(0), Level::L3).unwrap();
        m.write_u64(l3.wrapping_add(8), zero.0 | XEN_TABLE);
        assert_eq!(reason(&m, &root, 0x4000_0000), Some(Reason::TableZero));
    }
}
