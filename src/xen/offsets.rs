//! Struct member offsets and sizes, from the best source available, each value
//! labelled with its source: DWARF in `xen-syms`; the dump's VMCOREINFO_XEN
//! (`SIZE(...)`/`OFFSET(...)` lines); a built-in table for known builds, keyed by
//! build-id. Missing DWARF is the normal case (Debian builds Xen without it).
//!
//! Keys are `struct.member.path` as C spells them (`vcpu.arch.cr3`,
//! `page_info.v.inuse._domain`); sizes are `sizeof(struct name)`.

use super::dwarf::DwarfError;
use super::infer::InferError;
use super::profile::Profile;
use super::symbols::XenSyms;
use super::{Source, Sourced, Xen};
use crate::mem::PhysMem;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// Why an offset or a size is unknown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffsetError {
    /// The key is not `struct.member.path`.
    #[error("'{key}': expected struct.member")]
    BadKey { key: String },
    /// No source knows the offset of `key`: what DWARF said (when there is a
    /// `xen-syms`), and which built-in table was asked (`what` of the table), if any.
    /// The CLI adds how to give the value (`--offset`, `--profile`).
    #[error("offset of {key} unknown: {}", UnknownWhy { dwarf, builtin, inferred: inferred.as_deref(), sources, profiles: *profiles })]
    UnknownOffset {
        key: String,
        dwarf: Option<DwarfError>,
        builtin: Option<&'static str>,
        /// Why inference refused the key, when it was asked (boxed: errors stay small).
        inferred: Option<Box<InferError>>,
        /// The sources asked, in order.
        sources: Vec<OffsetSource>,
        /// How many profiles were given.
        profiles: usize,
    },
    /// No source knows `sizeof(struct name)`.
    #[error("sizeof(struct {name}) unknown: no DWARF, not in VMCOREINFO_XEN, no built-in table")]
    UnknownSize { name: String },
}

/// Where struct offsets may come from, in the default order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetSource {
    /// DWARF in xen-syms.
    Dwarf,
    /// A profile given with `--profile` (xenwalk's or volatility3's ISF).
    Profile,
    /// The dump's VMCOREINFO_XEN `OFFSET()`/`SIZE()` lines.
    Vmcoreinfo,
    /// xenwalk's built-in table for a known build-id.
    Builtin,
    /// Inferred from the dump's own structures by invariants (`xen::infer`).
    Infer,
}

impl OffsetSource {
    /// Every source, in the default order.
    pub const ALL: [OffsetSource; 5] = [
        OffsetSource::Dwarf,
        OffsetSource::Profile,
        OffsetSource::Vmcoreinfo,
        OffsetSource::Builtin,
        OffsetSource::Infer,
    ];

    /// The name `--offsets-from` takes.
    pub fn name(self) -> &'static str {
        match self {
            OffsetSource::Dwarf => "dwarf",
            OffsetSource::Profile => "profile",
            OffsetSource::Vmcoreinfo => "vmcoreinfo",
            OffsetSource::Builtin => "builtin",
            OffsetSource::Infer => "infer",
        }
    }

    /// The source `name` names.
    pub fn from_name(name: &str) -> Option<OffsetSource> {
        OffsetSource::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Which sources to ask, in which order, and what the user gave directly.
#[derive(Clone, Debug, Default)]
pub struct OffsetConfig {
    /// The sources in the order asked; empty means [`OffsetSource::ALL`].
    pub order: Vec<OffsetSource>,
    /// Offsets given outright (`--offset vcpu.arch.guest_table=2824`), and sizes
    /// (`--offset page_info=32`, a struct name alone): asked first.
    pub overrides: BTreeMap<String, u64>,
    /// Profiles already matched to this build ([`Profile::for_build`]).
    pub profiles: Vec<Arc<Profile>>,
}

impl OffsetConfig {
    fn sources(&self) -> &[OffsetSource] {
        if self.order.is_empty() { &OffsetSource::ALL } else { &self.order }
    }

    /// Whether `source` is asked at all.
    pub fn asks(&self, source: OffsetSource) -> bool {
        self.sources().contains(&source)
    }
}

/// The reasons of [`OffsetError::UnknownOffset`], one per source, `; `-separated.
struct UnknownWhy<'a> {
    dwarf: &'a Option<DwarfError>,
    builtin: &'a Option<&'static str>,
    inferred: Option<&'a InferError>,
    sources: &'a [OffsetSource],
    profiles: usize,
}

impl fmt::Display for UnknownWhy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for s in self.sources {
            match s {
                OffsetSource::Dwarf => parts.extend(self.dwarf.as_ref().map(ToString::to_string)),
                // Said only when profiles were given: the default run has none.
                OffsetSource::Profile if self.profiles > 0 => parts.push("not in the profile".into()),
                OffsetSource::Profile => {}
                OffsetSource::Vmcoreinfo => parts.push("not in VMCOREINFO_XEN".into()),
                OffsetSource::Builtin => parts.push(match self.builtin {
                    Some(what) => format!("not in the built-in table for {what}"),
                    None => "no built-in table for this build-id".into(),
                }),
                OffsetSource::Infer => parts.push(match self.inferred {
                    Some(why) => format!("inference: {why}"),
                    None => "inference not run (no dump memory here)".into(),
                }),
            }
        }
        if parts.is_empty() {
            return f.write_str("no source asked");
        }
        f.write_str(&parts.join("; "))
    }
}

/// A built-in table for one build.
pub struct Builtin {
    pub build_id: &'static str,
    pub what: &'static str,
    pub sizes: &'static [(&'static str, u64)],
    pub offsets: &'static [(&'static str, u64)],
}

/// Debian's Xen 4.17.7+13-g2445b30a44-0+deb12u1 (build-id 151b373f…), the build in
/// `../shared/xen-4.17/`. Values from reference `xen-x86-64.md` §6: Xen RELEASE-4.17.7
/// built with Debian's Kconfig and `offsetof` probes in `asm-offsets.c` [C], checked
/// against the real dump's VMCOREINFO_XEN and read back from a live 4.17.7 image [R].
pub const DEBIAN_4_17_7: Builtin = Builtin {
    build_id: "151b373fd64b321593bf987fd923cd10dabadac4",
    what: "Debian xen-hypervisor-4.17-amd64 4.17.7+13-g2445b30a44-0+deb12u1",
    sizes: &[("domain", 2304), ("vcpu", 3136), ("page_info", 32), ("p2m_domain", 680), ("cpu_info", 264)],
    offsets: &[
        ("domain.domain_id", 0),
        ("domain.max_vcpus", 4),
        ("domain.vcpu", 8),
        ("domain.shared_info", 16),
        ("domain.page_list", 40),
        ("domain.tot_pages", 88),
        ("domain.xenheap_pages", 92),
        ("domain.max_pages", 100),
        ("domain.next_in_list", 136),
        ("domain.options", 316),
        ("domain.is_dying", 320),
        ("domain.is_privileged", 465),
        ("domain.vm_assist", 552),
        ("domain.arch", 640),
        ("domain.arch.perdomain_l3_pg", 640),
        ("domain.arch.pv.is_32bit", 684),
        ("domain.arch.pv.xpti", 685),
        ("domain.arch.pv.pcid", 686),
        ("domain.arch.paging.mode", 1088),
        ("domain.arch.p2m", 1208),
        // Not in the reference: 4.17.5's DWARF gives 1884, and every arch member after
        // vm_assist sits 16 bytes later in 4.17.7 (vm_assist 536 -> 552, paging.mode
        // 1072 -> 1088, p2m 1192 -> 1208); read back from the real 4.17.7 dom0 image,
        // which holds XEN_X86_EMU_PIT (0x100, a PV hardware domain's value) at 1900.
        ("domain.arch.emulation_flags", 1900),
        ("domain.arch.nested_p2m", 1248),
        ("domain.arch.altp2m_active", 1352),
        ("domain.arch.altp2m_p2m", 1360),
        ("domain.handle", 1928),
        ("vcpu.vcpu_id", 0),
        ("vcpu.processor", 4),
        ("vcpu.vcpu_info", 8),
        ("vcpu.domain", 16),
        ("vcpu.next_in_list", 24),
        ("vcpu.runstate", 216),
        ("vcpu.runstate.state", 216),
        ("vcpu.is_running", 275),
        ("vcpu.dirty_cpu", 284),
        ("vcpu.pause_flags", 296),
        ("vcpu.arch", 640),
        ("vcpu.arch.user_regs", 648),
        ("vcpu.arch.flags", 896),
        ("vcpu.arch.pv", 1024),
        ("vcpu.arch.hvm", 1024),
        ("vcpu.arch.hvm.guest_cr", 1024),
        ("vcpu.arch.hvm.guest_efer", 1064),
        ("vcpu.arch.hvm.hw_cr", 1072),
        ("vcpu.arch.hvm.monitor_table", 1408),
        ("vcpu.arch.guest_table_user", 2816),
        ("vcpu.arch.guest_table", 2824),
        ("vcpu.arch.cr3", 2856),
        ("vcpu.arch.paging", 2992),
        ("page_info.list", 0),
        ("page_info.count_info", 8),
        ("page_info.u.inuse.type_info", 16),
        ("page_info.v.inuse._domain", 24),
        ("p2m_domain.domain", 48),
        ("p2m_domain.p2m_class", 56),
        ("p2m_domain.default_access", 60),
        ("p2m_domain.phys_table", 80),
        ("p2m_domain.max_mapped_pfn", 216),
        ("p2m_domain.ept", 632),
        ("cpu_info.processor_id", 200),
        ("cpu_info.current_vcpu", 208),
        ("cpu_info.per_cpu_offset", 216),
        ("cpu_info.cr4", 224),
        ("cpu_info.xen_cr3", 232),
        ("cpu_info.pv_cr3", 240),
    ],
};

/// Every built-in table.
pub const BUILTINS: &[&Builtin] = &[&DEBIAN_4_17_7];

/// VMCOREINFO_XEN names some members by their short name (`page_info._domain`).
const VMCOREINFO_ALIASES: &[(&str, &str)] = &[("page_info._domain", "page_info.v.inuse._domain")];

/// Offsets and sizes for one hypervisor build.
pub struct Offsets<'a> {
    syms: Option<&'a XenSyms>,
    vmcoreinfo_offsets: HashMap<String, u64>,
    vmcoreinfo_sizes: HashMap<String, u64>,
    builtin: Option<&'static Builtin>,
    config: &'a OffsetConfig,
    /// The hypervisor and its dump, for inference (run once, on first need).
    infer: Option<(&'a Xen, &'a dyn PhysMem)>,
}

/// Every source, in the default order, nothing given outright.
static DEFAULT_CONFIG: OffsetConfig =
    OffsetConfig { order: Vec::new(), overrides: BTreeMap::new(), profiles: Vec::new() };

impl<'a> Offsets<'a> {
    /// Gather the sources: `syms` (DWARF, build-id), the dump's VMCOREINFO_XEN text,
    /// every source asked in the default order.
    pub fn new(syms: Option<&'a XenSyms>, vmcoreinfo: Option<&str>) -> Offsets<'a> {
        Offsets::with_config(syms, vmcoreinfo, &DEFAULT_CONFIG)
    }

    /// As [`Offsets::new`], asking the sources `config` says, in its order.
    pub fn with_config(syms: Option<&'a XenSyms>, vmcoreinfo: Option<&str>, config: &'a OffsetConfig) -> Offsets<'a> {
        let mut vo = HashMap::new();
        let mut vs = HashMap::new();
        for line in vmcoreinfo.unwrap_or("").lines() {
            let Some((k, v)) = line.split_once('=') else { continue };
            let Ok(v) = v.trim().parse::<u64>() else { continue };
            if let Some(key) = k.strip_prefix("OFFSET(").and_then(|k| k.strip_suffix(')')) {
                let key = VMCOREINFO_ALIASES.iter().find(|(a, _)| *a == key).map_or(key, |(_, c)| c);
                vo.insert(key.to_string(), v);
            } else if let Some(key) = k.strip_prefix("SIZE(").and_then(|k| k.strip_suffix(')')) {
                vs.insert(key.to_string(), v);
            }
        }
        let id = syms.and_then(|s| s.build_id_hex());
        let builtin = BUILTINS.iter().copied().find(|b| Some(b.build_id) == id.as_deref());
        Offsets { syms, vmcoreinfo_offsets: vo, vmcoreinfo_sizes: vs, builtin, config, infer: None }
    }

    /// Ask inference from `mem` too, where the source order has it.
    pub fn with_inference(mut self, xen: &'a Xen, mem: &'a dyn PhysMem) -> Offsets<'a> {
        self.infer = Some((xen, mem));
        self
    }

    /// The built-in table in use, if the build is a known one.
    pub fn builtin(&self) -> Option<&'static Builtin> {
        self.builtin
    }

    /// Offset of `key` (`struct.member.path`): given outright, else from the first
    /// source asked that knows it.
    pub fn offset(&self, key: &str) -> Result<Sourced<u64>, OffsetError> {
        let (sname, path) = key.split_once('.').ok_or_else(|| OffsetError::BadKey { key: key.to_string() })?;
        if let Some(&v) = self.config.overrides.get(key) {
            return Ok(Sourced { value: v, source: Source::Option });
        }
        let mut dwarf = None;
        let mut inferred = None;
        for src in self.config.sources() {
            let hit = match src {
                OffsetSource::Dwarf => match self.syms {
                    Some(s) => match s.dwarf().and_then(|d| d.member(s, sname, path)) {
                        Ok(m) => Some((m.offset, Source::Dwarf)),
                        Err(e) => {
                            dwarf = Some(e);
                            None
                        }
                    },
                    None => None,
                },
                OffsetSource::Profile => {
                    self.config.profiles.iter().find_map(|p| p.offset(key)).map(|v| (v, Source::Profile))
                }
                OffsetSource::Vmcoreinfo => self.vmcoreinfo_offsets.get(key).map(|&v| (v, Source::Vmcoreinfo)),
                OffsetSource::Builtin => self
                    .builtin
                    .and_then(|b| b.offsets.iter().find(|(k, _)| *k == key))
                    .map(|&(_, v)| (v, Source::Builtin)),
                OffsetSource::Infer => match self.infer.map(|(x, m)| x.inferred(m).get(key)) {
                    Some(Ok(i)) => Some((i.value, Source::Inferred)),
                    Some(Err(why)) => {
                        inferred = Some(Box::new(why));
                        None
                    }
                    None => None,
                },
            };
            if let Some((value, source)) = hit {
                return Ok(Sourced { value, source });
            }
        }
        Err(OffsetError::UnknownOffset {
            key: key.to_string(),
            dwarf,
            inferred,
            builtin: self.builtin.map(|b| b.what),
            sources: self.config.sources().to_vec(),
            profiles: self.config.profiles.len(),
        })
    }

    /// `sizeof(struct name)`: given outright, else from the first source asked that
    /// knows it.
    pub fn size(&self, sname: &str) -> Result<Sourced<u64>, OffsetError> {
        if let Some(&v) = self.config.overrides.get(sname) {
            return Ok(Sourced { value: v, source: Source::Option });
        }
        for src in self.config.sources() {
            let hit = match src {
                OffsetSource::Dwarf => self
                    .syms
                    .and_then(|s| s.dwarf().and_then(|d| d.struct_type(s, sname)).ok())
                    .and_then(|t| t.size())
                    .map(|v| (v, Source::Dwarf)),
                OffsetSource::Profile => {
                    self.config.profiles.iter().find_map(|p| p.size(sname)).map(|v| (v, Source::Profile))
                }
                OffsetSource::Vmcoreinfo => self.vmcoreinfo_sizes.get(sname).map(|&v| (v, Source::Vmcoreinfo)),
                OffsetSource::Builtin => self
                    .builtin
                    .and_then(|b| b.sizes.iter().find(|(k, _)| *k == sname))
                    .map(|&(_, v)| (v, Source::Builtin)),
                // Inference sizes what it strides over (the frame table's page_info).
                OffsetSource::Infer => {
                    self.infer.and_then(|(x, m)| x.inferred(m).size(sname).map(|i| (i.value, Source::Inferred)))
                }
            };
            if let Some((value, source)) = hit {
                return Ok(Sourced { value, source });
            }
        }
        Err(OffsetError::UnknownSize { name: sname.to_string() })
    }

    /// The keys xenwalk uses, for `info` and profiles: every built-in key plus VMCOREINFO's.
    pub fn known_keys() -> Vec<&'static str> {
        let mut v: Vec<&str> = DEBIAN_4_17_7.offsets.iter().map(|(k, _)| *k).collect();
        v.dedup();
        v
    }

    /// The structs whose size xenwalk uses.
    pub fn known_sizes() -> Vec<&'static str> {
        DEBIAN_4_17_7.sizes.iter().map(|(k, _)| *k).collect()
    }
}
