//! The dom0-panic lab: Debian 12's Xen 4.17 and its dom0 alone, whose own kernel
//! panics (`echo c > /proc/sysrq-trigger`). Linux's panic notifier asks Xen to shut
//! dom0 down as crashed, and Xen, with a crash kernel loaded, crashes into it on
//! dom0's behalf (`hwdom_shutdown`, `X:xen/common/shutdown.c@4.17.0`): the crash is
//! dom0's, and the dump is Xen's own. The lab shares the 4.17 lab's boot files
//! (scripts/xen-lab.sh; the harness asks for this variant through a word on the
//! first disk) and keeps its results in `target/tmp/xen-lab/run-dom0-panic`.
//!
//! The independent answers: the machine has one CPU and one domain, and the panic
//! came from dom0's kernel, so CPU 0 ran dom0's vCPU 0 in kernel mode; Xen's and
//! Linux's own console lines say what crashed, on which lines.

mod common;

use common::xen_lab::{self, XEN_4_17_DOM0_PANIC, s};

#[test]
fn real_dom0_panic_triage_names_dom0_its_panic_and_xens_crash_on_its_behalf() {
    let test = "real_dom0_panic_triage_names_dom0_its_panic_and_xens_crash_on_its_behalf";
    let Some(lab) = xen_lab::lab(&XEN_4_17_DOM0_PANIC, test) else { return };
    let Some(c) = xen_lab::crash(lab, test) else { return };
    let serial = lab.run.join("serial.log");
    let log = std::fs::read_to_string(&serial).unwrap();
    let line_of = |what: &str| {
        log.lines().position(|l| l.contains(what)).map(|i| i + 1).unwrap_or_else(|| panic!("{what:?} not in the log"))
    };
    let panic_line = line_of("Kernel panic - not syncing: sysrq triggered crash");
    let hwdom_line = line_of("Hardware Dom0 crashed:");
    assert!(panic_line < hwdom_line, "dom0 panics first, then Xen crashes on its behalf");
    let (xs, vmcore) = (s(&lab.xen_syms), s(&c.vmcore));

    let r = common::run(&["triage", vmcore, "--xen-syms", xs, "--console", s(&serial), "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let cpus = r.json_of("cpu");
    assert_eq!(cpus.len(), 1, "{}", r.stdout);
    let root = &cpus[0]["root"];
    assert_eq!(
        (root["kind"].as_str(), root["domain"].as_u64(), root["vcpu"].as_u64(), root["table"].as_str()),
        (Some("vcpu"), Some(0), Some(0), Some("guest_table")),
        "CPU 0 ran dom0's kernel: {}",
        r.stdout
    );
    let cv = &cpus[0]["curr_vcpu"];
    assert_eq!((cv["domain"].as_u64(), cv["vcpu"].as_u64()), (Some(0), Some(0)), "{cv}");
    let con = &r.json_of("console")[0];
    assert_eq!(
        (con["hwdom_crash"]["line"].as_u64(), con["hwdom_crash"]["domain"].as_u64()),
        (Some(hwdom_line as u64), Some(0))
    );
    let kp = con["kernel_panics"].as_array().unwrap();
    assert!(
        kp.iter().any(|k| k["line"] == panic_line && k["message"] == "sysrq triggered crash"),
        "{kp:?} (line {panic_line})"
    );
    assert_eq!(r.json_of("verdict")[0]["findings"], 0, "{}", r.stdout);

    // In words: what happened, for a person.
    let h = common::run(&["triage", vmcore, "--xen-syms", xs, "--console", s(&serial)]);
    assert!(h.stdout.contains("a Linux kernel panicked: sysrq triggered crash"), "{}", h.stdout);
    assert!(
        h.stdout.contains("Hardware Dom0 crashed: Xen crashed into the crash kernel on dom0's behalf"),
        "{}",
        h.stdout
    );

    // QEMU's dump of the machine just before the panic: the same CPU in the same vCPU.
    let m = common::run(&["triage", s(&lab.machine), "--xen-syms", xs, "--json"]);
    assert_eq!(m.code, 0, "{}{}", m.stdout, m.stderr);
    let mcpu = &m.json_of("cpu")[0];
    assert_eq!((mcpu["root"]["domain"].as_u64(), mcpu["curr_vcpu"]["vcpu"].as_u64()), (Some(0), Some(0)), "{mcpu}");

    // makedumpfile's Xen mode keeps dom0's pages: its copy names the same root and
    // misses no page table.
    let Some((_, x)) = xen_lab::makedumpfile_x(c, "dom0-panic-x", test) else { return };
    let f = common::run(&["triage", s(&x), "--xen-syms", xs, "--json"]);
    assert_eq!(f.code, 0, "{}{}", f.stdout, f.stderr);
    assert_eq!(f.json_of("cpu")[0]["root"], *root, "{}", f.stdout);
    let present = |r: &common::Run| -> Vec<serde_json::Value> {
        r.json_of("check").into_iter().filter(|c| c["check"] == "page_tables_present").collect()
    };
    assert_eq!(present(&f), present(&r));
    assert!(present(&f).iter().all(|c| c["status"] == "ok"), "{:?}", present(&f));
}
