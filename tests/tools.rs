//! The helper commands: `diff` (two roots compared slot by slot), `explain` (one raw
//! entry decoded without a dump), `completions`, `man` and `--color`.

mod common;

use serde_json::Value;
use xenwalk::fixture::{Machine, PageTables, XEN_TABLE};
use xenwalk::paging::Level;
use xenwalk::paging::entry::bits;
use xenwalk::{Maddr, Vaddr};

fn slot_va(slot: u64) -> Vaddr {
    Vaddr::canonicalize(slot << 39)
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

/// Two roots built to show every verdict diff can give, and what it must report:
/// slot 1 shared, slot 2 equal in content, slot 3 only in A, slot 4 different
/// (one page moved, one only in A, one only in B), slots 5 and 6 only in B but
/// empty (one collapsed human line).
fn two_roots(dir: &std::path::Path) -> (std::path::PathBuf, Maddr, Maddr) {
    let mut m = Machine::new(64 << 20);
    let a = PageTables::new(&mut m);
    let b = PageTables::new(&mut m);
    let leaf = bits::P | bits::RW | bits::A | bits::D;
    // Slot 1: B's L4 entry is A's.
    a.map_range(&mut m, slot_va(1), Maddr(0x100000), 0x4000, Level::L1, leaf, XEN_TABLE);
    let e1 = m.read_u64(Maddr(a.root.0 + 8));
    m.write_u64(Maddr(b.root.0 + 8), e1);
    // Slot 2: separate tables, the same mappings (a 2 MiB page and two 4 KiB pages).
    for t in [&a, &b] {
        t.map(&mut m, slot_va(2), Maddr(0x200000), Level::L2, leaf, XEN_TABLE);
        t.map_range(&mut m, Vaddr(slot_va(2).0 + 0x40000000), Maddr(0x300000), 0x2000, Level::L1, leaf, XEN_TABLE);
    }
    // Slot 3: A only.
    a.map(&mut m, slot_va(3), Maddr(0x400000), Level::L1, leaf, XEN_TABLE);
    // Slot 4: a common page, a moved page, a page with other flags, one per side only.
    let v4 = slot_va(4).0;
    for t in [&a, &b] {
        t.map(&mut m, Vaddr(v4), Maddr(0x500000), Level::L1, leaf, XEN_TABLE);
    }
    a.map(&mut m, Vaddr(v4 + 0x1000), Maddr(0x501000), Level::L1, leaf, XEN_TABLE);
    b.map(&mut m, Vaddr(v4 + 0x1000), Maddr(0x601000), Level::L1, leaf, XEN_TABLE);
    a.map(&mut m, Vaddr(v4 + 0x2000), Maddr(0x502000), Level::L1, leaf, XEN_TABLE);
    b.map(&mut m, Vaddr(v4 + 0x2000), Maddr(0x502000), Level::L1, leaf | bits::NX, XEN_TABLE);
    a.map(&mut m, Vaddr(v4 + 0x10000), Maddr(0x510000), Level::L1, leaf, XEN_TABLE);
    b.map(&mut m, Vaddr(v4 + 0x20000), Maddr(0x520000), Level::L1, leaf, XEN_TABLE);
    // Slots 5, 6: B has L4 entries to empty L3 tables.
    for slot in [5u64, 6] {
        let l3 = m.alloc();
        m.write_u64(Maddr(b.root.0 + slot * 8), l3.0 | XEN_TABLE);
    }
    let path = dir.join("two-roots.raw");
    m.write_raw(&path).unwrap();
    (path, a.root, b.root)
}

#[test]
fn diff_gives_each_slot_its_verdict_and_the_differing_ranges() {
    let dir = common::tempdir("diff-synthetic");
    let (path, a, b) = two_roots(&dir);
    let (p, ca, cb) = (path.to_str().unwrap(), format!("{:#x}", a.0), format!("{:#x}", b.0));
    let out = common::run(&["diff", p, "--cr3", &ca, "--cr3", &cb, "--json"]);
    assert_eq!(out.code, 1, "roots differ: exit 1\n{}", out.stderr);
    let lines = json_lines(&out.stdout);
    assert_eq!(lines[0]["type"], "header");
    assert_eq!(lines[0]["command"], "diff");
    let slots: Vec<(u64, String)> = lines
        .iter()
        .filter(|l| l["type"] == "slot_diff")
        .map(|l| (l["slot"].as_u64().unwrap(), l["status"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(u64, String)> =
        [(1, "shared"), (2, "equal_content"), (3, "only_a"), (4, "different"), (5, "only_b"), (6, "only_b")]
            .iter()
            .map(|(s, t)| (*s, t.to_string()))
            .collect();
    assert_eq!(slots, want);
    let ranges: Vec<(String, String, u64, Value, Value)> = lines
        .iter()
        .filter(|l| l["type"] == "range_diff" && l["slot"] == 4)
        .map(|l| {
            (
                l["side"].as_str().unwrap().to_string(),
                l["va"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
                l["a_maddr"].clone(),
                l["b_maddr"].clone(),
            )
        })
        .collect();
    let v4 = slot_va(4).0;
    let hex = |v: u64| Value::String(format!("{v:#x}"));
    assert_eq!(
        ranges,
        vec![
            ("changed".into(), format!("{:#x}", v4 + 0x1000), 0x1000, hex(0x501000), hex(0x601000)),
            ("changed".into(), format!("{:#x}", v4 + 0x2000), 0x1000, hex(0x502000), hex(0x502000)),
            ("only_a".into(), format!("{:#x}", v4 + 0x10000), 0x1000, hex(0x510000), Value::Null),
            ("only_b".into(), format!("{:#x}", v4 + 0x20000), 0x1000, Value::Null, hex(0x520000)),
        ]
    );
    // The slot line's counts agree with its range lines.
    let s4 = lines.iter().find(|l| l["type"] == "slot_diff" && l["slot"] == 4).unwrap();
    assert_eq!((s4["only_a"].as_u64(), s4["only_b"].as_u64(), s4["changed"].as_u64()), (Some(1), Some(1), Some(2)));

    // Human output: the empty slots 5 and 6 are one line.
    let out = common::run(&["diff", p, "--cr3", &ca, "--cr3", &cb]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("slots 5-6"), "{}", out.stdout);
    assert!(out.stdout.contains("map nothing"), "{}", out.stdout);
    assert!(out.stdout.contains("5 slots differ"), "{}", out.stdout);

    // A root against itself: every slot shared, exit 0.
    let out = common::run(&["diff", p, "--cr3", &ca, "--cr3", &ca, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = json_lines(&out.stdout);
    assert!(lines.iter().filter(|l| l["type"] == "slot_diff").all(|l| l["status"] == "shared"));
    assert!(!lines.iter().any(|l| l["type"] == "range_diff"));

    // One root only is a usage error.
    let out = common::run(&["diff", p, "--cr3", &ca]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("two roots"), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// On the real dom0 image: the idle root and dom0's CPU 0 root share Xen's own
/// slots (RO M2P, MMCFG, RW M2P, direct map), differ in the linear map, and the
/// per-domain slot and the guest kernel's slots exist only in dom0's root.
#[test]
fn diff_on_real_dom0_idle_against_the_guest_root() {
    let Some(shared) = common::shared("diff_on_real_dom0_idle_against_the_guest_root") else { return };
    let raw = common::unxz_cached(&shared.join("dumps/xen-4.17-dom0/memory.raw.xz"), "xen-4.17-dom0.raw");
    let syms = shared.join("xen-4.17/xen-syms-4.17-amd64");
    let (r, x) = (raw.to_str().unwrap(), syms.to_str().unwrap());
    // CPU 0's CR3 from QEMU's `info registers` (the answer key beside the image).
    let regs = std::fs::read_to_string(shared.join("dumps/xen-4.17-dom0/qemu-info-registers-cpu0.txt")).unwrap();
    let cr3 = regs.split_whitespace().find_map(|w| w.strip_prefix("CR3=")).unwrap();
    let cr3 = format!("0x{cr3}");
    let out = common::run(&["diff", r, "--xen-syms", x, "--cr3", "idle_pg_table", "--cr3", &cr3, "--json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines = json_lines(&out.stdout);
    let status = |slot: u64| {
        lines
            .iter()
            .find(|l| l["type"] == "slot_diff" && l["slot"] == slot)
            .map(|l| (l["status"].as_str().unwrap().to_string(), l["region_b"].as_str().map(str::to_string)))
    };
    for slot in [256, 257, 261, 262] {
        assert_eq!(status(slot).unwrap().0, "shared", "slot {slot}");
    }
    assert_eq!(status(258).unwrap().0, "different", "the linear page-table slot maps each root itself");
    assert_eq!(status(260).unwrap().0, "only_b", "per-domain mappings exist only in a guest's root");
    let s273 = status(273).unwrap();
    assert_eq!(s273, ("only_b".to_string(), Some("guest_pv".to_string())), "dom0's kernel direct map");
    // The linear map differs in its self-reference: A's slot 258 maps idle's own L4
    // frames, B's maps dom0's.
    let a258 = lines.iter().find(|l| l["type"] == "slot_diff" && l["slot"] == 258).unwrap();
    assert_ne!(a258["a_entry"], a258["b_entry"]);

    // dom0's vCPU 0 root from the hypervisor's own structures is CPU 0's CR3.
    let out =
        common::run(&["diff", r, "--xen-syms", x, "--cr3", &cr3, "--cr3", "*domain_list->vcpu[0]->arch.cr3", "--json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
}

fn explain(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["explain", "--json"];
    all.extend_from_slice(args);
    let out = common::run(&all);
    assert_eq!(out.code, 0, "{all:?}: {}", out.stderr);
    let mut v = json_lines(&out.stdout);
    assert_eq!(v.remove(0)["command"], "explain");
    v
}

#[test]
fn explain_decodes_an_entry_at_each_level() {
    // An L3 entry from Xen's idle table: a table pointer.
    let l = explain(&["000000003fc6a063", "--level", "3"]);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["address"], "0x3fc6a000");
    assert_eq!(l[0]["leaf"], false);
    assert_eq!(l[0]["flags"], serde_json::json!(["P", "RW", "A", "D"]));
    assert_eq!(l[0]["reserved"], "0x0");

    // A 2 MiB leaf with NX: the naive mask leaves bit 63 in the address.
    let all = explain(&["0x80000000bfe000e7"]);
    assert_eq!(all.iter().map(|l| l["level"].as_u64().unwrap()).collect::<Vec<_>>(), [4, 3, 2, 1]);
    let by = |n: u64| all.iter().find(|l| l["level"] == n).unwrap();
    assert_eq!(by(2)["leaf"], true);
    assert_eq!(by(2)["page_size"], 2 << 20);
    assert_eq!(by(2)["address"], "0xbfe00000");
    assert_eq!(by(2)["naive_address"], "0x80000000bfe00000");
    assert_eq!(by(2)["reserved"], "0x0");
    // PS is reserved in an L4 entry.
    assert_eq!(by(4)["reserved"], "0x80");
    // As a 1 GiB leaf, bits 29:13 of the frame are reserved.
    assert_eq!(by(3)["reserved"], "0x3fe00000");
    assert_eq!(by(3)["address"], "0x80000000");
    // As a 4 KiB leaf, bit 7 is PAT, not PS.
    assert_eq!(by(1)["page_size"], 4096);
    assert!(by(1)["flags"].as_array().unwrap().contains(&Value::String("PAT".into())));

    // With a 39-bit physical width, bit 40 of the frame is reserved.
    let l = explain(&["0x10000001063", "--level", "2", "--maxphyaddr", "39"]);
    assert_eq!(l[0]["reserved"], "0x10000000000");
    let l = explain(&["0x10000001063", "--level", "2"]);
    assert_eq!(l[0]["reserved"], "0x0");
    assert_eq!(l[0]["address"], "0x10000001000");

    // Not present: no address, nothing reserved.
    let l = explain(&["0x3fc6a062", "--level", "1"]);
    assert_eq!((l[0]["present"].as_bool(), l[0]["address"].is_null()), (Some(false), true));

    // Human output says it in words.
    let out = common::run(&["explain", "0x80000000bfe000e7", "--level", "2"]);
    assert!(out.stdout.contains("maps a 2 MiB page at 0xbfe00000"), "{}", out.stdout);
    assert!(out.stdout.contains("NX (bit 63) left in the address"), "{}", out.stdout);

    // Not hex: usage error.
    let out = common::run(&["explain", "0xzz"]);
    assert_eq!(out.code, 2);
}

#[test]
fn completions_and_man_page_come_from_the_binary() {
    let out = common::run(&["completions", "bash"]);
    assert_eq!(out.code, 0);
    for w in ["xenwalk", "--xen-syms", "--cr3", "diff", "explain"] {
        assert!(out.stdout.contains(w), "bash completion lacks {w}");
    }
    let out = common::run(&["completions", "zsh"]);
    assert!(out.code == 0 && out.stdout.contains("#compdef xenwalk"));
    let out = common::run(&["man"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with(".ie") || out.stdout.contains(".TH xenwalk"), "{}", &out.stdout[..200]);
    assert!(out.stdout.contains("xen\\-syms"), "the man page documents the options");
}

#[test]
fn color_only_when_asked_and_never_in_json() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/xen-4.17-idle.core");
    let args = [sample, "--va", "ffff82d040200000"];
    let plain = common::run(&args);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(!plain.stdout.contains('\x1b'), "not a terminal: no colour by default");
    let mut a = args.to_vec();
    a.extend(["--color", "always"]);
    let coloured = common::run(&a);
    assert!(coloured.stdout.contains("\x1b["), "--color always colours");
    // Stripping the escapes gives back the plain text.
    let stripped = regex_lite_strip(&coloured.stdout);
    assert_eq!(stripped, plain.stdout);
    a.push("--json");
    let json = common::run(&a);
    assert!(!json.stdout.contains('\x1b'), "JSON is never coloured");
}

/// Remove `ESC [ ... m` sequences.
fn regex_lite_strip(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' && it.peek() == Some(&'[') {
            for d in it.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Errors and diagnoses end with the next command, spelled against the invocation.
#[test]
fn errors_and_stops_end_with_the_next_command() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/xen-4.17-idle.core");
    let out = common::run(&[sample, "--cpu", "5", "--va", "0"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.trim_end().ends_with(&format!("next: xenwalk info {sample}")), "{}", out.stderr);
    // A non-canonical address: the corrected one, from the same root.
    let out = common::run(&[sample, "--cpu", "1", "--va", "0xffff000000400000", "--long"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains(&format!("next: xenwalk {sample} --long --cpu 1 --va 0x400000")), "{}", out.stdout);
    // The same in JSON.
    let out = common::run(&[sample, "--cpu", "1", "--va", "0xffff000000400000", "--json"]);
    let walk: serde_json::Value = serde_json::from_str(out.stdout.lines().nth(1).unwrap()).unwrap();
    assert_eq!(walk["stop"]["next_command"], format!("xenwalk {sample} --cpu 1 --va 0x400000"));
}
