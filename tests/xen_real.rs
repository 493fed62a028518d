//! Xen awareness on real material: Debian's Xen 4.17.7 `xen-syms` (no DWARF) and
//! the 4.17.5 build with DWARF, against the real machine images, plus synthetic
//! vmcores laid out around the real image (relocated, before relocation, with PDX
//! compression) to exercise every way of finding `xen_phys_start`.

mod common;

use common::{parse_gva2gpa, read_text, run, shared, unxz_cached};
use std::path::{Path, PathBuf};
use xenwalk::dump::{Dump, OpenOptions};
use xenwalk::fixture::xen::{RealSpec, from_syms};
use xenwalk::fixture::{CpuRegs, ElfLayout, xen_crash_notes};
use xenwalk::xen::symbols::{SymKind, XenSyms};
use xenwalk::xen::{Source, Xen, XenOptions};
use xenwalk::{Maddr, Vaddr};

struct Real {
    syms: PathBuf,
    dwarf_syms: PathBuf,
    idle_raw: PathBuf,
    idle_dir: PathBuf,
    dom0_raw: PathBuf,
}

fn real(test: &str) -> Option<Real> {
    let s = shared(test)?;
    Some(Real {
        syms: s.join("xen-4.17/xen-syms-4.17-amd64"),
        dwarf_syms: s.join("xen-4.17/with-dwarf/xen-syms"),
        idle_raw: unxz_cached(&s.join("dumps/xen-4.17-idle/memory.raw.xz"), "xen-4.17-idle.raw"),
        idle_dir: s.join("dumps/xen-4.17-idle"),
        dom0_raw: unxz_cached(&s.join("dumps/xen-4.17-dom0/memory.raw.xz"), "xen-4.17-dom0.raw"),
    })
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// `nm`-style System.map lines: address, type, name (locals as `file#name`).
fn system_map(path: &Path) -> Vec<(u64, char, String)> {
    read_text(path)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let a = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
            let t = it.next()?.chars().next()?;
            Some((a, t, it.next()?.to_string()))
        })
        .collect()
}

#[test]
fn debian_xen_syms_symbols_version_and_build_id() {
    let Some(r) = real("debian_xen_syms_symbols_version_and_build_id") else {
        return;
    };
    let s = XenSyms::load(&r.syms).expect("load xen-syms");
    assert!(!s.has_dwarf, "Debian's xen-syms has no DWARF");
    assert_eq!(s.build_id_hex().as_deref(), Some("151b373fd64b321593bf987fd923cd10dabadac4"));
    let v = s.version.as_ref().expect("version decoded from the code");
    assert_eq!((v.major, v.minor, v.extra.as_deref()), (4, 17, Some(".7")));
    assert_eq!(s.xen_virt_start(), Some(0xffff_82d0_4000_0000));
    // Every symbol of the System.map that the loader knows by a unique name has the
    // same address (the map is an independent listing of the same file).
    let map = system_map(Path::new(&format!("{}.map", r.syms.display())));
    assert!(map.len() > 6000);
    let mut checked = 0;
    for (addr, _, name) in &map {
        if let Some(got) = s.addr(name) {
            assert_eq!(got, *addr, "{name}");
            checked += 1;
        }
    }
    assert!(checked > 5000, "only {checked} symbols matched the System.map");
    // Sizes and kinds from the symbol table.
    let pco = s.lookup("__per_cpu_offset").unwrap();
    assert_eq!((pco.size, pco.kind), (2048, SymKind::Object));
    assert_eq!(s.name_of(Vaddr(0xffff_82d0_4046_e010)).as_deref(), Some("idle_pg_table+0x10"));
    assert_eq!(s.addr("head.o#l3_xenmap"), Some(0xffff_82d0_4046_d000));

    let d = XenSyms::load(&r.dwarf_syms).expect("load the DWARF build");
    assert!(d.has_dwarf);
    assert_eq!(d.version.as_ref().map(|v| v.to_string()).as_deref(), Some("4.17.5"));
    assert_eq!(d.build_id_hex().as_deref(), Some("f7cf9fdb7fec857f84d41f7224d262fbc6908501"));
}

/// The console log of the real machine says where Xen relocated itself.
fn logged_base(dir: &Path) -> u64 {
    let log = read_text(&dir.join("qemu-serial.log"));
    let v =
        log.lines().find_map(|l| l.split("New Xen image base address: ").nth(1)).expect("relocation line in the log");
    u64::from_str_radix(v.trim().trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn discovery_finds_xen_phys_start_in_both_real_images() {
    let Some(r) = real("discovery_finds_xen_phys_start_in_both_real_images") else {
        return;
    };
    let base = logged_base(&r.idle_dir);
    assert_eq!(base, 0x3f80_0000);
    for img in [&r.idle_raw, &r.dom0_raw] {
        let dump = Dump::open(img, OpenOptions::default()).unwrap();
        let x = Xen::new(&dump, Some(XenSyms::load(&r.syms).unwrap()), &XenOptions::default());
        let xps = x.xen_phys_start.as_ref().expect("discovered");
        assert_eq!((xps.value, &xps.source), (base, &Source::Discovered), "{}", img.display());
        let check = x.image_check.as_ref().unwrap();
        assert!(check.ok, "{:?}", check.problems);
        assert_eq!(check.dump_build_id.as_deref(), Some("151b373fd64b321593bf987fd923cd10dabadac4"));
        assert_eq!(x.idle_root(), Some(Maddr(0x3fc6_e000)));
        assert_eq!(x.pdx.source, Source::Dump);
    }
    // The CLI: info shows it, and with --xen-syms the default root is idle_pg_table.
    let r2 = run(&["info", p(&r.idle_raw), "--xen-syms", p(&r.syms), "--json"]);
    assert_eq!(r2.code, 0, "{}", r2.stderr);
    let info = &r2.json()[0]["xen"];
    assert_eq!(info["xen_phys_start"]["value"], "0x3f800000");
    assert_eq!(info["xen_phys_start"]["source"], "discovered");
    assert_eq!(info["version"]["value"], "4.17.7");
    let w = run(&[p(&r.idle_raw), "--xen-syms", p(&r.syms), "--va", "idle_pg_table", "--json"]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    assert_eq!(w.json_of("root")[0]["l4"], "0x3fc6e000");
    let walk = &w.json_of("walk")[0];
    assert_eq!(walk["maddr"], "0x3fc6e000");
    assert_eq!(walk["symbol"], "idle_pg_table");
    assert_eq!(walk["region"], "xen_image");
    let names: Vec<&str> =
        walk["levels"].as_array().unwrap().iter().map(|l| l["table_name"].as_str().unwrap()).collect();
    assert_eq!(&names[..3], ["idle_pg_table", "l3_xenmap", "l2_xenmap"]);
}

/// `v2m` of every data object of the image (the hypervisor's own formula) agrees with
/// a walk of idle_pg_table, and with QEMU's answers where QEMU gave one.
#[test]
fn v2m_of_every_data_symbol_agrees_with_the_walk_and_qemu() {
    let Some(r) = real("v2m_of_every_data_symbol_agrees_with_the_walk_and_qemu") else {
        return;
    };
    let dump = Dump::open(&r.idle_raw, OpenOptions::default()).unwrap();
    let syms = XenSyms::load(&r.syms).unwrap();
    let x = Xen::new(&dump, Some(syms), &XenOptions::default());
    let idle = x.idle_root().unwrap();
    let syms = x.syms.as_ref().unwrap();
    let mut n = 0;
    let mut unmapped = Vec::new();
    for s in syms.symbols().iter().filter(|s| s.kind == SymKind::Object) {
        // .init.* is freed and unmapped at the end of boot (reference §9, pitfall 8).
        let sec = syms.section_of(Vaddr(s.addr)).map(|s| s.name.as_str()).unwrap_or("");
        if sec.starts_with(".init") || sec.is_empty() {
            continue;
        }
        let f = x.virt_to_maddr(Vaddr(s.addr)).expect("image VAs are linear");
        match x.walk_maddr(dump.mem.as_ref(), idle, Vaddr(s.addr)) {
            Ok(w) => {
                assert_eq!(f, w, "{} ({:#x})", s.name, s.addr);
                n += 1;
            }
            // Xen unmaps parts of its own image after boot (the unused EFI boot
            // allocator pool, ebmalloc_mem): the formula still answers, the walk cannot.
            Err(_) => unmapped.push(s.name.clone()),
        }
    }
    assert!(n > 1000, "{n} objects checked");
    assert!(unmapped.len() <= 2, "objects of the image the idle root does not map: {unmapped:?}");
    let mut q = 0;
    for (_, va, label, pa) in parse_gva2gpa(&read_text(&r.idle_dir.join("qemu-gva2gpa.txt"))) {
        let va = Vaddr(va);
        if let (Ok(m), Some(pa)) = (x.virt_to_maddr(va), pa) {
            assert_eq!(m.0, pa, "{label}");
            q += 1;
        }
    }
    assert!(q >= 20, "{q} QEMU answers compared");
    // The CLI agrees with itself and says so.
    let out = run(&[
        "v2m",
        p(&r.idle_raw),
        "--xen-syms",
        p(&r.syms),
        "xen_phys_start",
        "ffff830000100000",
        "ffff82e000000000",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = out.json_of("v2m");
    assert_eq!(lines[0]["maddr"], "0x3fc63600");
    assert_eq!(lines[0]["agree"], true);
    assert_eq!(lines[1]["maddr"], "0x100000");
    assert!(lines[2]["maddr"].is_null(), "the frame table is not linear");
    assert_eq!(lines[2]["walk_maddr"], "0x35000000");
    let m = run(&["m2v", p(&r.idle_raw), "--xen-syms", p(&r.syms), "3fc6e000", "--json"]);
    let l = &m.json_of("m2v")[0];
    assert_eq!(l["directmap"], "0xffff83003fc6e000");
    assert_eq!(l["image"], "0xffff82d04046e000");
    assert_eq!(l["symbol"], "idle_pg_table");
    assert_eq!(l["walk_agrees"], true);
}

#[test]
fn tables_and_show_page_walk_style() {
    let Some(r) = real("tables_and_show_page_walk_style") else {
        return;
    };
    let out = run(&["tables", p(&r.dom0_raw), "--xen-syms", p(&r.syms), "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = out.json_of("table");
    assert_eq!(t[0]["name"], "idle_pg_table");
    assert_eq!(t[0]["l4"], "0x3fc6e000");
    assert_eq!(t[0]["check"]["self_map"], 258);
    // AMD-flavoured QEMU CPU: no XPTI roots.
    assert!(t.iter().filter(|l| l["name"].as_str().unwrap().ends_with("root_pgt")).all(|l| l["l4"].is_null()));

    // show_page_walk format: header, then " Ln[0x%03x] = %016x %016x" per level.
    let out = run(&[
        p(&r.idle_raw),
        "--xen-syms",
        p(&r.syms),
        "--va",
        "xen_phys_start",
        "--va",
        "ffff830000200000",
        "--style",
        "xen",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    // The VA from the System.map, the L4 entry read from the raw image itself (file
    // offset = machine address) at CPU 0's CR3 from QEMU's registers.
    let map = system_map(Path::new(&format!("{}.map", r.syms.display())));
    let va = map.iter().find(|(_, _, n)| n == "xen_phys_start").expect("xen_phys_start in the System.map").0;
    let regs = read_text(&r.idle_dir.join("qemu-info-registers-cpu0.txt"));
    let cr3 = u64::from_str_radix(regs.split_whitespace().find_map(|w| w.strip_prefix("CR3=")).unwrap(), 16).unwrap();
    let read_u64 = |maddr: u64| {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&r.idle_raw).unwrap();
        f.seek(SeekFrom::Start(maddr)).unwrap();
        let mut b = [0u8; 8];
        f.read_exact(&mut b).unwrap();
        u64::from_le_bytes(b)
    };
    let slot = (va >> 39) & 0x1ff;
    let entry = read_u64((cr3 & !0xfff) + 8 * slot);
    // Xen prints beside it the M2P's pfn of the entry's frame (RDWR_MPT_VIRT_START =
    // 0xffff828000000000, 8 bytes a frame), found here through QEMU's own walk.
    let m2p_va = 0xffff_8280_0000_0000 + 8 * ((entry & 0x000f_ffff_ffff_f000) >> 12);
    let tlb = common::parse_qemu_tlb(&read_text(&r.idle_dir.join("qemu-info-tlb-cpu0.txt")));
    let leaf = tlb.iter().filter(|l| l.va <= m2p_va).max_by_key(|l| l.va).expect("the M2P in QEMU's walk");
    let size = if leaf.flags.as_bytes()[2] == b'P' { 2 << 20 } else { 4096 };
    assert!(m2p_va - leaf.va < size, "QEMU maps no M2P entry for {entry:#x}");
    let m2p = read_u64(leaf.pa + (m2p_va - leaf.va));
    assert_eq!(lines[0], format!("Pagetable walk from {va:016x}:"));
    assert_eq!(lines[1], format!(" L4[{slot:#05x}] = {entry:016x} {m2p:016x}"));
    let re_ok = |l: &str| {
        let b = l.as_bytes();
        l.len() >= 38 && l.starts_with(" L") && &l[3..6] == "[0x" && &l[9..13] == "] = " && b[29] == b' '
    };
    assert!(lines[1..5].iter().all(|l| re_ok(l)), "{lines:?}");
    assert_eq!(lines[5], "Pagetable walk from ffff830000200000:");
    assert!(lines[8].ends_with(" (PSE)"), "a 2 MiB direct-map page: {lines:?}");
    assert_eq!(lines.len(), 9);
}

#[test]
fn mismatched_or_broken_xen_syms_are_refused() {
    let Some(r) = real("mismatched_or_broken_xen_syms_are_refused") else {
        return;
    };
    // The 4.17.5 build against the 4.17.7 image, with the base known: exit 2, what differs.
    let out = run(&["info", p(&r.idle_raw), "--xen-syms", p(&r.dwarf_syms), "--xen-phys-start", "0x3f800000"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("does not match") && out.stderr.contains(".rodata"), "{}", out.stderr);
    let out = run(&[
        "info",
        p(&r.idle_raw),
        "--xen-syms",
        p(&r.dwarf_syms),
        "--xen-phys-start",
        "0x3f800000",
        "--allow-mismatch",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("version 4.17.5 (xen-syms)"), "{}", out.stdout);
    assert!(out.stdout.contains("MISMATCH: only 0 of 83 .rodata pages"), "{}", out.stdout);
    assert!(out.stderr.contains("WARNING") && out.stderr.contains("does not match"), "{}", out.stderr);
    // The image is still read right: idle_pg_table is CPU 0's CR3 in QEMU's registers.
    let regs = read_text(&r.idle_dir.join("qemu-info-registers-cpu0.txt"));
    let cr3 = u64::from_str_radix(regs.split_whitespace().find_map(|w| w.strip_prefix("CR3=")).unwrap(), 16).unwrap();
    assert!(out.stdout.contains(&format!("idle_pg_table at {cr3:#x}")), "{}", out.stdout);
    // And walks with the mismatched xen-syms allowed give QEMU's translations.
    let qemu: Vec<(u64, Option<u64>)> = parse_gva2gpa(&read_text(&r.idle_dir.join("qemu-gva2gpa.txt")))
        .into_iter()
        .filter(|(cpu, ..)| *cpu == 0)
        .map(|(_, va, _, pa)| (va, pa))
        .collect();
    let mut args = vec![
        p(&r.idle_raw).to_string(),
        "--xen-syms".into(),
        p(&r.dwarf_syms).into(),
        "--xen-phys-start".into(),
        "0x3f800000".into(),
        "--allow-mismatch".into(),
        "--cr3".into(),
        format!("{cr3:#x}"),
        "--json".into(),
    ];
    for (va, _) in &qemu {
        args.extend(["--va".into(), format!("{va:#x}")]);
    }
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.code <= 1, "{}", out.stderr);
    let walks = out.json_of("walk");
    assert_eq!(walks.len(), qemu.len());
    assert!(qemu.iter().any(|(_, pa)| pa.is_some()));
    for (w, (va, pa)) in walks.iter().zip(&qemu) {
        assert_eq!(w["maddr"].as_str(), pa.map(|a| format!("{a:#x}")).as_deref(), "{va:#x}");
    }
    let dir = common::tempdir("bad-syms");
    let not_elf = dir.join("not-elf");
    std::fs::write(&not_elf, b"this is not an ELF file at all").unwrap();
    let out = run(&["info", p(&r.idle_raw), "--xen-syms", p(&not_elf)]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("not-elf") && out.stderr.contains("not an ELF"), "{}", out.stderr);
    // A symbol-less ELF: the real header with no section headers.
    let mut bytes = std::fs::read(&r.syms).unwrap()[..64].to_vec();
    bytes[0x28..0x30].copy_from_slice(&0u64.to_le_bytes()); // e_shoff
    bytes[0x3c..0x3e].copy_from_slice(&0u16.to_le_bytes()); // e_shnum
    let stripped = dir.join("stripped");
    std::fs::write(&stripped, &bytes).unwrap();
    let out = run(&["info", p(&r.idle_raw), "--xen-syms", p(&stripped)]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no symbol table"), "{}", out.stderr);
    // A dump given as xen-syms.
    let out = run(&["info", p(&r.idle_raw), "--xen-syms", p(&r.idle_raw)]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!("{} (--xen-syms)", p(&r.idle_raw))) && out.stderr.contains("not an ELF file"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Synthetic vmcores around the real image: every way of finding xen_phys_start,
/// before and after relocation, and PDX compression with a hole.
#[test]
fn synthetic_vmcores_every_xen_phys_start_source_and_pdx() {
    let Some(r) = real("synthetic_vmcores_every_xen_phys_start_source_and_pdx") else {
        return;
    };
    let syms = XenSyms::load(&r.syms).unwrap();
    let dir = common::tempdir("xen-synth");
    let mib = 1u64 << 20;

    // 1. Relocated to 0x7f000000 in 2 GiB: CRASH_INFO (kexec ELF), option and discovery (raw).
    let spec = RealSpec { ram: vec![(0, 2048 * mib)], xen_phys_start: 0x7f00_0000, variable: 0x7f00_0000, pdx: None };
    let fx = from_syms(&syms, &spec).unwrap();
    let raw = dir.join("reloc.raw");
    fx.machine.write_raw(&raw).unwrap();
    let vmcore = dir.join("reloc.vmcore");
    let cpus = [CpuRegs { cr3: fx.idle.0, cr4: 0x3506e0, ..Default::default() }];
    fx.machine
        .write_elf(&vmcore, &[], &xen_crash_notes(&cpus, 0x7f00_0000, "PAGESIZE=4096\n"), ElfLayout::Classic)
        .unwrap();
    let expect_idle = syms.addr("idle_pg_table").unwrap() - fx.xen_virt_start + 0x7f00_0000;
    for (file, opts, source) in [
        (&vmcore, XenOptions::default(), Source::CrashInfo),
        (&raw, XenOptions { xen_phys_start: Some(0x7f00_0000), ..Default::default() }, Source::Option),
        (&raw, XenOptions::default(), Source::Discovered),
    ] {
        let dump = Dump::open(file, OpenOptions::default()).unwrap();
        let x = Xen::new(&dump, Some(XenSyms::load(&r.syms).unwrap()), &opts);
        let xps = x.xen_phys_start.as_ref().unwrap();
        assert_eq!((xps.value, &xps.source), (0x7f00_0000, &source), "{}", file.display());
        assert!(x.image_check.as_ref().unwrap().ok);
        assert_eq!(x.idle_root(), Some(Maddr(expect_idle)));
        let va = Vaddr(syms.addr("xen_phys_start").unwrap());
        assert_eq!(
            x.walk_maddr(dump.mem.as_ref(), x.idle_root().unwrap(), va).map_err(|e| e.to_string()),
            x.virt_to_maddr(va).map_err(|e| e.to_string())
        );
    }

    // 2. Before relocation: the image at its load address (base 0, _start at 2 MiB),
    // the variable still 0.
    let spec = RealSpec { ram: vec![(0, 64 * mib)], xen_phys_start: 0, variable: 0, pdx: None };
    let fx = from_syms(&syms, &spec).unwrap();
    let early = dir.join("early.raw");
    fx.machine.write_raw(&early).unwrap();
    let dump = Dump::open(&early, OpenOptions::default()).unwrap();
    let x = Xen::new(&dump, Some(XenSyms::load(&r.syms).unwrap()), &XenOptions::default());
    assert_eq!(x.xen_phys_start.as_ref().map(|v| v.value), Some(0));
    assert!(x.discovery.as_ref().unwrap().why.contains("before relocation"));

    // 2b. An image above 4 GiB (where an EFI loader may put it; a multiboot Xen
    // relocates below 4 GiB, reference §3.2), in a dump without CRASH_INFO: the search
    // below 4 GiB finds no live copy, so it goes on above.
    let high = (8u64 << 30) + 32 * mib;
    let spec = RealSpec {
        ram: vec![(0, 64 * mib), (8 << 30, (8 << 30) + 64 * mib)],
        xen_phys_start: high,
        variable: high,
        pdx: None,
    };
    let fx = from_syms(&syms, &spec).unwrap();
    let elf = dir.join("high.elf");
    fx.machine.write_elf(&elf, &[], &[], ElfLayout::Classic).unwrap();
    let dump = Dump::open(&elf, OpenOptions::default()).unwrap();
    let x = Xen::new(&dump, Some(XenSyms::load(&r.syms).unwrap()), &XenOptions::default());
    let xps = x.xen_phys_start.as_ref().unwrap();
    assert_eq!((xps.value, &xps.source), (high, &Source::Discovered), "{:?}", x.discovery);
    assert!(x.image_check.as_ref().unwrap().ok);

    // 3. PDX compression (reference §3.5/§3.7 rules): RAM at 0-64 MiB and 1 TiB-1 TiB+64 MiB.
    // OR of the ranges' bases and varying pfn bits = bits 0..13 and 28; the widest
    // zero run above pfn bit 18 is bits 19..27: shift 9.
    let tib = 1u64 << 40;
    let bottom_pfn = (1u64 << 19) - 1;
    let hole_pfn = ((1u64 << 28) - 1) & !bottom_pfn;
    let top_pfn = !((1u64 << 28) - 1);
    let pdx = [9, bottom_pfn, hole_pfn, top_pfn, (bottom_pfn << 12) | 0xfff, top_pfn << 12];
    let spec = RealSpec {
        ram: vec![(0, 64 * mib), (tib, tib + 64 * mib)],
        xen_phys_start: 0x0200_0000,
        variable: 0x0200_0000,
        pdx: Some(pdx),
    };
    let fx = from_syms(&syms, &spec).unwrap();
    let vmcore = dir.join("pdx.vmcore");
    fx.machine
        .write_elf(&vmcore, &[], &xen_crash_notes(&cpus, 0x0200_0000, "PAGESIZE=4096\n"), ElfLayout::Classic)
        .unwrap();
    let dump = Dump::open(&vmcore, OpenOptions::default()).unwrap();
    let x = Xen::new(&dump, Some(XenSyms::load(&r.syms).unwrap()), &XenOptions::default());
    assert_eq!(x.pdx.value.hole_shift, 9);
    let ma = Maddr(tib + 0x12_3456);
    let va = x.maddr_to_virt(ma).unwrap();
    assert_eq!(
        va,
        Vaddr(0xffff_8300_0000_0000 + (1 << 31) + 0x12_3456),
        "compressed: 1 TiB lands at 2 GiB of direct map"
    );
    assert_eq!(x.virt_to_maddr(va), Ok(ma));
    assert_eq!(x.walk_maddr(dump.mem.as_ref(), x.idle_root().unwrap(), va), Ok(ma), "the page tables agree");
    let naive = Vaddr(0xffff_8300_0000_0000 + ma.0);
    assert!(
        x.walk_maddr(dump.mem.as_ref(), x.idle_root().unwrap(), naive).is_err(),
        "va = DIRECTMAP + maddr is wrong with PDX"
    );
    let out = run(&["m2v", p(&vmcore), "--xen-syms", p(&r.syms), &format!("{ma}"), "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json_of("m2v")[0]["directmap"], va.to_string());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Struct offsets from each source, labelled: DWARF (the 4.17.5 build), the dump's
/// VMCOREINFO_XEN, and the built-in table for Debian's 4.17.7 build-id.
#[test]
fn struct_offsets_from_dwarf_vmcoreinfo_and_builtin() {
    use xenwalk::xen::offsets::Offsets;
    let Some(r) = real("struct_offsets_from_dwarf_vmcoreinfo_and_builtin") else { return };
    let d = XenSyms::load(&r.dwarf_syms).unwrap();
    let o = Offsets::new(Some(&d), None);
    // The two layout differences between 4.17.5 and 4.17.7 that shared/xen-4.17/with-dwarf/README.md names.
    assert_eq!(o.offset("domain.arch.p2m").unwrap(), xenwalk::xen::Sourced { value: 1192, source: Source::Dwarf });
    assert_eq!(o.offset("vcpu.is_running").unwrap().value, 271);
    assert_eq!(o.size("vcpu").unwrap().source, Source::Dwarf);
    // reference §6: guest_cr[3] at 1048 (through an anonymous union: arch.hvm).
    let idx = d.dwarf().unwrap();
    assert_eq!(idx.member(&d, "vcpu", "arch.hvm.guest_cr[3]").unwrap().offset, 1048);
    // Every key the built-in table has is a real C member path in a real build.
    for k in Offsets::known_keys() {
        assert!(o.offset(k).is_ok_and(|v| v.source == Source::Dwarf), "{k}: {:?}", o.offset(k));
    }

    let s = XenSyms::load(&r.syms).unwrap();
    assert!(s.dwarf().is_err());
    let o = Offsets::new(Some(&s), Some("OFFSET(domain.next_in_list)=999\nSIZE(domain)=2304\n"));
    assert_eq!(
        o.offset("domain.next_in_list").unwrap(),
        xenwalk::xen::Sourced { value: 999, source: Source::Vmcoreinfo }
    );
    assert_eq!(o.offset("vcpu.arch.cr3").unwrap(), xenwalk::xen::Sourced { value: 2856, source: Source::Builtin });
    assert_eq!(o.size("domain").unwrap().source, Source::Vmcoreinfo);
    let none = Offsets::new(None, None);
    assert!(none.offset("vcpu.arch.cr3").is_err());
}

/// Member paths through the hypervisor's own pointers, with Debian's DWARF-less
/// xen-syms: domain_list leads to dom0, whose vCPUs' roots are the CPUs' CR3s.
#[test]
fn expressions_reach_vcpus_through_domain_list() {
    use xenwalk::xen::expr::{Ctx, eval};
    let Some(r) = real("expressions_reach_vcpus_through_domain_list") else { return };
    let dom0_dir = shared("expressions_reach_vcpus_through_domain_list").unwrap().join("dumps/xen-4.17-dom0");
    let dump = Dump::open(&r.dom0_raw, OpenOptions::default()).unwrap();
    let x = Xen::new(&dump, Some(XenSyms::load(&r.syms).unwrap()), &XenOptions::default());
    let ctx = Ctx { xen: &x, mem: dump.mem.as_ref(), root: x.idle_root() };
    let ev = |s: &str| eval(s, &ctx, None).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert_eq!(ev("*domain_list->domain_id"), 0);
    assert_eq!(ev("*domain_list->max_vcpus"), 2);
    for cpu in 0..2u64 {
        let regs = read_text(&dom0_dir.join(format!("qemu-info-registers-cpu{cpu}.txt")));
        let cr3 =
            u64::from_str_radix(regs.split_whitespace().find_map(|w| w.strip_prefix("CR3=")).unwrap(), 16).unwrap();
        assert_eq!(ev(&format!("*domain_list->vcpu[{cpu}]->arch.cr3")), cr3, "CPU {cpu}");
        assert_eq!(ev(&format!("*domain_list->vcpu[{cpu}]->vcpu_id")), cpu);
        // reference §4.1: idle_vcpu[n]->arch.cr3 = __pa(idle_pg_table)
        assert_eq!(ev(&format!("*idle_vcpu[{cpu}]->arch.cr3")), x.idle_root().unwrap().0);
    }
    // An explicit cast works where a type is not known.
    let v = ev("*domain_list->vcpu[1]");
    assert_eq!(ev(&format!("*((struct vcpu *){v:#x})->processor")), ev("*domain_list->vcpu[1]->processor"));
    // Through the CLI: a root from a member path.
    let out = run(&[
        p(&r.dom0_raw),
        "--xen-syms",
        p(&r.syms),
        "--cr3",
        "*domain_list->vcpu[1]->arch.cr3",
        "--va",
        "ffff888000000000",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json_of("root")[0]["l4"], "0x356d0000");
    // Above slot 271 a PV root maps the guest (Linux's direct map), the idle root Xen's.
    assert_eq!(out.json_of("walk")[0]["region"], "guest_pv");
    let idle = run(&[p(&r.dom0_raw), "--xen-syms", p(&r.syms), "--va", "ffff888000000000", "--json"]);
    assert_eq!(idle.json_of("walk")[0]["region"], "directmap_high");
}
