//! Xen's x86-64 virtual memory layout for every release from 4.0 to 4.22.
//!
//! Facts: reference `xen-x86-64.md` §2.1 (4.14+ slot table and slot 261 breakdown) and
//! §2.2 (what moved in each release), from the comment and macros at the top of
//! `X:xen/include/asm-x86/config.h@4.0.0…4.16.0` and
//! `X:xen/arch/x86/include/asm/config.h@4.17.0…4.22.0`. Where the reference gives a
//! region's start but not its size, the region ends where the next one starts.

use crate::addr::Vaddr;
use serde::Serialize;

const GIB: u64 = 1 << 30;

/// One named range of hypervisor virtual address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Region {
    /// Stable snake_case name (`directmap`, `xen_image`, `frame_table`, …).
    pub name: &'static str,
    #[serde(serialize_with = "crate::addr::hex")]
    pub start: u64,
    /// One past the last VA.
    #[serde(serialize_with = "crate::addr::hex")]
    pub end: u64,
    /// What lives there, in words.
    pub what: &'static str,
}

/// The layout of one Xen build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub major: u32,
    pub minor: u32,
    /// `CONFIG_BIGMEM` (4.6+): moves the frame table and the direct map.
    pub bigmem: bool,
    pub xen_virt_start: u64,
    /// Offset of `_start` from `XEN_VIRT_START` (`XEN_IMG_OFFSET`).
    pub image_offset: u64,
    pub directmap_start: u64,
    pub directmap_end: u64,
    pub frametable_start: u64,
    pub rdwr_m2p_start: u64,
    pub ro_m2p_start: u64,
    /// Sorted, non-overlapping.
    pub regions: Vec<Region>,
}

/// Oldest and newest releases whose layout is known.
pub const OLDEST: (u32, u32) = (4, 0);
pub const NEWEST: (u32, u32) = (4, 22);

impl Layout {
    /// The layout of Xen `major.minor` (clamped to 4.0..=4.22, which share one
    /// 4-level design; unknown newer minors take the newest layout).
    pub fn for_version(major: u32, minor: u32, bigmem: bool) -> Layout {
        let v = (major, minor).clamp(OLDEST, NEWEST);
        let at_least = |m: u32| v >= (4, m);
        let xen_virt_start = if at_least(14) {
            0xffff_82d0_4000_0000
        } else if at_least(4) {
            0xffff_82d0_8000_0000
        } else if at_least(3) {
            0xffff_82c4_c000_0000
        } else {
            0xffff_82c4_8000_0000
        };
        let image_offset = if at_least(9) { 2 << 20 } else { 1 << 20 };
        let bigmem = bigmem && at_least(6);
        let (frametable_start, directmap_start) = if bigmem {
            (0xffff_8300_0000_0000, 0xffff_8480_0000_0000)
        } else if at_least(3) {
            (0xffff_82e0_0000_0000, 0xffff_8300_0000_0000)
        } else {
            (0xffff_82f6_0000_0000, 0xffff_8300_0000_0000)
        };
        let directmap_end = if at_least(3) { 0xffff_ff80_0000_0000 } else { 0xffff_8800_0000_0000 };

        let mut r: Vec<Region> = Vec::new();
        let mut add = |name, start: u64, end: u64, what| r.push(Region { name, start, end, what });
        add(
            "guest",
            0,
            0x0000_8000_0000_0000,
            "guest-owned lower half (PV guests; empty in idle and monitor tables but for the trampoline and, 4.15+, the per-domain mirror at slot 4)",
        );
        add(
            "ro_m2p",
            0xffff_8000_0000_0000,
            0xffff_8040_0000_0000,
            "read-only M2P (machine_to_phys_mapping as guests see it)",
        );
        add("reserved", 0xffff_8040_0000_0000, 0xffff_8080_0000_0000, "reserved");
        add("pci_mmcfg", 0xffff_8080_0000_0000, 0xffff_8100_0000_0000, "PCI MMCONFIG space");
        add(
            "linear_pt",
            0xffff_8100_0000_0000,
            0xffff_8180_0000_0000,
            "linear page table (slot 258 maps the L4 onto itself)",
        );
        add("shadow_linear_pt", 0xffff_8180_0000_0000, 0xffff_8200_0000_0000, "shadow linear page table");
        add(
            "perdomain",
            0xffff_8200_0000_0000,
            0xffff_8280_0000_0000,
            "per-domain mappings: GDT/LDT shadows, map_domain_page cache, argument translation",
        );
        add("rdwr_m2p", 0xffff_8280_0000_0000, 0xffff_82c0_0000_0000, "read-write M2P (machine_to_phys_mapping)");
        if at_least(4) {
            add(
                "vmap",
                0xffff_82c0_0000_0000,
                0xffff_82d0_0000_0000,
                "vmap/ioremap; the fixmap at its top (FIXADDR_TOP 0xffff82cffffff000)",
            );
            if at_least(14) {
                add("compat_m2p", 0xffff_82d0_0000_0000, xen_virt_start, "compat (32-bit PV) M2P");
            } else {
                add("compat_m2p", 0xffff_82d0_0000_0000, 0xffff_82d0_4000_0000, "compat (32-bit PV) M2P");
                add("ro_compat_m2p", 0xffff_82d0_4000_0000, xen_virt_start, "high read-only compat M2P");
            }
        } else if at_least(3) {
            add("vmap", 0xffff_82c0_0000_0000, 0xffff_82c4_0000_0000, "vmap");
            add("global_map", 0xffff_82c4_0000_0000, 0xffff_82c4_4000_0000, "global domain-page map");
            add("compat_m2p", 0xffff_82c4_4000_0000, 0xffff_82c4_8000_0000, "compat (32-bit PV) M2P");
            add("ro_compat_m2p", 0xffff_82c4_8000_0000, xen_virt_start, "high read-only compat M2P");
        } else {
            add("ioremap", 0xffff_82c0_0000_0000, 0xffff_82c4_0000_0000, "ioremap");
            add("compat_m2p", 0xffff_82c4_0000_0000, 0xffff_82c4_4000_0000, "compat (32-bit PV) M2P");
            add("ro_compat_m2p", 0xffff_82c4_4000_0000, xen_virt_start, "high read-only compat M2P");
        }
        add(
            "xen_image",
            xen_virt_start,
            xen_virt_start + GIB,
            "the hypervisor image (linear: PA = VA - XEN_VIRT_START + xen_phys_start), then livepatch area, per-CPU stubs, executable fixmap",
        );
        if bigmem {
            add("superpage_table", 0xffff_82ff_e000_0000, 0xffff_8300_0000_0000, "superpage table");
        } else if at_least(3) && !at_least(10) {
            add("superpage_table", 0xffff_82df_fc00_0000, 0xffff_82e0_0000_0000, "superpage table");
        } else if ((4, 1)..(4, 3)).contains(&v) {
            add("superpage_table", 0xffff_82f5_fec0_0000, 0xffff_82f6_0000_0000, "superpage table");
        }
        let ft_end = if bigmem {
            directmap_start
        } else if at_least(3) {
            0xffff_8300_0000_0000
        } else {
            0xffff_82f6_0000_0000 + 40 * GIB
        };
        add("frame_table", frametable_start, ft_end, "frame table (struct page_info per pdx)");
        if at_least(3) {
            add("directmap", directmap_start, 0xffff_8800_0000_0000, "direct map of machine memory (in every root)");
            add(
                "directmap_high",
                0xffff_8800_0000_0000,
                directmap_end,
                "direct map continued (idle and HVM monitor roots); guest-owned in 64-bit PV roots",
            );
            add("guest_top", directmap_end, u64::MAX, "slot 511: guest-owned in PV roots, unused otherwise");
        } else {
            add("directmap", directmap_start, directmap_end, "direct map of machine memory");
            add("guest_high", directmap_end, u64::MAX, "guest-owned (PV kernel)");
        }
        r.sort_by_key(|x| x.start);
        Layout {
            major,
            minor,
            bigmem,
            xen_virt_start,
            image_offset,
            directmap_start,
            directmap_end,
            frametable_start,
            rdwr_m2p_start: 0xffff_8280_0000_0000,
            ro_m2p_start: 0xffff_8000_0000_0000,
            regions: r,
        }
    }

    /// The region `va` lies in. The non-canonical hole has none.
    pub fn region(&self, va: Vaddr) -> Option<&Region> {
        if !va.is_canonical() {
            return None;
        }
        let i = self.regions.partition_point(|r| r.start <= va.0);
        let r = self.regions.get(i.checked_sub(1)?)?;
        (va.0 < r.end || r.end == u64::MAX).then_some(r)
    }
}

/// What each static page table of the hypervisor image is for (reference §3.1,
/// `X:xen/arch/x86/boot/x86_64.S@4.17.0`; names before 4.14 in parentheses where they
/// differ: `l?_identmap` became `l?_directmap`).
pub fn static_table_role(name: &str) -> Option<&'static str> {
    Some(match name {
        "idle_pg_table" => {
            "the idle L4: root of every idle vCPU and of Xen at boot; its slots 256-271 are copied into every PV L4"
        }
        "l3_xenmap" => "L3 of slot 261: RW M2P, vmap/fixmap, compat M2P, the image GiB, frame table",
        "l2_xenmap" => "L2 of the image GiB (XEN_VIRT_START): the hypervisor image, stubs, executable fixmap",
        "l2_fixmap" => "L2 of the fixmap (top of the vmap area)",
        "l1_fixmap" => "L1 of the fixmap: FIXADDR_TOP - n*4K",
        "l1_fixmap_x" => "L1 of the executable fixmap at the top of the image GiB",
        "l3_directmap" | "l3_identmap" => "L3 of the boot direct map (low 4 GiB)",
        "l2_directmap" | "l2_identmap" => "L2 of the boot direct map (4 pages, low 4 GiB)",
        "l1_directmap" | "l1_identmap" => "L1 of the first 2 MiB of the direct map (VGA hole uncached)",
        "l3_bootmap" | "l2_bootmap" | "l1_bootmap" => {
            "boot 1:1 map in .init.data: freed and reused after boot, so stale entries are common"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_4_17_regions() {
        let l = Layout::for_version(4, 17, false);
        assert_eq!(l.xen_virt_start, 0xffff_82d0_4000_0000);
        let name = |va: u64| l.region(Vaddr(va)).map(|r| r.name);
        // reference §3.7 and the real image's gva2gpa labels
        assert_eq!(name(0xffff_82d0_4046_e000), Some("xen_image"));
        assert_eq!(name(0xffff_8300_3fc6_e000), Some("directmap"));
        assert_eq!(name(0xffff_82e0_007f_b660), Some("frame_table"));
        assert_eq!(name(0xffff_8280_001f_ed98), Some("rdwr_m2p"));
        assert_eq!(name(0xffff_8000_001f_ed98), Some("ro_m2p"));
        assert_eq!(name(0xffff_82c0_0000_0000), Some("vmap"));
        assert_eq!(name(0xffff_8100_0000_0000), Some("linear_pt"));
        assert_eq!(name(0xffff_8200_0000_0000), Some("perdomain"));
        assert_eq!(name(0xffff_8080_0000_0000), Some("pci_mmcfg"));
        assert_eq!(name(0xffff_8880_0000_0000), Some("directmap_high"));
        assert_eq!(name(0x4000), Some("guest"));
        assert_eq!(name(0xffff_ff80_0000_0000), Some("guest_top"));
        assert_eq!(name(0x0000_8000_0000_0000), None);
        assert!(l.regions.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn releases_move_the_image_and_bigmem_moves_the_direct_map() {
        assert_eq!(Layout::for_version(4, 2, false).xen_virt_start, 0xffff_82c4_8000_0000);
        assert_eq!(Layout::for_version(4, 3, false).xen_virt_start, 0xffff_82c4_c000_0000);
        assert_eq!(Layout::for_version(4, 13, false).xen_virt_start, 0xffff_82d0_8000_0000);
        assert_eq!(Layout::for_version(4, 13, false).image_offset, 2 << 20);
        assert_eq!(Layout::for_version(4, 8, false).image_offset, 1 << 20);
        let big = Layout::for_version(4, 8, true);
        assert_eq!(big.directmap_start, 0xffff_8480_0000_0000);
        assert_eq!(big.region(Vaddr(0xffff_8300_0000_1000)).map(|r| r.name), Some("frame_table"));
        assert!(!Layout::for_version(4, 5, true).bigmem, "BIGMEM appeared in 4.6");
        for minor in 0..=22 {
            let l = Layout::for_version(4, minor, minor % 2 == 0);
            assert!(l.regions.windows(2).all(|w| w[0].end <= w[1].start), "4.{minor} regions overlap");
        }
    }
}
