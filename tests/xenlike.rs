//! End to end on a synthetic Xen-like machine (`xenwalk::fixture::xen`): the binary
//! must translate what the fixture maps, in the idle and the PV root, from a raw
//! image, from ELF cores in both header layouts and both note dialects, and from
//! kdump-compressed files plain and flattened — and stop with the right `reason` on
//! every kind of breakage the fixture plants.

mod common;

use common::{Run, run};
use std::path::{Path, PathBuf};
use xenwalk::fixture::kdump::KdumpOptions;
use xenwalk::fixture::xen::{self, XenLike};
use xenwalk::fixture::{CpuRegs, ElfLayout, qemu_cpu_notes, xen_crash_notes, xen_crash_notes_with};
use xenwalk::mem::kdump::Compression;

struct Files {
    fx: XenLike,
    raw: PathBuf,
    /// QEMU-style ELF (headers after sections, QEMU notes), with one L1 page left out.
    qemu: PathBuf,
    /// kexec-style ELF (classic layout, Xen crash notes), same memory and omission.
    kexec: PathBuf,
    /// kdump-compressed (zlib, Xen crash notes), the omitted page excluded.
    kdump: PathBuf,
    /// Flattened kdump (mixed compression, QEMU notes), the omitted page excluded.
    flat: PathBuf,
    dir: PathBuf,
}

const PCIDE: u64 = 1 << 17;

fn files(name: &str) -> Files {
    let mut fx = xen::build();
    // Build strings CRASH_INFO points at (by machine address).
    fx.machine.write(xenwalk::Maddr(0x9000), b".7-test\0");
    fx.machine.write(xenwalk::Maddr(0x9100), b"gcc (xenwalk fixture) 12.2.0\0");
    let dir = common::tempdir(name);
    let raw = dir.join("xenlike.raw");
    fx.machine.write_raw(&raw).unwrap();
    // CPU 0 on the idle table; CPU 1 in the PV guest with PCID 1 in CR3 (PCIDE on).
    let cpus = [
        CpuRegs { cr0: 0x8005_003b, cr3: fx.idle.0, cr4: 0x3506e0, ..Default::default() },
        CpuRegs { cr0: 0x8005_003b, cr3: fx.pv.0 | 1, cr4: 0x3506e0 | PCIDE, ..Default::default() },
    ];
    let qemu = dir.join("xenlike-qemu.elf");
    fx.machine.write_elf(&qemu, &fx.omitted, &qemu_cpu_notes(&cpus), ElfLayout::Qemu10).unwrap();
    let kexec = dir.join("xenlike-kexec.elf");
    let vmcoreinfo = "PAGESIZE=4096\nSYMBOL(pgd_l4)=ffff82d04046e000\n";
    let crash_notes = xen_crash_notes_with(&cpus, fx.xen_phys_start, vmcoreinfo, [0x9000, 0, 0x9100, 0, 0], 0x40);
    fx.machine.write_elf(&kexec, &fx.omitted, &crash_notes, ElfLayout::Classic).unwrap();
    let excluded = fx.omitted.iter().map(|m| m.0).collect();
    let kdump = dir.join("xenlike.kdump");
    fx.machine
        .write_kdump(
            &kdump,
            &KdumpOptions {
                excluded: fx.omitted.iter().map(|m| m.0).collect(),
                notes: xen_crash_notes(&cpus, fx.xen_phys_start, vmcoreinfo),
                ..KdumpOptions::default()
            },
        )
        .unwrap();
    let flat = dir.join("xenlike.flat");
    fx.machine
        .write_kdump_flattened(
            &flat,
            &KdumpOptions {
                kinds: vec![Compression::Lzo, Compression::Snappy, Compression::Zstd, Compression::Zlib],
                excluded,
                notes: qemu_cpu_notes(&cpus),
                ..KdumpOptions::default()
            },
            1000,
        )
        .unwrap();
    Files { fx, raw, qemu, kexec, kdump, flat, dir }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn walk_json(dump: &Path, root: &[&str], vas: &[u64]) -> Run {
    let mut args: Vec<String> = vec![p(dump).into()];
    args.extend(root.iter().map(|s| s.to_string()));
    for v in vas {
        args.push("--va".into());
        args.push(format!("{v:#x}"));
    }
    args.push("--json".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

fn stop_of(r: &Run, i: usize) -> (u64, String) {
    let w = &r.json_of("walk")[i];
    assert!(w["maddr"].is_null(), "expected a stop: {w}");
    (w["stop"]["level"].as_u64().unwrap(), w["stop"]["reason"].as_str().unwrap().to_string())
}

#[test]
fn every_format_translates_the_same() {
    let f = files("same");
    let idle = format!("{}", f.fx.idle);
    let pv = format!("{}", f.fx.pv);
    for dump in [&f.raw, &f.qemu, &f.kexec, &f.kdump, &f.flat] {
        for (root, extra) in [(&idle, &f.fx.xen_mapped[..0]), (&pv, &f.fx.guest_mapped[..])] {
            let all: Vec<_> = f.fx.xen_mapped.iter().chain(extra).collect();
            let vas: Vec<u64> = all.iter().map(|(v, _, _)| v.0).collect();
            let r = walk_json(dump, &["--cr3", root], &vas);
            assert_eq!(r.code, 0, "{}: {}", dump.display(), r.stderr);
            let walks = r.json_of("walk");
            assert_eq!(walks.len(), all.len(), "{}: one walk per VA asked", dump.display());
            for (w, (va, maddr, size)) in walks.iter().zip(&all) {
                assert_eq!(w["va"], va.to_string());
                assert_eq!(w["maddr"], maddr.to_string(), "{} root {root} va {va}", dump.display());
                assert_eq!(w["page_size"], *size);
            }
        }
        // Guest mappings are not in the idle root.
        let r = walk_json(dump, &["--cr3", &idle], &[f.fx.guest_mapped[0].0.0]);
        assert_eq!(r.code, 1);
    }
}

#[test]
fn notes_of_both_dialects_give_the_roots() {
    let f = files("notes");
    for dump in [&f.qemu, &f.kexec, &f.kdump, &f.flat] {
        let r = run(&["info", p(dump), "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let info = &r.json()[0];
        assert_eq!(info["notes"]["cpus"][0]["cr3"], f.fx.idle.to_string());
        assert_eq!(info["notes"]["cpus"][1]["cr3"], format!("{:#x}", f.fx.pv.0 | 1));
        // the omitted L1 page is described but absent
        assert_eq!(info["bytes_absent"], 4096);
        // CPU 1's CR3 carries PCID 1: stripped and reported, the walk works.
        let va = f.fx.guest_mapped[0].0;
        let r = walk_json(dump, &["--cpu", "1"], &[va.0]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let root = &r.json_of("root")[0];
        assert_eq!(root["l4"], f.fx.pv.to_string());
        assert_eq!(root["stripped"][0]["what"], "pcid");
        assert!(root["stripped"][0]["explanation"].as_str().unwrap().contains("PCIDE=1"));
        // No root flag: CPU 0's, said on stderr.
        let r = walk_json(dump, &[], &[f.fx.xen_mapped[0].0.0]);
        assert_eq!(r.code, 0);
        assert!(r.stderr.contains("using CR3"), "{}", r.stderr);
    }
    for dump in [&f.kexec, &f.kdump] {
        let r = run(&["info", p(dump), "--json"]);
        let info = &r.json()[0];
        assert_eq!(info["notes"]["xen_crash_info"]["xen_phys_start"], format!("{:#x}", f.fx.xen_phys_start));
        assert!(info["notes"]["vmcoreinfo_xen"].as_str().unwrap().contains("SYMBOL(pgd_l4)"));
    }
    // CRASH_INFO's strings are read from the dump's memory.
    let r = run(&["info", p(&f.kexec), "--json"]);
    let ci = &r.json()[0]["notes"]["xen_crash_info"];
    assert_eq!(ci["tainted"], "0x40");
    assert_eq!(ci["strings"][0]["name"], "extra_version");
    assert_eq!(ci["strings"][0]["text"], ".7-test");
    assert_eq!(ci["strings"][1]["text"], "gcc (xenwalk fixture) 12.2.0");
    let h = run(&["info", p(&f.kexec)]);
    assert!(h.stdout.contains("Xen 4.17.7-test") && h.stdout.contains("tainted 0x40"), "{}", h.stdout);
}

#[test]
fn each_diagnosis_class() {
    let f = files("diag");
    let fx = &f.fx;
    let pv = format!("{}", fx.pv);
    let idle = format!("{}", fx.idle);

    // The uncaptured L1: absent in the ELF cores, a normal translation in the raw image.
    for dump in [&f.qemu, &f.kexec] {
        let r = walk_json(dump, &["--cr3", &pv], &[fx.va_uncaptured_table.0]);
        assert_eq!(r.code, 1);
        assert_eq!(stop_of(&r, 0), (1, "table_absent".into()));
        let expl = r.json_of("walk")[0]["stop"]["explanation"].as_str().unwrap().to_string();
        assert!(expl.contains("not captured"), "{expl}");
        assert!(expl.contains("would show a zero L1 entry"), "{expl}");
    }
    // In the kdump files it was excluded (2nd bitmap clear): absent too, said so.
    for dump in [&f.kdump, &f.flat] {
        let r = walk_json(dump, &["--cr3", &pv], &[fx.va_uncaptured_table.0]);
        assert_eq!(r.code, 1);
        assert_eq!(stop_of(&r, 0), (1, "table_absent".into()));
        let expl = r.json_of("walk")[0]["stop"]["explanation"].as_str().unwrap().to_string();
        assert!(expl.contains("excluded from the dump"), "{expl}");
    }
    let r = walk_json(&f.raw, &["--cr3", &pv], &[fx.va_uncaptured_table.0]);
    assert_eq!(r.json_of("walk")[0]["maddr"], fx.maddr_uncaptured_table.to_string());

    let cases: [(u64, u64, &str); 6] = [
        (fx.va_zero_l3.0, 3, "table_zero"),
        (fx.va_swapped.0, 1, "not_present"),
        (fx.va_past_ram.0, 1, "table_outside_image"),
        (fx.va_reserved.0, 2, "reserved_bits"),
        (fx.va_l4_ps.0, 4, "reserved_bits"),
        (0x0000_8000_0000_0000, 4, "non_canonical"),
    ];
    let vas: Vec<u64> = cases.iter().map(|c| c.0).collect();
    for dump in [&f.raw, &f.qemu, &f.flat] {
        let r = walk_json(dump, &["--cr3", &pv], &vas);
        assert_eq!(r.code, 1);
        for (i, (va, level, reason)) in cases.iter().enumerate() {
            assert_eq!(stop_of(&r, i), (*level, reason.to_string()), "va {va:#x}");
        }
        let walks = r.json_of("walk");
        assert!(walks[1]["stop"]["explanation"].as_str().unwrap().contains("0x0000000012345600"));
        assert!(walks[5]["stop"]["suggestion"].as_str().unwrap().contains("0xffff800000000000"));
        assert!(walks[3]["stop"]["explanation"].as_str().unwrap().contains("bits 13"));
    }

    // A genuinely empty slot in the idle root.
    let r = walk_json(&f.raw, &["--cr3", &idle], &[fx.va_empty.0]);
    assert_eq!(stop_of(&r, 0), (2, "entry_zero".into()));

    // A frame number given as CR3.
    let mfn = format!("{:#x}", fx.idle.0 >> 12);
    let va = fx.xen_mapped[0].0.0;
    let r = walk_json(&f.raw, &["--cr3", &mfn], &[va]);
    assert_eq!(r.code, 1);
    assert_eq!(stop_of(&r, 0), (4, "cr3_is_frame_number".into()));
    assert!(r.json_of("walk")[0]["stop"]["suggestion"].as_str().unwrap().contains(&format!("--cr3-mfn {mfn}")));
    let r = walk_json(&f.raw, &["--cr3-mfn", &mfn], &[va]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // PCID and no-flush bits are stripped and reported.
    let dirty = format!("{:#x}", fx.idle.0 | 0x123 | 1 << 63);
    let r = walk_json(&f.raw, &["--cr3", &dirty], &[va]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stripped: Vec<String> = r.json_of("root")[0]["stripped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["what"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stripped, ["pcid", "noflush"]);

    // An entry value (NX and a software bit) used as CR3.
    let entry = format!("{:#x}", fx.idle.0 | 0x67 | 1 << 52 | 1 << 63);
    let r = walk_json(&f.raw, &["--cr3", &entry], &[va]);
    assert_eq!(r.code, 1);
    assert_eq!(stop_of(&r, 0), (4, "unmasked_address".into()));
    assert!(r.json_of("walk")[0]["stop"]["suggestion"].as_str().unwrap().contains(&format!("--cr3 {}", fx.idle)));

    // Address bits above a narrower MAXPHYADDR.
    let r = walk_json(&f.raw, &["--cr3", "0x10000001000", "--maxphyaddr", "40"], &[va]);
    assert_eq!(stop_of(&r, 0), (4, "cr3_above_maxphyaddr".into()));

    // The L4 page itself not captured (ELF), and a page of noise as CR3.
    let omitted = format!("{}", fx.omitted[0].maddr());
    let r = walk_json(&f.qemu, &["--cr3", &omitted], &[va]);
    assert_eq!(r.code, 1);
    assert_eq!(stop_of(&r, 0), (4, "cr3_absent".into()));
    let r = walk_json(&f.raw, &["--cr3", &format!("{}", fx.noise)], &[va, 0x1000, 0xffff_ff80_0000_0000]);
    for i in 0..3 {
        assert_eq!(stop_of(&r, i), (4, "cr3_implausible".into()));
    }
}

#[test]
fn exit_codes_and_human_output() {
    let f = files("human");
    let fx = &f.fx;
    let pv = format!("{}", fx.pv);
    let ok = format!("{:#x}", fx.guest_mapped[0].0.0);
    let r = run(&[p(&f.qemu), "--cr3", &pv, "--va", &ok]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("=> maddr"), "{}", r.stdout);
    assert!(r.stdout.contains(" L4 "), "{}", r.stdout);
    let bad = format!("{:#x}", fx.va_uncaptured_table.0);
    let r = run(&[p(&f.qemu), "--cr3", &pv, "--va", &ok, "--va", &bad]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("=> stopped at L1: table_absent"), "{}", r.stdout);
    assert!(r.stdout.contains("   why: "));
    assert!(r.stdout.contains("   try: "));
    // --long explains the bits with Intel's names, and the mis-masking pitfall of an
    // NX bit in the direct map's L4 entry.
    let dm = format!("{:#x}", fx.xen_mapped[2].0.0);
    let r = run(&[p(&f.raw), "--cr3", &format!("{}", fx.idle), "--va", &dm, "--long"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("PML4E"));
    assert!(r.stdout.contains("NX/XD no-execute"));
    assert!(r.stdout.contains("masks only bits 11:0"), "{}", r.stdout);
    // CR3 beyond the image is bad input.
    let r = run(&[p(&f.raw), "--cr3", "0x4000000000", "--va", &ok]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("xenlike.raw") && r.stderr.contains("outside the image"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
}

#[test]
fn listing_reports_absent_tables_and_reserved_entries() {
    let f = files("listing");
    let pv = format!("{}", f.fx.pv);
    let r = run(&[p(&f.qemu), "--cr3", &pv, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let unreadable = r.json_of("unreadable_table");
    assert_eq!(unreadable.len(), 2, "{unreadable:?}");
    let reasons: Vec<&str> = unreadable.iter().map(|u| u["reason"].as_str().unwrap()).collect();
    assert!(reasons.contains(&"not_captured") && reasons.contains(&"outside_image"), "{reasons:?}");
    // The two planted entries, plus the L4 PS entry seen again through the linear
    // page-table slot 258, where it is an L3 entry: a 1 GiB leaf whose address has
    // bits in 29:13 — reserved there too, as the MMU would find.
    let reserved: Vec<String> =
        r.json_of("reserved_entry").iter().map(|e| e["va"].as_str().unwrap().to_string()).collect();
    let alias = xen::LINEAR_PT_VIRT_START + (5 << 30);
    assert_eq!(reserved, [f.fx.va_reserved.to_string(), f.fx.va_l4_ps.to_string(), format!("{alias:#x}")]);
    let s = &r.json_of("summary")[0];
    assert_eq!(s["unreadable_tables"], 2);
    assert_eq!(s["reserved_entries"], 3);
    assert_eq!(s["not_present_nonzero"], 1);
    // VA order throughout.
    let vas: Vec<u64> = r
        .json()
        .iter()
        .filter(|v| v["type"] != "root" && v["type"] != "summary")
        .map(|v| u64::from_str_radix(v["va"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect();
    assert!(vas.windows(2).all(|w| w[0] < w[1]), "listing not in VA order");
    // The PV root shares Xen's slots: every idle leaf outside slots 258 and 260 appears.
    let idle = run(&[p(&f.raw), "--cr3", &format!("{}", f.fx.idle), "--json", "--leaves"]);
    let pvl = run(&[p(&f.raw), "--cr3", &pv, "--json", "--leaves"]);
    let key = |v: &serde_json::Value| (v["va"].as_str().unwrap().to_string(), v["maddr"].as_str().unwrap().to_string());
    let slot = |va: &str| (u64::from_str_radix(va.trim_start_matches("0x"), 16).unwrap() >> 39) & 0x1ff;
    let pv_set: std::collections::HashSet<_> = pvl.json_of("mapping").iter().map(key).collect();
    let shared: Vec<_> = idle
        .json_of("mapping")
        .iter()
        .map(key)
        .filter(|(va, _)| (256..272).contains(&slot(va)) && slot(va) != 258)
        .collect();
    assert!(shared.len() >= 512 + 31 + 3, "the direct map alone has 546 leaves: {}", shared.len());
    assert!(shared.iter().all(|k| pv_set.contains(k)));
}
