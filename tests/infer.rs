//! Struct offsets inferred from the real Xen 4.17 machines alone
//! (`--offsets-from infer`), checked against answers xenwalk did not infer:
//!
//! - reference §6: 4.17.7's offsets from Xen's own `offsetof` (the build of the
//!   images), for every member it lists;
//! - DWARF of a Xen 4.17 build (`../shared/xen-4.17/with-dwarf`, 4.17.5, build-id
//!   f7cf9fdb…) for the rest, through `xenwalk profile`, whose reading of that DWARF
//!   tests/profiles.rs checks against binutils' readelf. Where the two differ (the
//!   runstate area, `arch_domain` after `vm_assist`: 4.17.7 moved them) the
//!   reference is the answer, and inference must find 4.17.7's places;
//! - QEMU's own registers: dom0's vCPU roots reached through inferred offsets are
//!   the CR3s QEMU saw on each CPU (`qemu-info-registers-cpu*.txt`).
//!
//! The lab's machines (a second domain, one CPU) and Xen's own VMCOREINFO_XEN are
//! checked in tests/xen_lab.rs. The refusals are checked too: a fact the machine
//! cannot show (one domain on the list: its `next_in_list` is NULL like many other
//! members) is refused with what was tried, exit 2, never guessed.

mod common;

use common::{run, shared, tempdir, unxz_cached};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// Every offset of the DWARF build's profile, from `xenwalk profile`.
fn dwarf_offsets(shared: &Path, test: &str) -> BTreeMap<String, u64> {
    let syms = shared.join("xen-4.17/with-dwarf/xen-syms");
    let out = tempdir(test).join("dwarf-profile.json");
    let r = run(&["profile", p(&syms), "-o", p(&out)]);
    assert_eq!(r.code, 0, "xenwalk profile: {}", r.stderr);
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    v["offsets"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect()
}

/// `info --json --offsets-from infer`: each inferred key with its value and evidence.
fn inferred(dump: &Path, syms: &Path) -> BTreeMap<String, (u64, Vec<String>)> {
    let r = run(&["info", p(dump), "--xen-syms", p(syms), "--offsets-from", "infer", "--json"]);
    assert_eq!(r.code, 0, "info: {}", r.stderr);
    let line = &r.json()[0];
    let mut out = BTreeMap::new();
    for o in line["xen"]["offsets"].as_array().unwrap() {
        if o["source"] == "inferred" {
            let ev: Vec<String> =
                o["evidence"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
            out.insert(o["key"].as_str().unwrap().to_string(), (o["value"].as_u64().unwrap(), ev));
        } else {
            // Inference alone was asked: nothing else may answer.
            assert!(o["value"].is_null(), "{o} came from another source");
            assert!(o["why"].as_str().is_some_and(|w| w.contains("inference")), "{o}");
        }
    }
    out
}

fn machine(test: &str, name: &str) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let s = shared(test)?;
    let d = s.join("dumps").join(name);
    let raw = unxz_cached(&d.join("memory.raw.xz"), &format!("{name}.raw"));
    Some((raw, d, s))
}

/// The 4.17.7 answer for each key: reference §6 where it lists the member, else the
/// 4.17.5 DWARF.
fn answers(s: &Path, test: &str) -> BTreeMap<String, u64> {
    let mut a = dwarf_offsets(s, test);
    let reference = common::reference_4_17_7(s);
    // The parse of §6 itself: members on table rows, shared-parent rows and prose.
    for (k, v) in [
        ("domain.tot_pages", 88),
        ("domain.arch.pv.xpti", 685),
        ("vcpu.runstate.state", 216),
        ("vcpu.arch.hvm.guest_cr", 1024),
        ("page_info.v.inuse._domain", 24),
        ("p2m_domain.phys_table", 80),
    ] {
        assert_eq!(reference.get(k), Some(&v), "reference §6 parse: {k}");
    }
    a.extend(reference);
    a
}

fn check_against(inf: &BTreeMap<String, (u64, Vec<String>)>, want: &BTreeMap<String, u64>, what: &str) {
    for (k, (v, ev)) in inf {
        assert_eq!(Some(v), want.get(k), "{what}: inferred {k} = {v}, the answer is {:?}", want.get(k));
        assert!(ev.len() >= 2, "{what}: {k} confirmed by {} invariant(s): {ev:?}", ev.len());
    }
}

#[test]
fn dom0_machine_offsets_inferred_equal_dwarf() {
    let test = "dom0_machine_offsets_inferred_equal_dwarf";
    let Some((raw, _, s)) = machine(test, "xen-4.17-dom0") else { return };
    let syms = s.join("xen-4.17/xen-syms-4.17-amd64");
    let inf = inferred(&raw, &syms);
    check_against(&inf, &answers(&s, test), "dom0 machine");
    // Two CPUs and one PV domain with two vCPUs that ran: everything inference
    // covers except the list link and creation flags, which one domain cannot show,
    // and what only an HVM domain holds.
    for k in [
        "page_info.count_info",
        "page_info.u.inuse.type_info",
        "page_info.v.inuse._domain",
        "domain.tot_pages",
        "domain.xenheap_pages",
        "domain.max_pages",
        "domain.shared_info",
        "domain.arch.pv.is_32bit",
        "domain.arch.p2m",
        "p2m_domain.domain",
        "vcpu.runstate.state",
        "vcpu.is_running",
        "vcpu.arch.flags",
        "vcpu.domain",
        "domain.vcpu",
        "domain.domain_id",
        "domain.max_vcpus",
        "vcpu.vcpu_id",
        "vcpu.processor",
        "vcpu.next_in_list",
        "vcpu.arch.cr3",
        "vcpu.arch.guest_table",
        "vcpu.arch.guest_table_user",
    ] {
        assert!(inf.contains_key(k), "dom0 machine: {k} not inferred; inferred: {:?}", inf.keys());
    }
    for k in ["domain.next_in_list", "domain.options", "domain.is_dying"] {
        assert!(!inf.contains_key(k), "{k}: {inf:?}");
    }
}

#[test]
fn idle_machine_offsets_inferred_equal_dwarf() {
    let test = "idle_machine_offsets_inferred_equal_dwarf";
    let Some((raw, _, s)) = machine(test, "xen-4.17-idle") else { return };
    let syms = s.join("xen-4.17/xen-syms-4.17-amd64");
    let inf = inferred(&raw, &syms);
    check_against(&inf, &answers(&s, test), "idle machine");
    // Xen panicked building dom0: the half-built domain is on domain_list with
    // vCPU 0, which never ran (no guest tables).
    for k in ["vcpu.domain", "domain.vcpu", "domain.domain_id", "domain.max_vcpus", "vcpu.vcpu_id", "vcpu.next_in_list"]
    {
        assert!(inf.contains_key(k), "idle machine: {k} not inferred; inferred: {:?}", inf.keys());
    }
}

/// dom0's vCPU roots, reached through inferred offsets only, are the CR3s QEMU saw.
#[test]
fn dom0_vcpu_roots_through_inferred_offsets_are_qemus_cr3s() {
    let test = "dom0_vcpu_roots_through_inferred_offsets_are_qemus_cr3s";
    let Some((raw, dir, s)) = machine(test, "xen-4.17-dom0") else { return };
    let syms = s.join("xen-4.17/xen-syms-4.17-amd64");
    for cpu in 0..2 {
        let regs = std::fs::read_to_string(dir.join(format!("qemu-info-registers-cpu{cpu}.txt"))).unwrap();
        let cr3 = regs
            .split_whitespace()
            .find_map(|w| w.strip_prefix("CR3="))
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .expect("CR3= in QEMU's registers");
        // The dump README: dom0's vCPU n last ran on CPU n.
        let expr = format!("*domain_list->vcpu[{cpu}]->arch.cr3");
        let r = run(&[
            p(&raw),
            "--xen-syms",
            p(&syms),
            "--offsets-from",
            "infer",
            "--cr3",
            &expr,
            "--va",
            "0xffff82d040200000",
            "--json",
        ]);
        assert_eq!(r.code, 0, "{expr}: {}", r.stderr);
        let roots: Vec<String> = r.json_of("root").iter().filter_map(|l| l["l4"].as_str().map(String::from)).collect();
        assert!(!roots.is_empty(), "{expr}: no walk record: {}", r.stdout);
        for root in roots {
            assert_eq!(u64::from_str_radix(root.trim_start_matches("0x"), 16).unwrap(), cr3, "{expr}");
        }
    }
}

#[test]
fn what_one_domain_cannot_show_is_refused_with_how_to_give_it() {
    let test = "what_one_domain_cannot_show_is_refused_with_how_to_give_it";
    let Some((raw, _, s)) = machine(test, "xen-4.17-dom0") else { return };
    let syms = s.join("xen-4.17/xen-syms-4.17-amd64");
    let r = run(&[
        p(&raw),
        "--xen-syms",
        p(&syms),
        "--offsets-from",
        "infer",
        "--cr3",
        "*domain_list->next_in_list->vcpu[0]->arch.cr3",
    ]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("domain.next_in_list") && r.stderr.contains("one domain"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    // A listing that needs a member inference does not cover says which, and how.
    let r = run(&["domains", p(&raw), "--xen-syms", p(&syms), "--offsets-from", "infer"]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("inference:") && r.stderr.contains("--offset ") && r.stderr.contains("--profile"),
        "{}",
        r.stderr
    );
}
