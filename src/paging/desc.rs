//! x86-64 4-level paging as a description: one value, built once from the walk
//! options, that says per level what the MMU reads in an entry — the index bits,
//! whether the entry may map a page and how large, which bits are the address of the
//! table below or of the page, which bits are reserved — and how rights fold across
//! levels. The walker ([`super::walk`]), the batched translator ([`super::batch`]) and
//! the enumerator ([`super::enumerate`]) read their masks here instead of deriving
//! them, and [`Entry`]'s own accessors ([`Entry::reserved_bits`], [`Entry::addr`],
//! [`Rights::through`]) are this description asked one entry at a time.
//!
//! Facts: SDM Vol. 3A §4.5, Tables 4-15 (PML4E), 4-16 (PDPTE mapping a 1 GiB page),
//! 4-17 (PDPTE referencing a page directory), 4-18 (PDE mapping a 2 MiB page), 4-19
//! (PDE referencing a page table), 4-20 (PTE), and §4.6.1 for rights; reference
//! `xen-x86-64.md` §1.3–1.5. The tests below pin every mask against those tables.
//! (memflow keeps its MMU the same way, `ArchMmuDef` → `ArchMmuSpec`; STYLE.md §3.)
//!
//! Intel's EPT (the host p2m of an HVM guest on Intel) is another value of its own
//! kind, [`EptDesc`]: the same per-level index shifts, page sizes and address masks,
//! with EPT's own leaf and reserved-bit rules (SDM Vol. 3C §29.3.2, Tables 29-1 … 29-6)
//! and no rights fold (R/W/X are checked per entry, not folded). [`super::ept`] reads
//! it.

use super::entry::{Entry, Level, Rights, addr_mask, bits};
use super::walk::WalkOptions;

/// How one present entry folds into the rights of the levels above it (SDM §4.6.1,
/// APM §5.6): a right an entry grants by a set bit is kept only if every level sets
/// it (AND: R/W, U/S); a right an entry withdraws by a set bit is lost if any level
/// sets it (OR: XD, which means something only with EFER.NXE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fold {
    /// The bit that grants writes, ANDed across levels.
    pub write: u64,
    /// The bit that grants user access, ANDed across levels.
    pub user: u64,
    /// The bit that forbids execution, ORed across levels (0 when EFER.NXE is clear:
    /// bit 63 is then reserved, not a right).
    pub nx: u64,
}

impl Fold {
    /// x86-64: R/W and U/S AND, XD OR when `nxe`.
    pub const fn x86_64(nxe: bool) -> Fold {
        Fold { write: bits::RW, user: bits::US, nx: if nxe { bits::NX } else { 0 } }
    }

    /// `r` after one more present entry `e`.
    #[inline]
    pub fn apply(self, r: Rights, e: Entry) -> Rights {
        Rights {
            write: r.write && e.0 & self.write != 0,
            user: r.user && e.0 & self.user != 0,
            nx: r.nx || e.0 & self.nx != 0,
        }
    }
}

/// What an entry of one level means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelDesc {
    pub level: Level,
    /// "L4" … "L1".
    pub name: &'static str,
    /// Lowest VA bit of this level's 9-bit index: 39, 30, 21, 12.
    pub shift: u32,
    /// Whether an entry of this level may map a page (L3, L2, L1; never L4).
    pub leaf_allowed: bool,
    /// A present entry is a leaf iff it has one of these bits set: PS at L3 and L2,
    /// every bit at L1 (each present entry maps a page), none at L4.
    pub leaf_bits: u64,
    /// Bytes a leaf of this level maps (and one entry's span of VA): 4 KiB, 2 MiB,
    /// 1 GiB; 512 GiB at L4, where no entry is a leaf.
    pub page_size: u64,
    /// Address bits of an entry that points to a table: M-1:12.
    pub table_addr: u64,
    /// Address bits of a leaf: M-1:12 (4 KiB), M-1:21 (2 MiB), M-1:30 (1 GiB) — the
    /// PAT bit 12 of a large leaf is not an address bit. 0 at L4.
    pub leaf_addr: u64,
    /// Reserved bits of an entry that points to a table: 51:M, PS at L4, XD without
    /// EFER.NXE.
    pub rsvd_table: u64,
    /// Reserved bits of a leaf: 51:M, 29:13 of a 1 GiB leaf, 20:13 of a 2 MiB leaf,
    /// XD without EFER.NXE. Every bit at L4, which maps no page.
    pub rsvd_leaf: u64,
}

impl LevelDesc {
    /// The x86-64 description of `level` for physical-address width `maxphyaddr`
    /// (clamped to 12..=52) and EFER.NXE `nxe`.
    #[inline]
    pub fn x86_64(level: Level, maxphyaddr: u8, nxe: bool) -> LevelDesc {
        let addr = addr_mask(maxphyaddr);
        // Bits 51:M (SDM Tables 4-15 … 4-20: "Reserved (must be 0)").
        let above_m = !addr & 0x000f_ffff_ffff_f000;
        let nx = if nxe { 0 } else { bits::NX };
        let shift = level.shift();
        let page_size = 1u64 << shift;
        let (leaf_bits, table_extra, leaf_extra) = match level {
            // Table 4-15: bit 7 (PS) reserved; no PML4E maps a page.
            Level::L4 => (0, bits::PS, u64::MAX),
            // Table 4-16: bits 29:13 reserved in a PDPTE that maps a 1 GiB page.
            Level::L3 => (bits::PS, 0, 0x3fff_e000),
            // Table 4-18: bits 20:13 reserved in a PDE that maps a 2 MiB page.
            Level::L2 => (bits::PS, 0, 0x001f_e000),
            // Table 4-20: every PTE maps a 4 KiB page; bit 7 is PAT, not a size.
            Level::L1 => (u64::MAX, 0, 0),
        };
        let leaf_allowed = leaf_bits != 0;
        LevelDesc {
            level,
            name: level.name(),
            shift,
            leaf_allowed,
            leaf_bits,
            page_size,
            table_addr: addr,
            leaf_addr: if leaf_allowed { addr & !(page_size - 1) } else { 0 },
            rsvd_table: above_m | table_extra | nx,
            rsvd_leaf: above_m | leaf_extra | nx,
        }
    }

    /// Whether present entry `e` maps a page.
    #[inline]
    pub fn is_leaf(&self, e: u64) -> bool {
        e & self.leaf_bits != 0
    }
    /// The reserved bits present entry `e` has set.
    #[inline]
    pub fn reserved(&self, e: u64) -> u64 {
        e & if self.is_leaf(e) { self.rsvd_leaf } else { self.rsvd_table }
    }
    /// The machine address present entry `e` holds: of the table below, or of the
    /// page it maps.
    #[inline]
    pub fn addr(&self, e: u64) -> u64 {
        e & if self.is_leaf(e) { self.leaf_addr } else { self.table_addr }
    }
}

/// x86-64 4-level paging under one set of [`WalkOptions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagingDesc {
    pub opts: WalkOptions,
    /// An entry is present iff it has one of these bits set (P).
    pub present: u64,
    /// L1 … L4, by level number − 1 (read them through [`PagingDesc::level`]).
    levels: [LevelDesc; 4],
    pub fold: Fold,
}

impl PagingDesc {
    /// The description of x86-64 4-level paging with `opts`' MAXPHYADDR and EFER.NXE.
    pub fn x86_64(opts: WalkOptions) -> PagingDesc {
        let (m, nxe) = (opts.maxphyaddr, opts.nxe);
        PagingDesc {
            opts,
            present: bits::P,
            levels: [
                LevelDesc::x86_64(Level::L1, m, nxe),
                LevelDesc::x86_64(Level::L2, m, nxe),
                LevelDesc::x86_64(Level::L3, m, nxe),
                LevelDesc::x86_64(Level::L4, m, nxe),
            ],
            fold: Fold::x86_64(nxe),
        }
    }

    /// The description of `level`.
    #[inline(always)]
    pub fn level(&self, level: Level) -> &LevelDesc {
        let [l1, l2, l3, l4] = &self.levels;
        match level {
            Level::L1 => l1,
            Level::L2 => l2,
            Level::L3 => l3,
            Level::L4 => l4,
        }
    }

    /// The levels top down, as a walk meets them.
    pub fn walk_order(&self) -> impl Iterator<Item = &LevelDesc> + '_ {
        self.levels.iter().rev()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits `hi:lo` (inclusive), spelled as the SDM's tables spell them.
    fn bits_range(hi: u32, lo: u32) -> u64 {
        if hi < lo { 0 } else { (u64::MAX >> (63 - hi)) & !((1u64 << lo) - 1) }
    }

    /// Every mask, written out from SDM Vol. 3A §4.5 Tables 4-15 … 4-20 for
    /// MAXPHYADDR 52, 46 and 36 (M-1:12 address bits; 51:M reserved; PS reserved in
    /// a PML4E; 29:13 and 20:13 reserved in 1 GiB and 2 MiB leaves, whose bit 12 is
    /// PAT; XD reserved without EFER.NXE).
    #[test]
    fn masks_pinned_to_the_sdm() {
        struct Want {
            m: u8,
            table: u64,
            leaf: [u64; 3], // L1, L2, L3
            above: u64,
        }
        let wants = [
            Want {
                m: 52,
                table: 0x000f_ffff_ffff_f000,
                leaf: [0x000f_ffff_ffff_f000, 0x000f_ffff_ffe0_0000, 0x000f_ffff_c000_0000],
                above: 0,
            },
            Want {
                m: 46,
                table: 0x0000_3fff_ffff_f000,
                leaf: [0x0000_3fff_ffff_f000, 0x0000_3fff_ffe0_0000, 0x0000_3fff_c000_0000],
                above: 0x000f_c000_0000_0000,
            },
            Want {
                m: 36,
                table: 0x0000_000f_ffff_f000,
                leaf: [0x0000_000f_ffff_f000, 0x0000_000f_ffe0_0000, 0x0000_000f_c000_0000],
                above: 0x000f_fff0_0000_0000,
            },
        ];
        for w in wants {
            for nxe in [true, false] {
                let d = PagingDesc::x86_64(WalkOptions { maxphyaddr: w.m, nxe });
                let nx = if nxe { 0 } else { 0x8000_0000_0000_0000 };
                let what = format!("M={} nxe={nxe}", w.m);
                for level in Level::WALK {
                    let l = d.level(level);
                    assert_eq!(l.level, level);
                    assert_eq!(l.table_addr, w.table, "{what} {level} table address");
                }
                let [l1, l2, l3, l4] = [Level::L1, Level::L2, Level::L3, Level::L4].map(|l| *d.level(l));
                assert_eq!(
                    [l1.leaf_addr, l2.leaf_addr, l3.leaf_addr, l4.leaf_addr],
                    [w.leaf[0], w.leaf[1], w.leaf[2], 0],
                    "{what}"
                );
                assert_eq!(l4.rsvd_table, w.above | 0x80 | nx, "{what} PML4E (Table 4-15)");
                assert_eq!(l4.rsvd_leaf, u64::MAX, "{what}: no PML4E maps a page");
                assert_eq!(l3.rsvd_table, w.above | nx, "{what} PDPTE → PD (Table 4-17)");
                assert_eq!(l3.rsvd_leaf, w.above | 0x3fff_e000 | nx, "{what} PDPTE 1 GiB (Table 4-16)");
                assert_eq!(l2.rsvd_table, w.above | nx, "{what} PDE → PT (Table 4-19)");
                assert_eq!(l2.rsvd_leaf, w.above | 0x001f_e000 | nx, "{what} PDE 2 MiB (Table 4-18)");
                assert_eq!(l1.rsvd_table, w.above | nx, "{what} PTE (Table 4-20)");
                assert_eq!(l1.rsvd_leaf, w.above | nx, "{what} PTE (Table 4-20)");
                assert_eq!(d.fold, Fold { write: 0x2, user: 0x4, nx: if nxe { 1 << 63 } else { 0 } });
            }
        }
        let d = PagingDesc::x86_64(WalkOptions::default());
        let geometry: Vec<_> =
            d.walk_order().map(|l| (l.name, l.shift, l.leaf_allowed, l.leaf_bits, l.page_size)).collect();
        assert_eq!(
            geometry,
            [
                ("L4", 39, false, 0, 1 << 39),
                ("L3", 30, true, 0x80, 1 << 30),
                ("L2", 21, true, 0x80, 1 << 21),
                ("L1", 12, true, u64::MAX, 1 << 12)
            ]
        );
        assert_eq!(d.present, 1);
    }

    /// The SDM's reserved set of a present entry `e` at `level`, from the tables'
    /// bit ranges rather than from the description.
    fn sdm_reserved(e: u64, level: Level, m: u32, nxe: bool) -> u64 {
        let ps = e & 0x80 != 0;
        let mut r = bits_range(51, m);
        r |= match level {
            Level::L4 => 0x80,
            Level::L3 if ps => bits_range(29, 13),
            Level::L2 if ps => bits_range(20, 13),
            _ => 0,
        };
        if !nxe {
            r |= 1 << 63;
        }
        e & r
    }

    /// The SDM's address in a present entry `e` at `level`.
    fn sdm_addr(e: u64, level: Level, m: u32) -> u64 {
        let lo = match level {
            Level::L3 if e & 0x80 != 0 => 30,
            Level::L2 if e & 0x80 != 0 => 21,
            _ => 12,
        };
        e & bits_range(m - 1, lo)
    }

    #[test]
    fn agrees_with_entry_and_the_sdm_on_random_entries() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for m in [52u8, 46, 40, 36] {
            for nxe in [true, false] {
                let opts = WalkOptions { maxphyaddr: m, nxe };
                let d = PagingDesc::x86_64(opts);
                for _ in 0..20_000 {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    // Present, with PS set half the time.
                    let e = s | 1;
                    for level in Level::WALK {
                        let l = d.level(level);
                        let entry = Entry(e);
                        assert_eq!(l.is_leaf(e), entry.is_leaf(level), "{e:#x} {level}");
                        assert_eq!(l.reserved(e), entry.reserved_bits(level, m, nxe), "{e:#x} {level} M={m}");
                        assert_eq!(l.reserved(e), sdm_reserved(e, level, u32::from(m), nxe), "{e:#x} {level} M={m}");
                        assert_eq!(l.addr(e), entry.addr(level, m), "{e:#x} {level} M={m}");
                        assert_eq!(l.addr(e), sdm_addr(e, level, u32::from(m)), "{e:#x} {level} M={m}");
                        let r = Rights { write: s & 2 != 0, user: s & 4 != 0, nx: s & 8 != 0 };
                        // SDM §4.6.1: R/W and U/S AND across levels, XD ORs (with NXE).
                        let want = Rights {
                            write: r.write && e & 2 != 0,
                            user: r.user && e & 4 != 0,
                            nx: r.nx || (nxe && e >> 63 != 0),
                        };
                        assert_eq!(d.fold.apply(r, entry), want);
                        assert_eq!(r.through(entry, nxe), want);
                    }
                }
            }
        }
    }
}

/// One level of Intel's EPT (SDM Vol. 3C §29.3.2): index shift, page size, whether a
/// leaf may sit here (bit 7 at the PDPTE and PDE; every PTE), the frame mask, and the
/// bits that must be 0 inside a superpage's offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptLevelDesc {
    /// 4 (PML4E) … 1 (PTE).
    pub level: u8,
    pub shift: u32,
    pub page_size: u64,
    /// Whether bit 7 makes this level's entry a leaf (L3, L2); L1 always is one, L4
    /// never: there bit 7 is reserved (Table 29-1).
    pub superpage_allowed: bool,
    /// Address bits M-1:12 of an entry pointing to a table or a 4 KiB page.
    pub frame: u64,
    /// Address bits above M (bits 51:M), reserved at every level.
    pub above_m: u64,
    /// Bits inside a superpage's offset, reserved in a leaf at this level (Tables
    /// 29-2 and 29-4: 29:12 for 1 GiB, 20:12 for 2 MiB).
    pub superpage_offset: u64,
}

/// Intel's EPT as a description (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptDesc {
    pub maxphyaddr: u8,
    /// L1 … L4, by level number − 1.
    levels: [EptLevelDesc; 4],
}

impl EptDesc {
    /// Four-level EPT for physical-address width `maxphyaddr`.
    pub fn new(maxphyaddr: u8) -> EptDesc {
        let addr = addr_mask(maxphyaddr);
        let level = |n: u8| {
            let shift = 12 + 9 * u32::from(n - 1);
            EptLevelDesc {
                level: n,
                shift,
                page_size: 1u64 << shift,
                superpage_allowed: matches!(n, 2 | 3),
                frame: addr,
                above_m: !addr & 0x000f_ffff_ffff_f000,
                superpage_offset: match n {
                    3 => 0x3fff_f000,
                    2 => 0x001f_f000,
                    _ => 0,
                },
            }
        };
        EptDesc { maxphyaddr, levels: [level(1), level(2), level(3), level(4)] }
    }

    /// Level `n` (4..1); `None` outside it.
    #[inline]
    pub fn level(&self, n: u8) -> Option<&EptLevelDesc> {
        self.levels.get(usize::from(n).checked_sub(1)?)
    }
}

#[cfg(test)]
mod ept_tests {
    use super::*;

    #[test]
    fn ept_masks_pinned_against_the_sdm() {
        // SDM Vol. 3C Tables 29-1 … 29-6, MAXPHYADDR 46.
        let d = EptDesc::new(46);
        let l = |n| *d.level(n).unwrap();
        assert_eq!(l(1).frame, 0x0000_3fff_ffff_f000);
        assert_eq!(l(1).above_m, 0x000f_c000_0000_0000);
        assert_eq!((l(1).shift, l(2).shift, l(3).shift, l(4).shift), (12, 21, 30, 39));
        assert_eq!((l(2).page_size, l(3).page_size), (2 << 20, 1 << 30));
        assert_eq!((l(4).superpage_allowed, l(3).superpage_allowed, l(2).superpage_allowed), (false, true, true));
        assert!(!l(1).superpage_allowed, "a PTE maps its page without bit 7");
        // Table 29-2: bits 29:12 of a 1 GiB leaf are reserved; Table 29-4: 20:12.
        assert_eq!(l(3).superpage_offset, 0x3fff_f000);
        assert_eq!(l(2).superpage_offset, 0x001f_f000);
        assert!(d.level(0).is_none() && d.level(5).is_none());
        assert_eq!(EptDesc::new(52).level(1).unwrap().above_m, 0);
    }
}
