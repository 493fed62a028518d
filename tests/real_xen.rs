//! The answer key: real machine images of Xen 4.17 running in QEMU
//! (`../shared/dumps/`), checked against QEMU's own page walks. QEMU's MMU is an
//! independent implementation; xenwalk must agree with it leaf for leaf.

mod common;

use common::{
    QemuLeaf, assert_same_leaves, leaves_of, parse_gva2gpa, parse_qemu_tlb, read_text, run, shared, unxz_cached,
};
use std::path::{Path, PathBuf};
use xenwalk::dump::{Dump, OpenOptions};
use xenwalk::paging::{WalkOptions, walk};
use xenwalk::{Maddr, Vaddr};

fn cr3_from_registers(path: &Path) -> u64 {
    let text = read_text(path);
    let v = text.split_whitespace().find_map(|w| w.strip_prefix("CR3=")).expect("CR3= in registers file");
    u64::from_str_radix(v, 16).expect("CR3 hex")
}

fn idle(test: &str) -> Option<(PathBuf, PathBuf)> {
    let s = shared(test)?;
    let d = s.join("dumps/xen-4.17-idle");
    Some((unxz_cached(&d.join("memory.raw.xz"), "xen-4.17-idle.raw"), d))
}

#[test]
fn idle_listing_equals_qemu_info_tlb_raw_and_elf() {
    let Some((raw, dir)) = idle("idle_listing_equals_qemu_info_tlb_raw_and_elf") else {
        return;
    };
    let cr3 = cr3_from_registers(&dir.join("qemu-info-registers-cpu0.txt"));
    assert_eq!(cr3, 0x3fc6e000);
    let qemu = parse_qemu_tlb(&read_text(&dir.join("qemu-info-tlb-cpu0.txt")));
    assert_eq!(qemu.len(), 3010);

    let dump = Dump::open(&raw, OpenOptions::default()).expect("open raw");
    let (ours, _) = leaves_of(&dump, cr3);
    assert_same_leaves(&ours, &qemu, "idle raw");

    let elf = unxz_cached(&dir.join("memory.elf.xz"), "xen-4.17-idle.elf");
    let dump = Dump::open(&elf, OpenOptions::default()).expect("open elf");
    let (ours_elf, _) = leaves_of(&dump, cr3);
    assert_same_leaves(&ours_elf, &qemu, "idle ELF");
}

#[test]
fn idle_cli_leaf_listing_equals_qemu() {
    let Some((raw, dir)) = idle("idle_cli_leaf_listing_equals_qemu") else {
        return;
    };
    let qemu = parse_qemu_tlb(&read_text(&dir.join("qemu-info-tlb-cpu0.txt")));
    let r = run(&[raw.to_str().unwrap(), "--cr3", "0x3fc6e000", "--leaves", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ours: Vec<QemuLeaf> = r
        .json_of("mapping")
        .iter()
        .map(|m| {
            let flags: Vec<&str> = m["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
            let has = |f: &str| flags.contains(&f);
            let large = m["page_size"].as_u64().unwrap() > 4096;
            let c = |b: bool, ch: char| if b { ch } else { '-' };
            let s: String = [
                c(has("NX"), 'X'),
                c(has("G"), 'G'),
                c(large && has("PS"), 'P'),
                c(has("D"), 'D'),
                c(has("A"), 'A'),
                c(has("PCD"), 'C'),
                c(has("PWT"), 'T'),
                c(has("US"), 'U'),
                c(has("RW"), 'W'),
            ]
            .iter()
            .collect();
            let hex = |k: &str| u64::from_str_radix(m[k].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
            QemuLeaf { va: hex("va"), pa: hex("maddr"), flags: s }
        })
        .collect();
    assert_same_leaves(&ours, &qemu, "idle via CLI --leaves --json");
    let summary = &r.json_of("summary")[0];
    assert_eq!(summary["leaves"]["l2"], 644);
    assert_eq!(summary["leaves"]["l1"], 2366);
}

/// QEMU's `info mem`: VA-contiguous runs with the same effective U and W (ANDed over
/// all levels), independent of the machine addresses.
#[test]
fn idle_effective_rights_equal_qemu_info_mem() {
    let Some((raw, dir)) = idle("idle_effective_rights_equal_qemu_info_mem") else {
        return;
    };
    let dump = Dump::open(&raw, OpenOptions::default()).expect("open raw");
    let (_, leaves) = leaves_of(&dump, 0x3fc6e000);
    let mut runs: Vec<(u64, u64, String)> = Vec::new();
    for l in &leaves {
        let prot = format!("{}r{}", if l.rights.user { 'u' } else { '-' }, if l.rights.write { 'w' } else { '-' });
        match runs.last_mut() {
            Some((_, end, p)) if *end == l.va.0 && *p == prot => *end += l.size(),
            _ => runs.push((l.va.0, l.va.0 + l.size(), prot)),
        }
    }
    let ours: Vec<String> = runs.iter().map(|(s, e, p)| format!("{s:016x}-{e:016x} {:016x} {p}", e - s)).collect();
    let qemu: Vec<String> =
        read_text(&dir.join("qemu-info-mem-cpu0.txt")).lines().map(str::to_string).filter(|l| !l.is_empty()).collect();
    assert_eq!(ours, qemu);
}

fn check_gva2gpa(dump: &Dump, dir: &Path, cpus: usize) -> usize {
    let mut n = 0;
    for (cpu, va, label, pa) in parse_gva2gpa(&read_text(&dir.join("qemu-gva2gpa.txt"))) {
        assert!(cpu < cpus);
        let cr3 = cr3_from_registers(&dir.join(format!("qemu-info-registers-cpu{cpu}.txt")));
        let w = walk(dump.mem.as_ref(), Maddr(cr3), Vaddr(va), WalkOptions::default());
        assert_eq!(w.mapping().map(|m| m.maddr.0), pa, "cpu{cpu} {va:#x} ({label})");
        n += 1;
    }
    n
}

#[test]
fn idle_translations_equal_qemu_gva2gpa() {
    let Some((raw, dir)) = idle("idle_translations_equal_qemu_gva2gpa") else {
        return;
    };
    let dump = Dump::open(&raw, OpenOptions::default()).expect("open raw");
    assert_eq!(check_gva2gpa(&dump, &dir, 2), 66);
}

#[test]
fn idle_elf_notes_give_each_cpus_cr3() {
    let Some((_, dir)) = idle("idle_elf_notes_give_each_cpus_cr3") else {
        return;
    };
    let elf = unxz_cached(&dir.join("memory.elf.xz"), "xen-4.17-idle.elf");
    let dump = Dump::open(&elf, OpenOptions::default()).expect("open elf");
    assert!(dump.warnings.is_empty(), "{:?}", dump.warnings);
    assert_eq!(dump.notes.cpus.len(), 2);
    for cpu in 0..2 {
        let regs = cr3_from_registers(&dir.join(format!("qemu-info-registers-cpu{cpu}.txt")));
        assert_eq!(dump.notes.cpu(cpu).and_then(|c| c.cr3), Some(regs), "CPU {cpu}");
    }
    // And the CLI picks them: --cpu 1 walks the same as --cr3.
    let r = run(&[elf.to_str().unwrap(), "--cpu", "1", "--va", "ffff82d040200000", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json_of("walk")[0]["maddr"], "0x3fa00000");
    assert_eq!(r.json_of("root")[0]["source"], "CPU 1, QEMU note");
}

fn dom0(test: &str) -> Option<(PathBuf, PathBuf)> {
    let s = shared(test)?;
    let d = s.join("dumps/xen-4.17-dom0");
    Some((unxz_cached(&d.join("memory.raw.xz"), "xen-4.17-dom0.raw"), d))
}

#[test]
fn dom0_process_roots_equal_qemu_info_tlb_both_cpus() {
    let Some((raw, dir)) = dom0("dom0_process_roots_equal_qemu_info_tlb_both_cpus") else {
        return;
    };
    let dump = Dump::open(&raw, OpenOptions::default()).expect("open raw");
    for cpu in 0..2 {
        let cr3 = cr3_from_registers(&dir.join(format!("qemu-info-registers-cpu{cpu}.txt")));
        let qemu = parse_qemu_tlb(&read_text(&dir.join(format!("qemu-info-tlb-cpu{cpu}.txt.xz"))));
        let (ours, _) = leaves_of(&dump, cr3);
        if cpu == 0 {
            assert_eq!(cr3, 0x363ba000);
            assert_eq!(ours.len(), 548_552);
        }
        assert_same_leaves(&ours, &qemu, &format!("dom0 CPU {cpu} root {cr3:#x}"));
    }
}

#[test]
fn dom0_translations_equal_qemu_gva2gpa() {
    let Some((raw, dir)) = dom0("dom0_translations_equal_qemu_gva2gpa") else {
        return;
    };
    let dump = Dump::open(&raw, OpenOptions::default()).expect("open raw");
    assert_eq!(check_gva2gpa(&dump, &dir, 2), 66);
}
