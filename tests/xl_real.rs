//! `xl dump-core` from the real writer: a Xen 4.17 host booted under QEMU (software
//! emulation) whose dom0 runs Debian's own toolstack, creates a 64-bit PV guest
//! (Debian's Linux 6.1 with a busybox initramfs, 128 MiB, 2 vCPUs), lets it boot to
//! its init, pauses it and writes `xl dump-core` of it onto a virtio disk. QEMU then
//! dumps the whole machine (`dump-guest-memory`, ELF) at that moment: the guest is
//! paused, so every page of the core must be in the machine image at the machine
//! frame the core's `.xen_p2m` gives, and every walk from the guest's CR3s must give
//! the same answers on the core (frames translated through the inverted p2m) as on
//! the machine (frames read directly). Dom0 also prints `linux_banner`'s address from
//! its `/proc/kallsyms`: the guest runs the same kernel (PV guests do not randomise
//! their layout), so that VA must lead, in the core, to "Linux version <release>".
//! With the hypervisor's own xen-syms, `domains` and `p2m` on the machine image must
//! describe the guest exactly as its core does.
//!
//! The boot files come from `scripts/xen-lab.sh` (Debian's packages, fetched with
//! `apt-get download`, nothing installed); QEMU from `scripts/setup-writers.sh`. The
//! lab runs once (about a minute) and its results stay in `target/tmp/xen-lab/run`
//! until the script or the boot command changes. When a piece is missing the tests
//! say NOT RUN; under CI (`CI=true`) that is a failure.

mod common;

use common::qemu::Qemu;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use xenwalk::Mfn;
use xenwalk::dump::{Dump, Format, OpenOptions};
use xenwalk::mem::xlcore::GuestKind;

/// What one lab run produced.
struct Lab {
    core: PathBuf,
    machine: PathBuf,
    /// `linux_banner` from dom0's /proc/kallsyms.
    banner_va: u64,
    /// dom0's `uname -r` (the guest runs the same kernel).
    kernel: String,
    /// The hypervisor's symbols (Debian's -dbg package of the same version).
    xen_syms: PathBuf,
}

/// Xen's command line, and the CPU. `-smap,-smep`: under QEMU 7.2's software
/// emulation (Debian 12's own QEMU) with them Xen faults writing a PV guest's bounce
/// frame (dom0 crashes at its first exception: "#PF[0001]", "domain_crash_sync called
/// from entry.S: fault at ... create_bounce_frame"); QEMU 10 (which
/// scripts/setup-writers.sh installs) runs it either way, so plain `cargo test` with
/// the older QEMU works too.
const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all noreboot \
                           dom0_mem=512M,max:512M dom0_max_vcpus=1";
const CPU: &str = "max,-smap,-smep";
/// Bump when the lab's procedure changes in a way the key below cannot see.
const LAB_VERSION: &str = "1";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn not_run(test: &str, why: &str) {
    if ci() {
        panic!("{test}: {why}, and CI=true requires it");
    }
    let _ = writeln!(std::io::stderr(), "NOT RUN: {test}: {why}");
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()))
}

/// FNV-1a: a cache key that stays the same across Rust versions.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The lab's results, made once per key; Err says why it could not run.
fn make_lab() -> Result<Lab, String> {
    let qemu = find_in_path("qemu-system-x86_64")
        .ok_or("needs qemu-system-x86_64 (Debian's qemu-system-x86; scripts/test.sh installs it)")?;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xen-lab");
    let boot = root.join("boot");
    let run = root.join("run");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/xen-lab.sh");
    let out = Command::new(&script).arg(&boot).output().map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/xen-lab.sh could not prepare the Xen host's boot files: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let args: Vec<String> = vec![
        "-machine".into(),
        "q35".into(),
        "-accel".into(),
        "tcg".into(),
        "-cpu".into(),
        CPU.into(),
        "-m".into(),
        "1024".into(),
        "-smp".into(),
        "1".into(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-serial".into(),
        format!("file:{}", run.join("serial.log").display()),
        "-kernel".into(),
        boot.join("xen").display().to_string(),
        "-append".into(),
        XEN_CMDLINE.into(),
        "-initrd".into(),
        format!(
            "{} console=hvc0 earlyprintk=xen rdinit=/init,{}",
            boot.join("vmlinuz").display(),
            boot.join("initrd.gz").display()
        ),
        "-drive".into(),
        format!("file={},format=raw,if=virtio", run.join("disk.img").display()),
    ];
    let mut key_src = std::fs::read(&script).map_err(|e| e.to_string())?;
    key_src.extend(args.join(" ").bytes());
    key_src.extend(LAB_VERSION.bytes());
    let key = format!("{:016x}", fnv(&key_src));
    let done = run.join("done");
    let lab = |banner: u64, kernel: &str| Lab {
        core: run.join("guest.core"),
        machine: run.join("machine.elf"),
        banner_va: banner,
        kernel: kernel.to_string(),
        xen_syms: boot.join("xen-syms"),
    };
    if let Ok(text) = std::fs::read_to_string(&done) {
        if let [k, b, kernel] = text.split_whitespace().collect::<Vec<_>>()[..] {
            if let (true, Ok(b)) = (k == key, u64::from_str_radix(b, 16)) {
                return Ok(lab(b, kernel));
            }
        }
    }

    // Boot: Xen, dom0, the guest; dom0 writes the core to the disk and says so.
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&run).unwrap();
    let disk = std::fs::File::create(run.join("disk.img")).unwrap();
    disk.set_len(256 << 20).unwrap();
    drop(disk);
    let t0 = Instant::now();
    let mut cmd = Command::new(&qemu);
    cmd.args(&args);
    let mut q = Qemu::start(cmd, &run.join("qmp.sock"));
    let serial = run.join("serial.log");
    let marker = |log: &str, m: &str| log.lines().find_map(|l| l.strip_prefix(m).map(|rest| rest.trim().to_string()));
    let (size, banner, kernel) = loop {
        let log = std::fs::read_to_string(&serial).unwrap_or_default();
        let tail = || log.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        if let Some(f) = marker(&log, "marker: FAILED") {
            panic!("the Xen lab failed at {f}; the console's end:\n{}", tail());
        }
        if log.contains("Dom0 crashed") || log.contains("Panic on CPU") {
            panic!("the Xen lab's host crashed; the console's end:\n{}", tail());
        }
        if let Some(s) = marker(&log, "marker: CORE-WRITTEN") {
            let banner = marker(&log, "marker: linux_banner")
                .and_then(|b| b.split_whitespace().next().and_then(|x| u64::from_str_radix(x, 16).ok()))
                .expect("dom0 printed linux_banner's address");
            let kernel = marker(&log, "marker: kernel").expect("dom0 printed its kernel release");
            break (s.parse::<u64>().expect("the core's size"), banner, kernel);
        }
        assert!(!q.exited(), "QEMU ended before the core was written; the console's end:\n{}", tail());
        assert!(
            t0.elapsed() < Duration::from_secs(1200),
            "the Xen lab took over 20 minutes; the console's end:\n{}",
            tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // The whole machine at this moment (the guest stays paused), then the core off
    // the disk.
    q.cmd(serde_json::json!({"execute": "stop"}));
    q.dump(&run.join("machine.elf"), "elf");
    drop(q);
    let disk = std::fs::read(run.join("disk.img")).unwrap();
    std::fs::write(run.join("guest.core"), &disk[..size as usize]).unwrap();
    std::fs::remove_file(run.join("disk.img")).unwrap();
    std::fs::write(&done, format!("{key} {banner:x} {kernel}\n")).unwrap();
    eprintln!("Xen lab: xl dump-core of {size} bytes and the machine image made in {:?}", t0.elapsed());
    Ok(lab(banner, &kernel))
}

/// The lab, made by the first test that asks; None (with NOT RUN said) when it cannot run.
fn lab(test: &str) -> Option<&'static Lab> {
    static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
    match LAB.get_or_init(make_lab) {
        Ok(l) => Some(l),
        Err(why) => {
            not_run(test, why);
            None
        }
    }
}

fn open(p: &Path) -> Dump {
    Dump::open(p, OpenOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn real_core_holds_the_guests_pages_at_their_machine_frames() {
    let Some(lab) = lab("real_core_holds_the_guests_pages_at_their_machine_frames") else { return };
    let core = open(&lab.core);
    assert!(core.warnings.is_empty(), "{:?}", core.warnings);
    let Format::XlCore(sum) = &core.format else { panic!("not an xl core: {}", core.format.name()) };
    assert_eq!((sum.kind, sum.guest_width), (GuestKind::Pv, 64));
    assert_eq!(sum.vcpus.len(), 2);
    assert_eq!(sum.pages, 32768, "128 MiB guest");
    let machine = open(&lab.machine);
    let g = core.guest_core().expect("the core's p2m");
    let (mut same, mut differ) = (0usize, Vec::new());
    for (pfn, mfn) in g.p2m() {
        let a = core.mem.page(mfn).unwrap_or_else(|e| panic!("core: pfn {:#x} mfn {:#x}: {e}", pfn.0, mfn.0));
        let b = machine.mem.page(mfn).unwrap_or_else(|e| panic!("machine: mfn {:#x}: {e}", mfn.0));
        if *a == *b {
            same += 1;
        } else {
            differ.push((pfn.0, mfn.0));
        }
    }
    eprintln!("{same} pages equal, {} differ: {differ:x?}", differ.len());
    assert_eq!(differ, vec![], "pages of the paused guest differ between its core and the machine");
    assert_eq!(same, 32768);
    // A machine frame the guest does not own is absent from its core.
    let owned: std::collections::BTreeSet<u64> = g.p2m().map(|(_, m)| m.0).collect();
    let other = (1u64..).find(|m| !owned.contains(m)).unwrap();
    assert!(machine.mem.page(Mfn(other)).is_ok());
    assert!(core.mem.page(Mfn(other)).is_err(), "mfn {other:#x}");
}

fn is_xen_slot(va: u64) -> bool {
    (256..272).contains(&((va >> 39) & 0x1ff))
}

/// `--brief` listing lines outside Xen's L4 slots 256-271 (which a guest core does
/// not hold).
fn guest_listing(args: &[&str]) -> Vec<String> {
    let r = common::run(args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout
        .lines()
        .filter(|l| {
            let va = l.split(' ').next().and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
            !is_xen_slot(va.unwrap_or_else(|| panic!("not a --brief line: {l}")))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn real_core_walks_from_its_vcpus_like_the_machine() {
    let Some(lab) = lab("real_core_walks_from_its_vcpus_like_the_machine") else { return };
    let core = open(&lab.core);
    let Format::XlCore(sum) = &core.format else { panic!() };
    let (c, m) = (s(&lab.core), s(&lab.machine));
    let mut user_roots = 0;
    for v in &sum.vcpus {
        let n = v.vcpu.to_string();
        let cr3 = format!("{:#x}", v.cr3.expect("a 64-bit PV vCPU's CR3"));
        // Every mapping of the guest's part of the address space, the same on both.
        let got = guest_listing(&[c, "--vcpu", &n, "--brief"]);
        let want = guest_listing(&[m, "--cr3", &cr3, "--brief"]);
        eprintln!("vCPU {n}: CR3 {cr3}: {} ranges outside Xen's slots", got.len());
        assert!(got.len() > 1000, "vCPU {n}: {} ranges", got.len());
        assert!(got == want, "vCPU {n}: the core's listing differs from the machine's");
        // The user L4 (ctrlreg[1]) when the guest set one: --table user.
        if let Some(u) = v.user_cr3 {
            user_roots += 1;
            let got = guest_listing(&[c, "--vcpu", &n, "--table", "user", "--brief"]);
            let want = guest_listing(&[m, "--cr3", &format!("{u:#x}"), "--brief"]);
            assert!(got.iter().any(|l| l.starts_with("0x4")), "vCPU {n}: the user L4 maps no user page");
            assert!(got == want, "vCPU {n}: the user L4's listing differs from the machine's");
        }
        // Xen's slots: not in the guest's core, and said so.
        let r = common::run(&[c, "--vcpu", &n, "--va", "0xffff82d040200000", "--json"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        let w = &r.json_of("walk")[0];
        assert_eq!(w["stop"]["reason"], "table_absent", "{w}");
        assert!(w["stop"]["explanation"].as_str().unwrap().contains("not in this guest core"), "{w}");
    }
    assert!(user_roots >= 1, "no vCPU of the guest has a user L4: the guest ran no process?");
}

#[test]
fn real_core_translates_the_kernels_banner() {
    let Some(lab) = lab("real_core_translates_the_kernels_banner") else { return };
    let core = open(&lab.core);
    let machine = open(&lab.machine);
    let va = format!("{:#x}", lab.banner_va);
    for n in ["0", "1"] {
        let r = common::run(&[s(&lab.core), "--vcpu", n, "--va", &va, "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let w = &r.json_of("walk")[0];
        let maddr = u64::from_str_radix(w["maddr"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        let want = format!("Linux version {} ", lab.kernel);
        let mut text = vec![0u8; want.len()];
        core.mem.read(xenwalk::Maddr(maddr), &mut text).unwrap();
        assert_eq!(String::from_utf8_lossy(&text), want, "vCPU {n}: {va} -> {maddr:#x}");
        // The machine's own frame holds the same bytes.
        let mut there = vec![0u8; want.len()];
        machine.mem.read(xenwalk::Maddr(maddr), &mut there).unwrap();
        assert_eq!(text, there);
    }
}

fn hex(v: &serde_json::Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}")).trim_start_matches("0x"), 16)
        .unwrap()
}

/// The same guest seen from the hypervisor's side of the machine image (its
/// `struct domain` and `struct vcpu`s found through the hypervisor's own xen-syms
/// from Debian's -dbg package, without DWARF, as in the field; its p2m read
/// from the guest's memory and checked against the M2P and the frame table) must be
/// what `xl dump-core` wrote: vCPU roots, page count, every pfn → mfn.
#[test]
fn real_machine_sees_the_guest_as_its_core_describes_it() {
    let test = "real_machine_sees_the_guest_as_its_core_describes_it";
    let Some(lab) = lab(test) else { return };
    let (m, xs) = (s(&lab.machine), s(&lab.xen_syms));
    let core = open(&lab.core);
    let Format::XlCore(sum) = &core.format else { panic!() };

    let r = common::run(&["domains", m, "--xen-syms", xs, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doms = r.json_of("domain");
    let guest = doms.iter().find(|d| d["id"] == 1).unwrap_or_else(|| panic!("no domain 1: {}", r.stdout));
    assert_eq!(guest["kind"], "pv64");
    assert_eq!(guest["tot_pages"], sum.pages);
    let vcpus = guest["vcpus"].as_array().unwrap();
    assert_eq!(vcpus.len(), sum.vcpus.len());
    for (v, c) in vcpus.iter().zip(&sum.vcpus) {
        assert_eq!(hex(&v["guest_table"]) << 12, c.cr3.unwrap(), "vCPU {}", c.vcpu);
        let user = v["guest_table_user"].as_str().map(|_| hex(&v["guest_table_user"]) << 12);
        assert_eq!(user, c.user_cr3, "vCPU {}", c.vcpu);
    }

    // The p2m from the machine (the guest's linear list), checked both ways there.
    let r = common::run(&["p2m", m, "--xen-syms", xs, "--domain", "1", "--check", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut from_machine = Vec::new();
    for l in r.json_of("p2m_range") {
        assert_eq!(l["entry_kind"], "ram", "{l}");
        let (pfn, mfn) = (hex(&l["pfn"]), hex(&l["mfn"]));
        from_machine.extend((0..l["count"].as_u64().unwrap()).map(|i| (pfn + i, mfn + i)));
    }
    let summary = &r.json_of("p2m_summary")[0];
    assert_eq!(summary["m2p_mismatches"], 0, "{summary}");
    assert_eq!(summary["reverse_mismatches"], 0, "{summary}");
    assert_eq!(summary["reverse_checked"], 32768, "{summary}");
    let alts = summary["alternatives_checked"].as_array().unwrap();
    assert!(!alts.is_empty() && alts.iter().all(|a| a["differing"] == 0), "{summary}");
    let from_core: Vec<(u64, u64)> = core.guest_core().unwrap().p2m().map(|(p, m)| (p.0, m.0)).collect();
    assert_eq!(from_machine.len(), 32768);
    assert!(from_machine == from_core, "the machine's p2m of domain 1 differs from .xen_p2m");

    // The M2P and the frame table: every 97th frame of the guest, and its vCPUs' L4s
    // (pinned as L4 pages, which the frame table's type says).
    let g = core.guest_core().unwrap();
    let mut mfns: Vec<u64> = from_core.iter().step_by(97).map(|p| p.1).collect();
    let roots: Vec<u64> = sum.vcpus.iter().flat_map(|v| [v.cr3, v.user_cr3]).flatten().map(|c| c >> 12).collect();
    mfns.extend(&roots);
    let mut args = vec!["m2p".to_string(), m.to_string(), "--xen-syms".into(), xs.into(), "--json".into()];
    args.extend(mfns.iter().map(|f| format!("{f:#x}")));
    let r = common::run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = r.json_of("m2p");
    assert_eq!(lines.len(), mfns.len());
    for (l, &mfn) in lines.iter().zip(&mfns) {
        assert_eq!(hex(&l["mfn"]), mfn);
        let pfn = g.mfn_to_pfn(Mfn(mfn)).unwrap().0;
        assert_eq!(hex(&l["m2p"]["pfn"]), pfn, "{l}");
        assert_eq!(l["page"]["owner_id"], 1, "{l}");
        if roots.contains(&mfn) {
            assert_eq!(l["page"]["page_type"], "L4", "{l}");
        }
    }
}
