//! The lean translation path (`Translator::translate_addr` / `translate_many`)
//! against the full walker: for every VA the answer must be exactly what `walk()`
//! records (machine address and level, or where and why it stops), on a raw image
//! (entries read straight from the map), on a kdump copy (prefix caches), on an ELF
//! core (no single slice) and on the in-memory fixture — with non-canonical VAs,
//! absent and zero tables, not-present junk, reserved bits at every level, 1 GiB,
//! 2 MiB and 4 KiB pages, and table pointers past the end of RAM.

mod common;

use xenwalk::dump::{Dump, OpenOptions};
use xenwalk::fixture::kdump::KdumpOptions;
use xenwalk::fixture::{ElfLayout, XEN_TABLE, xen};
use xenwalk::mem::PhysMem;
use xenwalk::paging::entry::bits;
use xenwalk::paging::{Level, Resolved, StopCode, Translator, WalkOptions, walk};
use xenwalk::{Maddr, Vaddr};

/// xorshift64*: deterministic, dependency-free.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The Xen-like fixture with more cases poked in, and VAs around all of them.
fn fixture() -> (xen::XenLike, Vec<Vaddr>) {
    let mut x = xen::build();
    let pt = xenwalk::fixture::PageTables { root: x.pv };
    let leaf = bits::P | bits::RW | bits::A;
    let more = [
        // A 1 GiB page, and one with a reserved bit of 1 GiB leaves (bit 13).
        (Vaddr(0x0000_7f80_0000_0000), Level::L3, 0x4000_0000 | bits::PS | leaf),
        (Vaddr(0x0000_7f80_4000_0000), Level::L3, 0x4000_0000 | bits::PS | leaf | 1 << 13),
        // 2 MiB and 1 GiB pages with PAT (bit 12), which is not an address bit.
        (Vaddr(0x0000_7f81_0000_0000), Level::L2, 0x20_0000 | bits::PS | leaf | bits::PAT_LARGE),
        (Vaddr(0x0000_7f81_4000_0000), Level::L3, 0x8000_0000 | bits::PS | leaf | bits::PAT_LARGE),
        // An L1 leaf with a frame above MAXPHYADDR 40 (reserved when it is 40).
        (Vaddr(0x0000_7f80_8000_3000), Level::L1, 0x0000_8000_0000_5000 | leaf),
        // A leaf with NX, under tables whose pointers have NX (all reserved without
        // EFER.NXE).
        (Vaddr(0x0000_7f80_c000_0000), Level::L1, 0x5000 | leaf | bits::NX),
    ];
    for (va, level, entry) in more {
        pt.poke(&mut x.machine, va, level, entry, XEN_TABLE | bits::NX);
    }
    let mut vas: Vec<Vaddr> = Vec::new();
    for &(va, _, _) in x.xen_mapped.iter().chain(&x.guest_mapped) {
        vas.extend([va, Vaddr(va.0 + 0x123), Vaddr(va.0 ^ 0x1000), Vaddr(va.0 ^ 0x20_0000)]);
    }
    vas.extend([x.va_uncaptured_table, x.va_zero_l3, x.va_swapped, x.va_past_ram, x.va_reserved, x.va_l4_ps]);
    vas.extend([x.va_empty, Vaddr(0x0000_8000_0000_0000), Vaddr(0xffff_7fff_ffff_f000), Vaddr(u64::MAX)]);
    vas.extend(more.iter().map(|m| Vaddr(m.0.0 + 0x777)));
    let mut seed = 11u64;
    for _ in 0..20_000 {
        let r = rng(&mut seed);
        let va = match r % 3 {
            // Near a known address, one bit flipped.
            0 => vas[(rng(&mut seed) % vas.len() as u64) as usize].0 ^ (1 << (rng(&mut seed) % 48)),
            // Anywhere, canonical.
            1 => Vaddr::canonicalize(r >> 8).0,
            // Anywhere at all (mostly non-canonical).
            _ => r,
        };
        vas.push(Vaddr(va));
    }
    (x, vas)
}

/// Every way of translating `vas` leanly gives `walk()`'s answer.
fn lean_equals_walk(mem: &dyn PhysMem, root: Maddr, vas: &[Vaddr], what: &str) -> [usize; 3] {
    let mut seen = [0usize; 3];
    for opts in [WalkOptions::default(), WalkOptions { maxphyaddr: 40, nxe: false }] {
        let want: Vec<Resolved> = vas.iter().map(|&va| Resolved::of(&walk(mem, root, va, opts))).collect();
        for r in &want {
            match r {
                Resolved::Mapped { .. } => seen[0] += 1,
                Resolved::Stopped { code: StopCode::Reserved, .. } => seen[1] += 1,
                Resolved::Stopped { .. } => seen[2] += 1,
            }
        }
        for cached in [false, true] {
            let mut t = Translator::new(mem, root, opts).with_prefix_cache(cached);
            for (va, w) in vas.iter().zip(&want) {
                assert_eq!(t.translate_addr(*va), *w, "{what} {opts:?} cached {cached}: {va}");
            }
            let mut out = Vec::new();
            t.translate_many(vas, &mut out);
            assert_eq!(out.len(), vas.len());
            for ((va, got), w) in vas.iter().zip(&out).zip(&want) {
                assert_eq!(got, w, "{what} {opts:?} cached {cached}, batch: {va}");
            }
            // Sorted windows: many VAs (the window is sorted once it is large).
            let many: Vec<Vaddr> = vas.iter().cycle().take(3 * vas.len()).copied().collect();
            t.translate_many(&many, &mut out);
            for (i, got) in out.iter().enumerate() {
                assert_eq!(*got, want[i % want.len()], "{what} {opts:?} cached {cached}, many: {}", many[i]);
            }
        }
    }
    seen
}

#[test]
fn lean_translation_equals_the_walker_everywhere() {
    let (x, vas) = fixture();
    let dir = common::tempdir("lean");
    let raw = dir.join("x.raw");
    x.machine.write_raw(&raw).unwrap();
    let kd = dir.join("x.kdump");
    x.machine.write_kdump(&kd, &KdumpOptions::default()).unwrap();
    let elf = dir.join("x.elf");
    x.machine.write_elf(&elf, &x.omitted, &[], ElfLayout::default()).unwrap();
    for root in [x.pv, x.idle] {
        let dump = Dump::open(&raw, OpenOptions::default()).unwrap();
        assert!(dump.mem.linear().is_some(), "a raw image is one slice");
        let seen = lean_equals_walk(dump.mem.as_ref(), root, &vas, "raw");
        if root == x.pv {
            // Every kind of answer was compared: mapped, reserved, other stops.
            assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        }
        let dump = Dump::open(&kd, OpenOptions::default()).unwrap();
        lean_equals_walk(dump.mem.as_ref(), root, &vas, "kdump");
        let dump = Dump::open(&elf, OpenOptions::default()).unwrap();
        lean_equals_walk(dump.mem.as_ref(), root, &vas, "elf");
        lean_equals_walk(&x.machine, root, &vas, "machine");
    }
    // A root outside the image, and one in the middle of a page.
    let dump = Dump::open(&raw, OpenOptions::default()).unwrap();
    lean_equals_walk(dump.mem.as_ref(), Maddr(1 << 40), &vas[..500], "raw, root outside");
    lean_equals_walk(dump.mem.as_ref(), Maddr(x.pv.0 | 0x18), &vas[..500], "raw, unaligned root");
}
