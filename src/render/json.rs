//! The JSON Lines output contract (`--json`). The schema is documented in README.md
//! ("JSON output"); tests deserialize output into an independent copy of it with
//! unknown fields denied, so a change here that is not made there fails.
//!
//! Rules: one object per line; every object has a `type`; keys are snake_case;
//! addresses and raw 64-bit values are `"0x…"` strings (64-bit numbers do not survive
//! most JSON consumers); sizes and counts are integers; absent values are `null`.

use crate::addr::{Gfn, Gpa, Maddr, Vaddr};
use crate::diagnose::{self, Translation};
use crate::dump::{Dump, Format};
use crate::paging::enumerate::{Event, Range, Summary};
use crate::paging::root::{L4Check, Root, RootInput, Stripped};
use crate::paging::{Rights, Step};
use crate::xen::annotate::GuestNotes;
use crate::xen::hvm::{GuestMemory, GuestRange};
use serde::Serialize;

mod info;
pub use info::*;

pub use crate::addr::{hex, hex_opt};

/// Version of this JSON schema, in the first line of every JSON output (`root`,
/// `info`). Bumped when a field changes meaning or disappears; new fields and new
/// line types may be added without a bump.
///
/// 2: `maddr` (and every machine-address key: `root`, `l4`, `table`,
/// `entry_maddr`, `next`, `next_mfn`) is always a machine address, null where none
/// is known; walks and listings of an HVM/PVH guest's own tables carry the
/// guest-physical addresses in `gpa` keys beside them (they were in `maddr` in 1).
pub const SCHEMA_VERSION: u32 = 2;

/// The first line of every JSON output whose first line is not `root` or `info`
/// (the Xen subcommands, `diff`, `explain`): says which command wrote it and the
/// schema, so a consumer can check both before reading on.
#[derive(Serialize)]
pub struct HeaderLine {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    pub command: &'static str,
}

/// Write the `header` line.
pub fn header(out: &mut impl std::io::Write, command: &'static str) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &HeaderLine { kind: "header", schema: SCHEMA_VERSION, command })?;
    writeln!(out)
}

#[derive(Serialize)]
pub struct RootLine<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    pub source: &'a str,
    /// `cr3` or `mfn`: how `input` is to be read.
    pub input_kind: &'static str,
    #[serde(serialize_with = "hex")]
    pub input: u64,
    /// Machine address of the L4 table (null for a guest's own L4 whose machine
    /// frame is unknown).
    pub l4: Option<Maddr>,
    /// A guest's own L4: its guest-physical address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4_gpa: Option<Gpa>,
    pub stripped: &'a [Stripped],
    pub check: Option<L4Check>,
}

impl<'a> RootLine<'a> {
    pub fn new(root: &'a Root) -> Self {
        let (input_kind, input) = match root.input {
            RootInput::Cr3(v) => ("cr3", v),
            RootInput::Mfn(m) => ("mfn", m.0),
        };
        RootLine {
            kind: "root",
            schema: SCHEMA_VERSION,
            source: &root.source,
            input_kind,
            input,
            l4: Some(root.maddr),
            l4_gpa: None,
            stripped: &root.stripped,
            check: root.check,
        }
    }

    /// The root of a guest's own tables: `l4` is where the p2m puts its L4.
    pub fn guest(root: &'a Root<Gpa>, mem: &GuestMemory<'_>) -> Self {
        let (input_kind, input) = match root.input {
            RootInput::Cr3(v) => ("cr3", v),
            RootInput::Mfn(m) => ("mfn", m.0),
        };
        RootLine {
            kind: "root",
            schema: SCHEMA_VERSION,
            source: &root.source,
            input_kind,
            input,
            l4: mem.machine(root.maddr).maddr(),
            l4_gpa: Some(root.maddr),
            stripped: &root.stripped,
            check: root.check,
        }
    }
}

/// The guest-physical addresses of one level of a walk of a guest's own tables.
#[derive(Serialize)]
pub struct LevelGpa {
    /// The table read.
    pub table: Gpa,
    /// The entry read.
    pub entry: Gpa,
    /// The entry's target (next table or page), when present.
    pub next: Option<Gpa>,
    pub next_gfn: Option<Gfn>,
}

#[derive(Serialize)]
pub struct LevelJson {
    pub level: u8,
    pub name: &'static str,
    pub index: u16,
    /// Machine address of the table (null in a guest's tables where unknown).
    pub table: Option<Maddr>,
    pub entry_maddr: Option<Maddr>,
    #[serde(serialize_with = "hex")]
    pub entry: u64,
    pub flags: Vec<String>,
    pub present: bool,
    pub leaf: bool,
    /// Next table (non-leaf) or page (leaf) address, when present.
    pub next: Option<Maddr>,
    /// Its machine frame number.
    pub next_mfn: Option<crate::addr::Mfn>,
    /// Rights accumulated through this level, when present.
    pub rights: Option<Rights>,
    #[serde(serialize_with = "hex")]
    pub reserved: u64,
    /// What the table page is to Xen: a static table's symbol, or its direct-map VA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// In a PV guest's tables: the guest pfn of `next` from the M2P (null when the M2P
    /// says invalid or cannot be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub m2p_pfn: Option<Option<crate::addr::Pfn>>,
    /// In a guest's own tables: the level's guest-physical addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpa: Option<LevelGpa>,
}

impl LevelJson {
    pub fn new(s: &Step, maxphyaddr: u8) -> Self {
        let present = s.entry.present();
        LevelJson {
            level: s.level.number(),
            name: s.level.name(),
            index: s.index,
            table: Some(s.table),
            entry_maddr: Some(s.entry_maddr),
            entry: s.entry.0,
            flags: s.entry.flag_names(s.level),
            present,
            leaf: present && s.entry.is_leaf(s.level),
            next: present.then(|| Maddr(s.entry.addr(s.level, maxphyaddr))),
            next_mfn: present.then(|| Maddr(s.entry.addr(s.level, maxphyaddr)).mfn()),
            rights: present.then_some(s.rights),
            reserved: s.reserved,
            table_name: None,
            m2p_pfn: None,
            gpa: None,
        }
    }

    /// A level of a walk of a guest's own tables: machine addresses from the p2m
    /// (`g`), guest-physical ones in `gpa`.
    pub fn guest(s: &Step<Gpa>, g: Option<&crate::xen::annotate::GuestLevelNotes>, maxphyaddr: u8) -> Self {
        let present = s.entry.present();
        let table = g.and_then(|g| g.table.maddr());
        let next = g.and_then(|g| g.next.as_ref()).and_then(|m| m.maddr());
        let next_gpa = present.then(|| Gpa(s.entry.addr(s.level, maxphyaddr)));
        LevelJson {
            level: s.level.number(),
            name: s.level.name(),
            index: s.index,
            table,
            entry_maddr: table.map(|t| t.wrapping_add(u64::from(s.index) * 8)),
            entry: s.entry.0,
            flags: s.entry.flag_names(s.level),
            present,
            leaf: present && s.entry.is_leaf(s.level),
            next,
            next_mfn: next.map(Maddr::mfn),
            rights: present.then_some(s.rights),
            reserved: s.reserved,
            table_name: None,
            m2p_pfn: None,
            gpa: Some(LevelGpa {
                table: s.table,
                entry: s.entry_maddr,
                next: next_gpa,
                next_gfn: next_gpa.map(Gpa::gfn),
            }),
        }
    }
}

#[derive(Serialize)]
pub struct StopJson {
    pub level: u8,
    pub reason: &'static str,
    pub explanation: String,
    pub suggestion: Option<String>,
    /// The next command to run, spelled against this invocation.
    pub next_command: Option<String>,
}

impl StopJson {
    pub fn of(d: &crate::diagnose::Diagnosis) -> StopJson {
        StopJson {
            level: d.level.number(),
            reason: d.reason.code(),
            explanation: d.explanation.clone(),
            suggestion: d.suggestion.clone(),
            next_command: d.next_command.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct WalkLine {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub va: Vaddr,
    /// Machine address of the L4 (null for a guest's own L4 where unknown).
    pub root: Option<Maddr>,
    /// The machine address the VA translates to; null when it does not translate or
    /// (a guest's own tables) no machine address is known.
    pub maddr: Option<Maddr>,
    /// A guest's own tables: the guest-physical address it translates to (null when
    /// it does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpa: Option<Option<Gpa>>,
    /// A guest's own tables: the L4's guest-physical address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_gpa: Option<Gpa>,
    pub page_size: Option<u64>,
    pub rights: Option<Rights>,
    pub levels: Vec<LevelJson>,
    pub stop: Option<StopJson>,
    pub notes: Vec<String>,
    /// Xen layout region of the VA (with Xen context).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'static str>,
    /// `symbol+offset` of the VA (with --xen-syms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// The image section of the VA (with --xen-syms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// What the root is to Xen (`idle`, `pv_guest`, `monitor`, …), with Xen context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_kind: Option<crate::xen::RootKind>,
    /// A guest walk's second dimension: each guest table's and the data page's
    /// guest-physical address through the host p2m (with a p2m).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p2m: Option<Vec<crate::xen::annotate::P2mStep>>,
}

impl WalkLine {
    pub fn new(t: &Translation, root: &Root, maxphyaddr: u8) -> Self {
        let m = t.walk.as_ref().and_then(|w| w.mapping().copied());
        WalkLine {
            kind: "walk",
            va: t.va,
            root: Some(root.maddr),
            maddr: m.map(|m| m.maddr),
            gpa: None,
            root_gpa: None,
            page_size: m.map(|m| m.page_size),
            rights: m.map(|m| m.rights),
            levels: t.walk.iter().flat_map(|w| w.steps()).map(|s| LevelJson::new(s, maxphyaddr)).collect(),
            stop: t.diagnosis.as_ref().map(StopJson::of),
            notes: t.pitfalls.clone(),
            region: None,
            symbol: None,
            section: None,
            root_kind: None,
            p2m: None,
        }
    }

    /// The walk with what it means to the hypervisor ([`crate::xen::annotate`]).
    pub fn annotated(t: &Translation, root: &Root, maxphyaddr: u8, n: &crate::xen::annotate::WalkNotes) -> Self {
        use crate::xen::annotate::M2pNote;
        let mut line = WalkLine::new(t, root, maxphyaddr);
        line.notes.extend(n.pointer_pitfalls.iter().cloned());
        if n.root_kind.is_some() {
            line.region = n.region;
            line.symbol = n.symbol.clone();
            line.section = n.section.clone();
            line.root_kind = n.root_kind;
            for (l, ln) in line.levels.iter_mut().zip(&n.levels) {
                l.table_name = ln.table_name.clone();
                if l.next_mfn.is_some() {
                    l.m2p_pfn = ln.m2p.map(|m| match m {
                        M2pNote::Pfn(p) => Some(p),
                        _ => None,
                    });
                }
            }
        }
        line
    }
}

impl WalkLine {
    /// A walk of a guest's own tables, with its machine side ([`GuestNotes`]): `root`,
    /// `maddr` and each level's machine keys are machine addresses through the p2m
    /// (null where it cannot answer, or where there is no p2m), `gpa` keys carry the
    /// guest-physical ones.
    pub fn guest(t: &Translation<Gpa>, root: &Root<Gpa>, maxphyaddr: u8, g: &GuestNotes) -> Self {
        let m = t.walk.as_ref().and_then(|w| w.mapping().copied());
        WalkLine {
            kind: "walk",
            va: t.va,
            root: g.root.maddr(),
            maddr: g.maddr(),
            gpa: Some(m.map(|m| m.maddr)),
            root_gpa: Some(root.maddr),
            page_size: m.map(|m| m.page_size),
            rights: m.map(|m| m.rights),
            levels: t
                .walk
                .iter()
                .flat_map(|w| w.steps())
                .enumerate()
                .map(|(k, s)| LevelJson::guest(s, g.levels.get(k), maxphyaddr))
                .collect(),
            stop: t.diagnosis.as_ref().map(StopJson::of),
            notes: t.pitfalls.clone(),
            region: None,
            symbol: None,
            section: None,
            root_kind: None,
            p2m: g.p2m.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct MappingLine {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub va: Vaddr,
    /// Last VA of the range (inclusive).
    pub va_last: Vaddr,
    /// Machine address of the first byte (null in a guest's listing where unknown).
    pub maddr: Option<Maddr>,
    /// A guest's listing: the guest-physical range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpa: Option<Gpa>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpa_last: Option<Gpa>,
    /// A guest's listing: why the p2m has no machine frame for these pages (null
    /// when it has, or there is no p2m).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p2m_stop: Option<Option<String>>,
    pub size: u64,
    pub page_size: u64,
    pub pages: u64,
    pub flags: Vec<String>,
    pub rights: Rights,
    /// Xen layout region of the range's first VA (with Xen context).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'static str>,
    /// `symbol+offset` of the range's first VA, in the hypervisor image (with xen-syms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// The image section of the range's first VA (with xen-syms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
}

impl MappingLine {
    pub fn new(r: &Range) -> Self {
        MappingLine {
            kind: "mapping",
            va: r.va,
            va_last: r.va_last(),
            maddr: Some(r.maddr),
            gpa: None,
            gpa_last: None,
            p2m_stop: None,
            size: r.size,
            page_size: r.page_size,
            pages: r.leaves,
            flags: r.attrs.flag_names(r.level),
            rights: r.rights,
            region: None,
            symbol: None,
            section: None,
        }
    }
}

impl MappingLine {
    /// A range of a guest's listing.
    pub fn guest(r: &GuestRange) -> Self {
        MappingLine {
            kind: "mapping",
            va: r.va,
            va_last: r.va_last(),
            maddr: r.maddr,
            gpa: Some(r.gpa),
            gpa_last: Some(r.gpa_last()),
            p2m_stop: Some(r.p2m_stop.clone()),
            size: r.size,
            page_size: r.page_size,
            pages: r.leaves,
            flags: r.attrs.flag_names(r.level),
            rights: r.rights,
            region: None,
            symbol: None,
            section: None,
        }
    }
}

/// A table the dump cannot supply, met during an enumeration.
#[derive(Serialize)]
pub struct UnreadableTableLine {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub level: u8,
    /// First VA under the table.
    pub va: Vaddr,
    /// Machine address of the table (null for a guest's table where unknown).
    pub table: Option<Maddr>,
    /// A guest's table: its guest-physical address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_gpa: Option<Gpa>,
    /// Why: `not_captured`, `outside_image`, `hole` or `malformed`.
    pub reason: &'static str,
    /// Some entries of the table could still be read.
    pub partial: bool,
}

/// A present entry with reserved bits, met during an enumeration.
#[derive(Serialize)]
pub struct ReservedEntryLine {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub level: u8,
    /// First VA under the entry.
    pub va: Vaddr,
    pub entry_maddr: Option<Maddr>,
    /// A guest's table: the entry's guest-physical address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_gpa: Option<Gpa>,
    #[serde(serialize_with = "hex")]
    pub entry: u64,
    #[serde(serialize_with = "hex")]
    pub reserved: u64,
}

/// Write the line for a non-leaf enumeration event.
pub fn event_line(out: &mut dyn std::io::Write, ev: &Event<'_>) -> std::io::Result<()> {
    match *ev {
        Event::Leaf(_) => return Ok(()),
        Event::Unreadable { level, table, va, error, partial } => serde_json::to_writer(
            &mut *out,
            &UnreadableTableLine {
                kind: "unreadable_table",
                level: level.number(),
                va,
                table: Some(table),
                table_gpa: None,
                reason: diagnose::read_error_code(&error),
                partial,
            },
        ),
        Event::Reserved { level, va, entry_maddr, entry, bits } => serde_json::to_writer(
            &mut *out,
            &ReservedEntryLine {
                kind: "reserved_entry",
                level: level.number(),
                va,
                entry_maddr: Some(entry_maddr),
                entry_gpa: None,
                entry: entry.0,
                reserved: bits,
            },
        ),
    }?;
    writeln!(out)
}

/// [`event_line`] for a guest's listing: machine addresses through the p2m, the
/// guest-physical ones beside.
pub fn guest_event_line(
    out: &mut dyn std::io::Write,
    ev: &Event<'_, Gpa>,
    mem: &GuestMemory<'_>,
) -> std::io::Result<()> {
    match *ev {
        Event::Leaf(_) => return Ok(()),
        Event::Unreadable { level, table, va, error, partial } => serde_json::to_writer(
            &mut *out,
            &UnreadableTableLine {
                kind: "unreadable_table",
                level: level.number(),
                va,
                table: mem.machine(table).maddr(),
                table_gpa: Some(table),
                reason: diagnose::read_error_code(&error),
                partial,
            },
        ),
        Event::Reserved { level, va, entry_maddr, entry, bits } => serde_json::to_writer(
            &mut *out,
            &ReservedEntryLine {
                kind: "reserved_entry",
                level: level.number(),
                va,
                entry_maddr: mem.machine(entry_maddr).maddr(),
                entry_gpa: Some(entry_maddr),
                entry: entry.0,
                reserved: bits,
            },
        ),
    }?;
    writeln!(out)
}

/// A root that cannot be walked, in place of a listing.
/// A listing of a root that cannot be walked: the `stop` record as a line.
#[derive(Serialize)]
pub struct StopLine {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub stop: StopJson,
}

#[derive(Serialize)]
pub struct SummaryLine<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Machine address of the L4 (null for a guest's own L4 where unknown).
    pub root: Option<Maddr>,
    /// A guest's own L4: its guest-physical address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_gpa: Option<Gpa>,
    pub ranges: u64,
    /// The leaf limit (`--max-leaves`) when the listing stopped at it; null when it
    /// listed everything.
    pub leaf_limit_reached: Option<u64>,
    #[serde(flatten)]
    pub summary: &'a Summary,
}

/// One answer of `xenwalk p2m` on an xl dump-core core: a pair or a run of pairs, or
/// a frame the core lacks (type `core_p2m`).
#[derive(Serialize)]
pub struct P2mLine {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(serialize_with = "hex_opt")]
    pub pfn: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub mfn: Option<u64>,
    /// Pages in the run (1 for a single lookup); 0 when not found.
    pub pages: u64,
    /// Why there is no answer, or null.
    pub error: Option<String>,
}

impl P2mLine {
    pub fn found(pfn: crate::addr::Pfn, mfn: crate::addr::Mfn, pages: u64) -> P2mLine {
        P2mLine { kind: "core_p2m", pfn: Some(pfn.0), mfn: Some(mfn.0), pages, error: None }
    }
    pub fn missing(frame: u64, is_mfn: bool, why: String) -> P2mLine {
        let (pfn, mfn) = if is_mfn { (None, Some(frame)) } else { (Some(frame), None) };
        P2mLine { kind: "core_p2m", pfn, mfn, pages: 0, error: Some(why) }
    }
}

/// `xenwalk tables --json`: one per root.
#[derive(Serialize)]
pub struct TableLine<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub root: &'a crate::xen::roots::KnownRoot,
}
