//! A root whose tables alias everywhere: each of the L4's 512 entries names one L3,
//! whose 512 entries name one L2, whose 512 entries name one L1 mapping 512 pages.
//! Every path is followed, as the MMU would, so the address space maps all 2^36 4
//! KiB pages of the 48-bit space: streamed in bounded memory, but hours of output. A
//! corrupt or hostile dump can hold such tables (a PV guest may share its own tables;
//! an HVM guest's are its own). Every listing (`xenwalk DUMP`, `--brief`, `--json`,
//! `map`) stops at its leaf limit, says so and exits 1; a walk is untouched.

mod common;

use common::run;
use xenwalk::Maddr;
use xenwalk::fixture::xlcore::XlCoreOptions;
use xenwalk::fixture::{CpuRegs, Machine};

/// The aliasing tables (root at 0x1000).
fn machine() -> Machine {
    let mut m = Machine::new(0x10_0000);
    let (l4, l3, l2, l1) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
    for i in 0..512u64 {
        m.write_u64(Maddr(l4 + 8 * i), l3 | 0x67);
        m.write_u64(Maddr(l3 + 8 * i), l2 | 0x67);
        m.write_u64(Maddr(l2 + 8 * i), l1 | 0x67);
        m.write_u64(Maddr(l1 + 8 * i), (0x1_0000 + 0x1000 * i) | 0x67);
    }
    m
}

/// The aliasing machine as a raw image.
fn aliasing(dir: &std::path::Path) -> std::path::PathBuf {
    let raw = dir.join("aliasing.raw");
    machine().write_raw(&raw).unwrap();
    raw
}

#[test]
fn listings_of_tables_that_alias_stop_at_the_leaf_limit() {
    let dir = common::tempdir("aliasing");
    let raw = aliasing(&dir);
    let f = raw.to_str().unwrap();
    let limit = 100_000u64;
    let n = limit.to_string();
    // --brief: the ranges of exactly `limit` leaves (each L1 pass is one range of
    // 512 contiguous pages; the next pass starts over at the same frames).
    let r = run(&[f, "--cr3", "0x1000", "--brief", "--max-leaves", &n]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("stopped after {limit} leaves (--max-leaves {limit})")), "{}", r.stderr);
    let leaves: u64 =
        r.stdout.lines().map(|l| u64::from_str_radix(&l.split(' ').nth(2).unwrap()[2..], 16).unwrap() >> 12).sum();
    assert_eq!(leaves, limit, "pages listed");
    let first = r.stdout.lines().next().unwrap();
    assert_eq!(first, "0x0 0x10000 0x200000");
    // JSON: the summary says where it stopped.
    let r = run(&[f, "--cr3", "0x1000", "--json", "--max-leaves", &n]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let sum = &r.json_of("summary")[0];
    assert_eq!(sum["leaf_limit_reached"], limit, "{sum}");
    // The human table and the map too.
    let r = run(&[f, "--cr3", "0x1000", "--max-leaves", &n]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--max-leaves"), "{}", r.stderr);
    let r = run(&["map", f, "--cr3", "0x1000", "--max-leaves", &n]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("stopped after"), "{}", r.stderr);
    // A walk of any VA is one path: it translates.
    let r = run(&[f, "--cr3", "0x1000", "--va", "0x7fffffffe123", "--brief"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "0x7fffffffe123 0x20e123\n"), "{}", r.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same tables as an HVM guest's own (an HVM `xl dump-core` core: its pages by
/// gfn): the guest listing, through guest-physical memory, stops at the limit too.
#[test]
fn a_guests_own_tables_that_alias_stop_at_the_leaf_limit() {
    let dir = common::tempdir("aliasing-guest");
    let m = machine();
    let core = dir.join("hvm.core");
    let pages: Vec<(u64, u64)> = m.stored_frames().map(|f| (f.0, f.0)).collect();
    let o = XlCoreOptions {
        hvm: true,
        pages,
        vcpus: vec![(CpuRegs { cr3: 0x1000, ..Default::default() }, 0)],
        ..Default::default()
    };
    m.write_xl_core(&core, &o).unwrap();
    let c = core.to_str().unwrap();
    let r = run(&[c, "--brief", "--gpa", "--max-leaves", "5000"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("stopped after 5000 leaves"), "{}", r.stderr);
    let leaves: u64 =
        r.stdout.lines().map(|l| u64::from_str_radix(&l.split(' ').nth(2).unwrap()[2..], 16).unwrap() >> 12).sum();
    assert_eq!(leaves, 5000);
    let r = run(&[c, "--json", "--max-leaves", "5000"]);
    assert_eq!((r.code, &r.json_of("summary")[0]["leaf_limit_reached"]), (1, &serde_json::json!(5000)), "{}", r.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}
