//! The hypervisor's ELF (`xen-syms`): symbols with sizes, sections, build-id and
//! version — everything that works without DWARF, which is the common case (Debian
//! builds Xen without `CONFIG_DEBUG_INFO`; crash refuses such a file outright).

use crate::addr::Vaddr;
use memmap2::Mmap;
use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, NoteIterator, SectionHeader, Sym};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Why a `xen-syms` cannot be used. The CLI prefixes the file name.
#[derive(Debug, thiserror::Error)]
pub enum SymsError {
    #[error("cannot open")]
    Io(#[from] std::io::Error),
    #[error("at offset {offset:#x}: {what}")]
    Malformed { offset: u64, what: String },
    #[error(
        "has no symbol table (.symtab): a stripped hypervisor cannot be used; pass the xen-syms from the -dbg package"
    )]
    NoSymbols,
}

fn bad(offset: u64, what: impl Into<String>) -> SymsError {
    SymsError::Malformed { offset, what: what.into() }
}

/// What kind of symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymKind {
    Function,
    Object,
    Other,
}

/// One symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub kind: SymKind,
    pub global: bool,
    /// Source file of a local symbol (from the preceding STT_FILE entry).
    pub file: Option<String>,
}

/// One allocated section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    /// File offset of its bytes, or `None` for NOBITS (.bss).
    pub offset: Option<u64>,
}

/// The Xen version a build reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenVersion {
    pub major: u32,
    pub minor: u32,
    /// `xen_extra_version()`, e.g. ".7".
    pub extra: Option<String>,
}

impl std::fmt::Display for XenVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}{}", self.major, self.minor, self.extra.as_deref().unwrap_or(""))
    }
}

/// A loaded `xen-syms`.
pub struct XenSyms {
    pub path: PathBuf,
    map: Mmap,
    /// Sorted by address, then name.
    symbols: Vec<Symbol>,
    by_name: HashMap<String, Vec<usize>>,
    pub sections: Vec<Section>,
    pub build_id: Option<Vec<u8>>,
    pub version: Option<XenVersion>,
    /// Whether `.debug_info` is present.
    pub has_dwarf: bool,
    /// Every section with file bytes, by name: (offset, size). DWARF lives here.
    raw_sections: HashMap<String, (u64, u64)>,
    /// The DWARF type index, built on first use (with its error, if any).
    dwarf_index: std::sync::OnceLock<Result<super::dwarf::DwarfIndex, super::dwarf::DwarfError>>,
}

impl XenSyms {
    /// Load `path`. Reads headers, sections and the symbol table; symbol names are
    /// copied (a few thousand), section bytes stay in the map.
    pub fn load(path: &Path) -> Result<XenSyms, SymsError> {
        let file = File::open(path)?;
        if file.metadata()?.is_dir() {
            return Err(bad(0, "is a directory, not a xen-syms ELF file"));
        }
        // SAFETY: read-only private map; see `Dump::open`.
        let map = unsafe { Mmap::map(&file)? };
        let data: &[u8] = &map;
        if !data.starts_with(b"\x7fELF") {
            return Err(bad(0, "not an ELF file (no 7f 45 4c 46 magic): xen-syms is the hypervisor's ELF image"));
        }
        if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
            return Err(bad(4, "not a little-endian ELF64 file: an x86-64 xen-syms is"));
        }
        let hdr = elf::FileHeader64::<LE>::parse(data).map_err(|e| bad(0, format!("bad ELF header: {e}")))?;
        if hdr.e_type(LE) == elf::ET_CORE {
            return Err(bad(16, "is a core file (a dump), not xen-syms"));
        }
        if hdr.e_machine(LE) != elf::EM_X86_64 {
            return Err(bad(18, format!("ELF machine {} is not x86-64", hdr.e_machine(LE))));
        }
        let shoff = hdr.e_shoff(LE);
        let sections_raw = hdr.sections(LE, data).map_err(|e| bad(shoff, format!("section headers: {e}")))?;
        let mut sections = Vec::new();
        let mut raw_sections = HashMap::new();
        let mut build_id = None;
        let mut has_dwarf = false;
        for (i, s) in sections_raw.iter().enumerate() {
            let name = sections_raw
                .section_name(LE, s)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .map_err(|e| bad(shoff + i as u64 * 64, format!("section {i} name: {e}")))?;
            if name == ".debug_info" {
                has_dwarf = true;
            }
            if s.sh_type(LE) != elf::SHT_NOBITS {
                let (off, size) = (s.sh_offset(LE), s.sh_size(LE));
                if off.checked_add(size).is_some_and(|e| e <= data.len() as u64) {
                    raw_sections.insert(name.clone(), (off, size));
                }
            }
            if s.sh_type(LE) == elf::SHT_NOTE {
                if let Ok(Some(mut notes)) = s.notes(LE, data) {
                    build_id = build_id.or_else(|| find_build_id(&mut notes));
                }
            }
            if s.sh_flags(LE).0 & elf::SHF_ALLOC.0 != 0 && s.sh_addr(LE) != 0 {
                let offset = (s.sh_type(LE) != elf::SHT_NOBITS).then(|| s.sh_offset(LE));
                if let Some(off) = offset {
                    if off.checked_add(s.sh_size(LE)).is_none_or(|e| e > data.len() as u64) {
                        return Err(bad(
                            shoff + i as u64 * 64,
                            format!("section {name} runs past the end of the file"),
                        ));
                    }
                }
                // Every `addr + size` below relies on this (found by fuzzing).
                if s.sh_addr(LE).checked_add(s.sh_size(LE)).is_none() {
                    return Err(bad(
                        shoff + i as u64 * 64,
                        format!("section {name}: address {:#x} + size {:#x} overflows", s.sh_addr(LE), s.sh_size(LE)),
                    ));
                }
                sections.push(Section { name, addr: s.sh_addr(LE), size: s.sh_size(LE), offset });
            }
        }
        let symtab =
            sections_raw.symbols(LE, data, elf::SHT_SYMTAB).map_err(|e| bad(shoff, format!("symbol table: {e}")))?;
        if symtab.is_empty() {
            return Err(SymsError::NoSymbols);
        }
        let mut symbols = Vec::with_capacity(symtab.len());
        let mut file: Option<String> = None;
        for s in symtab.iter() {
            let name = match s.name(LE, symtab.strings()) {
                Ok(n) => String::from_utf8_lossy(n).into_owned(),
                Err(_) => continue,
            };
            let st_type = s.st_type();
            if st_type == elf::STT_FILE {
                file = Some(name);
                continue;
            }
            if name.is_empty() || st_type == elf::STT_SECTION || s.st_shndx(LE) == elf::SHN_UNDEF {
                continue;
            }
            let global = s.st_bind() != elf::STB_LOCAL;
            let kind = match st_type {
                elf::STT_FUNC => SymKind::Function,
                elf::STT_OBJECT => SymKind::Object,
                _ => SymKind::Other,
            };
            symbols.push(Symbol {
                name,
                addr: s.st_value(LE),
                size: s.st_size(LE),
                kind,
                global,
                file: if global { None } else { file.clone() },
            });
        }
        symbols.sort_by(|a, b| a.addr.cmp(&b.addr).then(b.global.cmp(&a.global)).then(a.name.cmp(&b.name)));
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in symbols.iter().enumerate() {
            by_name.entry(s.name.clone()).or_default().push(i);
        }
        let mut syms = XenSyms {
            path: path.to_owned(),
            map,
            symbols,
            by_name,
            sections,
            build_id,
            version: None,
            has_dwarf,
            raw_sections,
            dwarf_index: std::sync::OnceLock::new(),
        };
        syms.version = syms.decode_version();
        Ok(syms)
    }

    /// All symbols, by address.
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// Address of `name`: a global if there is one, else the only local of that name.
    /// `file#name` (System.map style, e.g. `head.o#l3_xenmap`) picks a local by file.
    pub fn lookup(&self, name: &str) -> Option<&Symbol> {
        if let Some((file, sym)) = name.split_once('#') {
            // The System.map spells the file as the symbol table's STT_FILE does
            // (`arch/x86/acpi/boot.c#...`, `head.o#...`); accept a basename too.
            let cands: Vec<&Symbol> = self.by_name.get(sym)?.iter().map(|&i| &self.symbols[i]).collect();
            let stem = |f: &str| f.rsplit('/').next().unwrap_or(f).split('.').next().unwrap_or(f).to_string();
            return cands
                .iter()
                .find(|s| s.file.as_deref() == Some(file))
                .or_else(|| {
                    cands.iter().find(|s| s.file.as_deref().is_some_and(|f| f.rsplit('/').next() == Some(file)))
                })
                .or_else(|| cands.iter().find(|s| s.file.as_deref().is_some_and(|f| stem(f) == stem(file))))
                .copied();
        }
        let ids = self.by_name.get(name)?;
        let mut it = ids.iter().map(|&i| &self.symbols[i]);
        it.clone().find(|s| s.global).or_else(|| if ids.len() == 1 { it.next() } else { None })
    }

    /// Address of `name`, if defined.
    pub fn addr(&self, name: &str) -> Option<u64> {
        self.lookup(name).map(|s| s.addr)
    }

    /// The symbol containing `va` (within its size; a sizeless symbol covers up to the
    /// next symbol but only inside the same section), and the offset into it.
    pub fn describe(&self, va: Vaddr) -> Option<(&Symbol, u64)> {
        let i = self.symbols.partition_point(|s| s.addr <= va.0);
        let cand = self.symbols.get(i.checked_sub(1)?)?;
        // Several symbols may share the address: prefer one that has a size covering va.
        let start = self.symbols.partition_point(|s| s.addr < cand.addr);
        let same = &self.symbols[start..i];
        let off = va.0 - cand.addr;
        if let Some(s) = same.iter().find(|s| s.size > off && s.kind != SymKind::Other) {
            return Some((s, off));
        }
        if let Some(s) = same.iter().find(|s| s.size > off) {
            return Some((s, off));
        }
        let sized_elsewhere = same.iter().all(|s| s.size > 0);
        if sized_elsewhere {
            return None; // past the end of every symbol at that address: padding
        }
        let sec = self.section_of(va)?;
        let s = same.first()?;
        (self.section_of(Vaddr(s.addr)).map(|x| &x.name) == Some(&sec.name)).then_some((s, off))
    }

    /// `symbol+0x10` for `va`, if a symbol covers it.
    pub fn name_of(&self, va: Vaddr) -> Option<String> {
        self.describe(va).map(|(s, off)| if off == 0 { s.name.clone() } else { format!("{}+{off:#x}", s.name) })
    }

    /// The allocated section containing `va`.
    pub fn section_of(&self, va: Vaddr) -> Option<&Section> {
        self.sections.iter().find(|s| va.0 >= s.addr && va.0 - s.addr < s.size.max(1))
    }

    /// The file bytes at `va..va+len`, if they lie inside one PROGBITS section.
    pub fn bytes_at(&self, va: u64, len: u64) -> Option<&[u8]> {
        // A section with file bytes: a NOBITS header over the same range (a cut
        // xen-syms keeps the headers of elided sections) does not hide it.
        let s = self.sections.iter().find(|s| {
            s.offset.is_some() && va >= s.addr && va.checked_add(len).is_some_and(|e| e <= s.addr + s.size)
        })?;
        let off = usize::try_from(s.offset?.checked_add(va - s.addr)?).ok()?;
        self.map.get(off..off.checked_add(usize::try_from(len).ok()?)?)
    }

    /// `XEN_VIRT_START` for this build: `__image_base__` (since 4.3,
    /// `X:xen/arch/x86/xen.lds.S@4.3.0`), else `_start` rounded down to 1 GiB (what
    /// crash and makedumpfile do; reference §2.2).
    pub fn xen_virt_start(&self) -> Option<u64> {
        self.addr("__image_base__").or_else(|| self.addr("_start").map(|s| s & !((1 << 30) - 1)))
    }

    /// The bytes of any section with file data (including non-allocated ones such as
    /// `.debug_info`).
    pub fn section_data(&self, name: &str) -> Option<&[u8]> {
        let &(off, size) = self.raw_sections.get(name)?;
        self.map.get(usize::try_from(off).ok()?..usize::try_from(off + size).ok()?)
    }

    /// The DWARF type index (built once), or why there is none.
    pub fn dwarf(&self) -> Result<&super::dwarf::DwarfIndex, super::dwarf::DwarfError> {
        if !self.has_dwarf {
            return Err(super::dwarf::DwarfError::NoDwarf);
        }
        self.dwarf_index.get_or_init(|| super::dwarf::DwarfIndex::build(self)).as_ref().map_err(Clone::clone)
    }

    /// The build-id as lowercase hex.
    pub fn build_id_hex(&self) -> Option<String> {
        self.build_id.as_ref().map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
    }

    /// Decode the version from the tiny functions `xen_major_version()`,
    /// `xen_minor_version()` (`mov $imm32, %eax`) and `xen_extra_version()` (`lea
    /// rel32(%rip), %rax` to a string) of `xen/common/version.c`: there is no DWARF
    /// to ask, and these are the values the banner prints.
    fn decode_version(&self) -> Option<XenVersion> {
        let major = self.imm_return("xen_major_version")?;
        let minor = self.imm_return("xen_minor_version")?;
        let extra = self.rip_string("xen_extra_version");
        Some(XenVersion { major, minor, extra })
    }

    /// The code of function `name`, skipping an `endbr64` (CET-IBT builds).
    fn code(&self, name: &str) -> Option<(u64, &[u8])> {
        let s = self.lookup(name)?;
        let len = s.size.clamp(8, 32);
        let mut va = s.addr;
        let mut b = self.bytes_at(va, len)?;
        if b.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
            b = b.get(4..)?;
            va += 4;
        }
        Some((va, b))
    }

    fn imm_return(&self, name: &str) -> Option<u32> {
        let (_, b) = self.code(name)?;
        match b {
            [0xb8, a, b2, c, d, ..] => Some(u32::from_le_bytes([*a, *b2, *c, *d])),
            [0x31, 0xc0, ..] => Some(0), // xor %eax,%eax
            _ => None,
        }
    }

    fn rip_string(&self, name: &str) -> Option<String> {
        let (va, b) = self.code(name)?;
        let [0x48, 0x8d, 0x05, d0, d1, d2, d3, ..] = *b else {
            return None;
        };
        let target = va.wrapping_add(7).wrapping_add(i64::from(i32::from_le_bytes([d0, d1, d2, d3])) as u64);
        let bytes = self.bytes_at(target, 1)?;
        let sec = self.sections.iter().find(|s| s.offset.is_some() && target >= s.addr && target < s.addr + s.size)?;
        let avail = (sec.addr + sec.size - target).min(256);
        let s = self.bytes_at(target, avail).unwrap_or(bytes);
        let end = s.iter().position(|&c| c == 0)?;
        Some(String::from_utf8_lossy(&s[..end]).into_owned())
    }
}

fn find_build_id(notes: &mut NoteIterator<'_, elf::FileHeader64<LE>>) -> Option<Vec<u8>> {
    while let Ok(Some(n)) = notes.next() {
        if n.name() == b"GNU" && n.n_type(LE) == elf::NT_GNU_BUILD_ID {
            return Some(n.desc().to_vec());
        }
    }
    None
}
