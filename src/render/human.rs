//! Output for people: the vocabulary of Xen's `show_page_walk` (L4..L1, entry
//! values, flags, mfns) and crash's `vtop`, tables that fit the terminal, and a
//! `--long` form that says what each bit means.

use super::color::Paint;
use super::{page_label, size_name};
use crate::addr::PhysAddr;
use crate::diagnose::Translation;
use crate::dump::{Dump, Format};
use crate::mem::kdump::{Census, KdumpSummary};
use crate::mem::xlcore::{GuestKind, XlCoreSummary};
use crate::paging::Level;
use crate::paging::enumerate::{Event, Range, Summary};
use crate::paging::root::{Root, RootInput};
use crate::xen::Xen;
use crate::xen::annotate::{GuestNotes, LevelNotes, M2pNote, RootNotes, WalkNotes};
use crate::xen::hvm::{GuestRange, Machine};
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use std::io::{self, Write};

/// Describe the root once, before walks or a listing.
pub fn root(out: &mut dyn Write, root: &Root, long: bool, notes: &RootNotes) -> io::Result<()> {
    root_in(out, root, long, notes, None)
}

/// Describe a guest's own root: its L4's guest-physical address and where the p2m
/// puts it.
pub fn guest_root(out: &mut dyn Write, root: &Root<crate::addr::Gpa>, long: bool, l4: &Machine) -> io::Result<()> {
    root_in(out, root, long, &RootNotes::default(), Some(l4))
}

fn root_in<A: PhysAddr>(
    out: &mut dyn Write,
    root: &Root<A>,
    long: bool,
    notes: &RootNotes,
    guest: Option<&Machine>,
) -> io::Result<()> {
    let input = match root.input {
        RootInput::Cr3(v) => format!("CR3 {v:#x}"),
        RootInput::Mfn(m) => format!("L4 mfn {m}"),
    };
    let at = match guest {
        Some(m) => format!("guest-physical address {} ({})", root.maddr, machine_words(m)),
        None => root.maddr.to_string(),
    };
    writeln!(out, "root: L4 table at {at} ({input}, from {})", root.source)?;
    if let Some(name) = &notes.table_name {
        writeln!(out, "  the L4 is {name}")?;
    }
    if let Some(kind) = notes.kind.filter(|k| *k != crate::xen::RootKind::Idle) {
        writeln!(out, "  it is {}", kind.describe())?;
    }
    let frame_number = matches!(root.problem, Some(crate::paging::RootProblem::LooksLikeFrame { .. }));
    for s in root.stripped.iter().filter(|_| !frame_number) {
        writeln!(out, "  note: stripped {:#x} from CR3: {}", s.bits, s.explanation)?;
    }
    if let Some(c) = root.check {
        if long || !c.plausible() {
            write!(out, "  L4 page: {} present entries", c.present)?;
            if c.not_present_nonzero > 0 {
                write!(out, ", {} non-zero not-present", c.not_present_nonzero)?;
            }
            if let Some(s) = c.self_map {
                write!(out, "; slot {s} maps the table onto itself (a Xen-built L4: linear page-table slot)")?;
            }
            writeln!(out)?;
        }
        if !c.plausible() {
            writeln!(out, "  warning: this page does not look like an L4 table: {}", c.why_not())?;
        }
    }
    Ok(())
}

fn table() -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// One walk: the levels as a table, then the result or the diagnosis.
/// How to print walks.
#[derive(Clone, Copy, Debug)]
pub struct WalkStyle {
    pub maxphyaddr: u8,
    /// Every bit in words, Intel's level names, static tables' roles.
    pub long: bool,
    pub paint: Paint,
}

/// "maddr 0x…", or why the machine address is unknown.
fn machine_words(m: &Machine) -> String {
    match m {
        Machine::At { maddr, .. } => format!("maddr {maddr}"),
        Machine::Unmapped(why) => format!("no machine frame: {why}"),
        Machine::NoP2m => "machine address unknown: no p2m in this dump".into(),
    }
}

/// One walk: the levels as a table, then the result or the diagnosis.
pub fn walk(out: &mut dyn Write, t: &Translation, notes: &WalkNotes, o: WalkStyle) -> io::Result<()> {
    walk_in(out, t, notes, None, o)
}

/// A walk of a guest's own tables: the levels with their guest-physical and machine
/// addresses, the result as a machine address (and its gpa), then the second
/// dimension through the p2m.
pub fn guest_walk(
    out: &mut dyn Write,
    t: &Translation<crate::addr::Gpa>,
    g: &GuestNotes,
    o: WalkStyle,
) -> io::Result<()> {
    walk_in(out, t, &WalkNotes::default(), Some(g), o)
}

fn walk_in<A: PhysAddr>(
    out: &mut dyn Write,
    t: &Translation<A>,
    notes: &WalkNotes,
    guest: Option<&GuestNotes>,
    o: WalkStyle,
) -> io::Result<()> {
    let WalkStyle { maxphyaddr, long, paint } = o;
    let xen = notes.root_kind.is_some();
    let va = t.va;
    // In a guest's own tables, addresses and frames are guest-physical.
    let (addr, frame) = (A::NAME, A::FRAME);
    let idx: Vec<String> = Level::WALK.iter().map(|l| format!("{} {:#x}", l.name(), va.index_at(l.shift()))).collect();
    writeln!(out, "VA {va}  ({}, offset {:#x})", idx.join(", "), va.0 & 0xfff)?;
    if let Some(d) = crate::xen::annotate::describe_va(notes) {
        writeln!(out, "   {d}")?;
    }
    if let Some(w) = &t.walk {
        if w.steps().next().is_some() {
            let mut tab = table();
            let entry_at = if guest.is_some() { "entry at (gpa)" } else { "entry at" };
            let mut header = vec!["level", "index", entry_at, "entry", "flags", "next", "rights so far"];
            if long {
                header.insert(1, "name");
            }
            if guest.is_some() {
                header.push("entry at (maddr)");
            }
            if notes.pv {
                header.push("pfn (M2P)");
            }
            if xen {
                header.push("table (as Xen sees it)");
            }
            tab.set_header(header);
            let none = LevelNotes::default();
            for (k, s) in w.steps().enumerate() {
                let ln = notes.levels.get(k).unwrap_or(&none);
                let present = s.entry.present();
                let next = if !present {
                    "-".to_string()
                } else if s.reserved != 0 {
                    format!("reserved bits {:#x}", s.reserved)
                } else if s.entry.is_leaf(s.level) {
                    format!(
                        "{} page, {frame} {:#x}",
                        page_label(s.level.page_size()),
                        s.entry.addr(s.level, maxphyaddr) >> 12
                    )
                } else {
                    format!(
                        "{} table, {frame} {:#x}",
                        s.level.below().map(|l| l.name()).unwrap_or("?"),
                        s.entry.addr(s.level, maxphyaddr) >> 12
                    )
                };
                let mut row = vec![
                    Cell::new(s.level.name()),
                    Cell::new(if long { format!("{:#x} ({})", s.index, s.index) } else { format!("{:#x}", s.index) })
                        .set_alignment(CellAlignment::Right),
                    Cell::new(s.entry_maddr.to_string()),
                    Cell::new(format!("{:016x}", s.entry.0)),
                    Cell::new(if present {
                        s.entry.flag_names(s.level).join(" ")
                    } else if s.entry.0 == 0 {
                        "(zero)".into()
                    } else {
                        "(not present)".into()
                    }),
                    Cell::new(next),
                    Cell::new(if present { s.rights.short() } else { "-".into() }),
                ];
                if long {
                    row.insert(1, Cell::new(s.level.intel_name()));
                }
                if let Some(g) = guest {
                    let m = g.levels.get(k).and_then(|l| l.table.maddr());
                    row.push(Cell::new(match m {
                        Some(m) => m.wrapping_add(u64::from(s.index) * 8).to_string(),
                        None => "-".into(),
                    }));
                }
                if notes.pv {
                    row.push(Cell::new(match ln.m2p {
                        Some(M2pNote::Pfn(p)) => p.to_string(),
                        Some(M2pNote::Invalid) => "invalid".into(),
                        Some(M2pNote::Shared) => "shared".into(),
                        Some(M2pNote::Unreadable) => "?".into(),
                        None => "-".into(),
                    }));
                }
                if xen {
                    row.push(Cell::new(ln.table_name.clone().unwrap_or_else(|| "-".into())));
                }
                tab.add_row(row);
            }
            writeln!(out, "{}", tab.trim_fmt())?;
            if long {
                for (s, ln) in w.steps().zip(&notes.levels) {
                    if let (Some(role), Some(name)) = (ln.static_role, &ln.table_name) {
                        writeln!(out, "  {} table {name}: {role}", s.level)?;
                    }
                }
                for s in w.steps() {
                    writeln!(out, "  {} ({}) {:#018x}:", s.level, s.level.intel_name(), s.entry.0)?;
                    for line in s.entry.explain_bits(s.level) {
                        writeln!(out, "      {line}")?;
                    }
                }
            }
        }
        if let Some(m) = w.mapping() {
            let what = format!(
                "{} page at {}, {frame} {:#x}; {}",
                size_name(m.page_size),
                m.page,
                m.maddr.frame(),
                m.rights.words()
            );
            let line = match guest.and_then(|g| g.result.as_ref()) {
                Some(Machine::At { maddr, .. }) => {
                    format!("=> maddr {maddr}  (gpa {}; {what}; mfn {:#x})", m.maddr, maddr.mfn().0)
                }
                Some(other) => format!("=> maddr -  ({}; gpa {}: {what})", machine_words(other), m.maddr),
                None => format!("=> {addr} {}  ({what})", m.maddr),
            };
            writeln!(out, "{}", paint.good(&line))?;
        }
    }
    if let Some(d) = &t.diagnosis {
        writeln!(out, "{}", paint.bad(&format!("=> stopped at {}: {}", d.level, d.reason.code())))?;
        writeln!(out, "   why: {}", d.explanation)?;
        if let Some(s) = &d.suggestion {
            writeln!(out, "   {}", paint.hint(&format!("try: {s}")))?;
        }
        if let Some(c) = &d.next_command {
            writeln!(out, "   {}", paint.hint(&format!("next: {c}")))?;
        }
    }
    let show_pitfalls = long || t.diagnosis.is_some();
    if show_pitfalls {
        for p in t.pitfalls.iter().chain(&notes.pointer_pitfalls) {
            writeln!(out, "   note: {p}")?;
        }
    }
    if let Some(dim2) = guest.and_then(|g| g.p2m.as_ref()).filter(|d| !d.is_empty()) {
        writeln!(out, "   through the p2m (guest-physical -> machine):")?;
        for d in dim2 {
            match (d.maddr, &d.stop) {
                (Some(m), _) => {
                    writeln!(out, "     {:<9} gpa {} -> maddr {m} ({})", d.what, d.gpa, d.p2m_type.unwrap_or("?"))?
                }
                (None, Some(why)) => writeln!(out, "     {:<9} gpa {} -> not mapped: {why}", d.what, d.gpa)?,
                (None, None) => writeln!(out, "     {:<9} gpa {} -> ?", d.what, d.gpa)?,
            }
        }
    }
    Ok(())
}

/// Column header of a guest's listing.
pub fn guest_ranges_header(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<37}  {:<31}  {:<31}  {:>9}  {:>4}  {:<9}  flags",
        "virtual range", "machine range", "guest-physical range", "size", "page", "rights"
    )
}

/// One range of a guest's listing: machine range (or why there is none), gpa range.
pub fn guest_range(out: &mut dyn Write, r: &GuestRange) -> io::Result<()> {
    let maddr = match (r.maddr, r.maddr_last()) {
        (Some(a), Some(b)) => format!("{:#x}-{:#x}", a.0, b.0),
        _ => "-".into(),
    };
    write!(
        out,
        "{:#018x}-{:#018x}  {:<31}  {:<31}  {:>9}  {:>4}  {:<9}  {}",
        r.va.0,
        r.va_last().0,
        maddr,
        format!("{:#x}-{:#x}", r.gpa.0, r.gpa_last().0),
        size_name(r.size),
        page_label(r.page_size),
        r.rights.short(),
        r.attrs.flag_names(r.level).join(" ")
    )?;
    match &r.p2m_stop {
        Some(why) => writeln!(out, "  [not in the p2m: {why}]"),
        None => writeln!(out),
    }
}

/// Column header of a listing.
pub fn ranges_header(out: &mut dyn Write, regions: bool) -> io::Result<()> {
    writeln!(
        out,
        "{:<37}  {:<31}  {:>9}  {:>4}  {:<9}  flags{}",
        "virtual range",
        "machine range",
        "size",
        "page",
        "rights",
        if regions { "  [region]" } else { "" }
    )
}

/// One coalesced range (or one leaf with `--leaves`).
pub fn range(out: &mut dyn Write, r: &Range, region: Option<&str>) -> io::Result<()> {
    let maddr = format!("{:#x}-{:#x}", r.maddr.0, r.maddr_last().0);
    write!(
        out,
        "{:#018x}-{:#018x}  {:<31}  {:>9}  {:>4}  {:<9}  {}",
        r.va.0,
        r.va_last().0,
        maddr,
        size_name(r.size),
        page_label(r.page_size),
        r.rights.short(),
        r.attrs.flag_names(r.level).join(" ")
    )?;
    match region {
        Some(name) => writeln!(out, "  [{name}]"),
        None => writeln!(out),
    }
}

/// A non-leaf event of a listing; a guest's own tables' addresses are guest-physical
/// and say so (`at gpa …`).
pub fn event<A: crate::addr::PhysAddr>(out: &mut dyn Write, ev: &Event<'_, A>, paint: Paint) -> io::Result<()> {
    let at = if A::NAME == "gpa" { "at gpa" } else { "at" };
    match ev {
        Event::Leaf(_) => Ok(()),
        Event::Unreadable { level, table, va, error, partial } => writeln!(
            out,
            "{}",
            paint.warn(&format!(
                "!! {level} table {at} {table} (under VA {va}) {}: {error}",
                if *partial { "is partly absent" } else { "is not readable" }
            ))
        ),
        Event::Reserved { level, va, entry_maddr, entry, bits } => writeln!(
            out,
            "!! {level} entry {at} {entry_maddr} = {:#018x} (VA {va}) has reserved bits {bits:#x}: the CPU faults below it",
            entry.0
        ),
    }
}

/// The end-of-listing summary.
pub fn summary(out: &mut dyn Write, s: &Summary, ranges: u64) -> io::Result<()> {
    writeln!(
        out,
        "summary: {} ranges; {} leaves: {} x 1 GiB (L3), {} x 2 MiB (L2), {} x 4 KiB (L1); {} mapped",
        ranges,
        s.leaves.total(),
        s.leaves.l3,
        s.leaves.l2,
        s.leaves.l1,
        size_name(s.mapped_bytes)
    )?;
    writeln!(
        out,
        "tables read: L4 {}, L3 {}, L2 {}, L1 {} ({} distinct pages)",
        s.tables.l4, s.tables.l3, s.tables.l2, s.tables.l1, s.distinct_tables
    )?;
    writeln!(
        out,
        "not present but non-zero entries: {}; entries with reserved bits: {}; tables absent from the dump: {}",
        s.not_present_nonzero, s.reserved_entries, s.unreadable_tables
    )
}

/// The kdump-compressed headers, bitmaps and page kinds.
fn kdump_info(out: &mut dyn Write, k: &KdumpSummary, census: Option<Census>) -> io::Result<()> {
    writeln!(
        out,
        "format:  kdump-compressed (\"{}\", header version {}), block size {}, {} of {} blocks, \
         descriptors at {:#x}",
        if k.signature == "KDUMP" { "KDUMP   " } else { k.signature },
        k.header_version,
        k.block_size,
        if k.two_bitmaps { "2 bitmaps" } else { "1 bitmap" },
        k.bitmap_blocks / if k.two_bitmaps { 2 } else { 1 },
        k.descriptors
    )?;
    if let Some(f) = &k.flattened {
        writeln!(
            out,
            "         flattened (makedumpfile -F): {} records (version {}) describing a {}-byte file",
            f.records, f.version, f.logical_size
        )?;
    }
    let status = k.status_names();
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:#x}"));
    writeln!(
        out,
        "kdump:   status {:#x}{}, dump level {}, max_mapnr {:#x} ({}), phys_base {}, {} CPUs \
         (current {}), machine {:?}",
        k.status,
        if status.is_empty() { String::new() } else { format!(" ({})", status.join(", ")) },
        k.dump_level.map_or_else(|| "-".to_string(), |l| l.to_string()),
        k.max_mapnr,
        size_name(k.max_mapnr.saturating_mul(crate::addr::PAGE_SIZE)),
        opt(k.phys_base),
        k.nr_cpus,
        k.current_cpu,
        k.machine
    )?;
    if let Some((s, e)) = k.split {
        writeln!(
            out,
            "         one part of a split dump: pfns {s:#x}-{:#x} (the others are in the other parts)",
            e - 1
        )?;
    }
    let range = |r: Option<(u64, u64)>| r.map_or_else(|| "none".to_string(), |(o, s)| format!("{s} bytes at {o:#x}"));
    writeln!(
        out,
        "         notes {}, VMCOREINFO {}, erase info {}",
        range(k.notes),
        range(k.vmcoreinfo),
        range(k.eraseinfo)
    )?;
    write!(
        out,
        "pages:   {} in the 1st bitmap, {} dumped, {} excluded",
        k.pages_present, k.pages_dumped, k.pages_excluded
    )?;
    if let Some(c) = census {
        let kinds: Vec<String> = [
            ("uncompressed", c.raw),
            ("zlib", c.zlib),
            ("lzo", c.lzo),
            ("snappy", c.snappy),
            ("zstd", c.zstd),
            ("with unknown flags", c.unknown),
            ("with no descriptor in the file", c.unreadable),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
        if !kinds.is_empty() {
            write!(out, " ({})", kinds.join(", "))?;
        }
    }
    writeln!(out)
}

fn xl_core_info(out: &mut dyn Write, x: &XlCoreSummary) -> io::Result<()> {
    let (space, table) = match x.kind {
        GuestKind::Pv => ("machine frames (the inverted .xen_p2m)", ".xen_p2m"),
        GuestKind::Hvm => ("guest-physical frames (.xen_pfn; no p2m, so no machine address)", ".xen_pfn"),
    };
    writeln!(
        out,
        "format:  xl dump-core guest core, {} guest ({}-bit), format version {}; memory indexed by {space}",
        x.kind.name(),
        x.guest_width,
        x.format_version.map_or_else(|| "?".to_string(), |(a, b)| format!("{a}.{b}"))
    )?;
    if let Some(v) = &x.xen_version {
        writeln!(
            out,
            "         written under Xen {}.{}{} (changeset {:?}, capabilities {:?})",
            v.major, v.minor, v.extra_version, v.changeset, v.capabilities
        )?;
    }
    if let Some(h) = &x.header {
        writeln!(
            out,
            "         header note: magic {:#x}, {} vCPUs, {} pages of {} bytes",
            h.magic, h.nr_vcpus, h.nr_pages, h.page_size
        )?;
    }
    writeln!(
        out,
        "pages:   {} in .xen_pages at {:#x}, {} of them marked invalid in {table} (~0: padding)",
        x.pages, x.pages_offset, x.invalid_entries
    )?;
    if let Some(si) = &x.shared_info {
        writeln!(
            out,
            "         shared info: max_pfn {:#x}, p2m frame-list-list mfn {:#x}, p2m_cr3 {:#x}, p2m_vaddr {:#x}",
            si.max_pfn, si.pfn_to_mfn_frame_list_list, si.p2m_cr3, si.p2m_vaddr
        )?;
    }
    let secs: Vec<String> =
        x.sections.iter().map(|s| format!("{} {} bytes at {:#x}", s.name, s.size, s.offset)).collect();
    writeln!(out, "         sections: {}", secs.join(", "))?;
    for v in &x.vcpus {
        let h = |v: Option<u64>| v.map(|v| format!("{v:#x}")).unwrap_or_else(|| "?".into());
        write!(
            out,
            "vCPU {}:  CR3 {}  CR4 {}  CR0 {}  RIP {}  RSP {}  flags {:#x}",
            v.vcpu,
            h(v.cr3),
            h(v.cr4),
            h(v.cr0),
            h(v.rip),
            h(v.rsp),
            v.flags
        )?;
        if let Some(u) = v.user_cr3 {
            write!(out, "  user L4 {u:#x}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `xenwalk info`.
pub fn info(out: &mut dyn Write, d: &Dump) -> io::Result<()> {
    writeln!(out, "file:    {} ({} bytes, {})", d.path.display(), d.file_size, size_name(d.file_size))?;
    match &d.format {
        Format::Raw { base } => writeln!(out, "format:  raw physical memory image, file offset 0 = maddr {base:#x}")?,
        Format::Elf(s) => writeln!(
            out,
            "format:  ELF64 core, {} program headers at offset {:#x} ({} PT_LOAD with memory, {} PT_NOTE){}",
            s.phnum,
            s.phoff,
            s.loads,
            s.note_segments,
            if s.machine == 3 { "; e_machine EM_386 (QEMU: CPU 0 was not in long mode)" } else { "" }
        )?,
        Format::Kdump(k) => kdump_info(out, k, d.kdump_census())?,
        Format::XlCore(x) => xl_core_info(out, x)?,
    }
    let extents = d.extents();
    let ext = extents.ranges();
    let present: u64 = ext.iter().filter(|e| e.2).map(|e| e.1).sum();
    let absent: u64 = ext.iter().filter(|e| !e.2).map(|e| e.1).sum();
    let holes: Vec<u64> =
        ext.windows(2).filter_map(|w| w[1].0.checked_sub(w[0].0 + w[0].1)).filter(|&g| g > 0).collect();
    writeln!(
        out,
        "memory:  {}{} ranges: {} in the dump, {} described but absent; {} holes between them ({})",
        if extents.guest_physical() { "guest-physical (no machine address in an HVM core), " } else { "" },
        ext.len(),
        size_name(present),
        size_name(absent),
        holes.len(),
        size_name(holes.iter().sum())
    )?;
    const SHOW: usize = 16;
    for &(start, len, present) in ext.iter().take(SHOW) {
        writeln!(
            out,
            "  {:#014x}-{:#014x}  {:>9}  {}",
            start,
            start + len - 1,
            size_name(len),
            if present {
                "present"
            } else if matches!(d.format, Format::Kdump(_)) {
                "absent (excluded)"
            } else {
                "absent (p_filesz < p_memsz)"
            }
        )?;
    }
    if ext.len() > SHOW {
        writeln!(out, "  ... {} more ranges (--json lists all)", ext.len() - SHOW)?;
    }
    if !d.notes.counts.is_empty() {
        let names: Vec<String> =
            d.notes.counts.iter().map(|c| format!("{} x {} type {:#x}", c.count, c.name, c.n_type)).collect();
        writeln!(out, "notes:   {}", names.join(", "))?;
    }
    for c in &d.notes.cpus {
        let h = |v: Option<u64>| v.map(|v| format!("{v:#x}")).unwrap_or_else(|| "?".into());
        writeln!(
            out,
            "CPU {}:   CR3 {}  CR4 {}  CR0 {}  RIP {}  RSP {}  ({})",
            c.cpu,
            h(c.cr3),
            h(c.cr4),
            h(c.cr0),
            h(c.rip),
            h(c.rsp),
            c.regs_source.map(|s| s.describe()).unwrap_or("NT_PRSTATUS only")
        )?;
    }
    if let Some(x) = &d.notes.xen_crash_info {
        let text = |name: &str| x.strings.iter().find(|s| s.name == name).and_then(|s| s.text.clone());
        writeln!(
            out,
            "crash:   Xen {}.{}{} (CRASH_INFO); xen_phys_start {}; tainted {}; dom0 p2m frame-list-list mfn {}",
            x.major,
            x.minor,
            text("extra_version").unwrap_or_default(),
            x.xen_phys_start.map(|v| format!("{v:#x}")).unwrap_or_else(|| "?".into()),
            x.tainted.map(|v| format!("{v:#x}")).unwrap_or_else(|| "?".into()),
            x.dom0_pfn_to_mfn_frame_list_list.map(|v| format!("{v:#x}")).unwrap_or_else(|| "?".into())
        )?;
        for s in x.strings.iter().filter(|s| s.name != "extra_version") {
            match &s.text {
                Some(t) => writeln!(out, "         {}: {t}", s.name)?,
                None => writeln!(out, "         {}: at {} (not in the dump)", s.name, s.maddr)?,
            }
        }
    }
    if let Some(v) = &d.notes.vmcoreinfo_xen {
        writeln!(out, "VMCOREINFO_XEN: {} lines", v.lines().count())?;
    }
    for w in &d.warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

/// The hypervisor part of `xenwalk info`.
pub fn xen_info(out: &mut dyn Write, x: &Xen, d: &Dump) -> io::Result<()> {
    let l = x.layout();
    match &x.version {
        Some(v) => writeln!(out, "Xen:     version {} ({})", v.value, v.source.describe())?,
        None => writeln!(out, "Xen:     version unknown (pass --xen-syms or --xen-version)")?,
    }
    writeln!(
        out,
        "layout:  Xen {}.{}{} ({}): XEN_VIRT_START {:#x}, direct map {:#x}, frame table {:#x}",
        l.major,
        l.minor,
        if l.bigmem { " with BIGMEM" } else { "" },
        x.layout.source.describe(),
        x.xen_virt_start(),
        l.directmap_start,
        l.frametable_start
    )?;
    if let Some(s) = &x.syms {
        writeln!(
            out,
            "xen-syms: {} (build-id {}, version {}, {} symbols, {})",
            s.path.display(),
            s.build_id_hex().unwrap_or_else(|| "none".into()),
            s.version.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
            s.symbols().len(),
            if s.has_dwarf { "with DWARF" } else { "no DWARF" }
        )?;
    }
    match &x.xen_phys_start {
        Some(v) => writeln!(out, "image:   xen_phys_start {:#x} ({})", v.value, v.source.describe())?,
        None => writeln!(out, "image:   xen_phys_start unknown")?,
    }
    if let Some(d) = &x.discovery {
        writeln!(out, "         discovery: {}", d.why)?;
        for c in &d.candidates {
            writeln!(
                out,
                "           copy at {:#x}: {} of {} .rodata pages match; its xen_phys_start reads {}",
                c.base,
                c.matched,
                c.probed,
                c.variable.map(|v| format!("{v:#x}")).unwrap_or_else(|| "?".into())
            )?;
        }
    }
    if let Some(c) = &x.image_check {
        if c.ok {
            writeln!(
                out,
                "         xen-syms matches the image: {} of {} .rodata pages, build-id {}",
                c.matched,
                c.probed,
                c.dump_build_id.as_deref().unwrap_or("not readable in the dump")
            )?;
        } else {
            for p in &c.problems {
                writeln!(out, "         MISMATCH: {p}")?;
            }
        }
    }
    let p = &x.pdx.value;
    if p.hole_shift == 0 && p.ma_top_mask == 0 {
        writeln!(out, "PDX:     no compression ({})", x.pdx.source.describe())?;
    } else {
        writeln!(
            out,
            "PDX:     hole shift {}, pfn_hole_mask {:#x}, ma_va_bottom_mask {:#x}, ma_top_mask {:#x} ({})",
            p.hole_shift,
            p.pfn_hole_mask,
            p.ma_va_bottom_mask,
            p.ma_top_mask,
            x.pdx.source.describe()
        )?;
    }
    if let Some(r) = x.idle_root() {
        writeln!(out, "idle:    idle_pg_table at {r}")?;
    }
    let offs = x.offsets_in(d.notes.vmcoreinfo_xen.as_deref(), &*d.mem);
    let keys = crate::xen::offsets::Offsets::known_keys();
    let mut by_struct: Vec<(&str, Vec<String>)> = Vec::new();
    let mut missing = 0;
    let mut inferred = Vec::new();
    for k in &keys {
        let (st, member) = k.split_once('.').unwrap_or((k, ""));
        let item = match offs.offset(k) {
            Ok(v) => {
                if v.source == crate::xen::Source::Inferred {
                    inferred.push((*k, v.value));
                }
                format!("{member} {}{}", v.value, source_letter(&v.source))
            }
            Err(_) => {
                missing += 1;
                continue;
            }
        };
        match by_struct.iter_mut().find(|(s, _)| *s == st) {
            Some((_, v)) => v.push(item),
            None => by_struct.push((st, vec![item])),
        }
    }
    if !by_struct.is_empty() {
        writeln!(
            out,
            "structs: offsets [O] --offset, [D] DWARF, [P] profile, [V] VMCOREINFO_XEN, [B] built-in table, [I] inferred{}",
            match offs.builtin() {
                Some(b) => format!(" ({})", b.what),
                None => String::new(),
            }
        )?;
        for (st, items) in &by_struct {
            let size = offs
                .size(st)
                .map(|v| format!("{} bytes{}", v.value, source_letter(&v.source)))
                .unwrap_or_else(|_| "size ?".into());
            writeln!(out, "  struct {st} ({size}): {}", items.join(", "))?;
        }
    }
    // Each inferred value with the invariants that confirmed it; each key
    // inference covers that no source knows, with why inference refused it.
    for (k, v) in &inferred {
        if let Ok(i) = x.inferred(&*d.mem).get(k) {
            writeln!(out, "  [I] {k} = {v}: {}", i.evidence.join("; "))?;
        }
    }
    if x.offsets.asks(crate::xen::offsets::OffsetSource::Infer) {
        for k in crate::xen::infer::COVERED {
            if offs.offset(k).is_err() {
                let why = x.inferred(&*d.mem).get(k).err().map(|e| e.to_string()).unwrap_or_default();
                writeln!(out, "  [I] {k}: not inferred: {why}")?;
            }
        }
    }
    if missing > 0 {
        writeln!(
            out,
            "  {missing} members xenwalk uses have no known offset for this build (no DWARF, profile, VMCOREINFO_XEN, built-in or inferred value)"
        )?;
    }
    if let Some(syms) = &x.syms {
        for c in &d.notes.cpus {
            let name = |v: Option<u64>| v.and_then(|v| syms.name_of(crate::addr::Vaddr(v)));
            if let Some(rip) = name(c.rip) {
                writeln!(out, "CPU {}:   RIP in {rip}", c.cpu)?;
            }
        }
    }
    Ok(())
}

fn source_letter(s: &crate::xen::Source) -> &'static str {
    match s {
        crate::xen::Source::Dwarf => " [D]",
        crate::xen::Source::Profile => " [P]",
        crate::xen::Source::Option => " [O]",
        crate::xen::Source::Vmcoreinfo => " [V]",
        crate::xen::Source::Builtin => " [B]",
        crate::xen::Source::Inferred => " [I]",
        _ => "",
    }
}
