//! The `info` line (`xenwalk info --json`): the dump's format, ranges, notes and,
//! with the hypervisor, its build, layout and every struct offset with its source.

use super::*;

#[derive(Serialize)]
pub struct SegmentJson {
    /// Machine address: every format but an HVM guest core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maddr: Option<Maddr>,
    /// Guest-physical address: an HVM guest core's ranges (it holds no machine one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpa: Option<crate::addr::Gpa>,
    pub size: u64,
    pub present: bool,
}

#[derive(Serialize)]
pub struct InfoLine<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    pub file: String,
    pub file_size: u64,
    pub format: &'static str,
    #[serde(serialize_with = "hex_opt")]
    pub base: Option<u64>,
    #[serde(serialize_with = "hex_opt")]
    pub phoff: Option<u64>,
    pub program_headers: Option<usize>,
    pub extents: Vec<SegmentJson>,
    pub bytes_present: u64,
    pub bytes_absent: u64,
    /// The kdump-compressed headers and page counts (null for other formats).
    pub kdump: Option<KdumpJson>,
    /// The `xl dump-core` guest core (null for other formats).
    pub xl_core: Option<&'a crate::mem::xlcore::XlCoreSummary>,
    pub notes: &'a crate::notes::Notes,
    pub warnings: &'a [String],
    /// The hypervisor, when the dump is Xen's or --xen-syms was given.
    pub xen: Option<XenInfo<'a>>,
}

/// A file range.
#[derive(Serialize)]
pub struct FileRangeJson {
    #[serde(serialize_with = "hex")]
    pub offset: u64,
    pub size: u64,
}

impl FileRangeJson {
    fn of(r: Option<(u64, u64)>) -> Option<FileRangeJson> {
        r.map(|(offset, size)| FileRangeJson { offset, size })
    }
}

#[derive(Serialize)]
pub struct FlattenedJson {
    pub records: u64,
    pub version: i64,
    pub logical_size: u64,
}

#[derive(Serialize)]
pub struct SplitJson {
    #[serde(serialize_with = "hex")]
    pub start_pfn: u64,
    #[serde(serialize_with = "hex")]
    pub end_pfn: u64,
}

/// Page counts of a kdump file: from the bitmaps, and per descriptor kind.
#[derive(Serialize)]
pub struct KdumpPagesJson {
    pub present: u64,
    pub dumped: u64,
    pub excluded: u64,
    pub uncompressed: u64,
    pub zlib: u64,
    pub lzo: u64,
    pub snappy: u64,
    pub zstd: u64,
    pub unknown: u64,
    pub unreadable: u64,
}

/// The `kdump` object of an `info` line.
#[derive(Serialize)]
pub struct KdumpJson {
    pub signature: &'static str,
    pub flattened: Option<FlattenedJson>,
    pub header_version: u32,
    pub block_size: u32,
    pub sub_hdr_size: u32,
    pub bitmap_blocks: u32,
    pub bitmaps: u8,
    #[serde(serialize_with = "hex")]
    pub status: u64,
    pub status_flags: Vec<String>,
    pub dump_level: Option<u32>,
    pub max_mapnr: u64,
    #[serde(serialize_with = "hex_opt")]
    pub phys_base: Option<u64>,
    pub split: Option<SplitJson>,
    pub nr_cpus: u32,
    pub current_cpu: u32,
    pub machine: String,
    pub release: String,
    pub notes: Option<FileRangeJson>,
    pub vmcoreinfo: Option<FileRangeJson>,
    pub eraseinfo: Option<FileRangeJson>,
    #[serde(serialize_with = "hex")]
    pub descriptors: u64,
    pub pages: KdumpPagesJson,
}

impl KdumpJson {
    pub fn new(k: &crate::mem::kdump::KdumpSummary, c: crate::mem::kdump::Census) -> KdumpJson {
        KdumpJson {
            signature: k.signature,
            flattened: k.flattened.as_ref().map(|f| FlattenedJson {
                records: f.records,
                version: f.version,
                logical_size: f.logical_size,
            }),
            header_version: k.header_version,
            block_size: k.block_size,
            sub_hdr_size: k.sub_hdr_size,
            bitmap_blocks: k.bitmap_blocks,
            bitmaps: if k.two_bitmaps { 2 } else { 1 },
            status: u64::from(k.status),
            status_flags: k.status_names(),
            dump_level: k.dump_level,
            max_mapnr: k.max_mapnr,
            phys_base: k.phys_base,
            split: k.split.map(|(start_pfn, end_pfn)| SplitJson { start_pfn, end_pfn }),
            nr_cpus: k.nr_cpus,
            current_cpu: k.current_cpu,
            machine: k.machine.clone(),
            release: k.release.clone(),
            notes: FileRangeJson::of(k.notes),
            vmcoreinfo: FileRangeJson::of(k.vmcoreinfo),
            eraseinfo: FileRangeJson::of(k.eraseinfo),
            descriptors: k.descriptors,
            pages: KdumpPagesJson {
                present: k.pages_present,
                dumped: k.pages_dumped,
                excluded: k.pages_excluded,
                uncompressed: c.raw,
                zlib: c.zlib,
                lzo: c.lzo,
                snappy: c.snappy,
                zstd: c.zstd,
                unknown: c.unknown,
                unreadable: c.unreadable,
            },
        }
    }
}

impl<'a> InfoLine<'a> {
    pub fn new(d: &'a Dump) -> Self {
        let extents = d.extents();
        let ext = extents.ranges();
        let (mut present, mut absent) = (0u64, 0u64);
        for &(_, len, p) in &ext {
            if p {
                present += len;
            } else {
                absent += len;
            }
        }
        let gp = extents.guest_physical();
        let (base, phoff, phnum) = match &d.format {
            Format::Raw { base } => (Some(*base), None, None),
            Format::Elf(s) => (None, Some(s.phoff), Some(s.phnum)),
            Format::Kdump(_) | Format::XlCore(_) => (None, None, None),
        };
        let xl_core = match &d.format {
            Format::XlCore(x) => Some(&**x),
            _ => None,
        };
        let kdump = match (&d.format, d.kdump_census()) {
            (Format::Kdump(k), Some(c)) => Some(KdumpJson::new(k, c)),
            _ => None,
        };
        InfoLine {
            kind: "info",
            schema: SCHEMA_VERSION,
            file: d.path.display().to_string(),
            file_size: d.file_size,
            format: d.format.name(),
            base,
            phoff,
            program_headers: phnum,
            extents: ext
                .iter()
                .map(|&(start, size, present)| SegmentJson {
                    maddr: (!gp).then_some(Maddr(start)),
                    gpa: gp.then_some(crate::addr::Gpa(start)),
                    size,
                    present,
                })
                .collect(),
            bytes_present: present,
            bytes_absent: absent,
            kdump,
            xl_core,
            notes: &d.notes,
            warnings: &d.warnings,
            xen: None,
        }
    }
}

/// The `xen` object of an `info` line.
#[derive(Serialize)]
pub struct XenInfo<'a> {
    pub xen_syms: Option<XenSymsInfo>,
    pub version: Option<SourcedString>,
    pub layout: LayoutInfo,
    pub xen_phys_start: Option<SourcedHex>,
    pub discovery: Option<&'a crate::xen::image::Discovery>,
    pub image_check: Option<&'a crate::xen::image::ImageCheck>,
    pub pdx: &'a crate::xen::Sourced<crate::xen::Pdx>,
    pub idle_pg_table: Option<Maddr>,
    /// Struct offsets and sizes xenwalk uses, each with its source.
    pub offsets: Vec<OffsetInfo>,
    pub sizes: Vec<OffsetInfo>,
}

#[derive(Serialize)]
pub struct OffsetInfo {
    pub key: String,
    pub value: Option<u64>,
    pub source: Option<crate::xen::Source>,
    /// For an inferred value: the invariants that confirmed it, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// For an unknown value: what each source asked said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Serialize)]
pub struct XenSymsInfo {
    pub path: String,
    pub build_id: Option<String>,
    pub version: Option<String>,
    pub symbols: usize,
    pub dwarf: bool,
}

#[derive(Serialize)]
pub struct SourcedString {
    pub value: String,
    pub source: crate::xen::Source,
}

#[derive(Serialize)]
pub struct SourcedHex {
    #[serde(serialize_with = "hex")]
    pub value: u64,
    pub source: crate::xen::Source,
}

#[derive(Serialize)]
pub struct LayoutInfo {
    pub version: String,
    pub bigmem: bool,
    pub source: crate::xen::Source,
    #[serde(serialize_with = "hex")]
    pub xen_virt_start: u64,
    #[serde(serialize_with = "hex")]
    pub directmap_start: u64,
    #[serde(serialize_with = "hex")]
    pub frametable_start: u64,
}

impl<'a> XenInfo<'a> {
    pub fn new(x: &'a crate::xen::Xen, vmcoreinfo: Option<&str>, mem: &'a dyn crate::mem::PhysMem) -> Self {
        let l = x.layout();
        let offs = x.offsets_in(vmcoreinfo, mem);
        let item = |key: &str, r: Result<crate::xen::Sourced<u64>, crate::xen::offsets::OffsetError>| match r {
            Ok(v) => OffsetInfo {
                key: key.to_string(),
                value: Some(v.value),
                evidence: match v.source {
                    crate::xen::Source::Inferred => {
                        x.inferred(mem).get(key).map(|i| i.evidence.clone()).unwrap_or_default()
                    }
                    _ => Vec::new(),
                },
                source: Some(v.source),
                why: None,
            },
            Err(e) => OffsetInfo {
                key: key.to_string(),
                value: None,
                source: None,
                evidence: Vec::new(),
                why: Some(e.to_string()),
            },
        };
        let keys = crate::xen::offsets::Offsets::known_keys();
        let offsets = keys.iter().map(|k| item(k, offs.offset(k))).collect();
        let mut structs: Vec<&str> = keys.iter().filter_map(|k| k.split('.').next()).collect();
        structs.dedup();
        let sizes = structs.iter().map(|s| item(s, offs.size(s))).collect();
        XenInfo {
            xen_syms: x.syms.as_ref().map(|s| XenSymsInfo {
                path: s.path.display().to_string(),
                build_id: s.build_id_hex(),
                version: s.version.as_ref().map(|v| v.to_string()),
                symbols: s.symbols().len(),
                dwarf: s.has_dwarf,
            }),
            version: x.version.as_ref().map(|v| SourcedString { value: v.value.to_string(), source: v.source.clone() }),
            layout: LayoutInfo {
                version: format!("{}.{}", l.major, l.minor),
                bigmem: l.bigmem,
                source: x.layout.source.clone(),
                xen_virt_start: x.xen_virt_start(),
                directmap_start: l.directmap_start,
                frametable_start: l.frametable_start,
            },
            xen_phys_start: x.xen_phys_start.as_ref().map(|v| SourcedHex { value: v.value, source: v.source.clone() }),
            discovery: x.discovery.as_ref(),
            image_check: x.image_check.as_ref(),
            pdx: &x.pdx,
            idle_pg_table: x.idle_root(),
            offsets,
            sizes,
        }
    }
}
