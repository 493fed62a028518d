//! The bundled sample `fixtures/xen-4.17-idle.core`: that it is exactly the cut of
//! the real image it claims to come from, that it walks like the real machine, and
//! that the README's first command works on it in a user's clone (no `../shared`).

mod common;

use common::{parse_qemu_tlb, read_text, run, shared, unxz_cached};
use std::path::{Path, PathBuf};
use xenwalk::dump::{Dump, OpenOptions};
use xenwalk::fixture::sample;
use xenwalk::paging::{StopKind, WalkOptions, walk};
use xenwalk::{Maddr, Vaddr};

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/xen-4.17-idle.core")
}

/// Re-cut the sample from the real image and compare it byte for byte with the
/// committed file. `XENWALK_BLESS=1` rewrites the committed file instead.
#[test]
fn sample_is_the_cut_of_the_real_image() {
    let Some(s) = shared("sample_is_the_cut_of_the_real_image") else {
        return;
    };
    let elf = unxz_cached(&s.join("dumps/xen-4.17-idle/memory.elf.xz"), "xen-4.17-idle.elf");
    let map = unsafe { memmap2::Mmap::map(&std::fs::File::open(&elf).unwrap()).unwrap() };
    let core = xenwalk::mem::elf::parse(map).expect("parse the real ELF");
    let cut = sample::cut(&core.image).expect("cut");
    let dir = common::tempdir("sample-cut");
    let fresh = dir.join("sample.core");
    cut.write(&fresh, &core.notes).unwrap();
    let fresh_bytes = std::fs::read(&fresh).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let committed = std::fs::read(sample_path()).expect("fixtures/xen-4.17-idle.core");
    assert!(fresh_bytes.len() < 512 * 1024, "the sample should stay small: {} bytes", fresh_bytes.len());
    compare_or_bless(&sample_path(), &committed, &fresh_bytes, "a fresh cut of the real image");
}

/// How `a` and `b` differ, in a line: sizes, bytes that differ, the first offset.
fn difference(a: &[u8], b: &[u8]) -> String {
    let differing = a.iter().zip(b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len());
    let first = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    format!("{} bytes committed, {} fresh, {differing} bytes differ, the first at offset {first:#x}", a.len(), b.len())
}

/// The committed fixture `path` must equal the `fresh` cut. With `XENWALK_BLESS=1`
/// a different cut is written over it and the test still fails, saying so and how it
/// differed: a blessing run is never green on a change (review the file, commit it,
/// run again without the variable). An unchanged file passes either way.
fn compare_or_bless(path: &Path, committed: &[u8], fresh: &[u8], what: &str) {
    if committed == fresh {
        return;
    }
    let name = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).display().to_string();
    let diff = difference(committed, fresh);
    if std::env::var("XENWALK_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(path, fresh).unwrap();
        panic!(
            "REWRITTEN: {name} differed from {what} ({diff}) and XENWALK_BLESS=1 wrote the fresh cut over it; \
             review and commit it, then run the test again without XENWALK_BLESS"
        );
    }
    panic!("{name} differs from {what} ({diff}); regenerate it with XENWALK_BLESS=1 cargo test --test sample");
}

fn syms_sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/xen-syms-4.17.sample")
}

/// Re-cut the xen-syms sample from Debian's xen-syms and compare byte for byte.
#[test]
fn syms_sample_is_the_cut_of_the_real_xen_syms() {
    let Some(s) = shared("syms_sample_is_the_cut_of_the_real_xen_syms") else {
        return;
    };
    let real = s.join("xen-4.17/xen-syms-4.17-amd64");
    let fresh = sample::cut_syms(&std::fs::read(&real).unwrap()).expect("cut xen-syms");
    let committed = std::fs::read(syms_sample_path()).expect("fixtures/xen-syms-4.17.sample");
    assert!(fresh.len() < 512 * 1024, "the xen-syms sample should stay small: {} bytes", fresh.len());
    compare_or_bless(&syms_sample_path(), &committed, &fresh, "a fresh cut of xen-syms");
    // What the cut keeps means the same as in the original.
    let a = xenwalk::xen::symbols::XenSyms::load(&real).unwrap();
    let b = xenwalk::xen::symbols::XenSyms::load(&syms_sample_path()).unwrap();
    assert_eq!(a.version, b.version);
    assert_eq!(b.version.as_ref().map(|v| v.to_string()).as_deref(), Some("4.17.7"));
    assert_eq!(a.build_id, b.build_id);
    for name in ["idle_pg_table", "xen_phys_start", "__image_base__", "_start", "domain_list", "idle_vcpu"] {
        assert_eq!(a.addr(name), b.addr(name), "{name}");
        assert!(b.addr(name).is_some(), "{name} kept");
    }
    assert_eq!(b.lookup("head.o#l3_xenmap").map(|s| s.addr), a.lookup("head.o#l3_xenmap").map(|s| s.addr));
    let names = |x: &xenwalk::xen::symbols::XenSyms| {
        let mut v: Vec<(String, u64, u64)> = x.sections.iter().map(|s| (s.name.clone(), s.addr, s.size)).collect();
        v.truncate(a.sections.len());
        v
    };
    assert_eq!(names(&a), names(&b), "every allocated section keeps its address and size");
}

/// Every leaf QEMU found in the real machine either walks to the same frame in the
/// sample, or stops because its path crosses the one table page the sample omits.
#[test]
fn sample_walks_agree_with_qemu() {
    let Some(s) = shared("sample_walks_agree_with_qemu") else {
        return;
    };
    let qemu = parse_qemu_tlb(&read_text(&s.join("dumps/xen-4.17-idle/qemu-info-tlb-cpu0.txt")));
    let dump = Dump::open(&sample_path(), OpenOptions::default()).expect("open sample");
    let raw = unxz_cached(&s.join("dumps/xen-4.17-idle/memory.raw.xz"), "xen-4.17-idle.raw");
    let real = Dump::open(&raw, OpenOptions::default()).unwrap();
    let omitted = sample::cut(real.mem.as_ref()).unwrap().omitted;
    let (mut same, mut absent) = (0, 0);
    for l in &qemu {
        let w = walk(dump.mem.as_ref(), Maddr(sample::IDLE_CR3), Vaddr(l.va), WalkOptions::default());
        match (w.mapping(), w.stop()) {
            (Some(m), _) => {
                assert_eq!(m.page.0, l.pa, "{:#x}", l.va);
                same += 1;
            }
            (None, Some(stop)) => {
                assert!(matches!(stop.kind, StopKind::Unreadable(_)), "{:#x}: {stop:?}", l.va);
                assert_eq!(stop.table.mfn(), omitted, "{:#x}", l.va);
                absent += 1;
            }
            _ => unreachable!(),
        }
    }
    assert!(same > 2900 && absent > 0, "same {same}, absent {absent}");
}

/// What a new user runs first (README), with no `../shared`: a walk that translates
/// and a walk that stops on the page the sample does not contain.
#[test]
fn readme_command_runs_on_the_sample() {
    let sample = sample_path();
    let s = sample.to_str().unwrap();
    // The image's own xen_phys_start variable, read through the sample's tables,
    // says where _start must land: xen_phys_start + 2 MiB (reference §3.2).
    let dump = Dump::open(&sample, OpenOptions::default()).expect("open sample");
    let cr3 = dump.notes.cpu(0).and_then(|c| c.cr3).expect("CPU 0 CR3 in the QEMU note");
    let xps_va = sample::KEPT_VAS[3].0;
    let w = walk(dump.mem.as_ref(), Maddr(cr3), Vaddr(xps_va), WalkOptions::default());
    let xps = dump.mem.read_u64(w.mapping().expect("xen_phys_start is mapped").maddr).unwrap();
    assert_eq!(xps % (2 << 20), 0, "xen_phys_start is 2 MiB aligned");

    let r = run(&[s, "--va", "ffff82d040200000", "--va", "ffff828000000000", "--json"]);
    assert_eq!(r.code, 1, "one of the two stops: exit 1\n{}", r.stderr);
    let walks = r.json_of("walk");
    assert_eq!(walks[0]["maddr"], format!("{:#x}", xps + 0x20_0000));
    assert_eq!(walks[1]["stop"]["reason"], "table_absent");
    assert_eq!(walks[1]["stop"]["level"], 2);
    assert!(r.stderr.contains("CPU 0"), "the implicit root is announced: {}", r.stderr);

    let r = run(&[s, "--va", "ffff82d040200000", "--va", "ffff828000000000"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("=> maddr"));
    assert!(r.stdout.contains("=> stopped at L2: table_absent"));

    let r = run(&["info", s]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("CPU 1:"));
    let r = run(&[s, "--json"]);
    assert_eq!(r.code, 0);
    let summary = &r.json_of("summary")[0];
    assert!(summary["unreadable_tables"].as_u64().unwrap() >= 1);
}

/// Every `$ …` command in README.md that runs xenwalk shows its real output (no
/// drift). Commands run under bash from the project directory with the built binary
/// first on `PATH`; examples that name `dom0.raw`, `idle.raw` or `xen-syms` run on
/// the real images (and say NOT RUN without `../shared`). A shown line `...` stands
/// for any number of lines.
#[test]
fn readme_examples_show_real_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_xenwalk")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut checked = 0;
    let mut lines = readme.lines();
    let mut real: Option<Option<PathBuf>> = None;
    while let Some(line) = lines.next() {
        let Some(cmd) = line.strip_prefix("$ ") else {
            continue;
        };
        assert!(cmd.contains("xenwalk"), "README shows a command that is not xenwalk's: {cmd}");
        let mut shown = Vec::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            shown.push(l.trim_end().to_string());
        }
        let aliases = ["dom0.raw", "idle.raw", "xen-syms"];
        let needs_shared = cmd.split_whitespace().any(|a| aliases.contains(&a));
        let mut script = format!(" {cmd} ");
        if needs_shared {
            let dir = real.get_or_insert_with(|| shared("readme_examples_show_real_output (real-image examples)"));
            let Some(d) = dir.clone() else { continue };
            let files = [
                unxz_cached(&d.join("dumps/xen-4.17-dom0/memory.raw.xz"), "xen-4.17-dom0.raw"),
                unxz_cached(&d.join("dumps/xen-4.17-idle/memory.raw.xz"), "xen-4.17-idle.raw"),
                d.join("xen-4.17/xen-syms-4.17-amd64"),
            ];
            for (alias, file) in aliases.iter().zip(&files) {
                script = script.replace(&format!(" {alias} "), &format!(" {} ", file.display()));
            }
        }
        let out = std::process::Command::new("bash")
            .args(["-c", script.trim()])
            .current_dir(root)
            .env("PATH", &path)
            .env_remove("NO_COLOR")
            .output()
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let got: Vec<String> = stdout.lines().map(|l| l.trim_end().to_string()).collect();
        assert!(
            matches_with_elision(&shown, &got),
            "README example `{cmd}` drifted from the real output:\n--- shown\n{}\n--- real\n{}",
            shown.join("\n"),
            got.join("\n")
        );
        checked += 1;
    }
    assert!(checked >= 8, "README's walkthrough examples are missing ({checked} found)");
}

/// `shown` equals `got`, where a line `...` (any indentation) in `shown` matches any
/// run of lines, including none.
fn matches_with_elision(shown: &[String], got: &[String]) -> bool {
    match shown.split_first() {
        None => got.is_empty(),
        Some((first, rest)) if first.trim() == "..." => (0..=got.len()).any(|k| matches_with_elision(rest, &got[k..])),
        Some((first, rest)) => got.first() == Some(first) && matches_with_elision(rest, &got[1..]),
    }
}

#[test]
fn elision_matching() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(matches_with_elision(&v(&["a", "...", "d"]), &v(&["a", "b", "c", "d"])));
    assert!(matches_with_elision(&v(&["a", "..."]), &v(&["a"])));
    assert!(!matches_with_elision(&v(&["a", "...", "d"]), &v(&["a", "b", "c"])));
    assert!(!matches_with_elision(&v(&["a", "b"]), &v(&["a", "b", "c"])));
}
