//! The Xen lab with Debian 12's Xen 4.17: the real writers of both Xen dump formats
//! (`xl dump-core` of a PV guest, Xen's own kexec crash dump, QEMU's dumps of the
//! machine), checked against each other. The lab and the checks are shared with
//! tests/xen_lab_420.rs (Xen 4.20) in `tests/common/xen_lab.rs`, which says what
//! each one compares. Debian's 4.17 `xen-syms` has no DWARF: `domains`, `p2m` and
//! `m2p` here read the built-in table of its build and VMCOREINFO_XEN.
//!
//! The lab runs once (about 80 seconds) and its results stay in
//! `target/tmp/xen-lab/run`. When a piece is missing the tests say NOT RUN; under CI
//! (`CI=true`) that is a failure.

mod common;

use common::xen_lab::{self, Crash, Lab, XEN_4_17, open, s};
use std::path::Path;
use xenwalk::xen::symbols::XenSyms;

fn lab(test: &str) -> Option<&'static Lab> {
    xen_lab::lab(&XEN_4_17, test)
}

/// The crash part of the lab, or None (with NOT RUN said, a failure under CI).
fn crash<'a>(lab: &'a Lab, test: &str) -> Option<&'a Crash> {
    xen_lab::crash(lab, test)
}

#[test]
fn real_core_holds_the_guests_pages_at_their_machine_frames() {
    let Some(lab) = lab("real_core_holds_the_guests_pages_at_their_machine_frames") else { return };
    xen_lab::core_holds_the_guests_pages(lab);
}

#[test]
fn real_core_walks_from_its_vcpus_like_the_machine() {
    let Some(lab) = lab("real_core_walks_from_its_vcpus_like_the_machine") else { return };
    xen_lab::core_walks_like_the_machine(lab);
}

#[test]
fn real_core_translates_the_kernels_banner() {
    let Some(lab) = lab("real_core_translates_the_kernels_banner") else { return };
    xen_lab::core_translates_the_kernels_banner(lab);
}

#[test]
fn real_machine_sees_the_guest_as_its_core_describes_it() {
    let Some(lab) = lab("real_machine_sees_the_guest_as_its_core_describes_it") else { return };
    xen_lab::machine_sees_the_guest(lab);
}

#[test]
fn real_vmcore_notes_and_pages_agree_with_the_machine() {
    let test = "real_vmcore_notes_and_pages_agree_with_the_machine";
    let Some(lab) = lab(test) else { return };
    let Some(c) = crash(lab, test) else { return };
    xen_lab::vmcore_notes_and_pages(lab, c);
}

#[test]
fn real_vmcore_walks_like_the_machine() {
    let test = "real_vmcore_walks_like_the_machine";
    let Some(lab) = lab(test) else { return };
    let Some(c) = crash(lab, test) else { return };
    xen_lab::vmcore_walks_like_the_machine(lab, c);
}

#[test]
fn real_vmcore_domains_and_p2m() {
    let test = "real_vmcore_domains_and_p2m";
    let Some(lab) = lab(test) else { return };
    let Some(c) = crash(lab, test) else { return };
    xen_lab::vmcore_domains_and_p2m(lab, c);
}

#[test]
fn real_vmcore_filtered_by_makedumpfile_x() {
    let test = "real_vmcore_filtered_by_makedumpfile_x";
    let Some(lab) = lab(test) else { return };
    let Some(c) = crash(lab, test) else { return };
    xen_lab::vmcore_filtered_by_makedumpfile_x(lab, c, test);
}

/// Struct offsets inferred from the lab's machines alone (`--offsets-from infer`):
/// QEMU's dump (two PV domains, one CPU) and Xen's own crash dump. Every inferred
/// value equals reference §6's (4.17.7's own `offsetof`), or DWARF's (the 4.17.5
/// build in `../shared/xen-4.17/with-dwarf`) for members §6 does not list, equals
/// the built-in table for this build, and, for the members Xen writes into its
/// crash dump, VMCOREINFO_XEN's `OFFSET()` lines. Every member a PV machine holds is
/// inferred; `processor` (0 in every vCPU on one CPU, as in hundreds of members)
/// only by the layout every release keeps, which its evidence says.
#[test]
fn real_lab_offsets_inferred_equal_dwarf_and_vmcoreinfo() {
    let test = "real_lab_offsets_inferred_equal_dwarf_and_vmcoreinfo";
    let Some(lab) = lab(test) else { return };
    let Some(shared) = common::shared(test) else { return };
    let prof = common::tempdir(test).join("dwarf.json");
    let r = common::run(&["profile", s(&shared.join("xen-4.17/with-dwarf/xen-syms")), "-o", s(&prof)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dwarf: serde_json::Value = serde_json::from_slice(&std::fs::read(&prof).unwrap()).unwrap();
    let reference = common::reference_4_17_7(&shared);
    let builtin = xenwalk::xen::offsets::DEBIAN_4_17_7;
    // The lab fetches bookworm's current Xen 4.17: reference §6 and the built-in table
    // describe 4.17.7 (build-id 151b373f…); after a Debian rebuild they are no answer
    // key, and only Xen's own VMCOREINFO_XEN below still is.
    let build = xenwalk::xen::symbols::XenSyms::load(&lab.xen_syms).unwrap().build_id_hex();
    let keyed = build.as_deref() == Some(builtin.build_id);
    if !keyed {
        eprintln!(
            "{test}: the lab's xen-syms is build {build:?}, not 4.17.7's {}: the reference and built-in table are not its answer key; VMCOREINFO_XEN is",
            builtin.build_id
        );
    }
    let inferred = |dump: &Path| -> Vec<(String, u64)> {
        let r = common::run(&["info", s(dump), "--xen-syms", s(&lab.xen_syms), "--offsets-from", "infer", "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let info = &r.json()[0];
        let mut out = Vec::new();
        for o in info["xen"]["offsets"].as_array().unwrap() {
            if o["source"] == "inferred" {
                let (k, v) = (o["key"].as_str().unwrap().to_string(), o["value"].as_u64().unwrap());
                if keyed {
                    let want = reference.get(&k).copied().or(dwarf["offsets"][&k].as_u64());
                    assert_eq!(want, Some(v), "{}: {k}", dump.display());
                    let b = builtin.offsets.iter().find(|(b, _)| *b == k).map(|b| b.1);
                    assert_eq!(b, Some(v), "{}: {k}", dump.display());
                }
                assert!(o["evidence"].as_array().is_some_and(|e| e.len() >= 2), "{o}");
                out.push((k, v));
            }
        }
        out
    };
    let got = inferred(&lab.machine);
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    // Everything but what only HVM domains hold.
    let hvm_only = [
        "vcpu.arch.hvm.monitor_table",
        "vcpu.arch.hvm.guest_cr",
        "domain.arch.emulation_flags",
        "p2m_domain.phys_table",
        "p2m_domain.ept",
    ];
    for k in xenwalk::xen::infer::COVERED.iter().filter(|k| !hvm_only.contains(k)) {
        assert!(keys.contains(k), "{k} not inferred from the lab machine: {keys:?}");
    }
    let r = common::run(&["info", s(&lab.machine), "--xen-syms", s(&lab.xen_syms), "--offsets-from", "infer"]);
    assert!(
        r.stdout.contains("[I] vcpu.processor = 4: ") && r.stdout.contains("one CPU (nr_cpu_ids 1)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("vcpu.arch.hvm.monitor_table: not inferred: no HVM vCPU"), "{}", r.stdout);
    // Xen's own crash dump: inference alone agrees with the OFFSET() lines Xen wrote.
    let Some(c) = crash(lab, test) else { return };
    let got = inferred(&c.vmcore);
    let vmcore = open(&c.vmcore);
    let vi = vmcore.notes.vmcoreinfo_xen.as_deref().expect("VMCOREINFO_XEN");
    let mut checked = 0;
    for (k, v) in &got {
        if let Some(line) = vi.lines().find(|l| l.starts_with(&format!("OFFSET({k})="))) {
            assert_eq!(line.split('=').nth(1).and_then(|x| x.trim().parse::<u64>().ok()), Some(*v), "{line}");
            checked += 1;
        }
    }
    assert!(checked >= 2, "VMCOREINFO_XEN names {checked} of the inferred members: {vi}");
}

/// The guest as its core describes it, seen from QEMU's picture of the machine and
/// from Xen's crash dump with the offsets inferred from each dump alone (`--offsets-from
/// infer`): the same checks against `xl dump-core`'s core as with the built-in
/// table, so a Debian rebuild of 4.17 (another build-id, no table) reads the same.
#[test]
fn real_machine_and_vmcore_read_the_guest_with_inference_alone() {
    let test = "real_machine_and_vmcore_read_the_guest_with_inference_alone";
    let Some(lab) = lab(test) else { return };
    xen_lab::machine_sees_the_guest_with(lab, &lab.xen_syms, &["--offsets-from", "infer"]);
    let Some(c) = crash(lab, test) else { return };
    xen_lab::vmcore_domains_and_p2m_with(lab, c, &lab.xen_syms, &["--offsets-from", "infer"]);
}

/// Xen's crash dump filtered by makedumpfile `-X` (the guest's L4s dropped): with
/// inference alone, as with the built-in table (when the lab's build is the table's).
#[test]
fn real_makedumpfile_x_with_inference_alone_reads_as_the_table() {
    let test = "real_makedumpfile_x_with_inference_alone_reads_as_the_table";
    let Some(lab) = lab(test) else { return };
    let Some(c) = crash(lab, test) else { return };
    // The built-in table is the answer only for its own build (a Debian rebuild of
    // 4.17 has none): then the unfiltered vmcore is.
    let builtin = xenwalk::xen::offsets::DEBIAN_4_17_7.build_id;
    let keyed = XenSyms::load(&lab.xen_syms).unwrap().build_id_hex().as_deref() == Some(builtin);
    if !keyed {
        eprintln!("{test}: the lab's xen-syms is not build {builtin}: compared with the unfiltered vmcore instead");
    }
    let table: &[&str] = &["--offsets-from", "builtin"];
    xen_lab::filtered_x_reads_the_same_with_inference(c, test, &lab.xen_syms, keyed.then_some(table), &lab.xen_syms);
}

/// `triage` of the lab's two real dumps of a sound machine: Xen's own crash dump
/// (debug key C, sent from dom0 by `xl debug-keys`) and QEMU's picture of the
/// machine before it. dom0 has one vCPU and the guest is paused (`xl pause`), so the
/// one CPU runs dom0's vCPU 0 (the crash came from its hypercall): triage must name
/// that, and find nothing inconsistent (exit 0) — any finding here is a false one.
#[test]
fn real_triage_names_dom0_and_finds_nothing_on_a_sound_machine() {
    let test = "real_triage_names_dom0_and_finds_nothing_on_a_sound_machine";
    let Some(lab) = lab(test) else { return };
    let Some(c) = crash(lab, test) else { return };
    xen_lab::triage_names_dom0_on_a_sound_machine(lab, c);
}
