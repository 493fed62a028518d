//! Intel EPT (extended page tables): the format of an HVM/PVH guest's p2m on VMX
//! hosts, walked and explained like the x86 tables, with Xen's software bits.
//!
//! Facts: SDM Vol. 3C, "EPT Translation Mechanism" and "EPT Misconfigurations", and
//! Xen's `ept_entry_t` (`X:xen/arch/x86/include/asm/hvm/vmx/vmx.h@4.17.0`;
//! reference `xen-x86-64.md` §5.3):
//!
//! | bits | meaning |
//! | --- | --- |
//! | 2:0 | read, write, execute; present ⇔ any set |
//! | 5:3 | memory type of a leaf (0 UC, 1 WC, 4 WT, 5 WP, 6 WB; 2, 3 reserved; Xen uses 7 to force a recalculation) |
//! | 6 / 7 | ignore PAT / superpage (leaf at L3 or L2) |
//! | 8 / 9 | accessed / dirty (with EPTP.ad) |
//! | 10 | Xen `recalc` |
//! | 11 | Xen `snp` (VT-d snoop) |
//! | 51:12 | mfn |
//! | 57:52 | Xen `sa_p2mt`: the p2m type |
//! | 58 (4.20+) | Xen `pw`: paging-write (HLAT) |
//! | 61:58 (≤ 4.19) / 62:59 (4.20+) | Xen `access` (`p2m_access_t`) |
//! | 63 | suppress #VE |

use super::desc::{EptDesc, EptLevelDesc};
use crate::addr::{Gfn, Maddr, Mfn};
use crate::mem::{PhysMem, ReadError};
use serde::Serialize;
use std::collections::HashSet;

/// `p2m_type_t` names (4.17 = 4.22, `X:xen/arch/x86/include/asm/p2m.h@4.17.0`).
pub const P2M_TYPES: [&str; 16] = [
    "ram_rw",
    "invalid",
    "ram_logdirty",
    "ram_ro",
    "mmio_dm",
    "mmio_direct",
    "populate_on_demand",
    "grant_map_rw",
    "grant_map_ro",
    "ram_paging_out",
    "ram_paged",
    "ram_paging_in",
    "ram_shared",
    "ram_broken",
    "map_foreign",
    "ioreq_server",
];

/// `p2m_access_t` names (`X:xen/include/xen/mem_access.h@4.17.0`); 4.20 adds
/// `p2m_access_r_pw` = 10 (read, paging-write), the 11th enumerator of
/// `p2m_access_t` in the DWARF of Debian's 4.20.4+63 `xen-syms` (tests/xen_lab_420.rs
/// lab; gdb `ptype p2m_access_t`).
pub const P2M_ACCESS: [&str; 11] = ["n", "r", "w", "rw", "x", "rx", "wx", "rwx", "rx2rw", "n2rwx", "r_pw"];

/// The `p2m_access_t` name of `a` in release `minor` of 4.x.
pub fn p2m_access_name(a: u8, minor: u32) -> &'static str {
    let known = if minor >= 20 { 11 } else { 10 };
    P2M_ACCESS.get(a as usize).filter(|_| (a as usize) < known).copied().unwrap_or("?")
}

/// An EPT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EptEntry(pub u64);

impl EptEntry {
    pub fn read(self) -> bool {
        self.0 & 1 != 0
    }
    pub fn write(self) -> bool {
        self.0 & 2 != 0
    }
    pub fn exec(self) -> bool {
        self.0 & 4 != 0
    }
    /// Present: any of R/W/X.
    pub fn present(self) -> bool {
        self.0 & 7 != 0
    }
    pub fn mem_type(self) -> u8 {
        ((self.0 >> 3) & 7) as u8
    }
    pub fn superpage(self) -> bool {
        self.0 & (1 << 7) != 0
    }
    pub fn mfn(self) -> Mfn {
        Mfn((self.0 & 0x000f_ffff_ffff_f000) >> 12)
    }
    /// Xen's p2m type (bits 57:52).
    pub fn p2m_type(self) -> u8 {
        ((self.0 >> 52) & 0x3f) as u8
    }
    pub fn p2m_type_name(self) -> &'static str {
        P2M_TYPES.get(self.p2m_type() as usize).copied().unwrap_or("?")
    }
    /// Xen's access field for release `minor` of 4.x (moved in 4.20, b94305d984).
    pub fn access(self, minor: u32) -> u8 {
        let shift = if minor >= 20 { 59 } else { 58 };
        ((self.0 >> shift) & 0xf) as u8
    }
    /// Xen's "valid but not present" (PoD, paged out): any bit but 63 set and a type
    /// other than `invalid` (`is_epte_valid`, `X:xen/arch/x86/mm/p2m-ept.c@4.17.0`).
    pub fn valid(self) -> bool {
        self.0 & !(1 << 63) != 0 && self.p2m_type() != 1
    }

    /// Why the CPU would take an EPT misconfiguration (or Xen wants a recalculation)
    /// on this entry at `level` (4..1), if it would.
    pub fn misconfig(self, level: u8, maxphyaddr: u8) -> Option<String> {
        EptDesc::new(maxphyaddr).level(level).and_then(|d| self.misconfig_at(d, maxphyaddr))
    }

    /// [`EptEntry::misconfig`] with the level's description.
    pub fn misconfig_at(self, d: &EptLevelDesc, maxphyaddr: u8) -> Option<String> {
        if !self.present() {
            return None;
        }
        if self.write() && !self.read() {
            return Some("write without read (W=1, R=0)".into());
        }
        let above = self.0 & d.above_m;
        if above != 0 {
            return Some(format!("address bits {above:#x} at or above MAXPHYADDR={maxphyaddr}"));
        }
        let leaf = d.level == 1 || (d.superpage_allowed && self.superpage());
        if d.level == 4 && self.superpage() {
            return Some("bit 7 set in an EPT PML4E (reserved)".into());
        }
        if leaf {
            match self.mem_type() {
                2 | 3 => return Some(format!("memory type {} is reserved", self.mem_type())),
                7 => {
                    return Some(
                        "memory type 7: Xen's deliberate misconfiguration to force a p2m recalculation".into(),
                    );
                }
                _ => {}
            }
            let low = self.0 & d.superpage_offset;
            if low != 0 {
                return Some(format!("bits {low:#x} inside the superpage's offset are set"));
            }
        }
        None
    }

    /// Flags in words, short.
    pub fn flag_names(self, level: u8, minor: u32) -> Vec<String> {
        let mut v = Vec::new();
        for (ok, n) in [(self.read(), "R"), (self.write(), "W"), (self.exec(), "X")] {
            if ok {
                v.push(n.to_string());
            }
        }
        let leaf = level == 1 || self.superpage();
        if leaf && self.present() {
            v.push(format!(
                "MT={}",
                ["UC", "WC", "rsvd2", "rsvd3", "WT", "WP", "WB", "recalc7"][self.mem_type() as usize]
            ));
            if self.0 & (1 << 6) != 0 {
                v.push("IPAT".into());
            }
        }
        if self.superpage() && level != 1 {
            v.push("SP".into());
        }
        for (b, n) in [(8, "A"), (9, "D"), (10, "recalc"), (11, "snp"), (63, "SVE")] {
            if self.0 & (1 << b) != 0 {
                v.push(n.into());
            }
        }
        // 4.20's `pw` at bit 58, where 4.19 and before had access bit 0
        // (`ept_entry_t` in the DWARF of Debian's 4.20.4+63 xen-syms: `pw : 1` at bit
        // 58, `access : 4` at 59; b94305d984).
        if minor >= 20 && self.0 & (1 << 58) != 0 {
            v.push("pw".into());
        }
        if self.0 != 0 {
            v.push(format!("type={}", self.p2m_type_name()));
            let a = self.access(minor);
            v.push(format!("access={}", p2m_access_name(a, minor)));
        }
        v
    }
}

/// One level of an EPT walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EptStep {
    pub level: u8,
    pub index: u16,
    pub entry_maddr: Maddr,
    #[serde(serialize_with = "crate::addr::hex")]
    pub entry: u64,
}

/// The result of translating one gfn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EptWalk {
    pub gfn: Gfn,
    pub steps: Vec<EptStep>,
    /// The mfn the gfn maps to, and the page size, when it translates.
    pub mfn: Option<Mfn>,
    pub page_size: Option<u64>,
    /// The leaf (or the entry where it stopped).
    #[serde(serialize_with = "crate::addr::hex")]
    pub last: u64,
    /// Why it does not translate.
    pub stop: Option<String>,
}

/// An EPTP whose walk length xenwalk does not follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("EPTP {eptp:#x}: walk length {levels} (only 4-level EPT is supported)")]
pub struct UnsupportedEptp {
    pub eptp: u64,
    /// Levels the EPTP asks for (its bits 5:3, plus one).
    pub levels: u64,
}

/// An EPT hierarchy.
#[derive(Clone, Copy)]
pub struct Ept<'a> {
    pub mem: &'a dyn PhysMem,
    pub root: Maddr,
    /// Xen minor version (for the access field's position).
    pub minor: u32,
    pub maxphyaddr: u8,
}

impl<'a> Ept<'a> {
    /// From an EPTP: memory type 2:0, walk length − 1 5:3 (must be 3: 4 levels),
    /// A/D enable 6, root 51:12.
    pub fn from_eptp(mem: &'a dyn PhysMem, eptp: u64, minor: u32) -> Result<Ept<'a>, UnsupportedEptp> {
        let wl = (eptp >> 3) & 7;
        if wl != 3 {
            return Err(UnsupportedEptp { eptp, levels: wl + 1 });
        }
        Ok(Ept { mem, root: Maddr(eptp & 0x000f_ffff_ffff_f000), minor, maxphyaddr: 52 })
    }

    /// Translate `gfn`.
    pub fn walk(&self, gfn: Gfn) -> EptWalk {
        let gpa = gfn.0 << 12;
        let mut table = self.root;
        let mut steps = Vec::with_capacity(4);
        let desc = EptDesc::new(self.maxphyaddr);
        for d in (1..=4u8).rev().filter_map(|n| desc.level(n)) {
            let (level, shift) = (d.level, d.shift);
            let index = ((gpa >> shift) & 0x1ff) as u16;
            let entry_maddr = table.wrapping_add(u64::from(index) * 8);
            // A walk that stops: no frame, the last entry read and why.
            let stopped =
                |steps, last, why: String| EptWalk { gfn, steps, mfn: None, page_size: None, last, stop: Some(why) };
            let e = match self.mem.read_u64(entry_maddr) {
                Ok(v) => EptEntry(v),
                Err(err) => return stopped(steps, 0, format!("L{level} EPT table: {err}")),
            };
            steps.push(EptStep { level, index, entry_maddr, entry: e.0 });
            if !e.present() {
                let why = if e.0 == 0 {
                    "not mapped (zero entry)".to_string()
                } else if e.valid() {
                    format!("valid but not present: p2m type {}", e.p2m_type_name())
                } else {
                    format!("not present ({:#018x})", e.0)
                };
                return stopped(steps, e.0, format!("L{level}: {why}"));
            }
            if let Some(m) = e.misconfig_at(d, self.maxphyaddr) {
                return stopped(steps, e.0, format!("L{level}: EPT misconfiguration: {m}"));
            }
            let leaf = level == 1 || (d.superpage_allowed && e.superpage());
            if leaf {
                let size = d.page_size;
                let base = e.0 & d.frame & !(size - 1);
                let mfn = Mfn((base | (gpa & (size - 1))) >> 12);
                return EptWalk { gfn, steps, mfn: Some(mfn), page_size: Some(size), last: e.0, stop: None };
            }
            table = Maddr(e.0 & d.frame);
        }
        EptWalk { gfn, steps, mfn: None, page_size: None, last: 0, stop: Some("walk ended without a leaf".into()) }
    }

    /// Every leaf, in gfn order: (first gfn, entry, page size in frames). Each table
    /// is read once: Xen's EPT code never shares a table between two entries, so a
    /// table reached a second time (an entry pointing back at its own table or an
    /// ancestor, or two entries at one table) is corruption. It is not followed again
    /// (else a table whose entries point at itself would make 512^3 visits), the
    /// listing goes on, and the first such entry is [`Listed::first_loop`]. Only an
    /// unreadable root is an error.
    pub fn leaves(&self, mut f: impl FnMut(Gfn, EptEntry, u64)) -> Result<Listed, ReadError> {
        let mut seen = HashSet::from([self.root.mfn().0]);
        let mut out = Listed { tables: 1, ..Listed::default() };
        let page = self.mem.page(self.root.mfn())?;
        self.visit(&page, self.root, 4, 0, &mut f, &mut seen, &mut out);
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn visit(
        &self,
        page: &crate::mem::Page<'_>,
        table: Maddr,
        level: u8,
        base: u64,
        f: &mut impl FnMut(Gfn, EptEntry, u64),
        seen: &mut HashSet<u64>,
        out: &mut Listed,
    ) {
        let desc = EptDesc::new(self.maxphyaddr);
        let Some(d) = desc.level(level) else { return };
        // In frames: the gfn span of one entry of this level.
        let shift = d.shift - 12;
        for i in 0..512u64 {
            let e = EptEntry(page.entry(i as usize));
            let gfn = base | (i << shift);
            if !e.present() {
                if e.valid() {
                    f(Gfn(gfn), e, 1 << shift);
                }
                continue;
            }
            if e.misconfig_at(d, self.maxphyaddr).is_some() {
                f(Gfn(gfn), e, 1 << shift);
                continue;
            }
            if level == 1 || (d.superpage_allowed && e.superpage()) {
                f(Gfn(gfn), e, 1 << shift);
            } else if !seen.insert(e.mfn().0) {
                out.first_loop.get_or_insert(TableLoop {
                    level,
                    entry: table.wrapping_add(i * 8),
                    table: e.mfn().maddr(),
                });
            } else {
                let next = Maddr(e.0 & d.frame);
                match self.mem.page(next.mfn()) {
                    Ok(p) => {
                        out.tables += 1;
                        self.visit(&p, next, level - 1, gfn, f, seen, out);
                    }
                    // A table the dump lacks ends that branch, counted.
                    Err(_) => out.unreadable += 1,
                }
            }
        }
    }
}

/// What a listing of a host p2m's tables (EPT, or the NPT/shadow x86-64 table) read
/// besides its leaves, and where its tables loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    /// Tables read.
    pub tables: u64,
    /// Tables the dump lacks: their branches are not listed.
    pub unreadable: u64,
    /// Not-present entries with bits set (NPT only: not listed).
    pub not_present_nonzero: u64,
    /// The first entry that points at a table the listing had already reached.
    pub first_loop: Option<TableLoop>,
}

/// The L`level` entry at `entry` points at `table`, a table the listing had already
/// reached: where the p2m's tables loop (or share a table, which Xen's p2m code never
/// does). The entry is not followed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the L{level} entry at {entry} points at the table {table}, already reached: the p2m's tables loop (or share a table, which Xen never does); not followed again"
)]
pub struct TableLoop {
    pub level: u8,
    pub entry: Maddr,
    pub table: Maddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_bits() {
        // RWX, WB, IPAT, type ram_rw, access rwx (4.17: bits 61:58 = 7).
        let e = EptEntry(0x0000_0000_1234_5000 | 7 | 6 << 3 | 1 << 6 | 7u64 << 58);
        assert!(e.present() && e.read() && e.write() && e.exec());
        assert_eq!(e.mem_type(), 6);
        assert_eq!(e.mfn(), Mfn(0x12345));
        assert_eq!(e.p2m_type_name(), "ram_rw");
        assert_eq!(e.access(17), 7);
        assert_eq!(e.misconfig(1, 52), None);
        assert!(e.flag_names(1, 17).contains(&"MT=WB".to_string()));
        // 4.20 moved access to 62:59.
        let e20 = EptEntry(7 | 6 << 3 | 7u64 << 59);
        assert_eq!(e20.access(20), 7);
        // 4.20: bit 58 is `pw`, and access 10 is r_pw (unknown before 4.20).
        let pw = EptEntry(1 | 6 << 3 | 1 << 58 | 10u64 << 59);
        let names = pw.flag_names(1, 20);
        assert!(names.contains(&"pw".to_string()) && names.contains(&"access=r_pw".to_string()), "{names:?}");
        let old = EptEntry(1 | 6 << 3 | 10u64 << 58).flag_names(1, 19);
        assert!(!old.contains(&"pw".to_string()) && old.contains(&"access=?".to_string()), "{old:?}");
        // W without R, memory type 7, a PoD entry, superpage offset bits.
        assert!(EptEntry(2).misconfig(1, 52).unwrap().contains("write without read"));
        assert!(EptEntry(7 | 7 << 3).misconfig(1, 52).unwrap().contains("recalculation"));
        let pod = EptEntry(6u64 << 52);
        assert!(!pod.present() && pod.valid() && pod.p2m_type_name() == "populate_on_demand");
        assert!(EptEntry(7 | 6 << 3 | 1 << 7 | 0x1000).misconfig(2, 52).unwrap().contains("superpage"));
        assert!(!EptEntry(1 << 63).valid(), "suppress-#VE alone is an empty entry");
    }

    /// A root whose 512 entries all point back at itself is listed in one pass, and
    /// the first entry where the loop closes is the error (was 512^3 table visits).
    #[test]
    fn leaves_of_a_looping_table_are_bounded() {
        let mut m = crate::fixture::Machine::new(0x10000);
        for i in 0..512 {
            m.write_u64(Maddr(0x1000 + i * 8), 0x1000 | 7);
        }
        let ept = Ept::from_eptp(&m, 0x1000 | 3 << 3 | 6, 17).unwrap();
        let mut n = 0;
        let r = ept.leaves(|_, _, _| n += 1).unwrap();
        assert_eq!(r.first_loop, Some(TableLoop { level: 4, entry: Maddr(0x1000), table: Maddr(0x1000) }));
        assert_eq!((n, r.tables), (0, 1));
    }
}
