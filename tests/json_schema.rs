//! The JSON Lines contract, checked against an independent copy of README.md's
//! "JSON output" table: every line type the binary can write is deserialized into
//! these structs with unknown fields denied, so a field added, renamed or retyped in
//! the code without the README (and this file) fails here.
// The fields exist to be checked by deserialization, not to be read.
#![allow(dead_code)]

mod common;

use serde::Deserialize;
use serde::de::{Deserializer, Error};
use std::path::Path;
use xenwalk::fixture::kdump::KdumpOptions;
use xenwalk::fixture::xen;
use xenwalk::fixture::xlcore::XlCoreOptions;
use xenwalk::fixture::{CpuRegs, ElfLayout, qemu_cpu_notes};

/// An address or raw 64-bit value: a `"0x…"` string of lowercase hex digits.
#[derive(Debug)]
struct Hex(u64);
impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s.strip_prefix("0x").ok_or_else(|| D::Error::custom(format!("{s:?} lacks 0x")))?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            return Err(D::Error::custom(format!("{s:?} is not lowercase hex")));
        }
        u64::from_str_radix(digits, 16).map(Hex).map_err(D::Error::custom)
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Rights {
    write: bool,
    user: bool,
    nx: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Stripped {
    what: String,
    bits: Hex,
    explanation: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Check {
    present: u16,
    reserved: u16,
    readable: u16,
    not_present_nonzero: u16,
    self_map: Option<u16>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RootLine {
    schema: u32,
    source: String,
    input_kind: String,
    input: Hex,
    /// Schema 2: always a machine address, null where none is known.
    l4: Option<Hex>,
    /// A guest's own L4: its guest-physical address.
    #[serde(default)]
    l4_gpa: Option<Hex>,
    stripped: Vec<Stripped>,
    check: Option<Check>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Level {
    level: u8,
    name: String,
    index: u16,
    table: Option<Hex>,
    entry_maddr: Option<Hex>,
    entry: Hex,
    flags: Vec<String>,
    present: bool,
    leaf: bool,
    next: Option<Hex>,
    next_mfn: Option<Hex>,
    rights: Option<Rights>,
    reserved: Hex,
    #[serde(default)]
    table_name: Option<String>,
    #[serde(default)]
    m2p_pfn: Option<Option<Hex>>,
    #[serde(default)]
    gpa: Option<LevelGpa>,
}

/// A level of a walk of a guest's own tables: its guest-physical addresses.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct LevelGpa {
    table: Hex,
    entry: Hex,
    next: Option<Hex>,
    next_gfn: Option<Hex>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Stop {
    level: u8,
    reason: String,
    explanation: String,
    suggestion: Option<String>,
    next_command: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct WalkLine {
    va: Hex,
    root: Option<Hex>,
    maddr: Option<Hex>,
    #[serde(default)]
    gpa: Option<Option<Hex>>,
    #[serde(default)]
    root_gpa: Option<Hex>,
    page_size: Option<u64>,
    rights: Option<Rights>,
    levels: Vec<Level>,
    stop: Option<Stop>,
    notes: Vec<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    symbol: Option<String>,
    #[serde(default)]
    section: Option<String>,
    #[serde(default)]
    root_kind: Option<String>,
    #[serde(default)]
    p2m: Option<Vec<P2mStep>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct MappingLine {
    va: Hex,
    va_last: Hex,
    maddr: Option<Hex>,
    #[serde(default)]
    gpa: Option<Hex>,
    #[serde(default)]
    gpa_last: Option<Hex>,
    #[serde(default)]
    p2m_stop: Option<Option<String>>,
    size: u64,
    page_size: u64,
    pages: u64,
    flags: Vec<String>,
    rights: Rights,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    symbol: Option<String>,
    #[serde(default)]
    section: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct UnreadableTableLine {
    level: u8,
    va: Hex,
    table: Option<Hex>,
    #[serde(default)]
    table_gpa: Option<Hex>,
    reason: String,
    partial: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ReservedEntryLine {
    level: u8,
    va: Hex,
    entry_maddr: Option<Hex>,
    #[serde(default)]
    entry_gpa: Option<Hex>,
    entry: Hex,
    reserved: Hex,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PerLevel {
    l4: u64,
    l3: u64,
    l2: u64,
    l1: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct SummaryLine {
    root: Option<Hex>,
    #[serde(default)]
    root_gpa: Option<Hex>,
    ranges: u64,
    /// Null unless the listing stopped at `--max-leaves`.
    leaf_limit_reached: Option<u64>,
    tables: PerLevel,
    distinct_tables: u64,
    leaves: PerLevel,
    mapped_bytes: u64,
    not_present_nonzero: u64,
    reserved_entries: u64,
    unreadable_tables: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Extent {
    /// A machine address; an HVM guest core's ranges carry `gpa` instead.
    #[serde(default)]
    maddr: Option<Hex>,
    #[serde(default)]
    gpa: Option<Hex>,
    size: u64,
    present: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Cpu {
    cpu: usize,
    rip: Option<Hex>,
    rsp: Option<Hex>,
    cr0: Option<Hex>,
    cr2: Option<Hex>,
    cr3: Option<Hex>,
    cr4: Option<Hex>,
    regs_source: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CrashInfo {
    major: u64,
    minor: u64,
    xen_phys_start: Option<Hex>,
    dom0_pfn_to_mfn_frame_list_list: Option<Hex>,
    tainted: Option<Hex>,
    strings: Vec<CrashInfoString>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CrashInfoString {
    name: String,
    maddr: Hex,
    text: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct NoteCount {
    name: String,
    n_type: u32,
    count: usize,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Notes {
    cpus: Vec<Cpu>,
    xen_crash_info: Option<CrashInfo>,
    vmcoreinfo_xen: Option<String>,
    counts: Vec<NoteCount>,
    problems: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileRange {
    offset: Hex,
    size: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Flattened {
    records: u64,
    version: i64,
    logical_size: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Split {
    start_pfn: Hex,
    end_pfn: Hex,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct KdumpPages {
    present: u64,
    dumped: u64,
    excluded: u64,
    uncompressed: u64,
    zlib: u64,
    lzo: u64,
    snappy: u64,
    zstd: u64,
    unknown: u64,
    unreadable: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Kdump {
    signature: String,
    flattened: Option<Flattened>,
    header_version: u32,
    block_size: u32,
    sub_hdr_size: u32,
    bitmap_blocks: u32,
    bitmaps: u8,
    status: Hex,
    status_flags: Vec<String>,
    dump_level: Option<u32>,
    max_mapnr: u64,
    phys_base: Option<Hex>,
    split: Option<Split>,
    nr_cpus: u32,
    current_cpu: u32,
    machine: String,
    release: String,
    notes: Option<FileRange>,
    vmcoreinfo: Option<FileRange>,
    eraseinfo: Option<FileRange>,
    descriptors: Hex,
    pages: KdumpPages,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct XlHeader {
    magic: Hex,
    nr_vcpus: u64,
    nr_pages: u64,
    page_size: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct XlXenVersion {
    major: u64,
    minor: u64,
    extra_version: String,
    changeset: String,
    capabilities: String,
    page_size: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct XlVcpu {
    vcpu: usize,
    flags: Hex,
    rip: Option<Hex>,
    rsp: Option<Hex>,
    cr0: Option<Hex>,
    cr3: Option<Hex>,
    cr4: Option<Hex>,
    user_cr3: Option<Hex>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct XlSharedInfo {
    max_pfn: Hex,
    pfn_to_mfn_frame_list_list: Hex,
    p2m_cr3: Hex,
    p2m_vaddr: Hex,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct XlSection {
    name: String,
    offset: Hex,
    size: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct XlCore {
    kind: String,
    guest_width: u8,
    header: Option<XlHeader>,
    xen_version: Option<XlXenVersion>,
    format_version: Option<String>,
    vcpus: Vec<XlVcpu>,
    pages: u64,
    invalid_entries: u64,
    pages_offset: Hex,
    shared_info: Option<XlSharedInfo>,
    sections: Vec<XlSection>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CoreP2mLine {
    pfn: Option<Hex>,
    mfn: Option<Hex>,
    pages: u64,
    error: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct InfoLine {
    schema: u32,
    file: String,
    file_size: u64,
    format: String,
    base: Option<Hex>,
    phoff: Option<Hex>,
    program_headers: Option<usize>,
    extents: Vec<Extent>,
    bytes_present: u64,
    bytes_absent: u64,
    kdump: Option<Kdump>,
    xl_core: Option<XlCore>,
    notes: Notes,
    warnings: Vec<String>,
    xen: Option<XenInfo>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Sourced<T> {
    value: T,
    source: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct XenSymsInfo {
    path: String,
    build_id: Option<String>,
    version: Option<String>,
    symbols: usize,
    dwarf: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct LayoutInfo {
    version: String,
    bigmem: bool,
    source: String,
    xen_virt_start: Hex,
    directmap_start: Hex,
    frametable_start: Hex,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Candidate {
    base: Hex,
    matched: u32,
    probed: u32,
    variable: Option<Hex>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Discovery {
    candidates: Vec<Candidate>,
    chosen: Option<Hex>,
    why: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ImageCheck {
    matched: u32,
    probed: u32,
    dump_build_id: Option<String>,
    syms_build_id: Option<String>,
    ok: bool,
    unverifiable: bool,
    problems: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Pdx {
    hole_shift: u64,
    ma_va_bottom_mask: Hex,
    ma_top_mask: Hex,
    pfn_hole_mask: Hex,
    pfn_top_mask: Hex,
    pfn_pdx_bottom_mask: Hex,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct XenInfo {
    xen_syms: Option<XenSymsInfo>,
    version: Option<Sourced<String>>,
    layout: LayoutInfo,
    xen_phys_start: Option<Sourced<Hex>>,
    discovery: Option<Discovery>,
    image_check: Option<ImageCheck>,
    pdx: Sourced<Pdx>,
    idle_pg_table: Option<Hex>,
    offsets: Vec<OffsetInfo>,
    sizes: Vec<OffsetInfo>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct OffsetInfo {
    key: String,
    value: Option<u64>,
    source: Option<String>,
    /// Present for inferred values: the invariants, one line each.
    #[serde(default)]
    evidence: Option<Vec<String>>,
    /// Present for unknown values: what each source said.
    #[serde(default)]
    why: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TableLine {
    name: String,
    source: String,
    cpu: Option<usize>,
    l4: Option<Hex>,
    check: Option<Check>,
    note: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct V2mLine {
    va: Hex,
    symbol: Option<String>,
    region: Option<String>,
    maddr: Option<Hex>,
    formula_error: Option<String>,
    walk_maddr: Option<Hex>,
    walk_error: Option<String>,
    agree: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Vcpu {
    addr: Hex,
    id: u32,
    processor: u32,
    running: bool,
    runstate: u32,
    kernel_mode: bool,
    guest_table: Option<Hex>,
    guest_table_user: Option<Hex>,
    monitor_table: Option<Hex>,
    cr3: Hex,
    guest_cr3: Option<Hex>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct DomainLine {
    addr: Hex,
    id: u16,
    kind: String,
    hap: bool,
    max_vcpus: u32,
    tot_pages: u32,
    max_pages: u32,
    is_dying: u32,
    shared_info: Hex,
    p2m: Hex,
    vcpus: Vec<Vcpu>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ProblemLine {
    what: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Tagged {
    kind: String,
    #[serde(default)]
    pfn: Option<Hex>,
    #[serde(default)]
    mfn: Option<Hex>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PageOwner {
    count_info: Hex,
    type_info: Hex,
    owner: Option<Hex>,
    owner_id: Option<u16>,
    state: String,
    page_type: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct M2pLine {
    mfn: Hex,
    m2p: Option<Tagged>,
    m2p_error: Option<String>,
    page: Option<PageOwner>,
    page_error: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct P2mLine {
    pfn: Hex,
    entry: Option<Tagged>,
    error: Option<String>,
    m2p: Option<Tagged>,
    agree: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct P2mRangeLine {
    pfn: Hex,
    mfn: Option<Hex>,
    count: u64,
    entry_kind: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct P2mSource {
    source: String,
    #[serde(default)]
    cr3: Option<Hex>,
    #[serde(default)]
    vaddr: Option<Hex>,
    #[serde(default)]
    fll: Option<Hex>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    differing: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct P2mSummary {
    domain: u16,
    max_pfn: u64,
    source: Option<P2mSource>,
    ram: u64,
    invalid: u64,
    identity: u64,
    foreign: u64,
    unreadable: u64,
    m2p_mismatches: u64,
    reverse_checked: Option<u64>,
    reverse_limit: Option<u64>,
    reverse_mismatches: Option<u64>,
    xen_heap_frames: u64,
    alternatives_checked: Vec<P2mSource>,
    mismatch_examples: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct EptLevel {
    level: u8,
    index: u16,
    entry_maddr: Hex,
    entry: Hex,
    flags: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct HvmP2mLine {
    gfn: Hex,
    mfn: Option<Hex>,
    page_size: Option<u64>,
    p2m_type: Option<String>,
    stop: Option<String>,
    ept: Vec<EptLevel>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct P2mStep {
    what: String,
    gpa: Hex,
    maddr: Option<Hex>,
    p2m_type: Option<String>,
    stop: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct M2vLine {
    maddr: Hex,
    directmap: Option<Hex>,
    image: Option<Hex>,
    symbol: Option<String>,
    walk_agrees: Option<bool>,
    walk_error: Option<String>,
}

/// `triage`: the build.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TriageBuild {
    version: Option<String>,
    build_id: Option<String>,
    tainted: Option<Hex>,
    crash_note: bool,
}

/// `triage`: one CPU and its root.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TriageCpu {
    cpu: usize,
    rip: Option<Hex>,
    rip_symbol: Option<String>,
    rsp: Option<Hex>,
    cr2: Option<Hex>,
    cr3: Option<Hex>,
    root: TriageRoot,
    curr_vcpu: Option<TriageCurrVcpu>,
    cr2_walk: Option<TriageFault>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TriageCurrVcpu {
    addr: Hex,
    domain: Option<u16>,
    vcpu: Option<u32>,
    idle: bool,
}

/// `triage`: CR2 walked from the CPU's CR3.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TriageFault {
    va: Hex,
    maddr: Option<Hex>,
    region: Option<String>,
    reason: Option<String>,
    level: Option<u8>,
    explanation: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
enum TriageRoot {
    Idle,
    Xpti { cpu: usize },
    Vcpu { domain: u16, vcpu: u32, table: String },
    Unknown { why: String },
    None,
}

/// `triage --console`: the console log parsed.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConsoleLine {
    lines: usize,
    version: Option<String>,
    panics: Vec<ConsolePanic>,
    regs: Vec<ConsoleRegs>,
    faults: Vec<ConsoleFault>,
    walks: Vec<ConsoleWalk>,
    hwdom_crash: Option<ConsoleHwdomCrash>,
    kernel_panics: Vec<ConsoleKernelPanic>,
    notes: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConsoleHwdomCrash {
    line: usize,
    domain: u32,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConsoleKernelPanic {
    line: usize,
    message: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConsolePanic {
    line: usize,
    cpu: Option<u32>,
    message: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConsoleRegs {
    line: usize,
    cpu: Option<u32>,
    rip: Option<Hex>,
    rip_symbol: Option<String>,
    cr3: Option<Hex>,
    cr2: Option<Hex>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConsoleFault {
    line: usize,
    error_code: u32,
    decoded: Vec<String>,
    linear: Option<Hex>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConsoleWalk {
    line: usize,
    va: Hex,
    cr3: Option<Hex>,
    steps: Vec<ConsoleStep>,
    cut_short: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConsoleStep {
    level: u8,
    index: u16,
    entry: Hex,
    pfn: Option<Hex>,
    pse: bool,
}

/// `triage`: one named check.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TriageCheck {
    check: String,
    status: String,
    subject: String,
    what: String,
}

/// `triage`: the verdict, last.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TriageVerdict {
    findings: usize,
    checks: usize,
    exit: u8,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct HeaderLine {
    schema: u32,
    command: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct SlotDiffLine {
    slot: u16,
    va: Hex,
    region_a: Option<String>,
    region_b: Option<String>,
    a_entry: Hex,
    b_entry: Hex,
    status: String,
    only_a: u64,
    only_b: u64,
    changed: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RangeDiffLine {
    slot: u16,
    side: String,
    va: Hex,
    size: u64,
    a_maddr: Option<Hex>,
    b_maddr: Option<Hex>,
    a_flags: Option<Vec<String>>,
    b_flags: Option<Vec<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ExplainLine {
    level: u8,
    entry: Hex,
    present: bool,
    leaf: bool,
    flags: Vec<String>,
    address: Option<Hex>,
    page_size: Option<u64>,
    reserved: Hex,
    mask: Hex,
    naive_address: Hex,
    words: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Mapped {
    page_4k: u64,
    page_2m: u64,
    page_1g: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct MapSlotLine {
    slot: u16,
    va: Hex,
    entry: Hex,
    regions: Vec<String>,
    mapped: Mapped,
    ranges: u64,
    cells_used: u64,
    unreadable_tables: u64,
    reserved_entries: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct MapCellLine {
    slot: u16,
    index: u16,
    va: Hex,
    region: Option<String>,
    mapped: Mapped,
    ranges: u64,
    unreadable_tables: u64,
    reserved_entries: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct MapSummaryLine {
    root: Hex,
    slots_present: u64,
    mapped: Mapped,
    ranges: u64,
    unreadable_tables: u64,
    reserved_entries: u64,
}

/// Deserialize one line by its `type`; returns the type.
fn check_line(line: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
    let ty = v["type"].as_str().unwrap_or_else(|| panic!("no type: {line}")).to_string();
    v.as_object_mut().unwrap().remove("type");
    let r = match ty.as_str() {
        "root" => serde_json::from_value::<RootLine>(v).map(|r| assert_eq!(r.schema, 2)),
        "walk" => serde_json::from_value::<WalkLine>(v).map(drop),
        "mapping" => serde_json::from_value::<MappingLine>(v).map(drop),
        "unreadable_table" => serde_json::from_value::<UnreadableTableLine>(v).map(drop),
        "reserved_entry" => serde_json::from_value::<ReservedEntryLine>(v).map(drop),
        "summary" => serde_json::from_value::<SummaryLine>(v).map(drop),
        "stop" => serde_json::from_value::<Stop>(v).map(drop),
        "info" => serde_json::from_value::<InfoLine>(v).map(|i| {
            assert_eq!(i.schema, 2);
            // Each range is in one address kind: machine, or an HVM core's gpa.
            let gpa = i.xl_core.as_ref().is_some_and(|x| x.kind == "hvm");
            assert!(i.extents.iter().all(|e| e.maddr.is_some() != gpa && e.gpa.is_some() == gpa), "{:?}", i.extents);
        }),
        "table" => serde_json::from_value::<TableLine>(v).map(drop),
        "v2m" => serde_json::from_value::<V2mLine>(v).map(drop),
        "m2v" => serde_json::from_value::<M2vLine>(v).map(drop),
        "domain" => serde_json::from_value::<DomainLine>(v).map(drop),
        "problem" => serde_json::from_value::<ProblemLine>(v).map(drop),
        "m2p" => serde_json::from_value::<M2pLine>(v).map(drop),
        "p2m" => serde_json::from_value::<P2mLine>(v).map(drop),
        "p2m_range" => serde_json::from_value::<P2mRangeLine>(v).map(drop),
        "p2m_summary" => serde_json::from_value::<P2mSummary>(v).map(drop),
        "hvm_p2m" => serde_json::from_value::<HvmP2mLine>(v).map(drop),
        "header" => serde_json::from_value::<HeaderLine>(v).map(|h| assert_eq!(h.schema, 2)),
        "slot_diff" => serde_json::from_value::<SlotDiffLine>(v).map(|d| {
            assert!(["shared", "equal_content", "different", "only_a", "only_b"].contains(&d.status.as_str()))
        }),
        "range_diff" => serde_json::from_value::<RangeDiffLine>(v)
            .map(|d| assert!(["only_a", "only_b", "changed"].contains(&d.side.as_str()))),
        "explain" => serde_json::from_value::<ExplainLine>(v).map(drop),
        "map_slot" => serde_json::from_value::<MapSlotLine>(v).map(drop),
        "map_cell" => serde_json::from_value::<MapCellLine>(v).map(drop),
        "map_summary" => serde_json::from_value::<MapSummaryLine>(v).map(drop),
        "core_p2m" => serde_json::from_value::<CoreP2mLine>(v).map(drop),
        "build" => serde_json::from_value::<TriageBuild>(v).map(drop),
        "console" => serde_json::from_value::<ConsoleLine>(v).map(drop),
        "cpu" => serde_json::from_value::<TriageCpu>(v).map(drop),
        "check" => serde_json::from_value::<TriageCheck>(v).map(|c| {
            assert!(["ok", "finding", "skipped"].contains(&c.status.as_str()), "{c:?}");
            assert!(!c.check.is_empty() && !c.subject.is_empty() && !c.what.is_empty(), "{c:?}");
        }),
        "verdict" => serde_json::from_value::<TriageVerdict>(v)
            .map(|t| assert!(t.exit == u8::from(t.findings > 0) && t.findings <= t.checks, "{t:?}")),
        other => panic!("undocumented line type {other:?}: {line}"),
    };
    r.unwrap_or_else(|e| panic!("{ty} line does not match the documented schema: {e}\n{line}"));
    ty
}

#[test]
fn every_line_type_matches_the_documented_schema() {
    let fx = xen::build();
    let dir = common::tempdir("json-schema");
    let raw = dir.join("x.raw");
    fx.machine.write_raw(&raw).unwrap();
    let elf = dir.join("x.elf");
    let cpus = [CpuRegs { cr3: fx.pv.0 | 1, cr4: 1 << 17, ..Default::default() }];
    fx.machine.write_elf(&elf, &fx.omitted, &qemu_cpu_notes(&cpus), ElfLayout::Qemu10).unwrap();
    let kdump = dir.join("x.flat");
    fx.machine
        .write_kdump_flattened(
            &kdump,
            &KdumpOptions {
                excluded: fx.omitted.iter().map(|m| m.0).collect(),
                notes: qemu_cpu_notes(&cpus),
                ..KdumpOptions::default()
            },
            4096,
        )
        .unwrap();
    let core = dir.join("x.core");
    let guest: Vec<(u64, u64)> = [fx.pv.0 >> 12, 0x2002].iter().enumerate().map(|(i, &m)| (i as u64, m)).collect();
    let core_opts = XlCoreOptions {
        pages: guest,
        invalid_tail: 1,
        vcpus: vec![(CpuRegs { cr3: fx.pv.0, ..Default::default() }, 0)],
        shared_info: Some((2, 0, 0, 0)),
        ..Default::default()
    };
    fx.machine.write_xl_core(&core, &core_opts).unwrap();
    // The same memory as an HVM guest core (pages by guest frame, no p2m): guest walks
    // and a guest listing, `maddr` null and `gpa` beside; one table page left out.
    let hvm_core = dir.join("hvm.core");
    let hvm_pages: Vec<(u64, u64)> =
        fx.machine.stored_frames().filter(|f| !fx.omitted.contains(f)).map(|f| (f.0, f.0)).collect();
    let hvm_opts = XlCoreOptions {
        hvm: true,
        pages: hvm_pages,
        vcpus: vec![(CpuRegs { cr3: fx.pv.0, ..Default::default() }, 0)],
        ..Default::default()
    };
    fx.machine.write_xl_core(&hvm_core, &hvm_opts).unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let pv = format!("{}", fx.pv);
    let hex = |v: u64| format!("{v:#x}");
    let mut vas = vec![
        fx.va_uncaptured_table.0,
        fx.va_zero_l3.0,
        fx.va_swapped.0,
        fx.va_past_ram.0,
        fx.va_reserved.0,
        fx.va_l4_ps.0,
        0x0000_8000_0000_0000,
    ];
    vas.extend(fx.guest_mapped.iter().map(|g| g.0.0));
    let mut walk_args = vec![p(&elf), "--cpu".into(), "0".into(), "--json".into()];
    for v in &vas {
        walk_args.push("--va".into());
        walk_args.push(hex(*v));
    }
    let runs: Vec<Vec<String>> = vec![
        walk_args,
        vec![p(&elf), "--cr3".into(), pv.clone(), "--json".into()],
        vec![p(&raw), "--cr3".into(), pv.clone(), "--json".into(), "--leaves".into()],
        vec![p(&raw), "--cr3".into(), hex(fx.idle.0 >> 12), "--json".into()],
        vec![p(&raw), "--cr3".into(), hex(fx.idle.0 >> 12), "--json".into(), "--va".into(), "0".into()],
        vec!["info".into(), p(&elf), "--json".into()],
        vec!["info".into(), p(&raw), "--json".into()],
        // With Xen context (the layout alone: region names, the direct map formula).
        vec![p(&raw), "--cr3".into(), pv.clone(), "--json".into(), "--xen-version".into(), "4.17".into()],
        vec![
            p(&raw),
            "--cr3".into(),
            pv.clone(),
            "--json".into(),
            "--xen-version".into(),
            "4.17".into(),
            "--va".into(),
            "ffff830000001000".into(),
        ],
        vec!["info".into(), p(&raw), "--json".into(), "--xen-version".into(), "4.17".into()],
        vec!["tables".into(), p(&elf), "--json".into(), "--xen-version".into(), "4.17".into()],
        vec![
            "v2m".into(),
            p(&raw),
            "ffff830000001000".into(),
            "--cr3".into(),
            pv.clone(),
            "--json".into(),
            "--xen-version".into(),
            "4.17".into(),
        ],
        vec![
            "m2v".into(),
            p(&raw),
            "1000".into(),
            "--cr3".into(),
            pv.clone(),
            "--json".into(),
            "--xen-version".into(),
            "4.17".into(),
        ],
        vec!["info".into(), p(&kdump), "--json".into()],
        vec![p(&kdump), "--cr3".into(), pv.clone(), "--json".into()],
        vec![p(&hvm_core), "--json".into()],
        vec!["info".into(), p(&hvm_core), "--json".into()],
        vec![
            p(&hvm_core),
            "--json".into(),
            "--va".into(),
            hex(fx.guest_mapped[0].0.0),
            "--va".into(),
            hex(fx.va_uncaptured_table.0),
        ],
        vec!["info".into(), p(&core), "--json".into()],
        vec!["p2m".into(), p(&core), "--json".into()],
        vec!["p2m".into(), p(&core), "--json".into(), "0".into(), "99".into()],
    ];
    let mut seen = std::collections::BTreeSet::new();
    for args in &runs {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = common::run(&refs);
        assert!(r.code <= 1, "{args:?}: {}", r.stderr);
        for line in r.stdout.lines() {
            seen.insert(check_line(line));
        }
    }
    let all = [
        "core_p2m",
        "header",
        "info",
        "m2v",
        "mapping",
        "reserved_entry",
        "root",
        "stop",
        "summary",
        "table",
        "unreadable_table",
        "v2m",
        "walk",
    ];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), all, "every documented line type was produced");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stable reason codes: every one the library defines is documented in the README.
#[test]
fn every_reason_code_is_documented() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for r in xenwalk::diagnose::Reason::ALL {
        assert!(readme.contains(&format!("| `{}` |", r.code())), "README lacks reason {}", r.code());
        assert_eq!(serde_json::to_value(r).unwrap(), r.code());
    }
}

/// The line types that need the real hypervisor (domains, M2P, p2m): on the real
/// dom0 image with Debian's xen-syms.
#[test]
fn xen_line_types_match_the_documented_schema() {
    let Some(shared) = common::shared("xen_line_types_match_the_documented_schema") else { return };
    let raw = common::unxz_cached(&shared.join("dumps/xen-4.17-dom0/memory.raw.xz"), "xen-4.17-dom0.raw");
    let syms = shared.join("xen-4.17/xen-syms-4.17-amd64");
    let (r, x) = (raw.to_str().unwrap(), syms.to_str().unwrap());
    let runs: Vec<Vec<&str>> = vec![
        vec!["domains", r, "--xen-syms", x, "--json"],
        vec!["m2p", r, "--xen-syms", x, "--json", "363ba", "3fdb5"],
        vec!["p2m", r, "--xen-syms", x, "--json", "--domain", "0", "100", "20060"],
        vec!["p2m", r, "--xen-syms", x, "--json", "--domain", "0", "--check"],
        vec![r, "--xen-syms", x, "--json", "--domain", "0", "--va", "ffff888000100000"],
        vec!["info", r, "--xen-syms", x, "--json"],
        vec!["diff", r, "--xen-syms", x, "--json", "--cr3", "idle_pg_table", "--cr3", "0x363ba000"],
        vec!["explain", "--json", "0x80000000bfe000e7"],
        vec!["map", r, "--xen-syms", x, "--json", "--domain", "0"],
    ];
    let mut seen = std::collections::BTreeSet::new();
    for args in &runs {
        let out = common::run(args);
        assert!(out.code <= 1, "{args:?}: {}", out.stderr);
        for line in out.stdout.lines() {
            seen.insert(check_line(line));
        }
    }
    // An HVM guest: the synthetic machine of tests/xen_domains.rs.
    let xs = xenwalk::xen::symbols::XenSyms::load(&syms).unwrap();
    let fx = xenwalk::fixture::domains::build(&xs, Default::default()).unwrap();
    let dir = common::tempdir("json-schema-hvm");
    let vmcore = dir.join("hvm.vmcore");
    let cpus = [
        CpuRegs { cr3: fx.model.dom0_l4 << 12, cr2: 0x40_0000, ..Default::default() },
        CpuRegs { cr3: fx.model.domu_monitor << 12, cr2: 0x40_0000, ..Default::default() },
    ];
    let notes = xenwalk::fixture::xen_crash_notes(&cpus, fx.xen_phys_start, "PAGESIZE=4096\n");
    fx.xen.machine.write_elf(&vmcore, &[], &notes, ElfLayout::Classic).unwrap();
    let v = vmcore.to_str().unwrap();
    let console = dir.join("console.log");
    std::fs::write(
        &console,
        "(XEN) CPU:    0\n(XEN) cr3: 0000000000001000   cr2: 0000000000400000\n(XEN) Pagetable walk from 0000000000400000:\n(XEN)  L4[0x000] = 0000000000000000 ffffffffffffffff\n(XEN) Panic on CPU 0:\n(XEN) FATAL PAGE FAULT\n(XEN) [error_code=0000]\n",
    )
    .unwrap();
    for args in [
        vec!["triage", v, "--xen-syms", x, "--json"],
        vec!["triage", v, "--xen-syms", x, "--json", "--console", console.to_str().unwrap()],
        vec!["p2m", v, "--xen-syms", x, "--json", "--domain", "1", "8", "20"],
        vec![v, "--xen-syms", x, "--json", "--domain", "1", "--va", "0x401000"],
        vec![v, "--xen-syms", x, "--json", "--domain", "1"],
    ] {
        let out = common::run(&args);
        assert!(out.code <= 1, "{args:?}: {}", out.stderr);
        for line in out.stdout.lines() {
            seen.insert(check_line(line));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    for t in [
        "header",
        "domain",
        "m2p",
        "p2m",
        "p2m_range",
        "p2m_summary",
        "hvm_p2m",
        "walk",
        "info",
        "slot_diff",
        "range_diff",
        "explain",
        "build",
        "cpu",
        "check",
        "verdict",
        "console",
    ] {
        assert!(seen.contains(t), "no {t} line produced");
    }
}
