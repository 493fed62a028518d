//! `xl dump-core` guest cores written by `xenwalk::fixture::xlcore` in xg_core.c's
//! layout, for the cases the real writer (tests/xen_lab.rs) does not produce: a
//! scrambled p2m, invalid entries, an HVM guest.
//!
//! PV: the Xen-like machine's 64-bit PV guest, its own frames (the tables of its
//! guest slots and the pages they map) given scrambled pfns. Walks from its CR3 must
//! equal the whole machine's raw image for the guest's addresses, stop with "not in
//! this guest core" in Xen's slots, `--vcpu` must pick the CR3 from `.xen_prstatus`,
//! and `p2m` must answer from `.xen_p2m` alone. HVM: a guest-physical machine whose
//! core is indexed by pfn.

mod common;

use common::run;
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use xenwalk::dump::{Dump, Format, OpenOptions};
use xenwalk::fixture::xen::{self, XenLike};
use xenwalk::fixture::xlcore::XlCoreOptions;
use xenwalk::fixture::{CpuRegs, GUEST_TABLE, Machine, PageTables};
use xenwalk::mem::xlcore::GuestKind;
use xenwalk::mem::{Absent, PhysMem, ReadError};
use xenwalk::paging::{Event, Leaf, Level, WalkOptions, enumerate, walk, walk_in};
use xenwalk::{Gfn, Gpa, Maddr, Mfn, Pfn, Vaddr};

const PRESENT: u64 = 1;
const PS: u64 = 1 << 7;
const FRAME: u64 = 0x000f_ffff_ffff_f000;

/// The frames a 64-bit PV guest owns in the fixture: the tables under its L4's guest
/// slots (not Xen's 256-271) and the 4 KiB pages they map, inside RAM.
fn guest_frames(m: &Machine, root: Maddr) -> BTreeSet<u64> {
    let mut out = BTreeSet::from([root.0 >> 12]);
    let mut todo: Vec<(u64, u8)> =
        (0..512u64).filter(|i| !(256..272).contains(i)).map(|i| (m.read_u64(Maddr(root.0 + 8 * i)), 3)).collect();
    while let Some((e, level)) = todo.pop() {
        let frame = (e & FRAME) >> 12;
        if e & PRESENT == 0 || frame >= m.ram >> 12 || (e & PS != 0 && level != 0) {
            continue;
        }
        if !out.insert(frame) || level == 0 {
            continue;
        }
        for i in 0..512 {
            todo.push((m.read_u64(Maddr((frame << 12) + 8 * i)), level - 1));
        }
    }
    out
}

struct Pv {
    fx: XenLike,
    dir: PathBuf,
    raw: PathBuf,
    core: PathBuf,
    /// pfn -> mfn as written.
    p2m: Vec<(u64, u64)>,
    user_l4: Maddr,
}

impl Drop for Pv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pv(name: &str) -> Pv {
    let mut fx = xen::build();
    // A user L4 for vCPU 1 (ctrlreg[1]): one user page.
    let user = PageTables::new(&mut fx.machine);
    user.map(&mut fx.machine, Vaddr(0x40_0000), Maddr(0x0200_0000), Level::L1, 0x25, GUEST_TABLE);
    let mut frames: Vec<u64> = guest_frames(&fx.machine, fx.pv).into_iter().collect();
    frames.extend(guest_frames(&fx.machine, user.root));
    frames.sort_unstable();
    frames.dedup();
    // Scramble: pfn i gets the frames in descending order, so neither order helps.
    let p2m: Vec<(u64, u64)> = frames.iter().rev().enumerate().map(|(i, &m)| (i as u64, m)).collect();
    let dir = common::tempdir(name);
    let raw = dir.join("machine.raw");
    fx.machine.write_raw(&raw).unwrap();
    let core = dir.join("guest.core");
    let o = XlCoreOptions {
        pages: p2m.clone(),
        invalid_tail: 2,
        vcpus: vec![
            (CpuRegs { cr3: fx.pv.0, cr4: 0x3506e0, rip: 0xffff_ffff_8100_0000, ..Default::default() }, 0),
            (CpuRegs { cr3: fx.pv.0, ..Default::default() }, user.root.0),
        ],
        shared_info: Some((p2m.len() as u64, 0x1234, 0, 0)),
        ..Default::default()
    };
    fx.machine.write_xl_core(&core, &o).unwrap();
    Pv { fx, dir, raw, core, p2m, user_l4: user.root }
}

fn open(p: &Path) -> Dump {
    Dump::open(p, OpenOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn leaves(mem: &dyn PhysMem, root: Maddr) -> (Vec<Leaf>, Vec<(u64, &'static str)>) {
    let (mut v, mut missing) = (Vec::new(), Vec::new());
    enumerate(mem, root, WalkOptions::default(), |ev| {
        match ev {
            Event::Leaf(l) => v.push(*l),
            Event::Unreadable { va, error, .. } => missing.push((va.0, xenwalk::diagnose::read_error_code(&error))),
            _ => {}
        }
        ControlFlow::Continue(())
    });
    (v, missing)
}

fn is_xen_slot(va: u64) -> bool {
    (256..272).contains(&((va >> 39) & 0x1ff))
}

#[test]
fn pv_core_reads_by_mfn_and_walks_like_the_machine() {
    let t = pv("xl-pv-walks");
    let d = open(&t.core);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let Format::XlCore(s) = &d.format else { panic!("not an xl core: {:?}", d.format.name()) };
    assert_eq!((s.kind, s.guest_width, s.pages, s.invalid_entries), (GuestKind::Pv, 64, t.p2m.len() as u64 + 2, 2));
    assert_eq!(s.format_version, Some((0, 1)));
    assert_eq!(s.vcpus.len(), 2);
    assert_eq!(s.vcpus[1].user_cr3, Some(t.user_l4.0));
    // Every guest page reads by its mfn; a frame the guest does not own is absent.
    let m = &t.fx.machine;
    let zero = [0u8; 4096];
    for &(_, mfn) in &t.p2m {
        assert!(*d.mem.page(Mfn(mfn)).unwrap() == *m.page(Mfn(mfn)).unwrap_or(&zero), "mfn {mfn:#x}");
    }
    let xen_l4_frame = t.fx.idle.mfn();
    assert!(matches!(
        d.mem.page(xen_l4_frame),
        Err(ReadError::Absent { why: Absent::NotInGuestCore { hvm: false }, .. })
    ));
    // The listing of the guest's slots equals the whole machine's; Xen's slots are
    // reported as not in this guest core.
    let raw = open(&t.raw);
    let (all, _) = leaves(raw.mem.as_ref(), t.fx.pv);
    let want: Vec<Leaf> = all.into_iter().filter(|l| !is_xen_slot(l.va.0)).collect();
    let (got, missing) = leaves(d.mem.as_ref(), t.fx.pv);
    let got_guest: Vec<Leaf> = got.iter().copied().filter(|l| !is_xen_slot(l.va.0)).collect();
    assert_eq!(got_guest, want);
    assert!(!want.is_empty());
    // Xen's slots, and the fixture's L2 entry that points past RAM (outside the
    // machine image, and no frame of the guest either).
    let stray = t.fx.va_past_ram.0;
    assert!(
        missing.iter().all(|(va, code)| (is_xen_slot(*va) || *va == stray) && *code == "not_in_guest_core"),
        "{missing:?}"
    );
    assert!(!missing.is_empty());
    // Through the binary: the JSON walks of the guest's VAs equal the raw image's.
    let vas: Vec<String> = t.fx.guest_mapped.iter().take(2).map(|g| format!("{:#x}", g.0.0)).collect();
    let args = |p: &Path| {
        let mut a = vec![p.to_str().unwrap().to_string(), "--cr3".into(), t.fx.pv.to_string(), "--json".into()];
        for v in &vas {
            a.extend(["--va".to_string(), v.clone()]);
        }
        a
    };
    let go = |a: Vec<String>| run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (w_raw, w_core) = (go(args(&t.raw)), go(args(&t.core)));
    assert_eq!(w_core.code, 0, "{}", w_core.stderr);
    // Equal but for the mis-masking notes, which say what lies at the wrong address
    // (outside the machine image vs not in this guest core).
    let strip = |mut v: Vec<serde_json::Value>| {
        v.iter_mut().for_each(|w| drop(w.as_object_mut().unwrap().remove("notes")));
        // The next command names the file and the root option given: the rest must agree.
        v.iter_mut().filter_map(|w| w.get_mut("stop").and_then(|s| s.as_object_mut())).for_each(|s| {
            s.remove("next_command");
        });
        v
    };
    assert_eq!(strip(w_core.json_of("walk")), strip(w_raw.json_of("walk")));
    // A Xen VA through the guest's L4: the hypervisor's L3 is not the guest's.
    let xen_va = format!("{:#x}", t.fx.xen_mapped[0].0.0);
    let r = run(&[t.core.to_str().unwrap(), "--vcpu", "0", "--va", &xen_va, "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let w = &r.json_of("walk")[0];
    assert_eq!(w["stop"]["reason"], "table_absent");
    assert!(w["stop"]["explanation"].as_str().unwrap().contains("not in this guest core"), "{w}");
    assert!(w["stop"]["suggestion"].as_str().unwrap().contains("guest core holds"), "{w}");
    assert_eq!(r.json_of("root")[0]["source"], "vCPU 0, .xen_prstatus (PV kernel L4, machine address)");
}

#[test]
fn pv_core_vcpus_info_and_p2m() {
    let t = pv("xl-pv-info");
    let c = t.core.to_str().unwrap();
    // No root: vCPU 0, said on stderr.
    let va = format!("{:#x}", t.fx.guest_mapped[0].0.0);
    let r = run(&[c, "--va", &va]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("vCPU 0 from .xen_prstatus"), "{}", r.stderr);
    assert!(r.stdout.contains(&format!("{:#x}", t.fx.guest_mapped[0].1.0)), "{}", r.stdout);
    let r = run(&[c, "--vcpu", "2", "--va", &va]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("holds 2 vCPU context(s)"), "{}", r.stderr);
    let r = run(&[c, "--cpu", "0", "--va", &va]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("use --vcpu N"), "{}", r.stderr);
    // --table: vCPU 1's user L4 (ctrlreg[1]) maps one user page; `cr3` follows the
    // context's VGCF_in_kernel flag, clear here (VGCF_online only): the user L4.
    for table in ["user", "cr3"] {
        let r = run(&[c, "--vcpu", "1", "--table", table, "--va", "0x400123", "--brief"]);
        assert_eq!((r.code, r.stdout.trim()), (0, "0x400123 0x2000123"), "{table}: {}", r.stderr);
    }
    let r = run(&[c, "--vcpu", "1", "--table", "user", "--va", "0x400123"]);
    assert!(r.stdout.contains(&format!("L4 table at {:#x}", t.user_l4.0)), "{}", r.stdout);
    assert!(r.stdout.contains("PV user L4, ctrlreg[1]"), "{}", r.stdout);
    let r = run(&[c, "--vcpu", "0", "--table", "user", "--va", "0x400123"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("vCPU 0 has no user L4"), "{}", r.stderr);
    let r = run(&[c, "--vcpu", "0", "--table", "monitor", "--va", "0x400123"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no monitor table"), "{}", r.stderr);
    let r = run(&[t.raw.to_str().unwrap(), "--table", "user", "--va", "0x400123"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--table picks a root of a vCPU"), "{}", r.stderr);
    // info, human and JSON.
    let h = run(&["info", c]);
    assert_eq!(h.code, 0, "{}", h.stderr);
    for want in ["xl dump-core guest core, PV guest (64-bit)", "format version 0.1", "Xen 4.17", "vCPU 1:", "user L4"] {
        assert!(h.stdout.contains(want), "{want}: {}", h.stdout);
    }
    let j = run(&["info", c, "--json"]);
    let v = &j.json()[0];
    assert_eq!(v["format"], "xl_core");
    assert_eq!(v["xl_core"]["kind"], "pv");
    assert_eq!(v["xl_core"]["header"]["nr_vcpus"], 2);
    assert_eq!(v["xl_core"]["format_version"], "0.1");
    assert_eq!(v["xl_core"]["shared_info"]["max_pfn"], format!("{:#x}", t.p2m.len()));
    assert_eq!(v["bytes_present"], 4096 * t.p2m.len() as u64);
    // p2m: lookups both ways, a miss, and the whole table as runs.
    let (pfn, mfn) = t.p2m[3];
    let r = run(&["p2m", c, &format!("{pfn:x}"), "ffffff", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let l = r.json_of("core_p2m");
    assert_eq!(
        (l[0]["pfn"].as_str(), l[0]["mfn"].as_str()),
        (Some(&*format!("{pfn:#x}")), Some(&*format!("{mfn:#x}")))
    );
    assert!(l[1]["mfn"].is_null() && l[1]["error"].as_str().unwrap().contains("not in this guest core"));
    let r = run(&["p2m", c, "--mfn", &format!("{mfn:#x}")]);
    assert_eq!((r.code, r.stdout.trim()), (0, &*format!("mfn {mfn:#x} -> pfn {pfn:#x}")));
    let r = run(&["p2m", c, "--json"]);
    assert_eq!(r.code, 0);
    let pages: u64 = r.json_of("core_p2m").iter().map(|l| l["pages"].as_u64().unwrap()).sum();
    assert_eq!(pages, t.p2m.len() as u64);
    // Library API.
    let d = open(&t.core);
    let g = d.guest_core().unwrap();
    assert_eq!(g.pfn_to_mfn(Pfn(pfn)), Ok(Mfn(mfn)));
    assert_eq!(g.mfn_to_pfn(Mfn(mfn)), Ok(Pfn(pfn)));
    assert_eq!(g.p2m().count(), t.p2m.len());
    // p2m of something that is not a guest core: bad usage.
    let r = run(&["p2m", t.raw.to_str().unwrap(), "0"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("xl dump-core"), "{}", r.stderr);
}

#[test]
fn hvm_core_is_guest_physical() {
    // Guest-physical memory of an HVM guest: its tables hold gfns.
    let mut g = Machine::new(8 << 20);
    let pt = PageTables::new(&mut g);
    pt.map(&mut g, Vaddr(0xffff_8880_0000_0000), Maddr(0x20_0000), Level::L2, 0x63 | (1 << 63), 0x63);
    pt.map(&mut g, Vaddr(0x40_1000), Maddr(0x3000), Level::L1, 0x67, 0x67);
    g.fill_noise(Maddr(0x3000), 7);
    let dir = common::tempdir("xl-hvm");
    let raw = dir.join("guest.raw");
    g.write_raw(&raw).unwrap();
    let core = dir.join("hvm.core");
    let pages: Vec<(u64, u64)> = g.stored_frames().map(|f| (f.0, f.0)).collect();
    let o = XlCoreOptions {
        hvm: true,
        pages: pages.clone(),
        vcpus: vec![(CpuRegs { cr3: pt.root.0, ..Default::default() }, 0)],
        ..Default::default()
    };
    g.write_xl_core(&core, &o).unwrap();
    let d = open(&core);
    let Format::XlCore(s) = &d.format else { panic!() };
    assert_eq!(s.kind, GuestKind::Hvm);
    assert_eq!(d.guest_core().unwrap().pfn_to_mfn(Pfn(0)), Err(xenwalk::mem::xlcore::P2mError::Hvm));
    // The core's pages are guest-physical: read through its guest view they walk as
    // the guest's own memory image (the raw file the core was written from) does.
    let g = xenwalk::xen::hvm::HvmCore(d.guest_core().unwrap());
    for va in [0xffff_8880_0012_3456u64, 0x40_1008] {
        let a = walk_in(&g, Gpa(pt.root.0), Vaddr(va), WalkOptions::default());
        let b = walk(open(&raw).mem.as_ref(), pt.root, Vaddr(va), WalkOptions::default());
        assert_eq!(a.mapping().map(|m| m.maddr.0), b.mapping().map(|m| m.maddr.0), "{va:#x}");
        assert!(a.mapping().is_some());
    }
    assert!(matches!(
        d.guest_core().unwrap().guest_page(Gfn(0x700)),
        Err(ReadError::GuestAbsent { why: Absent::NotInGuestCore { hvm: true }, .. })
    ));
    // It holds no machine address: a machine read is refused, never answered with
    // the page of the same-numbered guest frame.
    let present = Mfn(pt.root.0 >> 12);
    assert!(g.0.guest_page(Gfn(present.0)).is_ok());
    assert!(matches!(d.mem.page(present), Err(ReadError::Absent { why: Absent::NoMachineMemory, .. })));
    assert!(d.mem.extents().is_empty());
    let c = core.to_str().unwrap();
    let r = run(&[c, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json_of("root")[0]["source"], "vCPU 0, .xen_prstatus (HVM guest CR3, guest-physical)");
    // No p2m in an HVM core: machine addresses are unknown (null), the gpas are beside.
    let root = &r.json_of("root")[0];
    assert!(root["l4"].is_null() && root["l4_gpa"] == format!("{}", pt.root), "{root}");
    let maps = r.json_of("mapping");
    let got: Vec<(&str, &str, bool)> =
        maps.iter().map(|m| (m["va"].as_str().unwrap(), m["gpa"].as_str().unwrap(), m["maddr"].is_null())).collect();
    assert_eq!(got, [("0x401000", "0x3000", true), ("0xffff888000000000", "0x200000", true)]);
    let r = run(&[c, "--json", "--va", "0x401008"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let w = &r.json_of("walk")[0];
    assert!(w["maddr"].is_null() && w["root"].is_null(), "{w}");
    assert_eq!(w["gpa"], "0x3008");
    assert!(w["levels"].as_array().unwrap().iter().all(|l| l["table"].is_null() && l["gpa"]["table"].is_string()));
    assert!(w.get("p2m").is_none(), "no p2m to go through: {w}");
    let r = run(&[c, "--va", "0x401008"]);
    assert!(r.stdout.contains("=> maddr -  (machine address unknown"), "{}", r.stdout);
    assert!(r.stdout.contains("gpa 0x3008"), "{}", r.stdout);
    let r = run(&[c, "--va", "0x401008", "--brief"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "0x401008 -\n"));
    let r = run(&[c, "--va", "0x401008", "--brief", "--gpa"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "0x401008 0x3008\n"));
    let r = run(&[c, "--brief", "--gpa"]);
    assert_eq!(r.stdout, "0x401000 0x3000 0x1000\n0xffff888000000000 0x200000 0x200000\n");
    let r = run(&["p2m", c]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("HVM"), "{}", r.stderr);
    let h = run(&["info", c]);
    assert!(h.stdout.contains("HVM guest"), "{}", h.stdout);
    assert!(h.stdout.contains("memory:  guest-physical"), "{}", h.stdout);
    let h = run(&["info", c, "--json"]);
    let ext = h.json_of("info")[0]["extents"].as_array().unwrap().clone();
    let want: Vec<String> = g.0.guest_extents().iter().map(|e| format!("{}", e.start)).collect();
    assert!(!want.is_empty());
    assert_eq!(ext.iter().map(|e| e["gpa"].as_str().unwrap().to_string()).collect::<Vec<_>>(), want);
    assert!(ext.iter().all(|e| e.get("maddr").is_none()), "an HVM core's ranges are gpas: {ext:?}");
    // A CR3 given for the core is the guest's own (a gpa), as vCPU 0's is.
    let root = format!("{}", pt.root);
    let r = run(&[c, "--cr3", &root, "--va", "0x401008", "--brief", "--gpa"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "0x401008 0x3008\n"), "{}", r.stderr);
    let r = run(&[c, "--cr3", &root, "--va", "0x401008", "--json"]);
    assert!(r.json_of("walk")[0]["maddr"].is_null(), "{}", r.stdout);
    let r = run(&[c, "--cr3-mfn", &format!("{:#x}", pt.root.0 >> 12), "--va", "0x401008"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("guest-physical frames only") && r.stderr.contains("--cr3"), "{}", r.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cut_core_keeps_the_chosen_pages_and_stays_consistent() {
    let t = pv("xl-pv-cut");
    let data = std::fs::read(&t.core).unwrap();
    let cut = xenwalk::fixture::xlcore::cut(&data, &|pfn, _| pfn % 3 == 0).unwrap();
    let path = t.dir.join("cut.core");
    std::fs::write(&path, &cut).unwrap();
    let (full, small) = (open(&t.core), open(&path));
    assert!(small.warnings.is_empty(), "{:?}", small.warnings);
    let (Format::XlCore(a), Format::XlCore(b)) = (&full.format, &small.format) else { panic!() };
    let kept: Vec<(u64, u64)> = t.p2m.iter().copied().filter(|(pfn, _)| pfn % 3 == 0).collect();
    // The invalid tail (pfn ~0) is divisible by 3 too: it stays.
    assert_eq!(b.pages, kept.len() as u64 + 2);
    assert_eq!(b.vcpus, a.vcpus);
    for &(pfn, mfn) in &t.p2m {
        let got = small.mem.page(Mfn(mfn));
        if pfn % 3 == 0 {
            assert!(*got.unwrap() == *full.mem.page(Mfn(mfn)).unwrap(), "mfn {mfn:#x}");
        } else {
            assert!(got.is_err(), "mfn {mfn:#x} was cut");
        }
    }
    // Not a core: an error, not a panic.
    assert!(xenwalk::fixture::xlcore::cut(&data[..100], &|_, _| true).is_err());
}
