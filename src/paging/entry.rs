//! x86-64 4-level paging entries: levels, bits, address masks, reserved bits, rights.
//!
//! Facts: SDM Vol. 3A ch. 4 (§4.5 4-level paging, §4.6 access rights, §4.9 memory
//! typing) and APM Vol. 2 §5.3–5.6, as tabulated in reference `xen-x86-64.md` §1.3–1.5.

use super::desc::{Fold, LevelDesc};
use serde::Serialize;
use std::fmt;

/// A paging level. Numbered like Xen (`l4_pgentry_t` … `l1_pgentry_t`) and crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    L1 = 1,
    L2 = 2,
    L3 = 3,
    L4 = 4,
}

impl Level {
    /// Top-down order of a 4-level walk.
    pub const WALK: [Level; 4] = [Level::L4, Level::L3, Level::L2, Level::L1];

    /// 4, 3, 2 or 1.
    pub fn number(self) -> u8 {
        self as u8
    }
    /// Lowest VA bit of this level's index: 39, 30, 21, 12.
    pub fn shift(self) -> u32 {
        12 + 9 * (self as u32 - 1)
    }
    /// Bytes of VA one entry of this level covers: 512 GiB, 1 GiB, 2 MiB, 4 KiB.
    pub fn span(self) -> u64 {
        1u64 << self.shift()
    }
    /// "L4" … "L1", as in Xen's `show_page_walk`.
    pub fn name(self) -> &'static str {
        match self {
            Level::L4 => "L4",
            Level::L3 => "L3",
            Level::L2 => "L2",
            Level::L1 => "L1",
        }
    }
    /// Intel's entry name (SDM): PML4E, PDPTE, PDE, PTE.
    pub fn intel_name(self) -> &'static str {
        match self {
            Level::L4 => "PML4E",
            Level::L3 => "PDPTE",
            Level::L2 => "PDE",
            Level::L1 => "PTE",
        }
    }
    /// Intel's table name: PML4, page-directory-pointer table, page directory, page table.
    pub fn table_name(self) -> &'static str {
        match self {
            Level::L4 => "PML4",
            Level::L3 => "page-directory-pointer table",
            Level::L2 => "page directory",
            Level::L1 => "page table",
        }
    }
    /// The next level down.
    pub fn below(self) -> Option<Level> {
        match self {
            Level::L4 => Some(Level::L3),
            Level::L3 => Some(Level::L2),
            Level::L2 => Some(Level::L1),
            Level::L1 => None,
        }
    }
    /// Whether an entry of this level can map a page: L3 (1 GiB, with PS), L2 (2 MiB,
    /// with PS), L1 (4 KiB). L4 never does; its PS bit is reserved.
    pub fn may_be_leaf(self) -> bool {
        self != Level::L4
    }
    /// Page size a leaf at this level maps.
    pub fn page_size(self) -> u64 {
        self.span()
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

/// Entry bits (SDM Vol. 3A Tables 4-15 … 4-20).
pub mod bits {
    pub const P: u64 = 1 << 0;
    pub const RW: u64 = 1 << 1;
    pub const US: u64 = 1 << 2;
    pub const PWT: u64 = 1 << 3;
    pub const PCD: u64 = 1 << 4;
    pub const A: u64 = 1 << 5;
    pub const D: u64 = 1 << 6;
    /// PS in L3/L2 (and reserved in L4); PAT in an L1 entry.
    pub const PS: u64 = 1 << 7;
    pub const G: u64 = 1 << 8;
    /// PAT bit of a 1 GiB or 2 MiB leaf.
    pub const PAT_LARGE: u64 = 1 << 12;
    pub const NX: u64 = 1 << 63;
    /// Software-available bits 11:9.
    pub const AVL_LOW: u64 = 0x7 << 9;
    /// Software-available bits 58:52.
    pub const AVL_HIGH: u64 = 0x7f << 52;
    /// Bits 62:59: protection key in leaves (with CR4.PKE/PKS), available otherwise.
    pub const PKEY: u64 = 0xf << 59;
}

/// The physical-address width assumed when the dump does not say (it never does:
/// CPUID is in no Xen dump; reference §1.3).
pub const DEFAULT_MAXPHYADDR: u8 = 52;

/// A raw 64-bit page-table entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Entry(pub u64);

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Entry({:#018x})", self.0)
    }
}

/// Bits M-1:12 for MAXPHYADDR M.
pub fn addr_mask(maxphyaddr: u8) -> u64 {
    let m = u32::from(maxphyaddr.clamp(12, 52));
    ((1u64 << m) - 1) & !0xfff
}

impl Entry {
    #[inline]
    pub fn present(self) -> bool {
        self.0 & bits::P != 0
    }
    #[inline]
    pub fn has(self, bit: u64) -> bool {
        self.0 & bit != 0
    }
    /// Whether this entry, read at `level`, maps a page rather than a table.
    #[inline]
    pub fn is_leaf(self, level: Level) -> bool {
        match level {
            Level::L1 => true,
            Level::L2 | Level::L3 => self.0 & bits::PS != 0,
            Level::L4 => false,
        }
    }
    /// The mask of address bits of this entry at `level` (leaf or table pointer):
    /// [`LevelDesc::leaf_addr`] or [`LevelDesc::table_addr`].
    #[inline]
    pub fn frame_mask(self, level: Level, maxphyaddr: u8) -> u64 {
        let d = LevelDesc::x86_64(level, maxphyaddr, true);
        if self.is_leaf(level) { d.leaf_addr } else { d.table_addr }
    }
    /// Machine address of the next table, or of the page this leaf maps.
    #[inline]
    pub fn addr(self, level: Level, maxphyaddr: u8) -> u64 {
        self.0 & self.frame_mask(level, maxphyaddr)
    }
    /// The set bits of this entry that are reserved at `level` (SDM §4.5 tables;
    /// reference §1.3): bits 51:M everywhere; PS in an L4; bits 29:13 of a 1 GiB leaf
    /// and 20:13 of a 2 MiB leaf; NX when EFER.NXE is clear. The sets are
    /// [`LevelDesc::rsvd_leaf`] and [`LevelDesc::rsvd_table`].
    pub fn reserved_bits(self, level: Level, maxphyaddr: u8, nxe: bool) -> u64 {
        let d = LevelDesc::x86_64(level, maxphyaddr, nxe);
        self.0 & if self.is_leaf(level) { d.rsvd_leaf } else { d.rsvd_table }
    }
    /// The protection key of a leaf (bits 62:59); meaningful only with CR4.PKE/PKS.
    pub fn pkey(self) -> u8 {
        ((self.0 >> 59) & 0xf) as u8
    }
    /// Index into the PAT for a leaf: PAT·4 + PCD·2 + PWT (SDM §4.9.2).
    pub fn pat_index(self, level: Level) -> u8 {
        let pat = match level {
            Level::L1 => self.has(bits::PS),
            _ => self.has(bits::PAT_LARGE),
        };
        (u8::from(pat) << 2) | (u8::from(self.has(bits::PCD)) << 1) | u8::from(self.has(bits::PWT))
    }

    /// Short names of the set bits, in bit order, in the vocabulary of Xen's and
    /// crash's page-walk output. Software-available bits appear as `AVL<n>`; a leaf's
    /// protection key as `PKEY=<n>`.
    pub fn flag_names(self, level: Level) -> Vec<String> {
        let leaf = self.is_leaf(level);
        let mut v = Vec::new();
        for (bit, name) in [
            (bits::P, "P"),
            (bits::RW, "RW"),
            (bits::US, "US"),
            (bits::PWT, "PWT"),
            (bits::PCD, "PCD"),
            (bits::A, "A"),
            (bits::D, "D"),
        ] {
            if self.has(bit) {
                v.push(name.to_string());
            }
        }
        if self.has(bits::PS) {
            v.push(if level == Level::L1 { "PAT" } else { "PS" }.to_string());
        }
        if self.has(bits::G) {
            v.push("G".to_string());
        }
        for b in 9..=11 {
            if self.0 & (1 << b) != 0 {
                v.push(format!("AVL{b}"));
            }
        }
        if leaf && level != Level::L1 && self.has(bits::PAT_LARGE) {
            v.push("PAT".to_string());
        }
        for b in 52..=58 {
            if self.0 & (1 << b) != 0 {
                v.push(format!("AVL{b}"));
            }
        }
        if leaf {
            if self.pkey() != 0 {
                v.push(format!("PKEY={}", self.pkey()));
            }
        } else {
            for b in 59..=62 {
                if self.0 & (1 << b) != 0 {
                    v.push(format!("AVL{b}"));
                }
            }
        }
        if self.has(bits::NX) {
            v.push("NX".to_string());
        }
        v
    }

    /// One line per set bit, explained in words, for `--long`.
    pub fn explain_bits(self, level: Level) -> Vec<String> {
        let leaf = self.is_leaf(level);
        let mut v = Vec::new();
        let mut say = |bit: u32, text: String| v.push(format!("bit {bit:2}: {text}"));
        if !self.present() {
            say(0, "P=0: not present; the CPU ignores every other bit (software may keep data in them)".into());
            return v;
        }
        say(0, "P present".into());
        say(
            1,
            match (self.has(bits::RW), leaf) {
                (true, _) => "RW writable (if every level allows it)",
                (false, true) => "RW=0 read-only page",
                (false, false) => "RW=0 read-only for everything below",
            }
            .into(),
        );
        say(
            2,
            match (self.has(bits::US), leaf) {
                (true, _) => "US user-accessible (if every level allows it)",
                (false, true) => "US=0 supervisor-only page",
                (false, false) => "US=0 supervisor-only for everything below",
            }
            .into(),
        );
        if self.has(bits::PWT) {
            say(3, "PWT write-through (PAT index bit 0)".into());
        }
        if self.has(bits::PCD) {
            say(4, "PCD cache-disable (PAT index bit 1)".into());
        }
        if self.has(bits::A) {
            say(5, "A accessed (Xen pre-sets A and D in the entries it builds, so they say nothing about use)".into());
        }
        if self.has(bits::D) {
            say(
                6,
                if leaf { "D dirty: the page was written" } else { "D: ignored in an entry that points to a table" }
                    .into(),
            );
        }
        if self.has(bits::PS) {
            say(
                7,
                match level {
                    Level::L4 => "PS: reserved in an L4 entry (#PF with PFEC.RSVD)".into(),
                    Level::L1 => "PAT (PAT index bit 2) in a 4 KiB leaf".into(),
                    l => format!(
                        "PS page size: this {} maps a {} page",
                        l.intel_name(),
                        crate::addr::size_name(l.page_size())
                    ),
                },
            );
        }
        if self.has(bits::G) {
            say(
                8,
                if leaf {
                    "G global: survives CR3 reloads (with CR4.PGE)"
                } else if level == Level::L4 {
                    "G: ignored here on Intel, reserved on AMD in an L4 entry"
                } else {
                    "G: ignored in an entry that points to a table"
                }
                .into(),
            );
        }
        for b in 9..=11u32 {
            if self.0 & (1 << b) != 0 {
                say(b, "software-available (Xen: _PAGE_AVAIL)".into());
            }
        }
        if leaf && level != Level::L1 && self.has(bits::PAT_LARGE) {
            say(12, "PAT (PAT index bit 2) of a large page; not an address bit".into());
        }
        for b in 52..=58u32 {
            if self.0 & (1 << b) != 0 {
                say(
                    b,
                    if b == 52 {
                        "software-available (Xen: _PAGE_GUEST_KERNEL, a PV guest-kernel page)".into()
                    } else {
                        "software-available".into()
                    },
                );
            }
        }
        if leaf && self.pkey() != 0 {
            say(59, format!("protection key {} (bits 62:59; used only with CR4.PKE/PKS)", self.pkey()));
        } else {
            for b in 59..=62u32 {
                if self.0 & (1 << b) != 0 {
                    say(
                        b,
                        if b == 62 {
                            "software-available (Xen debug: _PAGE_GNTTAB)".into()
                        } else {
                            "software-available".into()
                        },
                    );
                }
            }
        }
        if self.has(bits::NX) {
            say(63, if leaf { "NX/XD no-execute page" } else { "NX/XD no-execute for everything below" }.into());
        }
        if leaf {
            let idx = self.pat_index(level);
            v.push(format!(
                "memory type: PAT index {idx} = {} under Xen's PAT (XEN_MSR_PAT 0x050100070406)",
                XEN_PAT_TYPES[idx as usize]
            ));
        }
        v
    }
}

/// Memory types of Xen's IA32_PAT value 0x050100070406, by PAT index
/// (`XEN_MSR_PAT`, `X:…/asm/processor.h@4.17.0`; reference §1.3).
pub const XEN_PAT_TYPES: [&str; 8] = ["WB", "WT", "UC-", "UC", "WC", "WP", "UC", "UC"];

/// Effective access rights, accumulated over the levels walked so far
/// (SDM §4.6.1, APM §5.6): writable and user only if every level allows it,
/// no-execute if any level forbids execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Rights {
    pub write: bool,
    pub user: bool,
    pub nx: bool,
}

impl Rights {
    /// Before any level: everything allowed.
    pub const ALL: Rights = Rights { write: true, user: true, nx: false };

    /// Fold one present entry in ([`Fold::x86_64`]).
    #[inline]
    pub fn through(self, e: Entry, nxe: bool) -> Rights {
        Fold::x86_64(nxe).apply(self, e)
    }

    /// Compact form: `RW`/`R`, `U`/`S`, `X`/`NX`.
    pub fn short(self) -> String {
        format!(
            "{} {} {}",
            if self.write { "RW" } else { "R" },
            if self.user { "U" } else { "S" },
            if self.nx { "NX" } else { "X" }
        )
    }

    /// In words.
    pub fn words(self) -> String {
        format!(
            "{}, {}, {}",
            if self.write { "writable" } else { "read-only" },
            if self.user { "user and supervisor" } else { "supervisor only" },
            if self.nx { "no-execute" } else { "executable" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_per_level() {
        // reference §1.3: 4 KiB/non-leaf 0x000ffffffffff000, 2 MiB 0x000fffffffe00000,
        // 1 GiB 0x000fffffc0000000.
        let t = Entry(bits::P);
        let l2 = Entry(bits::P | bits::PS);
        assert_eq!(t.frame_mask(Level::L4, 52), 0x000f_ffff_ffff_f000);
        assert_eq!(t.frame_mask(Level::L2, 52), 0x000f_ffff_ffff_f000);
        assert_eq!(l2.frame_mask(Level::L2, 52), 0x000f_ffff_ffe0_0000);
        assert_eq!(l2.frame_mask(Level::L3, 52), 0x000f_ffff_c000_0000);
        assert_eq!(Entry(bits::P | bits::PS).frame_mask(Level::L1, 52), 0x000f_ffff_ffff_f000);
        assert_eq!(addr_mask(46), 0x0000_3fff_ffff_f000);
    }

    #[test]
    fn large_page_pat_is_not_an_address_bit() {
        let e = Entry(0x8000_0000_3fe0_11e3); // 2 MiB leaf with PAT (bit 12) and NX
        assert_eq!(e.addr(Level::L2, 52), 0x3fe0_0000);
        assert_eq!(e.pat_index(Level::L2), 4);
        assert!(e.flag_names(Level::L2).contains(&"PAT".to_string()));
        assert_eq!(e.reserved_bits(Level::L2, 52, true), 0);
    }

    #[test]
    fn reserved_bits_per_level() {
        assert_eq!(Entry(bits::P | bits::PS).reserved_bits(Level::L4, 52, true), bits::PS);
        assert_eq!(Entry(bits::P | bits::PS | 0x2000).reserved_bits(Level::L2, 52, true), 0x2000);
        assert_eq!(Entry(bits::P | bits::PS | 0x2000_0000).reserved_bits(Level::L3, 52, true), 0x2000_0000);
        assert_eq!(Entry(bits::P | 0x2000_0000).reserved_bits(Level::L3, 52, true), 0);
        assert_eq!(Entry(bits::P | (1 << 47)).reserved_bits(Level::L1, 46, true), 1 << 47);
        assert_eq!(Entry(bits::P | (1 << 47)).reserved_bits(Level::L1, 52, true), 0);
        assert_eq!(Entry(bits::P | bits::NX).reserved_bits(Level::L1, 52, false), bits::NX);
        // software bits are never reserved
        assert_eq!(Entry(bits::P | bits::AVL_HIGH | bits::AVL_LOW).reserved_bits(Level::L1, 46, true), 0);
    }

    #[test]
    fn flag_names_use_show_page_walk_vocabulary() {
        let e = Entry(0x8010_0000_3fa0_0163 | (1 << 9));
        assert_eq!(e.flag_names(Level::L1), ["P", "RW", "A", "D", "G", "AVL9", "AVL52", "NX"]);
        assert_eq!(Entry(0x83).flag_names(Level::L1), ["P", "RW", "PAT"]);
        assert_eq!(Entry(0x83).flag_names(Level::L2), ["P", "RW", "PS"]);
        assert_eq!(Entry(0x1800_0000_0000_0001).flag_names(Level::L1), ["P", "PKEY=3"]);
        assert_eq!(Entry(0x1800_0000_0000_0001).flag_names(Level::L4), ["P", "AVL59", "AVL60"]);
    }

    #[test]
    fn rights_fold() {
        let r = Rights::ALL
            .through(Entry(0x67), true)
            .through(Entry(0x8000_0000_0000_0063), true)
            .through(Entry(0x61), true);
        assert_eq!(r, Rights { write: false, user: false, nx: true });
        assert!(!Rights::ALL.through(Entry(0x8000_0000_0000_0007), false).nx);
    }
}
