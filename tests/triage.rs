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
        // Each CPU holds its own idle vCPU (idle_vcpu[n] has vcpu_id n).
        assert_eq!((c["curr_vcpu"]["idle"].as_bool(), c["curr_vcpu"]["vcpu"].as_u64()), (Some(true), Some(n)), "{c}");
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

/// `--console`: a console log made from the real dom0 machine's own walks (Xen's
/// `show_page_walk` format, as `--style xen` prints them), wrapped as people paste
/// logs (`(XEN)` prefixes, CRLF, colours, timestamps), with one block as printed, one
/// whose L2 entry differs (the table changed after the message) and one printed from
/// another root; the error code decoded. The dump has no notes: the CR3 comes from
/// the log's register dump, CPU 0's (the dump's README: 0x363ba000).
#[test]
fn console_walks_redone_in_the_dump_line_by_line() {
    let test = "console_walks_redone_in_the_dump_line_by_line";
    let Some(s) = shared(test) else { return };
    let raw = unxz_cached(&s.join("dumps/xen-4.17-dom0/memory.raw.xz"), "xen-4.17-dom0.raw");
    let syms = s.join("xen-4.17/xen-syms-4.17-amd64");
    let (r, x) = (raw.to_str().unwrap(), syms.to_str().unwrap());
    let cr3 = "0x363ba000";
    let xen_walk = |root: &str, va: &str| -> Vec<String> {
        let o = run(&[r, "--xen-syms", x, "--cr3", root, "--va", va, "--style", "xen"]);
        assert!(o.code <= 1 && !o.stdout.is_empty(), "{}", o.stderr);
        o.stdout.lines().map(String::from).collect()
    };
    let good = xen_walk(cr3, "0xffff888000100000");
    let mut changed = xen_walk(cr3, "0xffff82d040200000");
    assert!(good.len() == 5 && changed.len() >= 4, "{good:?} {changed:?}");
    // The L2 line of the second block, its entry's low flag bit flipped (A, 0x20).
    let l2 = changed.iter().position(|l| l.trim_start().starts_with("L2[")).unwrap();
    let (head, entry) = changed[l2].split_once("= ").unwrap();
    let e = u64::from_str_radix(&entry[..16], 16).unwrap() ^ 0x20;
    changed[l2] = format!("{head}= {e:016x}{}", &entry[16..]);
    // A walk printed from idle_pg_table: a guest VA, which the idle root does not map.
    let other = xen_walk("idle_pg_table", "0x400000");
    let mut log =
        String::from("\x1b[0m(XEN) ----[ Xen-4.17.7  x86_64  debug=n  Not tainted ]----\r\n(XEN) CPU:    0\r\n");
    log.push_str(&format!("(XEN) [2026-12-03 11:00:00.000] cr3: {:016x}   cr2: ffff888000100000\r\n", 0x363b_a000));
    for l in good.iter().chain(&changed) {
        log.push_str(&format!("[  101.25] (XEN) {l}\r\n"));
    }
    log.push_str("(XEN) cr3: 000000003fc6e000   cr2: 0000000000400000\r\n");
    for l in &other {
        log.push_str(&format!("(XEN) {l}\n"));
    }
    log.push_str("(XEN) ****************************************\n(XEN) Panic on CPU 0:\n(XEN) FATAL PAGE FAULT\n(XEN) [error_code=0002]\n(XEN) Faulting linear address: 0000000000400000\n(XEN) ****************************************\n");
    let path = common::tempdir(test).join("console.log");
    std::fs::write(&path, log).unwrap();
    let o = run(&["triage", r, "--xen-syms", x, "--console", path.to_str().unwrap(), "--json"]);
    assert_eq!(o.code, 1, "a finding: exit 1\n{}{}", o.stdout, o.stderr);
    let walks: Vec<serde_json::Value> =
        o.json_of("check").into_iter().filter(|c| c["check"] == "console_walk").collect();
    assert_eq!(walks.len(), 3, "{}", o.stdout);
    assert_eq!(walks[0]["status"], "ok", "{}", walks[0]);
    assert_eq!(walks[1]["status"], "finding");
    let w1 = walks[1]["what"].as_str().unwrap();
    assert!(w1.contains(&changed[l2].trim_start()[..9]) && w1.contains("changed after the message"), "{w1}");
    // The third block was printed from idle_pg_table (its cr3 line): redone from
    // there, it matches.
    assert_eq!(walks[2]["status"], "ok", "{}", walks[2]);
    assert!(walks[2]["what"].as_str().unwrap().contains("0x3fc6e000"), "{}", walks[2]);
    let con = &o.json_of("console")[0];
    assert_eq!(con["version"], "4.17.7");
    assert_eq!(con["faults"][0]["decoded"], serde_json::json!(["not present", "write", "supervisor"]));
    assert_eq!(con["faults"][0]["linear"], "0x400000");
    assert_eq!(con["panics"][0]["message"][0], "FATAL PAGE FAULT");
    // The same block compared against the wrong root: the L4 entry differs.
    let wrong = format!("(XEN) cr3: 000000003fc6e000   cr2: 0\n{}\n", good.join("\n"));
    std::fs::write(&path, wrong).unwrap();
    let o = run(&["triage", r, "--xen-syms", x, "--console", path.to_str().unwrap(), "--json"]);
    let w: Vec<serde_json::Value> = o.json_of("check").into_iter().filter(|c| c["check"] == "console_walk").collect();
    assert!(w[0]["status"] == "finding" && w[0]["what"].as_str().unwrap().contains("a different root"), "{:?}", w);
    let _ = std::fs::remove_dir_all(common::tempdir(test));
}
