//! `--brief` (the stable pipeline format) and `--quiet`, end to end through the
//! binary on the Xen-like fixture: walks print `VA MADDR` or `VA -`, listings
//! `VA MADDR SIZE` per range exactly as the JSON listing's ranges, and nothing else;
//! `--quiet` leaves stderr to errors.

mod common;

use common::{run, run_with_stdin};
use std::path::PathBuf;
use xenwalk::fixture::xen::{self, XenLike};
use xenwalk::fixture::{CpuRegs, ElfLayout, qemu_cpu_notes};

struct Files {
    fx: XenLike,
    raw: PathBuf,
    elf: PathBuf,
    dir: PathBuf,
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn files(name: &str) -> Files {
    let fx = xen::build();
    let dir = common::tempdir(name);
    let raw = dir.join("x.raw");
    fx.machine.write_raw(&raw).unwrap();
    let elf = dir.join("x.elf");
    let cpus = [CpuRegs { cr3: fx.pv.0, ..Default::default() }];
    fx.machine.write_elf(&elf, &fx.omitted, &qemu_cpu_notes(&cpus), ElfLayout::Qemu10).unwrap();
    Files { fx, raw, elf, dir }
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

#[test]
fn brief_walks_print_va_and_maddr_only() {
    let f = files("brief-walks");
    let raw = f.raw.to_str().unwrap();
    let root = hex(f.fx.pv.0);
    let (va, maddr, _) = f.fx.guest_mapped[0];
    let r = run(&[raw, "--cr3", &root, "--brief", "--va", &hex(va.0 + 0x12), "--va", &hex(f.fx.va_zero_l3.0)]);
    assert_eq!(r.code, 1, "one VA does not translate: {}", r.stderr);
    assert_eq!(r.stdout, format!("{} {}\n{} -\n", hex(va.0 + 0x12), hex(maddr.0 + 0x12), hex(f.fx.va_zero_l3.0)));
    assert_eq!(r.stderr, "");

    // A VA list: comments, blank lines, `info tlb` lines, separators; a bad line is an
    // error on stderr (exit 2) and the others are still answered, in order.
    let mut list = String::from("# header\n\n");
    let mut want = String::new();
    for &(va, maddr, _) in f.fx.xen_mapped.iter().chain(&f.fx.guest_mapped) {
        list.push_str(&format!("{:x}: 0000 XGPDACT-W\n", va.0));
        want.push_str(&format!("{} {}\n", hex(va.0), hex(maddr.0)));
    }
    list.push_str("not;a;va\n0x0000_8000_0000_0000\n");
    want.push_str("0x800000000000 -\n");
    let r = run_with_stdin(&[raw, "--cr3", &root, "--brief", "--va-file", "-"], Some(&list));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stdout, want);
    assert!(r.stderr.contains("<stdin>:") && r.stderr.contains("skipped"), "{}", r.stderr);

    // The same VAs as JSON walks agree.
    let r2 = run_with_stdin(&[raw, "--cr3", &root, "--json", "--va-file", "-"], Some(&list));
    let walks = r2.json_of("walk");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(walks.len(), lines.len());
    for (w, l) in walks.iter().zip(&lines) {
        let m = w["maddr"].as_str().unwrap_or("-");
        assert_eq!(*l, format!("{} {m}", w["va"].as_str().unwrap()));
    }

    // --brief excludes the other output styles.
    let r = run(&[raw, "--cr3", &root, "--brief", "--json", "--va", "0"]);
    assert_eq!(r.code, 2);
}

#[test]
fn brief_listing_is_the_ranges_of_the_full_listing() {
    let f = files("brief-list");
    for root in [f.fx.idle, f.fx.pv] {
        let raw = f.raw.to_str().unwrap();
        let root = hex(root.0);
        for leaves in [false, true] {
            let mut args = vec![raw, "--cr3", &root];
            if leaves {
                args.push("--leaves");
            }
            let full = run(&[args.as_slice(), &["--json"]].concat());
            assert_eq!(full.code, 0, "{}", full.stderr);
            let want: String = full
                .json_of("mapping")
                .iter()
                .map(|m| {
                    format!(
                        "{} {} {:#x}\n",
                        m["va"].as_str().unwrap(),
                        m["maddr"].as_str().unwrap(),
                        m["size"].as_u64().unwrap()
                    )
                })
                .collect();
            let brief = run(&[args.as_slice(), &["--brief"]].concat());
            assert_eq!(brief.code, 0, "{}", brief.stderr);
            assert_eq!(brief.stdout, want, "root {root} leaves {leaves}");
            assert!(brief.stdout.lines().all(|l| l.split(' ').count() == 3 && l.starts_with("0x")));
        }
    }
    // The PV root has an uncaptured table in the ELF dump and reserved bits: a note
    // on stderr, unless --quiet.
    let elf = f.elf.to_str().unwrap();
    let root = hex(f.fx.pv.0);
    let r = run(&[elf, "--cr3", &root, "--brief"]);
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("not in a --brief listing"), "{}", r.stderr);
    let q = run(&[elf, "--cr3", &root, "--brief", "--quiet"]);
    assert_eq!((q.code, q.stdout.as_str(), q.stderr.as_str()), (0, r.stdout.as_str(), ""));

    // A root that cannot be walked (a frame number given as CR3): nothing on stdout,
    // exit 1, the reason on stderr; walks all print `VA -`.
    let raw = f.raw.to_str().unwrap();
    let frame = hex(f.fx.idle.0 >> 12);
    let r = run(&[raw, "--cr3", &frame, "--brief"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{}", r.stderr);
    assert!(r.stderr.contains("cr3_is_frame_number"), "{}", r.stderr);
    let r = run(&[raw, "--cr3", &frame, "--brief", "--va", "0x1000"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, "0x1000 -\n"), "{}", r.stderr);
}

#[test]
fn quiet_leaves_stderr_to_errors() {
    let f = files("quiet");
    let elf = f.elf.to_str().unwrap();
    let (va, maddr, _) = f.fx.guest_mapped[0];
    // No root given: a note says which CPU's CR3 is used...
    let r = run(&[elf, "--brief", "--va", &hex(va.0)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("no root given"), "{}", r.stderr);
    assert_eq!(r.stdout, format!("{} {}\n", hex(va.0), hex(maddr.0)));
    // ... and --quiet silences it, before or after the dump, and for subcommands.
    for args in [vec!["--quiet", elf, "--va", &hex(va.0)], vec![elf, "--va", &hex(va.0), "--quiet", "--json"]] {
        let q = run(&args);
        assert_eq!(q.code, 0, "{args:?}: {}", q.stderr);
        assert_eq!(q.stderr, "", "{args:?}");
    }
    let q = run(&["info", elf, "--quiet"]);
    assert_eq!((q.code, q.stderr.as_str()), (0, ""));
    // Errors are still said.
    let q = run(&[elf, "--quiet", "--cpu", "7", "--va", "0"]);
    assert_eq!(q.code, 2);
    assert!(q.stderr.contains("error"), "{}", q.stderr);
}
