//! Struct layouts carried over from a build with DWARF to its stripped twin.
//!
//! Production hypervisors ship without DWARF; their `-dbg` twin (or the developer's
//! own build tree) has it. `xenwalk profile XEN-SYMS` writes, from the DWARF, every
//! struct member offset and struct size xenwalk reads, with the build-id, version
//! and image base; `--profile FILE` gives them to a stripped `xen-syms` of the same
//! build. Two formats are read:
//!
//! * xenwalk's own (`"type": "xenwalk_profile"`): flat `struct.member.path` keys,
//!   keyed to one build by its build-id;
//! * volatility3's ISF JSON, as `dwarf2json` writes it (`user_types` → `fields` →
//!   `offset`, with `type` naming the member's struct, union, array or pointer), so
//!   that people who already make ISF files for their builds can use them; an ISF
//!   file carries no build-id, so it is matched to the build by its `symbols`
//!   addresses instead.
//!
//! A profile of another build is refused: offsets that are wrong by 16 bytes read
//! plausible garbage (4.17.5 → 4.17.7 moved every `arch_domain` member after
//! `vm_assist`).

use super::symbols::XenSyms;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    #[error("cannot read")]
    Io(#[from] std::io::Error),
    /// Not JSON, or not a profile in either format.
    #[error("not a xenwalk profile nor a volatility3 ISF file: {0}")]
    Format(String),
    /// The profile's schema is newer than this xenwalk understands.
    #[error("profile schema {0} (this xenwalk reads schema {SCHEMA})")]
    Schema(u64),
    /// The profile belongs to another build.
    #[error(
        "is for build-id {profile}, but xen-syms has build-id {syms}: a profile of another build gives wrong offsets"
    )]
    OtherBuild { profile: String, syms: String },
    /// An ISF file whose symbols do not sit where xen-syms has them.
    #[error("is for another build: its symbol {name} is at {profile:#x}, xen-syms has it at {syms:#x}")]
    OtherSymbols { name: String, profile: u64, syms: u64 },
    /// An ISF file that shares no symbol with xen-syms: nothing ties it to this build.
    #[error("an ISF file is matched to the build by its symbols, and this one has none of xen-syms' symbols")]
    Unmatched,
    /// A directory holds no profile for the build.
    #[error("no profile for build-id {build_id} in this directory ({tried} JSON files tried)")]
    NoneForBuild { build_id: String, tried: usize },
    /// Matching a profile to a build needs the build's xen-syms.
    #[error("a profile is matched to the hypervisor's build through xen-syms, and none was given")]
    NoSyms,
}

/// The schema of xenwalk's profile format.
pub const SCHEMA: u64 = 1;

/// xenwalk's profile file (documented in the README, "Profiles").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// Always `xenwalk_profile`.
    #[serde(rename = "type")]
    pub kind: String,
    pub schema: u64,
    /// The build's GNU build-id (lowercase hex).
    pub build_id: String,
    /// `xen_major.minor` and extra version, as decoded from xen-syms.
    pub version: Option<String>,
    /// The image's link address (`_start`), hex.
    pub image_start: Option<String>,
    /// `sizeof(struct name)`.
    pub sizes: BTreeMap<String, u64>,
    /// `struct.member.path` → offset.
    pub offsets: BTreeMap<String, u64>,
    /// Keys the DWARF could not answer (this build lacks the member).
    #[serde(default)]
    pub missing: Vec<String>,
}

/// A loaded profile, of either format.
#[derive(Clone, Debug)]
pub struct Profile {
    pub path: PathBuf,
    pub data: ProfileData,
}

/// What a profile holds.
#[derive(Clone, Debug)]
pub enum ProfileData {
    Xenwalk(ProfileFile),
    /// volatility3 ISF: `user_types` (name → `{size, fields}`), and `symbols`.
    Isf {
        user_types: serde_json::Map<String, Value>,
        symbols: serde_json::Map<String, Value>,
    },
}

impl Profile {
    /// Read a profile file (either format), without matching it to a build yet.
    pub fn read(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read(path)?;
        let v: Value = serde_json::from_slice(&text).map_err(|e| ProfileError::Format(e.to_string()))?;
        let data = if v.get("type").and_then(Value::as_str) == Some("xenwalk_profile") {
            let schema = v.get("schema").and_then(Value::as_u64).unwrap_or(0);
            if schema > SCHEMA {
                return Err(ProfileError::Schema(schema));
            }
            ProfileData::Xenwalk(serde_json::from_value(v).map_err(|e| ProfileError::Format(e.to_string()))?)
        } else if let Some(Value::Object(user_types)) = v.get("user_types") {
            let symbols = match v.get("symbols") {
                Some(Value::Object(s)) => s.clone(),
                _ => serde_json::Map::new(),
            };
            ProfileData::Isf { user_types: user_types.clone(), symbols }
        } else {
            return Err(ProfileError::Format("neither \"type\": \"xenwalk_profile\" nor ISF \"user_types\"".into()));
        };
        Ok(Profile { path: path.to_path_buf(), data })
    }

    /// Check that this profile is for the build `syms` is: the same build-id
    /// (xenwalk's format), or every shared symbol at the same address (ISF).
    pub fn check_build(&self, syms: &XenSyms) -> Result<(), ProfileError> {
        match &self.data {
            ProfileData::Xenwalk(p) => {
                let id = syms.build_id_hex().unwrap_or_default();
                if p.build_id != id {
                    return Err(ProfileError::OtherBuild { profile: p.build_id.clone(), syms: id });
                }
                Ok(())
            }
            ProfileData::Isf { symbols, .. } => {
                let mut shared = 0;
                for (name, s) in symbols {
                    let (Some(at), Some(have)) = (s.get("address").and_then(Value::as_u64), syms.addr(name)) else {
                        continue;
                    };
                    if at != have {
                        return Err(ProfileError::OtherSymbols { name: name.clone(), profile: at, syms: have });
                    }
                    shared += 1;
                }
                if shared == 0 { Err(ProfileError::Unmatched) } else { Ok(()) }
            }
        }
    }

    /// The profile for `syms`' build: `path` itself, or in a directory the JSON file
    /// whose build matches.
    pub fn for_build(path: &Path, syms: Option<&XenSyms>) -> Result<Profile, ProfileError> {
        let syms = syms.ok_or(ProfileError::NoSyms)?;
        if !path.is_dir() {
            let p = Profile::read(path)?;
            p.check_build(syms)?;
            return Ok(p);
        }
        let mut tried = 0;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        entries.sort();
        for f in entries {
            tried += 1;
            if let Ok(p) = Profile::read(&f) {
                if p.check_build(syms).is_ok() {
                    return Ok(p);
                }
            }
        }
        Err(ProfileError::NoneForBuild { build_id: syms.build_id_hex().unwrap_or_default(), tried })
    }

    /// Offset of `struct.member.path`.
    pub fn offset(&self, key: &str) -> Option<u64> {
        match &self.data {
            ProfileData::Xenwalk(p) => p.offsets.get(key).copied(),
            ProfileData::Isf { user_types, .. } => {
                let (sname, path) = key.split_once('.')?;
                isf_member(user_types, sname, path)
            }
        }
    }

    /// `sizeof(struct name)`.
    pub fn size(&self, name: &str) -> Option<u64> {
        match &self.data {
            ProfileData::Xenwalk(p) => p.sizes.get(name).copied(),
            ProfileData::Isf { user_types, .. } => user_types.get(name)?.get("size")?.as_u64(),
        }
    }
}

/// The offset of `path` (dot-separated, `[n]` for array elements) in ISF type
/// `sname`, following each member's `type` to the struct or union it names. Members
/// of anonymous unions and structs are found as C finds them: dwarf2json names such
/// types (`unnamed_…`) and lists them as fields of their own.
fn isf_member(types: &serde_json::Map<String, Value>, sname: &str, path: &str) -> Option<u64> {
    let mut ty = sname.to_string();
    let mut offset = 0u64;
    for comp in path.split('.') {
        let (name, idx) = match comp.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<u64>().ok()),
            None => (comp, None),
        };
        let (off, mtype) = isf_field(types, &ty, name, 0)?;
        offset += off;
        let mut t = mtype;
        if let Some(i) = idx {
            if t.get("kind")?.as_str()? != "array" {
                return None;
            }
            let sub = t.get("subtype")?.clone();
            offset += i * isf_size(types, &sub)?;
            t = sub;
        }
        ty = match t.get("kind").and_then(Value::as_str) {
            Some("struct" | "union") => t.get("name")?.as_str()?.to_string(),
            _ => String::new(),
        };
    }
    Some(offset)
}

/// Field `name` of ISF struct/union `ty`, directly or inside an anonymous member.
fn isf_field(types: &serde_json::Map<String, Value>, ty: &str, name: &str, depth: u32) -> Option<(u64, Value)> {
    if depth > 8 {
        return None;
    }
    let fields = types.get(ty)?.get("fields")?.as_object()?;
    if let Some(f) = fields.get(name) {
        return Some((f.get("offset")?.as_u64()?, f.get("type")?.clone()));
    }
    for (fname, f) in fields {
        let anonymous = f.get("anonymous").and_then(Value::as_bool).unwrap_or(false) || fname.starts_with("unnamed");
        let t = f.get("type")?;
        if anonymous && matches!(t.get("kind").and_then(Value::as_str), Some("struct" | "union")) {
            if let Some((o, t2)) = isf_field(types, t.get("name")?.as_str()?, name, depth + 1) {
                return Some((f.get("offset")?.as_u64()? + o, t2));
            }
        }
    }
    None
}

/// Size of an ISF type reference.
fn isf_size(types: &serde_json::Map<String, Value>, t: &Value) -> Option<u64> {
    match t.get("kind")?.as_str()? {
        "struct" | "union" => types.get(t.get("name")?.as_str()?)?.get("size")?.as_u64(),
        "pointer" => Some(8),
        "array" => Some(t.get("count")?.as_u64()? * isf_size(types, t.get("subtype")?)?),
        // Base types and enums: dwarf2json keeps their sizes under base_types/enums,
        // which this reader does not load; arrays of them index by the common sizes.
        "base" | "enum" => match t.get("name")?.as_str()? {
            "char" | "unsigned char" | "signed char" | "bool" | "_Bool" | "uint8_t" | "int8_t" => Some(1),
            "short" | "unsigned short" | "short int" | "short unsigned int" | "uint16_t" | "int16_t" => Some(2),
            "int" | "unsigned int" | "uint32_t" | "int32_t" => Some(4),
            _ => Some(8),
        },
        _ => None,
    }
}

/// Write the profile of `syms` from its DWARF: every key of `keys` and every size of
/// `structs` it can answer; the rest listed as missing.
pub fn from_dwarf(syms: &XenSyms, keys: &[&str], structs: &[&str]) -> Result<ProfileFile, super::dwarf::DwarfError> {
    let d = syms.dwarf()?;
    let mut offsets = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    let mut missing = Vec::new();
    for k in keys {
        let Some((s, path)) = k.split_once('.') else { continue };
        match d.member(syms, s, path) {
            Ok(m) => {
                offsets.insert((*k).to_string(), m.offset);
            }
            Err(_) => missing.push((*k).to_string()),
        }
    }
    for s in structs {
        match d.struct_type(syms, s).ok().and_then(|t| t.size()) {
            Some(v) => {
                sizes.insert((*s).to_string(), v);
            }
            None => missing.push(format!("sizeof({s})")),
        }
    }
    Ok(ProfileFile {
        kind: "xenwalk_profile".into(),
        schema: SCHEMA,
        build_id: syms.build_id_hex().unwrap_or_default(),
        version: syms.version.as_ref().map(ToString::to_string),
        image_start: syms.addr("_start").map(|v| format!("{v:#x}")),
        sizes,
        offsets,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small ISF document in dwarf2json's shape: an anonymous union, a nested
    /// struct, an array of a struct and an array of a base type.
    fn isf() -> serde_json::Map<String, Value> {
        let v = serde_json::json!({
            "vcpu": {"kind": "struct", "size": 64, "fields": {
                "vcpu_id": {"offset": 0, "type": {"kind": "base", "name": "int"}},
                "arch": {"offset": 16, "type": {"kind": "struct", "name": "arch_vcpu"}},
            }},
            "arch_vcpu": {"kind": "struct", "size": 48, "fields": {
                "unnamed_field_0": {"offset": 8, "anonymous": true, "type": {"kind": "union", "name": "unnamed_1"}},
                "hvm": {"offset": 24, "type": {"kind": "struct", "name": "hvm_vcpu"}},
            }},
            "unnamed_1": {"kind": "union", "size": 8, "fields": {
                "guest_table": {"offset": 0, "type": {"kind": "base", "name": "unsigned long"}},
            }},
            "hvm_vcpu": {"kind": "struct", "size": 24, "fields": {
                "guest_cr": {"offset": 0, "type": {"kind": "array", "count": 2,
                    "subtype": {"kind": "base", "name": "unsigned long"}}},
                "regs": {"offset": 16, "type": {"kind": "array", "count": 2,
                    "subtype": {"kind": "struct", "name": "reg"}}},
            }},
            "reg": {"kind": "struct", "size": 4, "fields": {"v": {"offset": 2, "type": {"kind": "base", "name": "short"}}}},
        });
        v.as_object().unwrap().clone()
    }

    #[test]
    fn isf_paths_resolve_as_c_does() {
        let t = isf();
        assert_eq!(isf_member(&t, "vcpu", "vcpu_id"), Some(0));
        assert_eq!(isf_member(&t, "vcpu", "arch"), Some(16));
        // Through the anonymous union: 16 + 8 + 0.
        assert_eq!(isf_member(&t, "vcpu", "arch.guest_table"), Some(24));
        // guest_cr[1]: 16 + 24 + 0 + 1 * 8.
        assert_eq!(isf_member(&t, "vcpu", "arch.hvm.guest_cr[1]"), Some(48));
        // regs[1].v: 16 + 24 + 16 + 1 * 4 + 2.
        assert_eq!(isf_member(&t, "vcpu", "arch.hvm.regs[1].v"), Some(62));
        assert_eq!(isf_member(&t, "vcpu", "arch.nope"), None);
        assert_eq!(isf_member(&t, "nope", "x"), None);
    }
}
