//! Domains, vCPUs, M2P and p2m: on the real dom0 image (Debian's Xen 4.17.7, a Linux
//! PV dom0, Debian's DWARF-less xen-syms), and on a synthetic machine laid out with
//! the real 4.17.7 addresses and struct offsets (an idle domain, a PV dom0 with a
//! p2m, an HVM domU with EPT and its own page tables, and planted corruption).

mod common;

use common::{Run, read_text, run, shared, unxz_cached};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xenwalk::Maddr;
use xenwalk::fixture::domains::{self, Breakage};
use xenwalk::fixture::xen::DIRECTMAP_VIRT_START;
use xenwalk::fixture::{CpuRegs, ElfLayout, xen_crash_notes};
use xenwalk::xen::symbols::XenSyms;

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

fn hex(v: &serde_json::Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}")).trim_start_matches("0x"), 16)
        .unwrap()
}

struct Real {
    syms: PathBuf,
    raw: PathBuf,
    dir: PathBuf,
}

fn real(test: &str) -> Option<Real> {
    let s = shared(test)?;
    Some(Real {
        syms: s.join("xen-4.17/xen-syms-4.17-amd64"),
        raw: unxz_cached(&s.join("dumps/xen-4.17-dom0/memory.raw.xz"), "xen-4.17-dom0.raw"),
        dir: s.join("dumps/xen-4.17-dom0"),
    })
}

fn cpu_cr3(dir: &Path, cpu: usize) -> u64 {
    let t = read_text(&dir.join(format!("qemu-info-registers-cpu{cpu}.txt")));
    u64::from_str_radix(t.split_whitespace().find_map(|w| w.strip_prefix("CR3=")).unwrap(), 16).unwrap()
}

#[test]
fn real_dom0_and_its_vcpus_own_the_cpus_roots() {
    let Some(r) = real("real_dom0_and_its_vcpus_own_the_cpus_roots") else { return };
    let out = run(&["domains", p(&r.raw), "--xen-syms", p(&r.syms), "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let doms = out.json_of("domain");
    let dom0 = doms.iter().find(|d| d["id"] == 0).expect("dom0");
    assert_eq!(dom0["kind"], "pv64");
    assert_eq!(dom0["tot_pages"], 131072, "dom0_mem=512M");
    let vcpus = dom0["vcpus"].as_array().unwrap();
    assert_eq!(vcpus.len(), 2);
    for cpu in 0..2 {
        let cr3 = cpu_cr3(&r.dir, cpu);
        let owner = vcpus.iter().find(|v| {
            hex(&v["cr3"]) == cr3
                || v["guest_table"].as_str().is_some_and(|g| hex(&v["guest_table"]) << 12 == cr3 && !g.is_empty())
        });
        assert!(owner.is_some(), "CPU {cpu}'s CR3 {cr3:#x} is none of dom0's vCPU roots");
    }
    let idle = doms.iter().find(|d| d["kind"] == "idle").expect("the idle domain");
    assert_eq!(idle["id"], 0x7fff);
    assert_eq!(idle["vcpus"].as_array().unwrap().len(), 2);
}

#[test]
fn real_m2p_and_dom0_p2m_agree_both_ways() {
    let Some(r) = real("real_m2p_and_dom0_p2m_agree_both_ways") else { return };
    let out = run(&["p2m", p(&r.raw), "--xen-syms", p(&r.syms), "--domain", "0", "--check", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // dom0's own count of its pfns, from its boot log: Linux's "last_pfn = 0x20061".
    let log = read_text(&r.dir.join("qemu-serial.log"));
    let last_pfn = log
        .lines()
        .find_map(|l| l.split("last_pfn = ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .map(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap())
        .expect("dom0's \"last_pfn = \" line in qemu-serial.log");
    let s = &out.json_of("p2m_summary")[0];
    assert_eq!(s["max_pfn"], last_pfn);
    assert_eq!(s["m2p_mismatches"], 0);
    assert_eq!(s["reverse_mismatches"], 0);
    assert_eq!(s["reverse_checked"], 131072, "every frame dom0 owns but Xen-heap ones");
    assert_eq!(s["unreadable"], 0);
    assert_eq!(s["source"]["source"], "linear");
    let alts = s["alternatives_checked"].as_array().unwrap();
    assert!(alts.iter().any(|a| a["source"] == "frame_list_list" && a["differing"] == 0), "{alts:?}");
    // The ranges cover every pfn exactly once.
    let total: u64 = out.json_of("p2m_range").iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, last_pfn);
    // M2P for dom0's L4 (CPU 0's CR3): a pfn, owned by domain 0, an L4 page.
    let mfn = format!("{:x}", cpu_cr3(&r.dir, 0) >> 12);
    let out = run(&["m2p", p(&r.raw), "--xen-syms", p(&r.syms), &mfn, "--json"]);
    let l = &out.json_of("m2p")[0];
    assert_eq!(l["m2p"]["kind"], "pfn");
    assert_eq!(l["page"]["owner_id"], 0);
    assert_eq!(l["page"]["page_type"], "L4");
}

#[test]
fn real_dom0_process_walk_shows_each_table_frames_pfn() {
    let Some(r) = real("real_dom0_process_walk_shows_each_table_frames_pfn") else { return };
    // A user address of the process CPU 0 runs, from QEMU's own walk.
    let tlb = common::parse_qemu_tlb(&read_text(&r.dir.join("qemu-info-tlb-cpu0.txt.xz")));
    let user = tlb.iter().find(|l| l.va < 0x0000_8000_0000_0000).expect("a user leaf");
    let va = format!("{:#x}", user.va);
    let out = run(&[
        p(&r.raw),
        "--xen-syms",
        p(&r.syms),
        "--domain",
        "0",
        "--vcpu",
        "0",
        "--table",
        "cr3",
        "--va",
        &va,
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let w = &out.json_of("walk")[0];
    assert_eq!(hex(&w["maddr"]), user.pa);
    assert_eq!(w["root_kind"], "pv_guest");
    for l in w["levels"].as_array().unwrap() {
        assert!(l["m2p_pfn"].is_string(), "level {} has no pfn: {l}", l["level"]);
    }
    // And the human form shows the column.
    let h = run(&[p(&r.raw), "--xen-syms", p(&r.syms), "--domain", "0", "--table", "cr3", "--va", &va]);
    assert!(h.stdout.contains("pfn (M2P)") && h.stdout.contains("PV guest"), "{}", h.stdout);
}

struct Synth {
    model: domains::Model,
    vmcore: PathBuf,
    syms: PathBuf,
    dir: PathBuf,
}

impl Drop for Synth {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn synth(test: &str, br: Breakage) -> Option<Synth> {
    synth_with(test, br, false)
}

/// Pairs of 8-byte members whose places the shifted machine swaps in every object of
/// the struct, with their 4.17.7 offsets (`xen::offsets::DEBIAN_4_17_7`, the table the
/// fixture builds with and the reader falls back on).
const SWAPPED: [(&str, &str, u64, &str, u64); 5] = [
    ("domain", "domain.vcpu", 8, "domain.next_in_list", 136),
    ("domain", "domain.shared_info", 16, "domain.arch.p2m", 1208),
    ("vcpu", "vcpu.arch.guest_table", 2824, "vcpu.arch.guest_table_user", 2816),
    ("vcpu", "vcpu.arch.cr3", 2856, "vcpu.vcpu_info", 8),
    ("page_info", "page_info.count_info", 8, "page_info.u.inuse.type_info", 16),
];

/// The fixture's frame table: 2 MiB of `struct page_info` (32 bytes a frame) at this
/// machine address (`fixture/domains.rs`, `ft_base`).
const FRAME_TABLE: u64 = 0x0220_0000;

/// Rebuild the fixture's machine with the members of [`SWAPPED`] in each other's
/// place in every domain, vCPU and page_info, and say so in the vmcore's
/// VMCOREINFO_XEN (`OFFSET(...)` lines), as a build with another layout would. The
/// fixture writes with the built-in table; only a reader that takes the dump's
/// offsets reads this machine right, so a wrong or ignored offset in the reader
/// cannot be mirrored by the builder.
fn shift_members(fx: &mut domains::DomainsFixture) -> String {
    let (xvs, xps) = (fx.xen.xen_virt_start, fx.xen_phys_start);
    let m = &mut fx.xen.machine;
    // Heap objects are in the direct map; the idle domain's vCPU array is
    // `idle_vcpu`, in the image.
    let dm = |va: u64| Maddr(if va >= DIRECTMAP_VIRT_START { va - DIRECTMAP_VIRT_START } else { va - xvs + xps });
    let domains = [fx.model.idle_domain, fx.model.dom0, fx.model.domu];
    let mut vcpus = Vec::new();
    for d in domains {
        let max = m.read_u64(Maddr(dm(d).0 + 4)) & 0xffff_ffff; // domain.max_vcpus (u32)
        let arr = m.read_u64(Maddr(dm(d).0 + 8)); // domain.vcpu
        assert!((1..=8).contains(&max), "domain {d:#x}: max_vcpus {max}");
        vcpus.extend((0..max).map(|i| m.read_u64(Maddr(dm(arr).0 + 8 * i))).filter(|&v| v != 0));
    }
    assert_eq!(vcpus.len(), 5, "idle 2, dom0 2, domU 1");
    let pages: Vec<u64> = (0..(2u64 << 20) / 32).map(|i| FRAME_TABLE + 32 * i).collect();
    let owned = pages.iter().filter(|&&pi| m.read_u64(Maddr(pi + 8)) >> 63 == 1).count();
    assert!(owned >= 16, "the frame table is not at {FRAME_TABLE:#x} ({owned} pages in use)");
    let mut vmcoreinfo = String::from("PAGESIZE=4096\n");
    for (sname, a, oa, b, ob) in SWAPPED {
        let objects: Vec<u64> = match sname {
            "domain" => domains.iter().map(|&d| dm(d).0).collect(),
            "vcpu" => vcpus.iter().map(|&v| dm(v).0).collect(),
            _ => pages.clone(),
        };
        for o in objects {
            let (va, vb) = (m.read_u64(Maddr(o + oa)), m.read_u64(Maddr(o + ob)));
            m.write_u64(Maddr(o + oa), vb);
            m.write_u64(Maddr(o + ob), va);
        }
        vmcoreinfo.push_str(&format!("OFFSET({a})={ob}\nOFFSET({b})={oa}\n"));
    }
    vmcoreinfo
}

fn synth_with(test: &str, br: Breakage, shifted: bool) -> Option<Synth> {
    let s = shared(test)?;
    let syms_path = s.join("xen-4.17/xen-syms-4.17-amd64");
    let syms = XenSyms::load(&syms_path).unwrap();
    let mut fx = domains::build(&syms, br).unwrap();
    let vmcoreinfo = if shifted { shift_members(&mut fx) } else { "PAGESIZE=4096\n".to_string() };
    let dir = common::tempdir(test);
    let vmcore = dir.join("domains.vmcore");
    // CR2: CPU 0 faulted on one of dom0's VAs (mapped), CPU 1 on a guest VA its
    // monitor table does not map.
    let dom0_fault = fx.model.dom0_va.keys().next().map_or(0, |va| va + 0x123);
    let cpus = [
        CpuRegs { cr3: fx.model.dom0_l4 << 12, cr2: dom0_fault, ..Default::default() },
        CpuRegs { cr3: fx.model.domu_monitor << 12, cr2: 0x40_0000, ..Default::default() },
    ];
    let notes = xen_crash_notes(&cpus, fx.xen_phys_start, &vmcoreinfo);
    fx.xen.machine.write_elf(&vmcore, &[], &notes, ElfLayout::Classic).unwrap();
    Some(Synth { model: fx.model, vmcore, syms: syms_path, dir })
}

fn xw(s: &Synth, args: &[&str]) -> Run {
    let mut v = vec![p(&s.vmcore), "--xen-syms", p(&s.syms)];
    if !args.is_empty() && ["domains", "m2p", "p2m", "info", "tables", "triage"].contains(&args[0]) {
        v.insert(0, args[0]);
        v.extend_from_slice(&args[1..]);
    } else {
        v.extend_from_slice(args);
    }
    run(&v)
}

/// The synthetic machine with members moved (the offsets from the dump's
/// VMCOREINFO_XEN): the same domains, vCPU roots, p2m, M2P owners and walks.
#[test]
fn synthetic_shifted_members_read_through_vmcoreinfo_offsets() {
    let test = "synthetic_shifted_members_read_through_vmcoreinfo_offsets";
    let Some(s) = synth_with(test, Breakage::default(), true) else { return };
    let m = &s.model;
    // info says where each moved member's offset came from: VMCOREINFO_XEN.
    let out = xw(&s, &["info"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (_, a, oa, b, ob) in SWAPPED {
        for (key, at) in [(a, ob), (b, oa)] {
            let member = key.split_once('.').unwrap().1;
            assert!(out.stdout.contains(&format!(" {member} {at} [V]")), "{key} at {at} [V]:\n{}", out.stdout);
        }
    }
    let out = xw(&s, &["domains", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let doms = out.json_of("domain");
    let kinds: Vec<(u64, &str)> =
        doms.iter().map(|d| (d["id"].as_u64().unwrap(), d["kind"].as_str().unwrap())).collect();
    assert_eq!(kinds, [(0, "pv64"), (1, "hvm"), (0x7fff, "idle")]);
    assert_eq!(hex(&doms[0]["addr"]), m.dom0);
    let v0 = doms[0]["vcpus"].as_array().unwrap();
    assert_eq!(v0.len(), 2);
    for v in v0 {
        assert_eq!(hex(&v["guest_table"]), m.dom0_l4, "{v}");
        assert_eq!(hex(&v["cr3"]), m.dom0_l4 << 12, "{v}");
    }
    assert_eq!(hex(&doms[1]["vcpus"][0]["monitor_table"]), m.domu_monitor);
    assert_eq!(hex(&doms[1]["vcpus"][0]["guest_cr3"]), m.domu_cr3);
    // dom0's p2m (found through shared_info) equals the model's.
    let out = xw(&s, &["p2m", "--domain", "0", "--check", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let mut got = std::collections::BTreeMap::new();
    for r in out.json_of("p2m_range") {
        for i in 0..r["count"].as_u64().unwrap() {
            got.insert(hex(&r["pfn"]) + i, hex(&r["mfn"]) + i);
        }
    }
    assert_eq!(got, m.dom0_p2m);
    // The page owners (page_info, its count_info and type_info moved).
    let mfns: Vec<String> = m.dom0_p2m.values().take(5).map(|v| format!("{v:x}")).collect();
    let mut args = vec!["m2p", "--json"];
    args.extend(mfns.iter().map(String::as_str));
    let out = xw(&s, &args);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let lines = out.json_of("m2p");
    assert_eq!(lines.len(), mfns.len());
    for (l, (pfn, _)) in lines.iter().zip(m.dom0_p2m.iter()) {
        assert_eq!(hex(&l["m2p"]["pfn"]), *pfn);
        assert_eq!(l["page"]["owner_id"], 0);
    }
    // dom0's L4 frame: its type (type_info moved) and count (count_info moved).
    let out = xw(&s, &["m2p", "--json", &format!("{:x}", m.dom0_l4)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json_of("m2p")[0]["page"]["page_type"], "L4", "{}", out.stdout);
    // Everything said about the machine equals what is said about the unshifted one.
    let Some(plain) = synth(&format!("{test}-plain"), Breakage::default()) else { return };
    let mut frames: Vec<String> = m.dom0_p2m.values().map(|v| format!("{v:x}")).collect();
    frames.push(format!("{:x}", m.dom0_l4));
    let commands: [Vec<&str>; 4] = [
        vec!["domains", "--json"],
        vec!["p2m", "--domain", "0", "--check", "--json"],
        vec!["p2m", "--domain", "1", "--json"],
        [vec!["m2p", "--json"], frames.iter().map(String::as_str).collect()].concat(),
    ];
    for args in &commands {
        let (a, b) = (xw(&s, args), xw(&plain, args));
        assert_eq!((a.code, &a.stderr), (b.code, &b.stderr), "{args:?}");
        let lines = |r: &Run| r.json().into_iter().filter(|v| v["type"] != "header").collect::<Vec<_>>();
        let (la, lb) = (lines(&a), lines(&b));
        assert!(la.len() > 1, "{args:?}: {}", a.stdout);
        assert_eq!(la, lb, "{args:?}: the shifted machine reads differently");
    }
    // Walks through dom0's vCPU root and the HVM domain's two dimensions (arch.p2m moved).
    for (va, mfn) in m.dom0_va.iter().take(3) {
        let out = xw(&s, &["--domain", "0", "--vcpu", "1", "--va", &format!("{va:#x}"), "--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(hex(&out.json_of("walk")[0]["maddr"]) >> 12, *mfn);
    }
    for (va, gpa) in m.domu_va.iter().take(3) {
        let out = xw(&s, &["--domain", "1", "--va", &format!("{va:#x}"), "--json"]);
        assert_eq!(out.code, 0, "{va:#x}: {}", out.stderr);
        let w = &out.json_of("walk")[0];
        assert_eq!(hex(&w["gpa"]), *gpa);
        assert_eq!(hex(&w["maddr"]) >> 12, m.domu_p2m[&(gpa >> 12)]);
        let data = w["p2m"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(hex(&data["maddr"]) >> 12, m.domu_p2m[&(gpa >> 12)]);
    }
}

#[test]
fn synthetic_domains_vcpus_and_roots() {
    let Some(s) = synth("synthetic_domains_vcpus_and_roots", Breakage::default()) else { return };
    let m = &s.model;
    let out = xw(&s, &["domains", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let doms = out.json_of("domain");
    let kinds: Vec<(u64, &str)> =
        doms.iter().map(|d| (d["id"].as_u64().unwrap(), d["kind"].as_str().unwrap())).collect();
    assert_eq!(kinds, [(0, "pv64"), (1, "hvm"), (0x7fff, "idle")]);
    assert_eq!(hex(&doms[0]["addr"]), m.dom0);
    assert_eq!(hex(&doms[0]["vcpus"][1]["guest_table"]), m.dom0_l4);
    assert!(doms[1]["hap"].as_bool().unwrap());
    assert_eq!(hex(&doms[1]["vcpus"][0]["monitor_table"]), m.domu_monitor);
    assert_eq!(hex(&doms[1]["vcpus"][0]["guest_cr3"]), m.domu_cr3);
    // The monitor table is recognised and maps the hypervisor, not the guest.
    let out = xw(&s, &["--domain", "1", "--table", "monitor", "--va", "idle_pg_table", "--va", "0x400000", "--json"]);
    assert_eq!(out.code, 1);
    let walks = out.json_of("walk");
    assert_eq!(walks[0]["root_kind"], "monitor");
    assert!(walks[0]["maddr"].is_string());
    assert!(walks[1]["maddr"].is_null(), "no guest mappings in a monitor table");
}

#[test]
fn synthetic_pv_p2m_m2p_and_walks() {
    let Some(s) = synth("synthetic_pv_p2m_m2p_and_walks", Breakage::default()) else { return };
    let m = &s.model;
    // The whole p2m equals the model, and agrees with the M2P both ways.
    let out = xw(&s, &["p2m", "--domain", "0", "--check", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let mut got = std::collections::BTreeMap::new();
    for r in out.json_of("p2m_range") {
        assert_eq!(r["entry_kind"], "ram");
        for i in 0..r["count"].as_u64().unwrap() {
            got.insert(hex(&r["pfn"]) + i, hex(&r["mfn"]) + i);
        }
    }
    assert_eq!(got, m.dom0_p2m);
    let sum = &out.json_of("p2m_summary")[0];
    assert_eq!(sum["reverse_checked"], m.dom0_p2m.len());
    assert_eq!(sum["source"]["source"], "frame_list_list");
    // M2P of each frame gives its pfn and its owner.
    let mfns: Vec<String> = m.dom0_p2m.values().take(5).map(|v| format!("{v:x}")).collect();
    let mut args = vec!["m2p", "--json"];
    args.extend(mfns.iter().map(String::as_str));
    let out = xw(&s, &args);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let lines = out.json_of("m2p");
    assert_eq!(lines.len(), mfns.len(), "one m2p line per frame asked");
    for (l, (pfn, _)) in lines.iter().zip(m.dom0_p2m.iter()) {
        assert_eq!(hex(&l["m2p"]["pfn"]), *pfn);
        assert_eq!(l["page"]["owner_id"], 0);
    }
    // A walk of a dom0 VA through its vCPU's root: the machine frame the model says,
    // with each table's pfn from the M2P (the tables are its pfns 1, 2, 3).
    for (va, mfn) in m.dom0_va.iter().take(3) {
        let out = xw(&s, &["--domain", "0", "--vcpu", "1", "--va", &format!("{va:#x}"), "--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let w = &out.json_of("walk")[0];
        assert_eq!(hex(&w["maddr"]) >> 12, *mfn);
        let pfns: Vec<u64> = w["levels"].as_array().unwrap().iter().take(3).map(|l| hex(&l["m2p_pfn"])).collect();
        assert_eq!(pfns, [1, 2, 3]);
    }
}

#[test]
fn synthetic_hvm_two_dimensional_walk_and_ept() {
    let Some(s) = synth("synthetic_hvm_two_dimensional_walk_and_ept", Breakage::default()) else { return };
    let m = &s.model;
    for (va, gpa) in &m.domu_va {
        let out = xw(&s, &["--domain", "1", "--va", &format!("{va:#x}"), "--json"]);
        assert_eq!(out.code, 0, "{va:#x}: {}", out.stderr);
        let w = &out.json_of("walk")[0];
        assert_eq!(hex(&w["gpa"]), *gpa, "guest-physical result of {va:#x}");
        assert_eq!(hex(&w["maddr"]) >> 12, m.domu_p2m[&(gpa >> 12)], "machine result of {va:#x}");
        let dim2 = w["p2m"].as_array().unwrap();
        let data = dim2.last().unwrap();
        assert_eq!(data["what"], "data");
        let gfn = gpa >> 12;
        assert_eq!(hex(&data["maddr"]) >> 12, m.domu_p2m[&gfn], "machine frame of {va:#x}");
        // Every guest table was itself translated through the p2m.
        for t in &dim2[..dim2.len() - 1] {
            let g = hex(&t["gpa"]) >> 12;
            assert_eq!(hex(&t["maddr"]) >> 12, m.domu_p2m[&g]);
            assert_eq!(t["p2m_type"], "ram_rw");
        }
    }
    // A guest table in a misconfigured EPT entry: the walk stops and says why.
    let out = xw(&s, &["--domain", "1", "--va", &format!("{:#x}", m.domu_bad_va), "--json"]);
    assert_eq!(out.code, 1);
    let stop = &out.json_of("walk")[0]["stop"];
    assert_eq!(stop["reason"], "table_outside_image");
    assert!(stop["explanation"].as_str().unwrap().contains("p2m"), "{stop}");
    // The EPT explained: a 4 KiB entry, the superpage, a PoD entry, the misconfiguration.
    let g = |v: u64| format!("{v:#x}");
    let out = xw(&s, &["p2m", "--domain", "1", "--json", &g(8), &g(0x250), &g(m.domu_pod_gfn), &g(m.domu_bad_gfn)]);
    assert_eq!(out.code, 1);
    let l = out.json_of("hvm_p2m");
    assert_eq!(hex(&l[0]["mfn"]), m.domu_p2m[&8]);
    assert_eq!(l[0]["ept"].as_array().unwrap().len(), 4);
    assert!(l[0]["ept"][3]["flags"].as_array().unwrap().iter().any(|f| f == "MT=WB"));
    assert_eq!(hex(&l[1]["mfn"]), m.domu_p2m[&0x250]);
    assert_eq!(l[1]["ept"].as_array().unwrap().len(), 3, "a 2 MiB superpage ends at L2");
    assert!(l[2]["stop"].as_str().unwrap().contains("populate_on_demand"), "{}", l[2]);
    assert!(l[3]["stop"].as_str().unwrap().contains("misconfiguration"), "{}", l[3]);
    // The whole EPT as ranges.
    let out = xw(&s, &["p2m", "--domain", "1", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ranges = out.json_of("p2m_range");
    let kinds: Vec<&str> = ranges.iter().map(|r| r["entry_kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"populate_on_demand") && kinds.contains(&"misconfigured"), "{kinds:?}");
    let mapped: u64 = ranges.iter().filter(|r| r["entry_kind"] == "ram_rw").map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(mapped as usize, m.domu_p2m.len());
}

/// Issue 13, "one meaning for maddr": a walk and a listing of an HVM guest's own
/// tables give machine addresses in `maddr` (through the EPT) and the guest-physical
/// ones in `gpa`, at the top and in each level, in JSON, human and `--brief` (`--gpa`:
/// the gpa), checked against the fixture's own gfn -> mfn map. The fixture's guest
/// frames 0..16 sit on machine frames in reverse order, so the data pages of VA
/// 0x400000..0x403fff (gfns 8..11, one gpa run) are four machine ranges.
#[test]
fn synthetic_hvm_maddr_is_machine_and_gpa_beside() {
    let Some(s) = synth("synthetic_hvm_maddr_is_machine_and_gpa_beside", Breakage::default()) else { return };
    let m = &s.model;
    let p2m = |gpa: u64| (m.domu_p2m[&(gpa >> 12)] << 12) | (gpa & 0xfff);
    // The guest's tables: L4 gfn 1, L3 gfn 2, L2 gfn 3, L1 gfn 4 (a 2 MiB leaf at L2).
    let tables = [1u64 << 12, 2 << 12, 3 << 12, 4 << 12];
    for (&va, &gpa) in &m.domu_va {
        let va = va + 0x123;
        let gpa = gpa + 0x123;
        let out = xw(&s, &["--domain", "1", "--va", &format!("{va:#x}"), "--json"]);
        assert_eq!(out.code, 0, "{va:#x}: {}", out.stderr);
        let root = &out.json_of("root")[0];
        assert_eq!(root["schema"], 2);
        assert_eq!((hex(&root["l4"]), hex(&root["l4_gpa"])), (p2m(m.domu_cr3), m.domu_cr3));
        let w = &out.json_of("walk")[0];
        assert_eq!(hex(&w["maddr"]), p2m(gpa), "machine address of {va:#x}");
        assert_eq!(hex(&w["gpa"]), gpa, "guest-physical address of {va:#x}");
        assert_eq!((hex(&w["root"]), hex(&w["root_gpa"])), (p2m(m.domu_cr3), m.domu_cr3));
        let levels = w["levels"].as_array().unwrap();
        for (k, l) in levels.iter().enumerate() {
            let g = &l["gpa"];
            let index = l["index"].as_u64().unwrap();
            assert_eq!(hex(&g["table"]), tables[k], "{va:#x} level {k}");
            assert_eq!(hex(&g["entry"]), tables[k] + 8 * index);
            assert_eq!(hex(&l["table"]), p2m(tables[k]), "machine table of {va:#x} level {k}");
            assert_eq!(hex(&l["entry_maddr"]), p2m(tables[k]) + 8 * index);
            let next_gpa = hex(&g["next"]);
            assert_eq!(hex(&g["next_gfn"]), next_gpa >> 12);
            assert_eq!(hex(&l["next"]), p2m(next_gpa), "machine target of {va:#x} level {k}");
            assert_eq!(hex(&l["next_mfn"]), p2m(next_gpa) >> 12);
            match tables.get(k + 1) {
                Some(&t) if !l["leaf"].as_bool().unwrap() => assert_eq!(next_gpa, t),
                _ => assert_eq!(next_gpa, gpa & !(hex_u(&w["page_size"]) - 1)),
            }
        }
        // Human: the result is the machine address, the gpa beside it.
        let out = xw(&s, &["--domain", "1", "--va", &format!("{va:#x}")]);
        let want = format!("=> maddr {:#x}  (gpa {gpa:#x};", p2m(gpa));
        assert!(out.stdout.contains(&want), "{want}\n{}", out.stdout);
        // --brief: the machine address; --brief --gpa: the guest-physical one.
        let out = xw(&s, &["--domain", "1", "--va", &format!("{va:#x}"), "--brief"]);
        assert_eq!(out.stdout, format!("{va:#x} {:#x}\n", p2m(gpa)));
        let out = xw(&s, &["--domain", "1", "--va", &format!("{va:#x}"), "--brief", "--gpa"]);
        assert_eq!(out.stdout, format!("{va:#x} {gpa:#x}\n"));
    }
    // --gpa of machine tables is bad usage.
    let out = xw(&s, &["--domain", "0", "--va", "0x400000", "--brief", "--gpa"]);
    assert_eq!(out.code, 2, "{}", out.stderr);

    // The listing: machine ranges by machine contiguity, the gpa range beside.
    let out = xw(&s, &["--domain", "1", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let maps = out.json_of("mapping");
    let mut covered = 0u64;
    let mut prev: Option<(u64, u64, u64, u64)> = None;
    for r in &maps {
        let (va, gpa, size) = (hex(&r["va"]), hex(&r["gpa"]), r["size"].as_u64().unwrap());
        assert_eq!(hex(&r["gpa_last"]), gpa + size - 1);
        assert!(r["p2m_stop"].is_null(), "{r}");
        // Every page of the range: the model's gpa for its VA, the p2m's frame for it.
        for k in (0..size).step_by(4096) {
            // Both L3 entries 0 and 1 lead to the one L2: VA and VA + 1 GiB alias.
            let page_va = (va + k) & 0x3fff_ffff;
            let (base, want_gpa) = m
                .domu_va
                .iter()
                .filter(|(v, _)| **v <= page_va)
                .map(|(v, g)| (*v, g + (page_va - v)))
                .next_back()
                .unwrap();
            assert!(page_va - base < hex_u(&r["page_size"]), "{page_va:#x}");
            assert_eq!(gpa + k, want_gpa, "gpa of {page_va:#x}");
            assert_eq!(hex(&r["maddr"]) + k, p2m(want_gpa), "maddr of {page_va:#x}");
        }
        // Maximal: a range never continues the previous one in VA, gpa and machine.
        if let Some((pva, pgpa, pma, psize)) = prev {
            assert!(
                !(pva + psize == va && pgpa + psize == gpa && pma + psize == hex(&r["maddr"])),
                "ranges at {pva:#x} and {va:#x} should be one"
            );
        }
        prev = Some((va, gpa, hex(&r["maddr"]), size));
        covered += size;
    }
    assert_eq!(covered, 2 * ((2 << 20) + 4 * 4096), "{}", out.stdout);
    let four: Vec<u64> = maps.iter().map(|r| hex(&r["va"])).filter(|v| (0x40_0000..0x40_4000).contains(v)).collect();
    assert_eq!(four, [0x40_0000, 0x40_1000, 0x40_2000, 0x40_3000], "gfns 8..11 sit on four separate machine runs");
    // The guest L1 in the misconfigured gfn: the p2m cannot answer, said so.
    let un = &out.json_of("unreadable_table")[0];
    assert_eq!((hex(&un["table_gpa"]), un["table"].is_null()), (m.domu_bad_gfn << 12, true), "{un}");
    assert_eq!(un["reason"], "p2m_unmapped");
    let sum = &out.json_of("summary")[0];
    assert_eq!((hex(&sum["root"]), hex(&sum["root_gpa"])), (p2m(m.domu_cr3), m.domu_cr3));
    // Human and --brief listings: the same ranges.
    let human = xw(&s, &["--domain", "1"]);
    assert!(human.stdout.contains("machine range") && human.stdout.contains("guest-physical range"));
    for r in &maps {
        let (ma, gpa, size) = (hex(&r["maddr"]), hex(&r["gpa"]), r["size"].as_u64().unwrap());
        let cols = format!("{ma:#x}-{:#x}", ma + size - 1);
        let line = human.stdout.lines().find(|l| l.starts_with(&format!("{:#018x}-", hex(&r["va"])))).unwrap();
        assert!(line.contains(&cols) && line.contains(&format!("{gpa:#x}-{:#x}", gpa + size - 1)), "{line}");
    }
    let brief = xw(&s, &["--domain", "1", "--brief"]);
    let want: Vec<String> = maps
        .iter()
        .map(|r| format!("{} {} {:#x}", r["va"].as_str().unwrap(), r["maddr"].as_str().unwrap(), hex_u(&r["size"])))
        .collect();
    assert_eq!(brief.stdout.lines().collect::<Vec<_>>(), want);
    let brief = xw(&s, &["--domain", "1", "--brief", "--gpa"]);
    let want: Vec<String> = maps
        .iter()
        .map(|r| format!("{} {} {:#x}", r["va"].as_str().unwrap(), r["gpa"].as_str().unwrap(), hex_u(&r["size"])))
        .collect();
    assert_eq!(brief.stdout.lines().collect::<Vec<_>>(), want);
}

fn hex_u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap()
}

/// A host p2m whose root's last entry names the root again (EPT and NPT): `p2m
/// --domain 1` lists every gfn the model maps, each table read once, and reports the
/// entry where the loop closes as a finding (exit 1). Followed as x86 paging is, the
/// NPT root would be read again as an L3, L2 and L1 and list its own tables as guest
/// pages.
#[test]
fn synthetic_host_p2m_loops_are_listed_once_and_reported() {
    for npt in [false, true] {
        let test = if npt { "p2m_loop_npt" } else { "p2m_loop_ept" };
        let Some(s) = synth(test, Breakage { npt, p2m_loop: true, ..Breakage::default() }) else { return };
        let m = &s.model;
        let out = xw(&s, &["p2m", "--domain", "1", "--json"]);
        assert_eq!(out.code, 1, "{test}: {}", out.stderr);
        assert!(out.stderr.contains("L4 entry at") && out.stderr.contains("already reached"), "{test}: {}", out.stderr);
        let mut got = std::collections::BTreeMap::new();
        for r in out.json_of("p2m_range") {
            if r["mfn"].is_null() || r["entry_kind"] == "misconfigured" {
                continue;
            }
            for i in 0..r["count"].as_u64().unwrap() {
                got.insert(hex(&r["pfn"]) + i, hex(&r["mfn"]) + i);
            }
        }
        let mut want = m.domu_p2m.clone();
        if npt {
            want.insert(m.domu_bad_gfn, 0xf_0000_0000 >> 12);
        }
        assert_eq!(got, want, "{test}");
        // Translations of mapped gfns are unaffected.
        let out = xw(&s, &["p2m", "--domain", "1", "--json", "0x8"]);
        assert_eq!((out.code, hex(&out.json_of("hvm_p2m")[0]["mfn"])), (0, m.domu_p2m[&8]), "{test}");
    }
}

/// The same HVM guest with an NPT (AMD HAP) p2m: an x86-64 table indexed by gpa.
#[test]
fn synthetic_hvm_with_npt_p2m() {
    let br = Breakage { npt: true, ..Breakage::default() };
    let Some(s) = synth("synthetic_hvm_with_npt_p2m", br) else { return };
    let m = &s.model;
    // The two-dimensional walk through the NPT.
    for (va, gpa) in &m.domu_va {
        let out = xw(&s, &["--domain", "1", "--va", &format!("{va:#x}"), "--json"]);
        assert_eq!(out.code, 0, "{va:#x}: {}", out.stderr);
        let w = &out.json_of("walk")[0];
        assert_eq!(hex(&w["gpa"]), *gpa);
        assert_eq!(hex(&w["maddr"]) >> 12, m.domu_p2m[&(gpa >> 12)]);
        let data = w["p2m"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(hex(&data["maddr"]) >> 12, m.domu_p2m[&(gpa >> 12)]);
        assert_eq!(data["p2m_type"], "ram_rw");
    }
    // A guest table whose frame lies outside the machine.
    let out = xw(&s, &["--domain", "1", "--va", &format!("{:#x}", m.domu_bad_va), "--json"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.json_of("walk")[0]["stop"]["reason"], "table_outside_image");
    // gfn translation, and the whole NPT listed as ranges equal to the model.
    let out = xw(&s, &["p2m", "--domain", "1", "--json", "0x8", "0x250"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let l = out.json_of("hvm_p2m");
    assert_eq!((hex(&l[0]["mfn"]), hex(&l[1]["mfn"])), (m.domu_p2m[&8], m.domu_p2m[&0x250]));
    let out = xw(&s, &["p2m", "--domain", "1", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut got = std::collections::BTreeMap::new();
    for r in out.json_of("p2m_range") {
        assert_eq!(r["entry_kind"], "ram_rw", "{r}");
        for i in 0..r["count"].as_u64().unwrap() {
            got.insert(hex(&r["pfn"]) + i, hex(&r["mfn"]) + i);
        }
    }
    let mut want = m.domu_p2m.clone();
    want.insert(m.domu_bad_gfn, 0xf_0000_0000 >> 12);
    assert_eq!(got, want);
    let human = xw(&s, &["p2m", "--domain", "1"]);
    assert!(human.stdout.contains("NPT root") && human.stdout.contains("1 non-present entries"), "{}", human.stdout);
}

#[test]
fn corrupt_domain_list_and_vcpu_pointers_are_diagnosed() {
    let br = Breakage { loop_list: true, wild_vcpu: true, ..Breakage::default() };
    let Some(s) = synth("corrupt_domain_list_and_vcpu_pointers_are_diagnosed", br) else { return };
    let out = xw(&s, &["domains", "--json"]);
    assert_eq!(out.code, 1, "problems found: exit 1\n{}", out.stderr);
    let problems: Vec<String> =
        out.json_of("problem").iter().map(|p| p["what"].as_str().unwrap().to_string()).collect();
    assert!(problems.iter().any(|p| p.contains("loops")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("vcpu[1]")), "{problems:?}");
    // The domains before the loop are still listed, and dom0 keeps its good vCPU.
    let doms = out.json_of("domain");
    assert_eq!(doms[0]["vcpus"].as_array().unwrap().len(), 1);
    assert!(doms.iter().any(|d| d["id"] == 1));
}

/// `examples/vcpu_walk.rs` (the library alone, issue 11's measure of a usable
/// library) prints the same JSON as the CLI's `--domain D --vcpu 0 --va V --json`: for
/// the HVM domU (its own tables through the EPT), the PV dom0, and a stop.
#[test]
fn library_example_walks_like_the_cli() {
    let test = "library_example_walks_like_the_cli";
    let Some(s) = synth(test, Breakage::default()) else { return };
    // Examples are built by `cargo test` beside the test binaries' directory.
    let exe = std::env::current_exe().unwrap();
    let example = exe.parent().unwrap().parent().unwrap().join("examples").join("vcpu_walk");
    if !example.is_file() {
        common::not_run(test, &format!("needs {} (plain `cargo test` builds the examples)", example.display()));
        return;
    }
    let m = &s.model;
    let cases: Vec<(&str, u64)> =
        vec![("1", *m.domu_va.keys().next().unwrap()), ("1", m.domu_bad_va), ("0", *m.dom0_va.keys().next().unwrap())];
    for (dom, va) in cases {
        let va = format!("{va:#x}");
        let cli = xw(&s, &["--domain", dom, "--vcpu", "0", "--va", &va, "--json"]);
        assert!(cli.code <= 1 && !cli.stdout.is_empty(), "{}", cli.stderr);
        let out = std::process::Command::new(&example).args([p(&s.vmcore), p(&s.syms), dom, &va]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let lib: Vec<serde_json::Value> =
            String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let mut want: Vec<serde_json::Value> = cli.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lib.len(), 2);
        assert_eq!(want.len(), 2);
        // The next command is spelled against the CLI's own invocation.
        if let Some(stop) = want[1]["stop"].as_object_mut() {
            stop.insert("next_command".into(), serde_json::Value::Null);
        }
        assert_eq!(lib, want, "domain {dom} VA {va}");
    }
}

/// Inference on the synthetic machine, as built and with members moved
/// ([`SWAPPED`]): `--offsets-from infer` finds each covered member where the builder
/// put it, so the moved ones at their new places, which no table xenwalk has
/// describes (the builder writes with the built-in table, then moves them).
#[test]
fn synthetic_offsets_inferred_where_the_builder_put_them() {
    let test = "synthetic_offsets_inferred_where_the_builder_put_them";
    for shifted in [false, true] {
        let Some(s) = synth_with(&format!("{test}-{shifted}"), Breakage::default(), shifted) else { return };
        let out = xw(&s, &["info", "--offsets-from", "infer", "--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let info = &out.json()[0];
        let inferred: Vec<(String, u64)> = info["xen"]["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["source"] == "inferred")
            .map(|o| (o["key"].as_str().unwrap().to_string(), o["value"].as_u64().unwrap()))
            .collect();
        // Where the builder put each member: the built-in table's place, or for a
        // moved member the place of the one it swapped with.
        let want = |key: &str| -> u64 {
            let table = xenwalk::xen::offsets::DEBIAN_4_17_7.offsets;
            let at = |k: &str| table.iter().find(|(t, _)| *t == k).map(|(_, v)| *v).unwrap();
            if shifted {
                for (_, a, oa, b, ob) in SWAPPED {
                    if key == a {
                        return ob;
                    }
                    if key == b {
                        return oa;
                    }
                }
            }
            at(key)
        };
        for (k, v) in &inferred {
            assert_eq!(*v, want(k), "shifted={shifted}: {k}");
        }
        let keys: Vec<&str> = inferred.iter().map(|(k, _)| k.as_str()).collect();
        // Two CPUs, two listed domains (dom0 PV with two vCPUs, an HVM domU with its
        // monitor table and an EPT): every key inference covers, the moved ones
        // among them; each with at least two invariants.
        for k in xenwalk::xen::infer::COVERED {
            assert!(keys.contains(k), "shifted={shifted}: {k} not inferred: {keys:?}\n{}", out.stdout);
        }
        for o in info["xen"]["offsets"].as_array().unwrap().iter().filter(|o| o["source"] == "inferred") {
            assert!(o["evidence"].as_array().unwrap().len() >= 2, "{o}");
        }
        // The frame table's stride, inferred with its members.
        let sizes = info["xen"]["sizes"].as_array().unwrap();
        let pi = sizes.iter().find(|o| o["key"] == "page_info").unwrap();
        assert_eq!((pi["value"].as_u64(), pi["source"].as_str()), (Some(32), Some("inferred")), "{pi}");
    }
}

/// The synthetic machine read with inference alone (`--offsets-from infer`) gives
/// the outputs it gives with the offsets it was built with (the built-in table, or
/// for the shifted machine its VMCOREINFO_XEN lines): domains, each domain's p2m
/// check, the M2P, the HVM guest's walks through its EPT or NPT and dom0's. The HVM
/// half of inference (creation flags, emulation flags, the host p2m and its table,
/// the guest's control registers) has no real machine in the lab (both labs run PV
/// guests), so this is where it is checked output for output; on NPT (`hvm_funcs`
/// says SVM) the `ept` member is refused and not needed.
#[test]
fn synthetic_machine_reads_the_same_with_inference_alone() {
    let test = "synthetic_machine_reads_the_same_with_inference_alone";
    for (variant, br, shifted) in [
        ("ept", Breakage::default(), false),
        ("npt", Breakage { npt: true, ..Breakage::default() }, false),
        ("shifted", Breakage::default(), true),
    ] {
        let Some(s) = synth_with(&format!("{test}-{variant}"), br, shifted) else { return };
        let m = &s.model;
        let domu_va = format!("{:#x}", m.domu_va.keys().next().unwrap());
        let dom0_va = format!("{:#x}", m.dom0_va.keys().next().unwrap());
        let mfns: Vec<String> = [m.dom0_l4, *m.domu_p2m.values().next().unwrap(), m.domu_monitor]
            .iter()
            .map(|v| format!("{v:#x}"))
            .collect();
        let mut compared = 0;
        for args in [
            vec!["domains", "--json"],
            vec!["p2m", "--domain", "0", "--check", "--json"],
            vec!["p2m", "--domain", "1", "--json"],
            vec!["m2p", &mfns[0], &mfns[1], &mfns[2], "--json"],
            vec!["--domain", "1", "--vcpu", "0", "--va", &domu_va, "--json"],
            vec!["--domain", "0", "--vcpu", "1", "--va", &dom0_va, "--json"],
            vec!["--domain", "1", "--vcpu", "0", "--brief"],
        ] {
            let want = xw(&s, &args);
            let mut inf = args.clone();
            inf.extend(["--offsets-from", "infer"]);
            let got = xw(&s, &inf);
            assert_eq!(want.code, 0, "{variant} {args:?}: {}", want.stderr);
            assert!(want.stdout.len() > 50, "{variant} {args:?}: {}", want.stdout);
            assert_eq!(
                (got.code, &got.stdout),
                (want.code, &want.stdout),
                "{variant} {args:?}: inference alone reads otherwise: {}",
                got.stderr
            );
            compared += 1;
        }
        assert_eq!(compared, 7);
        let info = xw(&s, &["info", "--offsets-from", "infer", "--json"]);
        let ept =
            info.json()[0]["xen"]["offsets"].as_array().unwrap().iter().find(|o| o["key"] == "p2m_domain.ept").cloned();
        let ept = ept.unwrap();
        if variant == "npt" {
            assert!(ept["value"].is_null() && ept["why"].as_str().unwrap().contains("SVM"), "{ept}");
        } else {
            assert_eq!(ept["source"], "inferred", "{ept}");
        }
    }
}

/// Entry `i` of the table in frame `mfn` of the synthetic machine, read back from its
/// vmcore by the dump reader alone.
fn read_entry(s: &Synth, mfn: u64, i: u64) -> u64 {
    let d = xenwalk::dump::Dump::open(&s.vmcore, xenwalk::dump::OpenOptions::default()).unwrap();
    d.mem.read_u64(Maddr((mfn << 12) + i * 8)).unwrap()
}

/// `--style xen` prints what Xen's `show_page_walk` prints
/// (`X:xen/arch/x86/x86_64/mm.c@4.17.0`): each level's entry and the M2P pfn of its
/// frame, and nothing below an entry whose frame is not `mfn_valid` (past
/// `max_page`; pfn `INVALID_M2P_ENTRY`), even though the typed walk reads on (and
/// finds the frame outside the dump). A valid walk prints all four levels, each pfn
/// the M2P's (the fixture's dom0 p2m, inverted).
#[test]
fn xen_style_walk_stops_where_xen_stops() {
    let test = "xen_style_walk_stops_where_xen_stops";
    let Some(s) = synth(test, Breakage { wild_table: true, ..Breakage::default() }) else { return };
    let out = xw(&s, &["--domain", "0", "--vcpu", "0", "--va", "0x600000", "--style", "xen"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "Pagetable walk from 0000000000600000:",
            &*format!(" L4[0x000] = {:016x} {:016x}", read_entry(&s, s.model.dom0_l4, 0), 1),
            &*format!(" L3[0x000] = {:016x} {:016x}", read_entry(&s, s.model.dom0_p2m[&1], 0), 2),
            &*format!(" L2[0x003] = {:016x} ffffffffffffffff", (0x10_0000u64 << 12) | xenwalk::fixture::GUEST_TABLE),
        ],
        "{}",
        out.stderr
    );
    // The typed walk goes on and stops at the L1 the dump lacks.
    let j = xw(&s, &["--domain", "0", "--vcpu", "0", "--va", "0x600000", "--json"]);
    let stop = &j.json_of("walk")[0]["stop"];
    assert_eq!(stop["level"], 1, "{stop}");
    // A mapped VA: all four levels, each pfn the M2P's.
    let va = *s.model.dom0_va.keys().next().unwrap();
    let out = xw(&s, &["--domain", "0", "--vcpu", "0", "--va", &format!("{va:#x}"), "--style", "xen"]);
    let pfns: Vec<u64> =
        out.stdout.lines().skip(1).map(|l| u64::from_str_radix(l.rsplit(' ').next().unwrap(), 16).unwrap()).collect();
    let inv: BTreeMap<u64, u64> = s.model.dom0_p2m.iter().map(|(p, m)| (*m, *p)).collect();
    assert_eq!(pfns, [1, 2, 3, inv[&s.model.dom0_va[&va]]], "{}", out.stdout);
}

/// A hostile `max_page` (2^40 frames on a 128 MiB machine): `p2m --check` walks the
/// frame table only as far as the dump goes, says where it stopped, and still
/// checks every frame the machine has.
#[test]
fn absurd_max_page_bounds_the_reverse_check_by_the_dump() {
    let test = "absurd_max_page_bounds_the_reverse_check_by_the_dump";
    let Some(plain) = synth(&format!("{test}-plain"), Breakage::default()) else { return };
    let Some(s) = synth(test, Breakage { absurd_max_page: true, ..Breakage::default() }) else { return };
    let summary = |s: &Synth| {
        let t = std::time::Instant::now();
        let out = xw(s, &["p2m", "--domain", "0", "--check", "--json"]);
        assert!(out.code <= 1, "{}", out.stderr);
        eprintln!("p2m --check: {:?}", t.elapsed());
        out.json_of("p2m_summary").pop().expect("a summary line")
    };
    let (a, b) = (summary(&plain), summary(&s));
    assert!(a["reverse_limit"].is_null(), "{a}");
    // The machine is 128 MiB: frame 0x8000 is one past its last.
    assert_eq!(b["reverse_limit"].as_u64(), Some(0x8000), "{b}");
    for k in ["reverse_checked", "reverse_mismatches", "xen_heap_frames", "ram", "m2p_mismatches"] {
        assert_eq!(a[k], b[k], "{k}");
    }
}

/// `triage` on the synthetic machine: each CPU's CR3 named as the builder loaded it
/// (CPU 0 dom0's kernel L4, CPU 1 the HVM domU's monitor table); nothing
/// inconsistent on the sound machine (exit 0); the broken one's lists are findings
/// (exit 1), each a `check` line with a stable name.
#[test]
fn triage_names_each_cpus_root_and_finds_what_is_broken() {
    let test = "triage_names_each_cpus_root_and_finds_what_is_broken";
    let Some(s) = synth(test, Breakage::default()) else { return };
    let out = xw(&s, &["triage", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let cpus = out.json_of("cpu");
    assert_eq!(cpus.len(), 2, "{}", out.stdout);
    assert_eq!(cpus[0]["root"], serde_json::json!({"kind": "vcpu", "domain": 0, "vcpu": 0, "table": "guest_table"}));
    assert_eq!(cpus[1]["root"], serde_json::json!({"kind": "vcpu", "domain": 1, "vcpu": 0, "table": "monitor_table"}));
    let checks = out.json_of("check");
    assert!(checks.iter().all(|c| c["status"] != "finding"), "{}", out.stdout);
    for name in ["domain_lists", "cpu_root_known", "vcpu_roots", "root_m2p_p2m"] {
        assert!(checks.iter().any(|c| c["check"] == name && c["status"] == "ok"), "{name}: {}", out.stdout);
    }
    assert_eq!(out.json_of("verdict")[0]["findings"], 0);
    // CR2 walked from each CPU's CR3: dom0's VA to the frame the builder put there;
    // the guest VA stops in the monitor table, with the reason.
    let (va, mfn) = s.model.dom0_va.iter().next().map(|(v, m)| (*v, *m)).unwrap();
    let w0 = &cpus[0]["cr2_walk"];
    assert_eq!(w0["va"], format!("{:#x}", va + 0x123));
    assert_eq!(w0["maddr"], format!("{:#x}", (mfn << 12) + 0x123), "{w0}");
    let w1 = &cpus[1]["cr2_walk"];
    assert!(w1["maddr"].is_null() && w1["reason"].is_string() && w1["explanation"].is_string(), "{w1}");
    let human = xw(&s, &["triage"]);
    assert_eq!(human.code, 0);
    assert!(
        human.stdout.contains("CPU 1: CR3") && human.stdout.contains("domain 1 vCPU 0, monitor table"),
        "{}",
        human.stdout
    );

    let br = Breakage { loop_list: true, wild_vcpu: true, ..Breakage::default() };
    let Some(bad) = synth(&format!("{test}-broken"), br) else { return };
    let out = xw(&bad, &["triage", "--json"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let findings: Vec<String> = out
        .json_of("check")
        .iter()
        .filter(|c| c["status"] == "finding")
        .map(|c| format!("{}: {}", c["check"].as_str().unwrap(), c["what"].as_str().unwrap()))
        .collect();
    assert!(findings.iter().any(|f| f.starts_with("domain_lists:") && f.contains("loops")), "{findings:?}");
    assert!(findings.iter().any(|f| f.starts_with("domain_lists:") && f.contains("vcpu[1]")), "{findings:?}");
    assert_eq!(out.json_of("verdict")[0]["findings"].as_u64(), Some(findings.len() as u64));

    // dom0's L4 frame with an M2P entry its p2m does not map back: a finding naming it.
    let Some(bad) = synth(&format!("{test}-m2p"), Breakage { bad_root_m2p: true, ..Breakage::default() }) else {
        return;
    };
    let out = xw(&bad, &["triage", "--json"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let m2p: Vec<serde_json::Value> =
        out.json_of("check").into_iter().filter(|c| c["check"] == "root_m2p_p2m" && c["status"] == "finding").collect();
    assert_eq!(m2p.len(), 1, "{}", out.stdout);
    let what = m2p[0]["what"].as_str().unwrap();
    assert!(what.contains("pfn 0x5") && what.contains(&format!("{:#x}", bad.model.dom0_l4)), "{what}");
}
