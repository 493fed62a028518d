//! `xenwalk triage` on the real idle Xen 4.17 machine (QEMU's ELF dump, with its
//! per-CPU registers): each CPU's root named against QEMU's own CR3 (the dump's README
//! and `qemu-info-registers-cpu*.txt`: both CPUs on `idle_pg_table`), RIP as
//! `symbol+offset` against binutils' `nm` over the same xen-syms, and a sound machine
//! (exit 0). The lab's real crash dumps and the synthetic broken machines are in
//! tests/xen_lab.rs and tests/xen_domains.rs.

mod common;

use common::{run, shared, unxz_cached};
use std::path::Path;

fn reg(text: &str, name: &str) -> u64 {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| panic!("{name}= in QEMU's registers"))
}

/// The function `addr` is in, by `nm -n` (text symbols only).
fn nm_function(syms: &Path, addr: u64) -> String {
    let out = std::process::Command::new("nm").arg("-n").arg(syms).output().expect("run nm");
    let mut best = None;
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 3 && matches!(f[1], "t" | "T") {
            let a = u64::from_str_radix(f[0], 16).unwrap();
            if a <= addr {
                best = Some(f[2].to_string());
            }
        }
    }
    best.expect("a text symbol below RIP")
}

#[test]
fn idle_machine_triage_matches_qemus_registers() {
    let test = "idle_machine_triage_matches_qemus_registers";
    let Some(s) = shared(test) else { return };
    let dir = s.join("dumps/xen-4.17-idle");
    let elf = unxz_cached(&dir.join("memory.elf.xz"), "xen-4.17-idle.elf");
    let syms = s.join("xen-4.17/xen-syms-4.17-amd64");
    let r = run(&["triage", elf.to_str().unwrap(), "--xen-syms", syms.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let cpus = r.json_of("cpu");
    assert_eq!(cpus.len(), 2, "{}", r.stdout);
    // The dump's README: both CPUs run on idle_pg_table, CR3 0x3fc6e000.
    let idle = 0x3fc6_e000u64;
    for c in &cpus {
        let n = c["cpu"].as_u64().unwrap();
        let regs = std::fs::read_to_string(dir.join(format!("qemu-info-registers-cpu{n}.txt"))).unwrap();
        assert_eq!(reg(&regs, "CR3"), idle);
        assert_eq!(c["cr3"], format!("{idle:#x}"));
        assert_eq!(c["root"]["kind"], "idle", "{c}");
        // CR2, the last fault address: QEMU's own register (0 on this machine: no
        // fault since boot), hence nothing to walk.
        assert_eq!(c["cr2"], format!("{:#x}", reg(&regs, "CR2")), "{c}");
        assert!(c["cr2_walk"].is_null(), "{c}");
        let rip = reg(&regs, "RIP");
        assert_eq!(c["rip"], format!("{rip:#x}"));
        let f = nm_function(&syms, rip);
        let sym = c["rip_symbol"].as_str().unwrap();
        assert!(sym.starts_with(&format!("{f}+")) || sym == f, "CPU {n}: {sym}, nm says {f}");
    }
    let v = &r.json_of("verdict")[0];
    assert_eq!(v["findings"], 0, "{}", r.stdout);
}
