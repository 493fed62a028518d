//! Struct layouts and variable types from a `xen-syms` built with DWARF
//! (`CONFIG_DEBUG_INFO=y`), through gimli.
//!
//! One pass over `.debug_info` indexes, by name, the first complete definition of
//! every struct/union, every typedef and every global variable (a few MB of DIEs in,
//! a few thousand names out). Member paths (`arch.hvm.monitor_table`,
//! `arch.hvm.guest_cr[3]`) are then resolved on demand by reading only the DIEs they
//! touch; members of anonymous unions and structs are found as C finds them.

use super::symbols::XenSyms;
use gimli::{AttributeValue, DebugInfoOffset, EndianSlice, LittleEndian, Section, UnitOffset};
use std::collections::HashMap;
use std::sync::Mutex;

type R<'a> = EndianSlice<'a, LittleEndian>;

/// A DIE anywhere in `.debug_info`: its unit's header offset and its offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DieRef {
    unit: usize,
    die: usize,
}

/// Names to DIEs, and every answer given so far.
///
/// Each lookup reads its unit's abbreviations and DIEs afresh (gimli's `Unit::new`):
/// fine once, ruinous per frame — `p2m --check` asks the owner of every page, and
/// without the caches a 1 GiB machine took 84 s with DWARF against 0.2 s with the
/// built-in table. Every struct, member path and variable is therefore resolved once
/// per run, and its answer (errors included) kept.
/// Where each file-scope struct, typedef and variable is defined, filled unit by
/// unit as lookups need it: a name asked for is searched in the units not yet read,
/// and the scan stops at the first unit that defines it. `struct domain` and
/// `struct vcpu` are defined by nearly every unit (they include sched.h), so a run
/// reads a handful of units instead of indexing all of them at start (which cost
/// as much as a whole `domains` command).
#[derive(Debug, Default)]
pub struct DwarfIndex {
    scan: Mutex<Scan>,
    struct_cache: Mutex<HashMap<String, Result<Type, DwarfError>>>,
    member_cache: Mutex<HashMap<(String, String), Result<Member, DwarfError>>>,
    var_cache: Mutex<HashMap<String, Result<Type, DwarfError>>>,
}

/// `cache[key]`, computing it with `f` the first time (a poisoned lock only means
/// another thread panicked mid-insert: the map itself is still sound).
#[derive(Debug, Default)]
struct Scan {
    structs: HashMap<String, DieRef>,
    typedefs: HashMap<String, DieRef>,
    vars: HashMap<String, DieRef>,
    /// `.debug_info` offset of the next unit to read; `None` once all are read.
    next: Option<usize>,
    units: usize,
}

#[derive(Clone, Copy)]
enum Kind {
    Struct,
    Typedef,
    Var,
}

impl Scan {
    fn get(&self, kind: Kind, name: &str) -> Option<DieRef> {
        match kind {
            Kind::Struct => self.structs.get(name),
            Kind::Typedef => self.typedefs.get(name),
            Kind::Var => self.vars.get(name),
        }
        .copied()
    }

    /// Read units until one defines `name` as `kind` (or none is left).
    fn find(&mut self, dwarf: &gimli::Dwarf<R<'_>>, kind: Kind, name: &str) -> Result<Option<DieRef>, DwarfError> {
        while self.get(kind, name).is_none() {
            let Some(at) = self.next else { break };
            let h = dwarf
                .debug_info
                .header_from_offset(DebugInfoOffset(at))
                .map_err(|error| DwarfError::Unit { unit: at, error })?;
            let next = at + h.length_including_self();
            self.next = (next < dwarf.debug_info.reader().len()).then_some(next);
            self.index_unit(dwarf, h, at)?;
        }
        Ok(self.get(kind, name))
    }

    fn index_unit(
        &mut self,
        dwarf: &gimli::Dwarf<R<'_>>,
        h: gimli::UnitHeader<R<'_>>,
        uoff: usize,
    ) -> Result<(), DwarfError> {
        let unit_error = |error| DwarfError::Unit { unit: uoff, error };
        let unit = dwarf.unit(h).map_err(unit_error)?;
        self.units += 1;
        // Only the unit's own children: file-scope types and variables, which is
        // where C puts every named struct, typedef and global. Function bodies, most
        // of the DIEs, are skipped whole (gcc's DW_AT_sibling lets the cursor jump
        // over them).
        let mut cur = unit.entries();
        if cur.next_dfs().map_err(unit_error)?.is_none() {
            return Ok(());
        }
        let mut child = cur.next_dfs().map_err(unit_error)?.map(|_| ());
        while child.is_some() {
            if let Some(e) = cur.current() {
                let map = match e.tag() {
                    gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                        if e.attr_value(gimli::DW_AT_declaration).is_some()
                            || e.attr_value(gimli::DW_AT_byte_size).is_none()
                        {
                            None
                        } else {
                            Some(&mut self.structs)
                        }
                    }
                    gimli::DW_TAG_typedef => Some(&mut self.typedefs),
                    gimli::DW_TAG_variable if e.attr_value(gimli::DW_AT_type).is_some() => Some(&mut self.vars),
                    _ => None,
                };
                if let (Some(map), Some(name)) = (map, name_of(dwarf, &unit, e)) {
                    map.entry(name).or_insert(DieRef { unit: uoff, die: e.offset().0 });
                }
            }
            child = cur.next_sibling().map_err(unit_error)?.map(|_| ());
        }
        Ok(())
    }
}

fn cached<K, V: Clone>(cache: &Mutex<HashMap<K, V>>, key: K, f: impl FnOnce() -> V) -> V
where
    K: std::hash::Hash + Eq,
{
    if let Some(v) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return v.clone();
    }
    let v = f();
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, v.clone());
    v
}

/// A type, as far as member paths and the CLI's expressions need one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Struct {
        name: Option<String>,
        size: u64,
        die: DieRef,
    },
    Pointer(Box<Type>),
    Array {
        elem: Box<Type>,
        count: Option<u64>,
    },
    Base {
        name: String,
        size: u64,
    },
    /// Functions, enums and the like: only their size matters here.
    Other {
        size: Option<u64>,
    },
}

impl Type {
    /// Size in bytes, if known.
    pub fn size(&self) -> Option<u64> {
        match self {
            Type::Struct { size, .. } => Some(*size),
            Type::Pointer(_) => Some(8),
            Type::Array { elem, count } => Some(elem.size()? * (*count)?),
            Type::Base { size, .. } => Some(*size),
            Type::Other { size } => *size,
        }
    }
}

/// Why a type, a variable or a member cannot be had from the DWARF.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DwarfError {
    /// `xen-syms` has no `.debug_info` (built without `CONFIG_DEBUG_INFO`).
    #[error("xen-syms has no DWARF (.debug_info)")]
    NoDwarf,
    /// The list of unit headers cannot be read.
    #[error("DWARF unit headers: {0}")]
    UnitHeaders(gimli::Error),
    /// The unit whose header is at `.debug_info` offset `unit` cannot be read.
    #[error("DWARF unit at {unit:#x}: {error}")]
    Unit { unit: usize, error: gimli::Error },
    /// A DIE or its children cannot be read.
    #[error(transparent)]
    Gimli(#[from] gimli::Error),
    #[error("no DWARF unit holds offset {offset:#x}")]
    NoUnit { offset: usize },
    #[error("no struct {name} in the DWARF")]
    NoStruct { name: String },
    #[error("no variable {name} in the DWARF")]
    NoVariable { name: String },
    #[error("variable {name} has no type")]
    UntypedVariable { name: String },
    /// Typedefs and qualifiers nest deeper than xenwalk follows.
    #[error("type chain too long")]
    TypeChainTooLong,
    /// A member path of `struct strukt` goes wrong.
    #[error("struct {strukt}: {error}")]
    InStruct { strukt: String, error: Box<DwarfError> },
    /// Path component `component` accesses a member of something that is not a struct.
    #[error("'{component}': not a struct member access")]
    NotAStruct { component: String },
    #[error("no member '{name}'")]
    NoMember { name: String },
    #[error("'{name}' is not an array")]
    NotAnArray { name: String },
    #[error("array element of unknown size")]
    UnsizedElement,
    /// Path component `component` has an index that is not a number.
    #[error("'{component}': bad index")]
    BadIndex { component: String },
}

/// A member found along a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub offset: u64,
    pub ty: Type,
}

fn load(syms: &XenSyms) -> gimli::Dwarf<R<'_>> {
    let sections = gimli::Dwarf::load(|id| -> Result<R<'_>, std::convert::Infallible> {
        Ok(EndianSlice::new(syms.section_data(id.name()).unwrap_or(&[]), LittleEndian))
    });
    match sections {
        Ok(dwarf) => dwarf,
        Err(never) => match never {},
    }
}

fn unit_at<'a>(dwarf: &gimli::Dwarf<R<'a>>, at: usize) -> Result<gimli::Unit<R<'a>>, DwarfError> {
    let unit_error = |error| DwarfError::Unit { unit: at, error };
    let h = dwarf.debug_info.header_from_offset(DebugInfoOffset(at)).map_err(unit_error)?;
    dwarf.unit(h).map_err(unit_error)
}

fn name_of(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    e: &gimli::DebuggingInformationEntry<R<'_>>,
) -> Option<String> {
    let v = e.attr_value(gimli::DW_AT_name)?;
    dwarf.attr_string(unit, v).ok().map(|s| String::from_utf8_lossy(s.slice()).into_owned())
}

fn udata(e: &gimli::DebuggingInformationEntry<R<'_>>, at: gimli::DwAt) -> Option<u64> {
    e.attr_value(at)?.udata_value()
}

impl DwarfIndex {
    /// An index of `syms`' DWARF, read on demand; the first unit header must be
    /// readable.
    pub fn build(syms: &XenSyms) -> Result<DwarfIndex, DwarfError> {
        let dwarf = load(syms);
        let mut headers = dwarf.units();
        let first = headers.next().map_err(DwarfError::UnitHeaders)?;
        let next = first.and_then(|h| h.offset().to_debug_info_offset(&h)).map(|o| o.0);
        Ok(DwarfIndex { scan: Mutex::new(Scan { next, ..Scan::default() }), ..DwarfIndex::default() })
    }

    /// Units read so far.
    pub fn units_read(&self) -> usize {
        self.scan.lock().unwrap_or_else(|p| p.into_inner()).units
    }

    fn find(&self, syms: &XenSyms, kind: Kind, name: &str) -> Result<Option<DieRef>, DwarfError> {
        let dwarf = load(syms);
        self.scan.lock().unwrap_or_else(|p| p.into_inner()).find(&dwarf, kind, name)
    }

    /// `struct name` (or a typedef of one).
    pub fn struct_type(&self, syms: &XenSyms, name: &str) -> Result<Type, DwarfError> {
        cached(&self.struct_cache, name.to_string(), || self.struct_type_uncached(syms, name))
    }

    fn struct_type_uncached(&self, syms: &XenSyms, name: &str) -> Result<Type, DwarfError> {
        let dwarf = load(syms);
        if let Some(d) = self.find(syms, Kind::Struct, name)? {
            return resolve(&dwarf, d);
        }
        if let Some(d) = self.find(syms, Kind::Typedef, name)? {
            return resolve(&dwarf, d);
        }
        Err(DwarfError::NoStruct { name: name.to_string() })
    }

    /// The type of global variable `name`.
    pub fn var_type(&self, syms: &XenSyms, name: &str) -> Result<Type, DwarfError> {
        cached(&self.var_cache, name.to_string(), || self.var_type_uncached(syms, name))
    }

    fn var_type_uncached(&self, syms: &XenSyms, name: &str) -> Result<Type, DwarfError> {
        let dwarf = load(syms);
        let d = self.find(syms, Kind::Var, name)?.ok_or_else(|| DwarfError::NoVariable { name: name.to_string() })?;
        let unit = unit_at(&dwarf, d.unit)?;
        let e = unit.entry(UnitOffset(d.die))?;
        let t = type_ref(&e, d.unit).ok_or_else(|| DwarfError::UntypedVariable { name: name.to_string() })?;
        resolve(&dwarf, t)
    }

    /// The member at `path` (dot-separated, `[n]` for array elements) of `struct sname`.
    pub fn member(&self, syms: &XenSyms, sname: &str, path: &str) -> Result<Member, DwarfError> {
        cached(&self.member_cache, (sname.to_string(), path.to_string()), || {
            let ty = self.struct_type(syms, sname)?;
            member_of(syms, &ty, path)
                .map_err(|e| DwarfError::InStruct { strukt: sname.to_string(), error: Box::new(e) })
        })
    }
}

/// Walk `path` from a struct type.
pub fn member_of(syms: &XenSyms, ty: &Type, path: &str) -> Result<Member, DwarfError> {
    let dwarf = load(syms);
    let mut ty = ty.clone();
    let mut offset = 0u64;
    for comp in path.split('.').filter(|c| !c.is_empty()) {
        let (name, indices) = split_indices(comp)?;
        let Type::Struct { die, .. } = &ty else {
            return Err(DwarfError::NotAStruct { component: comp.to_string() });
        };
        let m = find_member(&dwarf, *die, name)?.ok_or_else(|| DwarfError::NoMember { name: name.to_string() })?;
        offset += m.offset;
        ty = m.ty;
        for i in indices {
            let Type::Array { elem, .. } = &ty else { return Err(DwarfError::NotAnArray { name: name.to_string() }) };
            offset += i * elem.size().ok_or(DwarfError::UnsizedElement)?;
            ty = (**elem).clone();
        }
    }
    Ok(Member { offset, ty })
}

/// `name[1][2]` → ("name", [1, 2]).
fn split_indices(comp: &str) -> Result<(&str, Vec<u64>), DwarfError> {
    let Some(b) = comp.find('[') else { return Ok((comp, Vec::new())) };
    let bad_index = || DwarfError::BadIndex { component: comp.to_string() };
    let mut out = Vec::new();
    for part in comp[b..].split('[').skip(1) {
        let n = part.strip_suffix(']').ok_or_else(bad_index)?;
        out.push(n.parse().or_else(|_| crate::parse::hex_u64(n)).map_err(|_| bad_index())?);
    }
    Ok((&comp[..b], out))
}

fn type_ref(e: &gimli::DebuggingInformationEntry<R<'_>>, unit: usize) -> Option<DieRef> {
    match e.attr_value(gimli::DW_AT_type)? {
        AttributeValue::UnitRef(o) => Some(DieRef { unit, die: o.0 }),
        AttributeValue::DebugInfoRef(o) => Some(DieRef { unit: usize::MAX, die: o.0 }),
        _ => None,
    }
}

/// Read the DIE `d` as a type, following typedefs and qualifiers (depth-bounded).
fn resolve(dwarf: &gimli::Dwarf<R<'_>>, mut d: DieRef) -> Result<Type, DwarfError> {
    for _ in 0..32 {
        if d.unit == usize::MAX {
            d = global_to_unit(dwarf, d.die)?;
        }
        let unit = unit_at(dwarf, d.unit)?;
        let e = unit.entry(UnitOffset(d.die))?;
        match e.tag() {
            gimli::DW_TAG_typedef
            | gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type => {
                match type_ref(&e, d.unit) {
                    Some(t) => d = t,
                    None => return Ok(Type::Other { size: None }), // `const void`
                }
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                return Ok(Type::Struct {
                    name: name_of(dwarf, &unit, &e),
                    size: udata(&e, gimli::DW_AT_byte_size).unwrap_or(0),
                    die: d,
                });
            }
            gimli::DW_TAG_pointer_type => {
                let to = match type_ref(&e, d.unit) {
                    // Pointee resolution is shallow for pointers to structs (their DIE is
                    // enough); void pointers have no type.
                    Some(t) => resolve(dwarf, t).unwrap_or(Type::Other { size: None }),
                    None => Type::Other { size: None },
                };
                return Ok(Type::Pointer(Box::new(to)));
            }
            gimli::DW_TAG_array_type => {
                let elem = match type_ref(&e, d.unit) {
                    Some(t) => resolve(dwarf, t)?,
                    None => Type::Other { size: None },
                };
                let mut count = None;
                let mut tree = unit.entries_tree(Some(UnitOffset(d.die)))?;
                let root = tree.root()?;
                let mut kids = root.children();
                if let Some(k) = kids.next()? {
                    let k = k.entry();
                    count = udata(k, gimli::DW_AT_count).or_else(|| udata(k, gimli::DW_AT_upper_bound).map(|u| u + 1));
                }
                return Ok(Type::Array { elem: Box::new(elem), count });
            }
            gimli::DW_TAG_base_type => {
                return Ok(Type::Base {
                    name: name_of(dwarf, &unit, &e).unwrap_or_default(),
                    size: udata(&e, gimli::DW_AT_byte_size).unwrap_or(0),
                });
            }
            _ => return Ok(Type::Other { size: udata(&e, gimli::DW_AT_byte_size) }),
        }
    }
    Err(DwarfError::TypeChainTooLong)
}

/// Turn a `.debug_info` offset into (unit, offset in unit).
fn global_to_unit(dwarf: &gimli::Dwarf<R<'_>>, off: usize) -> Result<DieRef, DwarfError> {
    let mut headers = dwarf.units();
    while let Some(h) = headers.next()? {
        let Some(u) = h.offset().to_debug_info_offset(&h) else { continue };
        if off >= u.0 && off < u.0 + h.length_including_self() {
            return Ok(DieRef { unit: u.0, die: off - u.0 });
        }
    }
    Err(DwarfError::NoUnit { offset: off })
}

/// Find member `name` of the struct at `d`, looking inside anonymous members.
fn find_member(dwarf: &gimli::Dwarf<R<'_>>, d: DieRef, name: &str) -> Result<Option<Member>, DwarfError> {
    let unit = unit_at(dwarf, d.unit)?;
    let mut tree = unit.entries_tree(Some(UnitOffset(d.die)))?;
    let root = tree.root()?;
    let mut kids = root.children();
    let mut anonymous = Vec::new();
    while let Some(k) = kids.next()? {
        let e = k.entry();
        if e.tag() != gimli::DW_TAG_member {
            continue;
        }
        let offset = udata(e, gimli::DW_AT_data_member_location)
            .or_else(|| udata(e, gimli::DW_AT_data_bit_offset).map(|b| b / 8))
            .unwrap_or(0);
        let Some(t) = type_ref(e, d.unit) else { continue };
        match name_of(dwarf, &unit, e) {
            Some(n) if n == name => return Ok(Some(Member { offset, ty: resolve(dwarf, t)? })),
            Some(_) => {}
            None => anonymous.push((offset, t)),
        }
    }
    for (offset, t) in anonymous {
        if let Type::Struct { die, .. } = resolve(dwarf, t)? {
            if let Some(m) = find_member(dwarf, die, name)? {
                return Ok(Some(Member { offset: offset + m.offset, ty: m.ty }));
            }
        }
    }
    Ok(None)
}
