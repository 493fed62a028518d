//! The Xen lab, shared by tests/xen_lab.rs (Debian 12's Xen 4.17) and
//! tests/xen_lab_420.rs (Debian 13's Xen 4.20): a real Xen host booted under QEMU
//! (software emulation) with the same dom0 and PV guest (Debian 12's Linux 6.1 with
//! busybox initramfs) whatever the Xen, and the real writers of both Xen dump formats.
//!
//! Part one, `xl dump-core`: dom0 creates a 64-bit PV guest (128 MiB, 2 vCPUs), lets
//! it boot to its init, pauses it and writes `xl dump-core` of it onto a virtio disk.
//! QEMU then dumps the whole machine (`dump-guest-memory`, ELF) at that moment and
//! prints its own page walk of CPU 0's CR3 (`info tlb`, kept as
//! `run/qemu-info-tlb-cpu0.txt`). Dom0 also prints `linux_banner`'s address from its
//! `/proc/kallsyms`.
//!
//! Under Xen 4.20 dom0 then boots a PVH guest (domain 2: the same kernel, 96 MiB, 1
//! vCPU), pauses it and writes its `xl dump-core` (an HVM core, pages by gfn) onto a
//! third disk; its console passes on `linux_banner`'s address from its own
//! /proc/kallsyms (scripts/xen-lab.sh says why 4.17's lab has none).
//!
//! Part two, Xen's kexec crash dump: dom0 loads a crash kernel (`kexec -p`, into the
//! region `crashkernel=` reserved) and makes Xen crash (debug key C); the crash
//! kernel copies /proc/vmcore onto a second disk, and QEMU dumps the machine once
//! more (kdump-compressed).
//!
//! The checks below are the ones both versions pass; each test file calls them on
//! its own lab and adds its version's own. The boot files come from
//! `scripts/xen-lab.sh DIR VERSION` (Debian's packages, fetched with `apt-get
//! download`, nothing installed); QEMU from `scripts/setup-writers.sh`. A lab runs
//! once (about 80 seconds; 4.20's about 400, most of it `xl dump-core` of the PVH
//! guest) and its results (2.2 GB; 4.20's 2.4 GB) stay in
//! `target/tmp/<Spec::dir>/run` until the script or the boot command changes. When a
//! piece is missing the tests say NOT RUN; under CI (`CI=true`) that is a failure.

use super::qemu::Qemu;
use super::{find_in_path, not_run};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use xenwalk::Mfn;
use xenwalk::dump::{Dump, Format, OpenOptions};
use xenwalk::mem::xlcore::{GuestKind, XlCoreSummary};

/// Which Xen a lab boots.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    /// `scripts/xen-lab.sh`'s VERSION argument.
    pub version: &'static str,
    pub major: u64,
    pub minor: u64,
    /// Under `CARGO_TARGET_TMPDIR`: `boot/` (the script's files) and `run/` (results).
    pub dir: &'static str,
    /// The results' folder in `dir` (the boot files are shared by the labs of a version).
    pub run: &'static str,
    /// The dom0-panic lab: no guests, and dom0's own kernel panics
    /// (`echo c > /proc/sysrq-trigger`), so that Xen crashes into the crash kernel on
    /// its behalf (scripts/xen-lab.sh).
    pub dom0_panic: bool,
}

/// Debian 12's Xen 4.17 (xen-syms without DWARF).
pub const XEN_4_17: Spec = Spec { version: "4.17", major: 4, minor: 17, dir: "xen-lab", run: "run", dom0_panic: false };
/// The same Xen, crashed by dom0's kernel panic.
pub const XEN_4_17_DOM0_PANIC: Spec =
    Spec { version: "4.17", major: 4, minor: 17, dir: "xen-lab", run: "run-dom0-panic", dom0_panic: true };
/// Debian 13's Xen 4.20 (xen-syms with DWARF), with Debian 12's Linux.
pub const XEN_4_20: Spec =
    Spec { version: "4.20", major: 4, minor: 20, dir: "xen-lab-4.20", run: "run", dom0_panic: false };

/// What one lab run produced.
pub struct Lab {
    pub spec: &'static Spec,
    /// `run/`: what the run left (`serial.log`, `qemu-info-tlb-cpu0.txt`, the dumps).
    pub run: PathBuf,
    pub core: PathBuf,
    /// `xl dump-core` of the PVH guest (domain 2, Xen 4.20's lab only): an HVM core,
    /// its pages by gfn.
    pub pvh_core: PathBuf,
    pub machine: PathBuf,
    /// `linux_banner` from dom0's /proc/kallsyms.
    pub banner_va: u64,
    /// `linux_banner` from the PVH guest's own /proc/kallsyms; None in a lab without
    /// the PVH guest (4.17's: scripts/xen-lab.sh says why).
    pub pvh_banner_va: Option<u64>,
    /// dom0's `uname -r` (the guest runs the same kernel).
    pub kernel: String,
    /// The hypervisor's symbols (Debian's -dbg package of the same version).
    pub xen_syms: PathBuf,
    /// QEMU's `info tlb` of CPU 0 when `machine` was taken: its own walk of CPU 0's CR3.
    pub tlb: PathBuf,
    /// The second part: Xen's own crash dump, or why there is none.
    pub crash: Result<Crash, String>,
}

/// Xen crashed on purpose (debug key C) with a crash kernel loaded: the kexec
/// vmcore its crash kernel read from /proc/vmcore, and QEMU's dump of the whole
/// machine once that kernel had copied it.
pub struct Crash {
    pub vmcore: PathBuf,
    pub machine: PathBuf,
}

/// Xen's command line, and the CPU. `crashkernel=`: the region Xen keeps for the
/// crash kernel (loaded by dom0's `kexec -p`). `-smap,-smep`: under QEMU 7.2's
/// software emulation (Debian 12's own QEMU) with them Xen faults writing a PV
/// guest's bounce frame (dom0 crashes at its first exception: "#PF[0001]",
/// "domain_crash_sync called from entry.S: fault at ... create_bounce_frame"); QEMU
/// 10 (which scripts/setup-writers.sh installs) runs it either way, so plain
/// `cargo test` with the older QEMU works too.
const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all noreboot \
                           dom0_mem=384M,max:384M dom0_max_vcpus=1 crashkernel=192M@256M";
const CPU: &str = "max,-smap,-smep";
/// Bump when the lab's procedure changes in a way the key below cannot see.
const LAB_VERSION: &str = "4";

/// FNV-1a: a cache key that stays the same across Rust versions.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The value after `prefix` on the console's first line that starts with it.
pub fn marker(log: &str, prefix: &str) -> Option<String> {
    log.lines().find_map(|l| l.strip_prefix(prefix).map(|rest| rest.trim().to_string()))
}

/// Wait until the console shows `want`; Err with the console's end when the lab
/// says FAILED, QEMU ends, or `limit` passes.
/// Wait for `want` on the console. Xen's or dom0's crash ends the wait as a failure,
/// but for dom0's in the dom0-panic lab's crash part (`dom0_crash_expected`).
fn wait_for(
    q: &mut Qemu,
    serial: &Path,
    want: &str,
    limit: Duration,
    dom0_crash_expected: bool,
) -> Result<String, String> {
    let t0 = Instant::now();
    loop {
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        if marker(&log, want).is_some() {
            return Ok(log);
        } else if let Some(f) = marker(&log, "marker: FAILED") {
            return Err(format!("failed at {f}"));
        } else if (log.contains("Dom0 crashed") && !dom0_crash_expected) || log.contains("Panic on CPU") {
            return Err("Xen or dom0 crashed".into());
        } else if q.exited() {
            return Err("QEMU ended".into());
        } else if t0.elapsed() > limit {
            return Err(format!("no {want:?} after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Where an ELF file written onto a disk ends: the furthest section or the section
/// header table (an xl dump-core core has no program headers).
fn elf_end(d: &[u8]) -> usize {
    assert_eq!(&d[..4], b"\x7fELF", "no ELF file on the disk");
    let u = |at: usize, n: usize| d[at..at + n].iter().rev().fold(0usize, |v, &b| v << 8 | b as usize);
    let (shoff, shnum) = (u(0x28, 8), u(0x3c, 2));
    (0..shnum).map(|i| u(shoff + 64 * i + 0x18, 8) + u(shoff + 64 * i + 0x20, 8)).fold(shoff + 64 * shnum, usize::max)
}

/// `word` at the start of the last sector of the lab's first disk (256 MiB), where
/// /init looks for the harness's word (scripts/xen-lab.sh).
fn write_last_sector(disk: &Path, word: &[u8]) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    f.seek(SeekFrom::Start((256 << 20) - 512)).unwrap();
    f.write_all(word).unwrap();
    f.sync_all().unwrap();
}

/// The console's last lines, for a failure message.
pub fn tail(serial: &Path) -> String {
    let log = std::fs::read_to_string(serial).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// The lab's results, made once per key; Err says why it could not run.
fn make_lab(spec: &'static Spec) -> Result<Lab, String> {
    let qemu = find_in_path("qemu-system-x86_64")
        .ok_or("needs qemu-system-x86_64 (Debian's qemu-system-x86; scripts/test.sh installs it)")?;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(spec.dir);
    let boot = root.join("boot");
    let run = root.join(spec.run);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/xen-lab.sh");
    let out = Command::new(&script)
        .arg(&boot)
        .arg(spec.version)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/xen-lab.sh could not prepare the Xen {} host's boot files: {}",
            spec.version,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let args: Vec<String> = [
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-cpu",
        CPU,
        "-m",
        "1024",
        "-smp",
        "1",
        "-nodefaults",
        "-display",
        "none",
        "-monitor",
        "none",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([
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
        "-drive".into(),
        format!("file={},format=raw,if=virtio", run.join("vmcore.img").display()),
        "-drive".into(),
        format!("file={},format=raw,if=virtio", run.join("pvh.img").display()),
    ])
    .collect();
    let mut key_src = std::fs::read(&script).map_err(|e| e.to_string())?;
    key_src.extend(args.join(" ").bytes());
    key_src.extend(LAB_VERSION.bytes());
    key_src.extend(spec.version.bytes());
    key_src.extend(format!("{} {}", spec.run, spec.dom0_panic).bytes());
    let key = format!("{:016x}", fnv(&key_src));
    let done = run.join("done");
    let crash_files = Crash { vmcore: run.join("vmcore.elf"), machine: run.join("machine-crash.kdump") };
    let lab = |banner: u64, pvh_banner: Option<u64>, kernel: &str, crash: Result<Crash, String>| Lab {
        spec,
        run: run.clone(),
        tlb: run.join("qemu-info-tlb-cpu0.txt"),
        core: run.join("guest.core"),
        pvh_core: run.join("pvh.core"),
        machine: run.join("machine.elf"),
        banner_va: banner,
        pvh_banner_va: pvh_banner,
        kernel: kernel.to_string(),
        xen_syms: boot.join("xen-syms"),
        crash,
    };
    if let Ok(text) = std::fs::read_to_string(&done) {
        let mut lines = text.lines();
        if let (Some(first), Some(second)) = (lines.next(), lines.next()) {
            if let [k, b, pb, kernel] = first.split_whitespace().collect::<Vec<_>>()[..] {
                if let (true, Ok(b)) = (k == key, u64::from_str_radix(b, 16)) {
                    let pb = u64::from_str_radix(pb, 16).ok();
                    let crash = match second.strip_prefix("crash failed: ") {
                        Some(why) => Err(why.to_string()),
                        None => Ok(crash_files),
                    };
                    return Ok(lab(b, pb, kernel, crash));
                }
            }
        }
    }

    // Part one: Xen, dom0, the guests; dom0 writes the cores to the disks. QEMU's
    // software CPU has been seen to make dom0's userland crash at random under load
    // (busybox and xl segfaulting in libc while the lab waits for a guest): a first
    // boot that fails is kept (`serial-failed.log`) and the boot is tried once more.
    let serial = run.join("serial.log");
    let mut attempt = 0;
    let (mut q, log, t0) = loop {
        attempt += 1;
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run).unwrap();
        for (disk, size) in [("disk.img", 256u64 << 20), ("vmcore.img", 1200 << 20), ("pvh.img", 128 << 20)] {
            std::fs::File::create(run.join(disk)).and_then(|f| f.set_len(size)).unwrap();
        }
        if spec.dom0_panic {
            // The dom0-panic lab: SQ in the first disk's last sector, read by /init.
            write_last_sector(&run.join("disk.img"), b"SQ");
        }
        let t0 = Instant::now();
        let mut cmd = Command::new(&qemu);
        cmd.args(&args);
        let mut q = Qemu::start(cmd, &run.join("qmp.sock"));
        match wait_for(&mut q, &serial, "marker: CORE-WRITTEN", Duration::from_secs(1200), false) {
            Ok(log) => break (q, log, t0),
            Err(e) => {
                drop(q);
                let why = format!("the Xen {} lab {e}; the console's end:\n{}", spec.version, tail(&serial));
                if attempt >= 2 {
                    return Err(why);
                }
                let kept = root.join("serial-failed.log");
                let _ = std::fs::copy(&serial, &kept);
                eprintln!(
                    "Xen {} lab: the first boot failed ({e}); its console is in {}; booting once more",
                    spec.version,
                    kept.display()
                );
            }
        }
    };
    let banner = marker(&log, "marker: linux_banner")
        .and_then(|b| b.split_whitespace().next().and_then(|x| u64::from_str_radix(x, 16).ok()))
        .expect("dom0 printed linux_banner's address");
    let kernel = marker(&log, "marker: kernel").expect("dom0 printed its kernel release");
    // `marker: pvh RELEASE linux_banner VA`, from the PVH guest's console (4.20).
    let pvh_banner = marker(&log, "marker: pvh").map(|pvh| {
        match pvh.split_whitespace().collect::<Vec<_>>()[..] {
            [release, "linux_banner", va] if release == kernel => u64::from_str_radix(va, 16).ok(),
            _ => None,
        }
        .unwrap_or_else(|| panic!("the PVH guest's marker: {pvh:?}"))
    });
    // The whole machine at this moment (the guest stays paused), then the core off
    // the disk.
    q.cmd(serde_json::json!({"execute": "stop"}));
    q.dump(&run.join("machine.elf"), "elf");
    // QEMU's own walk of CPU 0's CR3 at that moment (dom0's, which holds Xen's slots).
    let tlb = q.cmd(serde_json::json!({"execute": "human-monitor-command", "arguments": {"command-line": "info tlb"}}));
    std::fs::write(run.join("qemu-info-tlb-cpu0.txt"), tlb.as_str().expect("info tlb's text")).unwrap();
    let mut size = 0;
    if !spec.dom0_panic {
        let disk = std::fs::read(run.join("disk.img")).unwrap();
        size = elf_end(&disk);
        std::fs::write(run.join("guest.core"), &disk[..size]).unwrap();
    }
    let mut pvh_size = 0;
    if pvh_banner.is_some() {
        let disk = std::fs::read(run.join("pvh.img")).unwrap();
        pvh_size = elf_end(&disk);
        std::fs::write(run.join("pvh.core"), &disk[..pvh_size]).unwrap();
    }
    eprintln!(
        "Xen {} lab: xl dump-core ({size} bytes; the PVH guest's {pvh_size}) and the machine image made in {:?}",
        spec.version,
        t0.elapsed()
    );
    for l in log.lines().filter(|l| l.starts_with("marker: note")) {
        eprintln!("Xen {} lab: {l}", spec.version);
    }

    // Part two: GO in the disk's last sector; dom0 loads the crash kernel and makes
    // Xen crash into it; the crash kernel copies /proc/vmcore to the second disk.
    write_last_sector(&run.join("disk.img"), b"GO");
    q.cmd(serde_json::json!({"execute": "cont"}));
    let crash = match wait_for(&mut q, &serial, "marker: VMCORE-WRITTEN", Duration::from_secs(900), spec.dom0_panic) {
        Ok(log) => {
            let size: usize = marker(&log, "marker: VMCORE-WRITTEN").unwrap().parse().expect("the vmcore's size");
            q.cmd(serde_json::json!({"execute": "stop"}));
            let caps = q.cmd(serde_json::json!({"execute": "query-dump-guest-memory-capability"}));
            let seekable = caps["formats"].as_array().unwrap().iter().any(|f| f == "kdump-raw-zlib");
            q.dump(&crash_files.machine, if seekable { "kdump-raw-zlib" } else { "kdump-zlib" });
            let img = std::fs::read(run.join("vmcore.img")).unwrap();
            std::fs::write(&crash_files.vmcore, &img[..size]).unwrap();
            eprintln!("Xen {} lab: Xen's kexec vmcore ({size} bytes) made at {:?}", spec.version, t0.elapsed());
            Ok(crash_files)
        }
        Err(e) => Err(format!("the crash part {e}; the console's end: {}", tail(&serial).replace('\n', " | "))),
    };
    drop(q);
    for disk in ["disk.img", "vmcore.img", "pvh.img"] {
        std::fs::remove_file(run.join(disk)).unwrap();
    }
    let second = match &crash {
        Ok(_) => "crash ok".to_string(),
        Err(e) => format!("crash failed: {e}"),
    };
    let pb = pvh_banner.map_or("-".to_string(), |b| format!("{b:x}"));
    std::fs::write(&done, format!("{key} {banner:x} {pb} {kernel}\n{second}\n")).unwrap();
    Ok(lab(banner, pvh_banner, &kernel, crash))
}

/// The lab of `spec`, made by the first test that asks; None (with NOT RUN said)
/// when it cannot run. One test binary has one lab.
pub fn lab(spec: &'static Spec, test: &str) -> Option<&'static Lab> {
    static LAB: OnceLock<(&'static Spec, Result<Lab, String>)> = OnceLock::new();
    let (made_for, made) = LAB.get_or_init(|| (spec, make_lab(spec)));
    assert_eq!(*made_for, spec, "one test binary, one lab");
    match made {
        Ok(l) => Some(l),
        Err(why) => {
            not_run(test, why);
            None
        }
    }
}

pub fn open(p: &Path) -> Dump {
    Dump::open(p, OpenOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn core_holds_the_guests_pages(lab: &Lab) {
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

pub fn is_xen_slot(va: u64) -> bool {
    (256..272).contains(&((va >> 39) & 0x1ff))
}

/// `--brief` listing of a root, whole.
pub fn listing(args: &[&str]) -> Vec<String> {
    let r = super::run(args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout.lines().map(str::to_string).collect()
}

/// The `--brief` listing's lines outside Xen's L4 slots 256-271 (which a guest
/// core does not hold).
pub fn guest_listing(args: &[&str]) -> Vec<String> {
    let mut lines = listing(args);
    lines.retain(|l| {
        let va = l.split(' ').next().and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
        !is_xen_slot(va.unwrap_or_else(|| panic!("not a --brief line: {l}")))
    });
    lines
}

pub fn core_walks_like_the_machine(lab: &Lab) {
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
        let r = super::run(&[c, "--vcpu", &n, "--va", "0xffff82d040200000", "--json"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        let w = &r.json_of("walk")[0];
        assert_eq!(w["stop"]["reason"], "table_absent", "{w}");
        assert!(w["stop"]["explanation"].as_str().unwrap().contains("not in this guest core"), "{w}");
    }
    assert!(user_roots >= 1, "no vCPU of the guest has a user L4: the guest ran no process?");
}

pub fn core_translates_the_kernels_banner(lab: &Lab) {
    let core = open(&lab.core);
    let machine = open(&lab.machine);
    let va = format!("{:#x}", lab.banner_va);
    for n in ["0", "1"] {
        let r = super::run(&[s(&lab.core), "--vcpu", n, "--va", &va, "--json"]);
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

pub fn hex(v: &serde_json::Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}")).trim_start_matches("0x"), 16)
        .unwrap()
}

/// `domains DUMP --xen-syms XS --json` (plus `extra`, e.g. `--offsets-from infer`):
/// every domain, after checking that domain 1 is the guest as its core describes it
/// (PV, its page count, each vCPU's kernel and user L4).
pub fn domains_with_the_guest(dump: &str, xs: &str, sum: &XlCoreSummary, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["domains", dump, "--xen-syms", xs, "--json"];
    args.extend_from_slice(extra);
    let r = super::run(&args);
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
    doms
}

/// `p2m DUMP --xen-syms XS --domain D --check --json`: its runs as (pfn, mfn) pairs
/// (every one RAM) and its summary line, which must find no M2P mismatch either way.
pub fn checked_p2m(dump: &str, xs: &str, domain: &str, extra: &[&str]) -> (Vec<(u64, u64)>, serde_json::Value) {
    let mut args = vec!["p2m", dump, "--xen-syms", xs, "--domain", domain, "--check", "--json"];
    args.extend_from_slice(extra);
    let r = super::run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut pairs = Vec::new();
    for l in r.json_of("p2m_range") {
        if l["entry_kind"] == "ram" {
            let (pfn, mfn) = (hex(&l["pfn"]), hex(&l["mfn"]));
            pairs.extend((0..l["count"].as_u64().unwrap()).map(|i| (pfn + i, mfn + i)));
        }
    }
    let summary = r.json_of("p2m_summary").remove(0);
    assert_eq!((summary["m2p_mismatches"].as_u64(), summary["reverse_mismatches"].as_u64()), (Some(0), Some(0)));
    (pairs, summary)
}

/// The guest's pfn → mfn pairs as its core's `.xen_p2m` has them.
pub fn core_p2m(core: &Dump) -> Vec<(u64, u64)> {
    core.guest_core().unwrap().p2m().map(|(p, m)| (p.0, m.0)).collect()
}

/// The same guest seen from the hypervisor's side of the machine image (its
/// `struct domain` and `struct vcpu`s found through the hypervisor's own xen-syms
/// from Debian's -dbg package, without DWARF, as in the field; its p2m read
/// from the guest's memory and checked against the M2P and the frame table) must be
/// what `xl dump-core` wrote: vCPU roots, page count, every pfn → mfn.
pub fn machine_sees_the_guest(lab: &Lab) {
    machine_sees_the_guest_with(lab, &lab.xen_syms, &[]);
}

/// [`machine_sees_the_guest`] with another xen-syms (a stripped twin) and more
/// arguments (`--offsets-from infer`): the same answers from the core must hold.
pub fn machine_sees_the_guest_with(lab: &Lab, xs: &Path, extra: &[&str]) {
    let (m, xs) = (s(&lab.machine), s(xs));
    let core = open(&lab.core);
    let Format::XlCore(sum) = &core.format else { panic!() };

    domains_with_the_guest(m, xs, sum, extra);

    // The p2m from the machine (the guest's linear list), checked both ways there
    // and against the frame-list-list.
    let (from_machine, summary) = checked_p2m(m, xs, "1", extra);
    assert_eq!(summary["ram"], 32768, "{summary}");
    assert_eq!(summary["reverse_checked"], 32768, "{summary}");
    let alts = summary["alternatives_checked"].as_array().unwrap();
    assert!(!alts.is_empty() && alts.iter().all(|a| a["differing"] == 0), "{summary}");
    let from_core = core_p2m(&core);
    assert!(from_machine == from_core, "the machine's p2m of domain 1 differs from .xen_p2m");

    // The M2P and the frame table: every 97th frame of the guest, and its vCPUs' L4s
    // (pinned as L4 pages, which the frame table's type says).
    let g = core.guest_core().unwrap();
    let mut mfns: Vec<u64> = from_core.iter().step_by(97).map(|p| p.1).collect();
    let roots: Vec<u64> = sum.vcpus.iter().flat_map(|v| [v.cr3, v.user_cr3]).flatten().map(|c| c >> 12).collect();
    mfns.extend(&roots);
    let mut args = vec!["m2p".to_string(), m.to_string(), "--xen-syms".into(), xs.into(), "--json".into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(mfns.iter().map(|f| format!("{f:#x}")));
    let r = super::run(&args.iter().map(String::as_str).collect::<Vec<_>>());
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

/// The crash part of the lab, or None (with NOT RUN said, a failure under CI).
pub fn crash<'a>(lab: &'a Lab, test: &str) -> Option<&'a Crash> {
    match &lab.crash {
        Ok(c) => Some(c),
        Err(why) => {
            not_run(test, &format!("the Xen lab's crash part did not work: {why}"));
            None
        }
    }
}

/// Xen's own crash dump, as its kexec path and the crash kernel's /proc/vmcore
/// wrote it: its notes say where Xen sits and what the CPU did, and every page it
/// holds equals QEMU's dump of the machine taken afterwards (the crash kernel runs in
/// the reserved region, which the vmcore leaves out, and low memory, which the
/// vmcore gives as it was at the crash).
pub fn vmcore_notes_and_pages(lab: &Lab, c: &Crash) {
    let vmcore = open(&c.vmcore);
    let machine = open(&c.machine);
    assert!(vmcore.warnings.is_empty(), "{:?}", vmcore.warnings);
    assert!(matches!(vmcore.format, Format::Elf(_)), "{}", vmcore.format.name());
    let ci = vmcore.notes.xen_crash_info.as_ref().expect("Xen's CRASH_INFO note");
    assert_eq!((ci.major, ci.minor), (lab.spec.major, lab.spec.minor));
    let vmcoreinfo = vmcore.notes.vmcoreinfo_xen.as_deref().expect("VMCOREINFO_XEN");
    assert!(vmcoreinfo.contains("SYMBOL(domain_list)="), "{vmcoreinfo}");
    // xen_phys_start: the note's, and what discovery finds in QEMU's dump by matching
    // xen-syms' .rodata (independent of the note).
    let r = super::run(&["info", s(&c.machine), "--xen-syms", s(&lab.xen_syms), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let info = &r.json()[0];
    let found = info["xen"]["xen_phys_start"]["value"].as_str().map(|v| u64::from_str_radix(&v[2..], 16).unwrap());
    assert_eq!(info["xen"]["xen_phys_start"]["source"], "discovered");
    assert_eq!(ci.xen_phys_start, found, "{}", info["xen"]);
    // The CPU's registers from Xen's CRASH_REGS note: it stopped in the kexec path.
    let r = super::run(&["info", s(&c.vmcore), "--xen-syms", s(&lab.xen_syms)]);
    assert!(r.stdout.contains("RIP in kexec_crash_save_cpu+"), "{}", r.stdout);
    // Every page the vmcore holds, against QEMU's.
    let (mut same, mut differ, mut reserved_gap) = (0u64, Vec::new(), 0u64);
    for e in vmcore.mem.extents() {
        assert!(e.present, "{e:?}");
        for f in e.start.0 >> 12..(e.start.0 + e.len) >> 12 {
            let a = vmcore.mem.page(Mfn(f)).unwrap_or_else(|err| panic!("vmcore: mfn {f:#x}: {err}"));
            let b = machine.mem.page(Mfn(f)).unwrap_or_else(|err| panic!("machine: mfn {f:#x}: {err}"));
            if *a == *b { same += 1 } else { differ.push(f) }
        }
    }
    // The region Xen reserved (crashkernel=192M@256M) is not in the vmcore.
    for f in (256u64 << 8)..(448 << 8) {
        reserved_gap += vmcore.mem.page(Mfn(f)).is_err() as u64;
    }
    eprintln!("{same} pages equal, {} differ: {:x?}", differ.len(), &differ[..differ.len().min(20)]);
    assert_eq!(reserved_gap, 192 << 8, "the crash kernel's region is not in the vmcore");
    assert!(same > 200_000, "{same}");
    // Except in the first 640 KiB: /proc/vmcore serves them from the copy kexec made
    // at the crash (the "backup region", inside the reserved one), and the crash
    // kernel then used low memory itself (its real-mode trampoline).
    let outside: Vec<u64> = differ.iter().copied().filter(|&f| f >= 0xa0).collect();
    assert_eq!(outside, Vec::<u64>::new(), "pages outside the first 640 KiB differ");
    assert!(differ.len() < 32, "{differ:x?}");
}

/// Walks in Xen's own dump: the root its CRASH_REGS note gives (`--cpu 0`: the
/// loaded CR3 of dom0's vCPU) and Xen's idle root (from xen-syms and CRASH_INFO's
/// xen_phys_start) list exactly what QEMU's dump of the machine lists.
pub fn vmcore_walks_like_the_machine(lab: &Lab, c: &Crash) {
    let (v, m, xs) = (s(&c.vmcore), s(&c.machine), s(&lab.xen_syms));
    let vmcore = open(&c.vmcore);
    let cr3 = format!("{:#x}", vmcore.notes.cpu(0).and_then(|c| c.cr3).expect("CPU 0's CR3 in CRASH_REGS"));
    let got = listing(&[v, "--cpu", "0", "--brief"]);
    let want = listing(&[m, "--cr3", &cr3, "--brief"]);
    eprintln!("CPU 0's root {cr3}: {} ranges", got.len());
    assert!(got.len() > 100_000, "{}", got.len());
    assert!(got == want, "CPU 0's root lists differently in the vmcore and in QEMU's dump");
    let got = listing(&[v, "--xen-syms", xs, "--brief"]);
    let want = listing(&[m, "--xen-syms", xs, "--brief"]);
    assert!(got.len() > 500 && got == want, "idle_pg_table lists differently ({} ranges)", got.len());
}

/// Domains from Xen's own dump: the guest as its core describes it (vCPU roots,
/// p2m), and dom0's p2m through the frame-list-list CRASH_INFO names.
pub fn vmcore_domains_and_p2m(lab: &Lab, c: &Crash) {
    vmcore_domains_and_p2m_with(lab, c, &lab.xen_syms, &[]);
}

/// [`vmcore_domains_and_p2m`] with another xen-syms and more arguments.
pub fn vmcore_domains_and_p2m_with(lab: &Lab, c: &Crash, xs: &Path, extra: &[&str]) {
    let (v, xs) = (s(&c.vmcore), s(xs));
    let core = open(&lab.core);
    let Format::XlCore(sum) = &core.format else { panic!() };
    let doms = domains_with_the_guest(v, xs, sum, extra);
    let dom0 = doms.iter().find(|d| d["id"] == 0).unwrap();
    assert_eq!(dom0["kind"], "pv64");
    // The guest's p2m, read from Xen's dump, is the core's.
    let (pairs, _) = checked_p2m(v, xs, "1", extra);
    assert!(pairs == core_p2m(&core), "domain 1's p2m in the vmcore differs from its core's");
    // dom0's: consistent with the M2P both ways, and the frame-list-list that
    // CRASH_INFO names (the one in dom0's shared info) says the same as Linux's
    // linear list.
    let (_, summary) = checked_p2m(v, xs, "0", extra);
    assert!(summary["ram"].as_u64().unwrap() > 90_000, "{summary}");
    let alts = summary["alternatives_checked"].as_array().unwrap();
    let fll = open(&c.vmcore).notes.xen_crash_info.as_ref().unwrap().dom0_pfn_to_mfn_frame_list_list;
    assert!(alts.iter().any(|a| Some(hex(&a["fll"])) == fll && a["differing"] == 0), "{fll:x?}: {summary}");
}

/// `makedumpfile -c -X -d 1` of Xen's crash dump into a temporary directory named
/// for `dir_name`: (the directory, the filtered file), or None with NOT RUN said.
pub fn makedumpfile_x(c: &Crash, dir_name: &str, test: &str) -> Option<(PathBuf, PathBuf)> {
    let Some(mdf) = find_in_path("makedumpfile") else {
        not_run(test, "needs makedumpfile (scripts/test.sh installs it)");
        return None;
    };
    let dir = super::tempdir(dir_name);
    let out = dir.join("xen-X.kdump");
    let o = Command::new(mdf)
        .args(["-c", "-X", "-d", "1", "--message-level", "1"])
        .arg(&c.vmcore)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "makedumpfile -X: {}", String::from_utf8_lossy(&o.stderr));
    Some((dir, out))
}

/// makedumpfile's Xen mode on Xen's own dump: `-X` drops every page of the user
/// domains and keeps Xen's and dom0's. The guest's frames must then be "excluded",
/// said so when a walk needs them, and dom0's address space must list exactly as in
/// the unfiltered vmcore.
pub fn vmcore_filtered_by_makedumpfile_x(lab: &Lab, c: &Crash, test: &str) {
    let Some((dir, out)) = makedumpfile_x(c, "xen-lab-mdf", test) else { return };
    let (f, v, xs) = (s(&out), s(&c.vmcore), s(&lab.xen_syms));
    let filtered = open(&out);
    let info = &super::run(&["info", f, "--json"]).json()[0];
    assert!(info["kdump"]["pages"]["excluded"].as_u64().unwrap() >= 32768, "{}", info["kdump"]);
    let core = open(&lab.core);
    for (_, mfn) in core_p2m(&core) {
        let e = filtered.mem.page(Mfn(mfn)).err().unwrap_or_else(|| panic!("guest frame {mfn:?} kept"));
        assert!(e.to_string().contains("excluded"), "{e}");
    }
    // The guest's root: excluded, and the diagnosis says so.
    let r = super::run(&[f, "--xen-syms", xs, "--domain", "1", "--va", "0xffffffff81000000", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let stop = &r.json_of("walk")[0]["stop"];
    assert_eq!(stop["reason"], "cr3_absent", "{stop}");
    assert!(stop["explanation"].as_str().unwrap().contains("excluded from the dump"), "{stop}");
    // dom0's, whole, as in the vmcore.
    let got = listing(&[f, "--xen-syms", xs, "--domain", "0", "--brief"]);
    let want = listing(&[v, "--xen-syms", xs, "--domain", "0", "--brief"]);
    assert!(got.len() > 100_000 && got == want, "dom0 lists differently after -X ({} ranges)", got.len());
    // triage: dom0's page tables all there, as in the vmcore; the guest's missing,
    // each missing frame one of the guest's own (its core's p2m), said excluded.
    let page_tables = |dump: &str| -> Vec<serde_json::Value> {
        let r = super::run(&["triage", dump, "--xen-syms", xs, "--json"]);
        assert!(r.code <= 1, "{}", r.stderr);
        r.json_of("check").into_iter().filter(|c| c["check"] == "page_tables_present").collect()
    };
    let (before, after) = (page_tables(v), page_tables(f));
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(before.iter().all(|c| c["status"] == "ok"), "{before:?}");
    assert_eq!(after[0], before[0], "dom0's page tables after -X");
    assert_eq!((after[1]["subject"].as_str(), after[1]["status"].as_str()), (Some("domain 1"), Some("finding")));
    let what = after[1]["what"].as_str().unwrap();
    assert!(what.contains("excluded"), "{what}");
    // Counted by kind, with makedumpfile's dump level (-d 1 above) in words and the
    // owner the frame table names (the guest, which -X drops).
    assert!(what.contains("excluded by the kdump writer (dump level 1: zero pages excluded)"), "{what}");
    assert!(what.contains("pages domain 1 owns (frame table)"), "{what}");
    // Exactly the guest's roots: -X drops its L4s, so the walks stop there, and what
    // is missing is each distinct L4 frame the real writer's core names for its
    // vCPUs (`.xen_prstatus`: ctrlreg[3], the kernel L4, and ctrlreg[1], the user L4).
    let Format::XlCore(sum) = &core.format else { panic!("not an xl core") };
    let l4s: std::collections::BTreeSet<u64> =
        sum.vcpus.iter().flat_map(|v| [v.cr3, v.user_cr3]).flatten().map(|a| a >> 12).collect();
    let n = l4s.len();
    assert!(n >= 2, "{l4s:x?}");
    assert!(
        what.starts_with(&format!("{n} of its {n} page-table pages are not in the dump")),
        "{what}: want the {n} L4s {l4s:x?}"
    );
    let frame =
        what.split("frame 0x").nth(1).and_then(|t| t.split(':').next()).map(|h| u64::from_str_radix(h, 16).unwrap());
    assert!(frame.is_some_and(|m| l4s.contains(&m)), "{what}: the first missing frame is not one of the L4s {l4s:x?}");
    let guest: std::collections::HashSet<u64> = core_p2m(&core).into_iter().map(|(_, m)| m).collect();
    assert!(frame.is_some_and(|m| guest.contains(&m)), "{what}: not one of the guest's frames");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `triage` of the lab's two real dumps of a sound machine: Xen's own crash dump
/// (debug key C, sent from dom0 by `xl debug-keys`) and QEMU's picture of the
/// machine before it. dom0 has one vCPU and the guest is paused (`xl pause`), so the
/// one CPU runs dom0's vCPU 0 (the crash came from its hypercall): triage must name
/// that, and find nothing inconsistent (exit 0) — any finding here is a false one.
pub fn triage_names_dom0_on_a_sound_machine(lab: &Lab, c: &Crash) {
    for dump in [&c.vmcore, &lab.machine] {
        let r = super::run(&["triage", s(dump), "--xen-syms", s(&lab.xen_syms), "--json"]);
        assert_eq!(r.code, 0, "{}: {}{}", dump.display(), r.stdout, r.stderr);
        let cpus = r.json_of("cpu");
        assert_eq!(cpus.len(), 1, "{}", r.stdout);
        let root = &cpus[0]["root"];
        assert_eq!(
            (root["kind"].as_str(), root["domain"].as_u64(), root["vcpu"].as_u64()),
            (Some("vcpu"), Some(0), Some(0)),
            "{}",
            r.stdout
        );
        assert!(["guest_table", "guest_table_user"].contains(&root["table"].as_str().unwrap()), "{root}");
        // And Xen's own per-CPU record says the CPU holds that vCPU's state.
        let cv = &cpus[0]["curr_vcpu"];
        assert_eq!((cv["domain"].as_u64(), cv["vcpu"].as_u64()), (Some(0), Some(0)), "{cv}");
        let checks = r.json_of("check");
        assert!(checks.iter().any(|c| c["check"] == "cpu_root_of_curr_vcpu" && c["status"] == "ok"), "{}", r.stdout);
        // Both PV domains' roots survive the M2P/p2m round trip.
        let m2p = checks.iter().filter(|c| c["check"] == "root_m2p_p2m" && c["status"] == "ok").count();
        assert_eq!(m2p, 2, "{}", r.stdout);
        let v = &r.json_of("verdict")[0];
        assert_eq!(v["findings"], 0, "{}", r.stdout);
        assert!(v["checks"].as_u64().unwrap() >= 3, "{v}");
    }
    // Xen's own dump: RIP in the kexec path, as a symbol.
    let r = super::run(&["triage", s(&c.vmcore), "--xen-syms", s(&lab.xen_syms)]);
    assert!(
        r.stdout.contains("RIP kexec_crash_save_cpu+") && r.stdout.contains("Xen wrote this dump itself"),
        "{}",
        r.stdout
    );
}

/// makedumpfile's Xen mode (`-X`) drops every page of the guest, its L4s included,
/// which is what production Xen dumps look like. Inference must read such a dump
/// as the reference offsets do (`ref_xs` with `ref_args`: DWARF on 4.20, the
/// built-in table on 4.17): a filtered L4 is no evidence either way, dom0's confirm.
/// `domains`, dom0's `p2m --check` and `triage` are the same byte for byte.
///
/// With `ref_args` `None` (a build no table or DWARF describes), the reference is
/// the unfiltered vmcore read by inference too: filtering must not change what
/// `domains` and dom0's `p2m --check` say.
pub fn filtered_x_reads_the_same_with_inference(
    c: &Crash,
    test: &str,
    ref_xs: &Path,
    ref_args: Option<&[&str]>,
    inf_xs: &Path,
) {
    let Some((dir, out)) = makedumpfile_x(c, test, test) else { return };
    let f = s(&out);
    // The guest's L4s are gone from this dump.
    let r = super::run(&["domains", f, "--xen-syms", s(ref_xs), "--json", "--offsets-from", "infer"]);
    let guest = r.json_of("domain").into_iter().find(|d| d["id"] == 1).expect("domain 1");
    let l4 = hex(&guest["vcpus"][0]["guest_table"]);
    let e = open(&out).mem.page(Mfn(l4)).err().unwrap_or_else(|| panic!("guest L4 {l4:#x} kept by -X"));
    assert!(e.to_string().contains("excluded"), "{e}");
    let mut compared = 0;
    let v = s(&c.vmcore);
    let cases: Vec<Vec<&str>> = match ref_args {
        Some(_) => vec![
            vec!["domains", f, "--json"],
            vec!["p2m", f, "--domain", "0", "--check", "--json"],
            vec!["triage", f, "--json"],
        ],
        None => vec![vec!["domains", f, "--json"], vec!["p2m", f, "--domain", "0", "--check", "--json"]],
    };
    for args in cases {
        let mut a = args.clone();
        a.extend(["--xen-syms", s(ref_xs)]);
        match ref_args {
            Some(r) => a.extend_from_slice(r),
            None => {
                a[1] = v;
                a.extend(["--offsets-from", "infer"]);
            }
        }
        let want = super::run(&a);
        let mut b = args.clone();
        b.extend(["--xen-syms", s(inf_xs), "--offsets-from", "infer"]);
        let got = super::run(&b);
        assert!(want.code <= 1 && want.stdout.len() > 100, "{a:?}: {}", want.stderr);
        assert!(
            (got.code, &got.stdout) == (want.code, &want.stdout),
            "{args:?}: inference alone reads the -X dump otherwise: {}",
            got.stderr
        );
        compared += 1;
    }
    assert_eq!(compared, if ref_args.is_some() { 3 } else { 2 });
    let _ = std::fs::remove_dir_all(&dir);
}

// The PVH guest: domain 2 ("pvh" in scripts/xen-lab.sh: 96 MiB, 1 vCPU, paused), an
// HVM domain with HAP (QEMU's TCG emulates SVM with nested paging, and Xen's console
// says "HVM: Hardware Assisted Paging (HAP) detected"). Its `xl dump-core` core
// holds its pages by gfn, and its vCPU's CR3 as the guest set it: the answers below
// come from it, from the guest's own /proc/kallsyms, and from the build's
// System.map, not from xenwalk's reading of the hypervisor.

/// The PVH guest's core: an HVM core of 1 vCPU.
pub fn pvh_core(lab: &Lab) -> (Dump, XlCoreSummary) {
    let core = open(&lab.pvh_core);
    assert!(core.warnings.is_empty(), "{:?}", core.warnings);
    let Format::XlCore(sum) = &core.format else { panic!("not an xl core: {}", core.format.name()) };
    assert_eq!((sum.kind, sum.guest_width), (GuestKind::Hvm, 64));
    assert_eq!(sum.vcpus.len(), 1, "vcpus = 1 in pvh.cfg");
    let sum = (**sum).clone();
    (core, sum)
}

/// The `--json` walk of one VA with `args`: (maddr, gpa), exit 0 required.
fn walk_one(args: &[&str]) -> (Option<u64>, Option<u64>) {
    let r = super::run(args);
    assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
    let w = r.json_of("walk").remove(0);
    let get = |k: &str| w.get(k).and_then(|v| v.as_str()).map(|_| hex(&w[k]));
    (get("maddr"), get("gpa"))
}

/// `domains DUMP --json` (+ `extra`): domain 2 is PVH with HAP, as its core says: its
/// vCPUs, page count and guest CR3 (`.xen_prstatus`' ctrlreg[3], which the toolstack
/// has from Xen's `arch_get_info_guest`: `guest_cr[3]` for HVM,
/// `X:xen/arch/x86/domctl.c@4.20.0`); each vCPU with a monitor table and no PV root,
/// its `arch.cr3` the monitor table (`make_cr3` in `hap_update_paging_modes`,
/// `X:xen/arch/x86/mm/hap/hap.c@4.20.0`). Returns domain 2's record.
pub fn pvh_in_domains(lab: &Lab, dump: &str, xs: &str, extra: &[&str]) -> serde_json::Value {
    let (_, sum) = pvh_core(lab);
    let mut args = vec!["domains", dump, "--xen-syms", xs, "--json"];
    args.extend_from_slice(extra);
    let r = super::run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doms = r.json_of("domain");
    let d = doms.iter().find(|d| d["id"] == 2).unwrap_or_else(|| panic!("no domain 2: {}", r.stdout)).clone();
    assert_eq!((d["kind"].as_str(), d["hap"].as_bool()), (Some("pvh"), Some(true)), "{d}");
    // xc_domain_dumpcore's page count is the domain's (tot_pages).
    assert_eq!(d["tot_pages"], sum.pages, "{d}");
    let vcpus = d["vcpus"].as_array().unwrap();
    assert_eq!(vcpus.len(), sum.vcpus.len(), "{d}");
    for (v, c) in vcpus.iter().zip(&sum.vcpus) {
        assert!(v["guest_table"].is_null() && v["guest_table_user"].is_null(), "{v}");
        let mt = hex(&v["monitor_table"]);
        assert_eq!(hex(&v["cr3"]) >> 12, mt, "{v}");
        assert_eq!(Some(hex(&v["guest_cr3"])), c.cr3, "vCPU {}: {v}", c.vcpu);
    }
    d
}

/// The PVH vCPU's monitor table maps Xen as `idle_pg_table` does: `_start` (System.map)
/// and domain 2's own `struct domain` (in the direct map) translate to the same
/// machine address from either root.
pub fn pvh_monitor_table_maps_xen(dom: &serde_json::Value, dump: &str, xs: &str) {
    let start = format!("{:#x}", map_symbol_of(xs, "_start"));
    let addr = dom["addr"].as_str().unwrap();
    for v in dom["vcpus"].as_array().unwrap() {
        let mt = v["monitor_table"].as_str().unwrap();
        for va in [start.as_str(), addr] {
            let (from_monitor, _) = walk_one(&[dump, "--xen-syms", xs, "--cr3-mfn", mt, "--va", va, "--json"]);
            let (from_idle, _) = walk_one(&[dump, "--xen-syms", xs, "--va", va, "--json"]);
            assert!(from_monitor.is_some(), "{va} from the monitor table {mt}");
            assert_eq!(from_monitor, from_idle, "{va}: monitor table {mt} vs idle_pg_table");
        }
    }
}

/// `name`'s address in the build's own System.map (`xen-syms.map` beside `xs`, from
/// the same -dbg package).
fn map_symbol_of(xs: &str, name: &str) -> u64 {
    let map = std::fs::read_to_string(Path::new(xs).with_extension("map")).unwrap();
    map.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[2] == name).then(|| u64::from_str_radix(f[0].trim_start_matches("0x"), 16).unwrap())
        })
        .unwrap_or_else(|| panic!("{name} not in xen-syms.map"))
}

/// The guest's `linux_banner` (its own /proc/kallsyms) walked through its page
/// tables and the NPT p2m (`--domain 2 --vcpu 0`): the machine address holds
/// "Linux version <release> " in the dump, and the guest-physical address is the
/// one the guest's core walks to, where the core holds the same bytes.
pub fn pvh_walk_finds_the_banner(lab: &Lab, dump: &Path, xs: &str, extra: &[&str]) {
    let (core, sum) = pvh_core(lab);
    let d = open(dump);
    let va = format!("{:#x}", lab.pvh_banner_va.expect("the PVH guest's linux_banner"));
    let mut args = vec![s(dump), "--xen-syms", xs, "--domain", "2", "--vcpu", "0", "--va", &va, "--json"];
    args.extend_from_slice(extra);
    let (maddr, gpa) = walk_one(&args);
    let (maddr, gpa) = (maddr.expect("a machine address"), gpa.expect("a guest-physical address"));
    let want = format!("Linux version {} ", lab.kernel);
    let mut text = vec![0u8; want.len()];
    d.mem.read(xenwalk::Maddr(maddr), &mut text).unwrap();
    assert_eq!(String::from_utf8_lossy(&text), want, "{va} -> maddr {maddr:#x}");
    let (core_maddr, core_gpa) = walk_one(&[s(&lab.pvh_core), "--vcpu", "0", "--va", &va, "--json"]);
    assert_eq!((core_maddr, core_gpa), (None, Some(gpa)), "{va}: the core's walk (no p2m: no machine address)");
    // A CR3 given for the core is the guest's own, a gpa: the same walk as --vcpu 0.
    let cr3 = format!("{:#x}", sum.vcpus[0].cr3.expect("vCPU 0's CR3"));
    let by_cr3 = walk_one(&[s(&lab.pvh_core), "--cr3", &cr3, "--va", &va, "--json"]);
    assert_eq!(by_cr3, (None, Some(gpa)), "{va}: the core walked from --cr3 {cr3}");
    let g = core.guest_core().expect("an xl dump-core core");
    assert!(core.mem.extents().is_empty(), "an HVM core holds no machine address");
    let mut there = vec![0u8; want.len()];
    g.guest_read(xenwalk::Gpa(gpa), &mut there).unwrap();
    assert_eq!(text, there, "the core at gpa {gpa:#x}");
}

/// `p2m DUMP --domain 2 --json` (+ `extra`): the HVM p2m's (gfn, mfn) pairs.
pub fn hvm_p2m(dump: &str, xs: &str, extra: &[&str]) -> Vec<(u64, u64)> {
    let mut args = vec!["p2m", dump, "--xen-syms", xs, "--domain", "2", "--json"];
    args.extend_from_slice(extra);
    let r = super::run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut pairs = Vec::new();
    for l in r.json_of("p2m_range") {
        if l["entry_kind"].as_str().is_some_and(|k| k.starts_with("ram")) {
            let (g, m) = (hex(&l["pfn"]), hex(&l["mfn"]));
            pairs.extend((0..l["count"].as_u64().unwrap()).map(|i| (g + i, m + i)));
        }
    }
    pairs
}

/// The PVH guest's p2m read from the dump's NPT table is the guest's core: every
/// page the core holds (by gfn) is the dump's page at the mfn the p2m gives, and
/// every 61st mfn (and the guest's CR3 frame) maps back to its gfn in the M2P, owned
/// by domain 2.
pub fn pvh_p2m_is_the_cores(lab: &Lab, dump: &Path, xs: &str, extra: &[&str]) {
    let (core, sum) = pvh_core(lab);
    let d = open(dump);
    let pairs = hvm_p2m(s(dump), xs, extra);
    let p2m: std::collections::BTreeMap<u64, u64> = pairs.iter().copied().collect();
    assert_eq!(p2m.len(), pairs.len(), "a gfn listed twice");
    let (mut same, mut differ, mut missing, mut updated) = (0u64, Vec::new(), Vec::new(), Vec::new());
    let gc = core.guest_core().expect("an xl dump-core core");
    for e in gc.guest_extents().iter().filter(|e| e.present) {
        for g in e.start.0 >> 12..(e.start.0 + e.len) >> 12 {
            let Some(&m) = p2m.get(&g) else {
                missing.push(g);
                continue;
            };
            let a = gc.guest_page(xenwalk::Gfn(g)).unwrap();
            let b = d.mem.page(Mfn(m)).unwrap_or_else(|e| panic!("gfn {g:#x} -> mfn {m:#x}: {e}"));
            if *a == *b {
                same += 1
            } else if let Some(at) = time_area_update(&a, &b) {
                updated.push((g, at))
            } else {
                differ.push(g)
            }
        }
    }
    eprintln!(
        "{}: {same} of the PVH core's pages equal at the p2m's mfns; differ {differ:x?}; a time area Xen \
         updated since (gfn, offset): {updated:x?}",
        dump.display()
    );
    assert_eq!(missing, Vec::<u64>::new(), "gfns the core holds and the p2m does not map");
    assert_eq!(differ, Vec::<u64>::new(), "pages of the paused PVH guest differ from its core");
    assert!(updated.len() <= 1, "more than one time area updated: {updated:x?}");
    assert_eq!(same + updated.len() as u64, sum.pages - sum.invalid_entries, "every valid page of the core");
    let cr3_gfn = sum.vcpus[0].cr3.unwrap() >> 12;
    let mut sample: Vec<(u64, u64)> = pairs.iter().copied().step_by(61).collect();
    sample.push((cr3_gfn, p2m[&cr3_gfn]));
    let mut args = vec!["m2p".to_string(), s(dump).to_string(), "--xen-syms".into(), xs.into(), "--json".into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(sample.iter().map(|p| format!("{:#x}", p.1)));
    let r = super::run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = r.json_of("m2p");
    assert_eq!(lines.len(), sample.len());
    for (l, &(g, m)) in lines.iter().zip(&sample) {
        assert_eq!(hex(&l["mfn"]), m);
        assert_eq!(hex(&l["m2p"]["pfn"]), g, "{l}");
        assert_eq!(l["page"]["owner_id"], 2, "{l}");
    }
}

/// Where two copies of a guest page differ only by Xen's update of one
/// `struct vcpu_time_info` in it (32 bytes: `uint32_t version` — odd while Xen writes,
/// +2 per update —, pad, `tsc_timestamp`, `system_time`, `tsc_to_system_mul`,
/// `tsc_shift`, `flags`; `X:xen/include/public/xen.h@4.20.0`): the offset of that
/// structure. Xen writes a paused guest's registered time areas (the vcpu_info's
/// `time`, and the area Linux registers for its vDSO with
/// `VCPUOP_register_vcpu_time_memory_area`) when it updates the vCPU's system time, so
/// the page can change between `xl dump-core` and QEMU's dump of the machine; the
/// first of the two must be the earlier update (`older`: the core).
fn time_area_update(older: &[u8; 4096], newer: &[u8; 4096]) -> Option<usize> {
    let diff: Vec<usize> = (0..4096).filter(|&i| older[i] != newer[i]).collect();
    let at = *diff.first()? & !7;
    let version = |p: &[u8; 4096]| u32::from_le_bytes(p[at..at + 4].try_into().unwrap());
    let (v0, v1) = (version(older), version(newer));
    let within = diff.iter().all(|&i| i < at + 32) && at + 32 <= 4096;
    (within && v0 % 2 == 0 && v1 % 2 == 0 && v1 > v0).then_some(at)
}

/// Every PVH check on one whole-machine dump, with `xs` and `extra`.
pub fn pvh_seen_in(lab: &Lab, dump: &Path, xs: &Path, extra: &[&str]) {
    let dom = pvh_in_domains(lab, s(dump), s(xs), extra);
    pvh_monitor_table_maps_xen(&dom, s(dump), s(&lab.xen_syms));
    pvh_walk_finds_the_banner(lab, dump, s(xs), extra);
    pvh_p2m_is_the_cores(lab, dump, s(xs), extra);
}
