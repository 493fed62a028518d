//! Dumps written by the real, independent writers: QEMU's `dump-guest-memory` (ELF
//! and every kdump format this QEMU offers) and makedumpfile (every compression it
//! was built with, both kdump layouts, and ELF), all of one tiny guest whose memory
//! we chose. Every file must read as the same memory and give the same walks and the
//! same listing, line for line, as our raw image of that memory.
//!
//! The guest: `qemu-system-x86_64 -machine q35 -m 64 -S` (stopped before its first
//! instruction, TCG), our page tables and some noise pages placed in its RAM by QEMU's
//! generic loader device, the L4 at guest-physical 0 so that the CR3 its CPU has at
//! reset (0) is our root: `--cpu 0` then finds it in QEMU's notes. A CPU at reset is
//! not in long mode, so QEMU writes `e_machine` EM_386 into its ELF64 core.
//!
//! The writers come from Debian's `qemu-system-x86` and `makedumpfile`, installed by
//! `scripts/setup-writers.sh` (run by `scripts/test.sh`). When they are missing the
//! test says NOT RUN; under CI (`CI=true`) that is a failure.

mod common;

use common::qemu::Qemu;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use xenwalk::dump::{Dump, Format, OpenOptions};
use xenwalk::fixture::{Machine, PageTables, XEN_TABLE};

use xenwalk::paging::Level;
use xenwalk::{Maddr, Mfn, Vaddr};

const RAM: u64 = 64 << 20;

/// The writers, or None (with NOT RUN said) when one is missing outside CI.
fn tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    match (common::find_in_path("qemu-system-x86_64"), common::find_in_path("makedumpfile")) {
        (Some(q), Some(m)) => Some((q, m)),
        (q, m) => {
            let missing: Vec<&str> = [("qemu-system-x86_64", q.is_none()), ("makedumpfile", m.is_none())]
                .iter()
                .filter(|x| x.1)
                .map(|x| x.0)
                .collect();
            common::not_run(
                test,
                &format!(
                    "needs {} (Debian's qemu-system-x86 and makedumpfile; scripts/test.sh installs them through \
                     scripts/setup-writers.sh)",
                    missing.join(" and ")
                ),
            );
            None
        }
    }
}

/// The guest's memory: an L4 at 0, tables at the top of RAM, 4 KiB, 2 MiB and
/// 1 GiB leaves with assorted rights, a not-present entry with software bits, and
/// noise pages. Returns the machine and VAs with their expected translations.
fn guest() -> (Machine, Vec<(u64, Option<u64>)>) {
    let mut m = Machine::new(RAM);
    let pt = PageTables::at(Maddr(0));
    let (p, rw, us, a, d, g, nx) = (1u64, 2u64, 4u64, 0x20u64, 0x40u64, 0x100u64, 1u64 << 63);
    let data = 0x0200_0000u64;
    for i in 0..8u64 {
        m.fill_noise(Maddr(data + i * 0x1000), 0x1234_5678 + i);
        pt.map(
            &mut m,
            Vaddr(0x40_0000 + i * 0x1000),
            Maddr(data + i * 0x1000),
            Level::L1,
            p | us | a | g,
            XEN_TABLE | us,
        );
    }
    pt.map(&mut m, Vaddr(0xffff_8880_0000_0000), Maddr(0x0100_0000), Level::L2, p | rw | a | d | nx, XEN_TABLE);
    pt.map(&mut m, Vaddr(0xffff_ff80_0000_0000), Maddr(0), Level::L3, p | rw | a | d | g, XEN_TABLE);
    pt.map(&mut m, Vaddr(0xffff_8300_0000_0000), Maddr(0x0030_0000), Level::L1, p | rw | nx | (1 << 52), XEN_TABLE);
    // Not present, software data (a swap entry).
    pt.poke(&mut m, Vaddr(0x40_8000), Level::L1, 0x0000_0000_1234_5600, XEN_TABLE | us);
    let vas = vec![
        (0x40_2abc, Some(data + 0x2abc)),
        (0x40_7ff8, Some(data + 0x7ff8)),
        (0x40_8000, None),
        (0x40_9000, None),
        (0xffff_8880_0012_3456, Some(0x0112_3456)),
        (0xffff_ff80_2345_6789, Some(0x2345_6789)),
        (0xffff_8300_0000_0010, Some(0x0030_0010)),
        (0x0000_7fff_ffff_f000, None),
        (0xffff_8000_0000_0000, None),
    ];
    (m, vas)
}

/// QEMU stopped before its first instruction (`-S`), our blobs in its RAM.
fn start_guest(qemu: &Path, dir: &Path, blobs: &[(PathBuf, u64)]) -> Qemu {
    let mut cmd = Command::new(qemu);
    cmd.args(["-machine", "q35", "-accel", "tcg", "-m", "64", "-S", "-nodefaults", "-display", "none"]);
    cmd.args(["-serial", "none", "-monitor", "none"]);
    for (file, addr) in blobs {
        cmd.args(["-device", &format!("loader,file={},addr={addr:#x},force-raw=on", file.display())]);
    }
    Qemu::start(cmd, &dir.join("qmp.sock"))
}

/// makedumpfile 1.7.2 reads the program headers right after the ELF header, not at
/// `e_phoff`: on QEMU's layout (section headers at 0x40, program headers at 0xc0) it
/// stops with "get_elf_info: Can't get the number of PT_LOAD." Give it a copy with
/// the program headers moved to 0x40 (over the section headers, which a core does
/// not need); every note and page byte stays where QEMU put it.
fn for_makedumpfile(qemu_elf: &Path, out: &Path) {
    let mut d = std::fs::read(qemu_elf).unwrap();
    let u16_at = |d: &[u8], at: usize| u16::from_le_bytes(d[at..at + 2].try_into().unwrap()) as usize;
    let phoff = u64::from_le_bytes(d[32..40].try_into().unwrap()) as usize;
    let phdrs = d[phoff..phoff + 56 * u16_at(&d, 56)].to_vec();
    // The headers' new place, [0x40, 0x40 + len), must end before the first byte any
    // segment (the notes, the pages) holds, or the copy would overwrite them.
    let first_data = phdrs
        .chunks(56)
        .filter(|h| u64::from_le_bytes(h[32..40].try_into().unwrap()) > 0) // p_filesz
        .map(|h| u64::from_le_bytes(h[8..16].try_into().unwrap()) as usize) // p_offset
        .min()
        .expect("QEMU's core has segments");
    assert!(
        0x40 + phdrs.len() <= first_data,
        "{}: program headers moved to 0x40 would end at {:#x}, over segment data at {first_data:#x}",
        qemu_elf.display(),
        0x40 + phdrs.len()
    );
    d[0x40..0x40 + phdrs.len()].copy_from_slice(&phdrs);
    d[32..40].copy_from_slice(&0x40u64.to_le_bytes()); // e_phoff
    d[40..48].copy_from_slice(&0u64.to_le_bytes()); // e_shoff
    d[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize (QEMU 7.2 writes 8)
    d[58..64].fill(0); // e_shentsize, e_shnum, e_shstrndx
    std::fs::write(out, d).unwrap();
}

fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// makedumpfile's compressions: its flag and name (`makedumpfile -v` says "lzo
/// enabled" ...; zlib is always built in).
const MAKEDUMPFILE_KINDS: [(&str, &str); 4] = [("-c", "zlib"), ("-l", "lzo"), ("-p", "snappy"), ("-z", "zstd")];

/// Every kdump format QEMU's `dump-guest-memory` can write (flattened `kdump-*`, and
/// seekable `kdump-raw-*` since QEMU 8.2).
const QEMU_KDUMP_FORMATS: [&str; 6] =
    ["kdump-zlib", "kdump-lzo", "kdump-snappy", "kdump-raw-zlib", "kdump-raw-lzo", "kdump-raw-snappy"];

/// What Debian's builds of the writers leave out, each with the writer's own report
/// of it. These variants cannot be tested on Debian at all: each one missing says
/// NOT RUN ("not built into Debian's ...") but does not fail the run under CI, since
/// no package on the machine could give it. Any other variant missing is a NOT RUN
/// that fails under CI. When Debian starts building one, it is tested (and this list
/// should lose it).
///
/// - makedumpfile 1.7.2 (Debian 12's `makedumpfile 1:1.7.2-1`): `makedumpfile -v`
///   prints "lzo enabled", "snappy disabled", "zstd disabled".
/// - QEMU (Debian 12's 7.2 and bookworm-backports' 10.0.2): `{"execute":
///   "query-dump-guest-memory-capability"}` returns `{"formats": ["elf",
///   "kdump-zlib", "kdump-raw-zlib", "win-dmp"]}` (10.0.2; 7.2 without the raw one):
///   Debian configures QEMU without LZO and snappy.
const NOT_BUILT_INTO_DEBIAN: &[(&str, &str, &str)] = &[
    ("makedumpfile", "snappy", "`makedumpfile -v` says \"snappy disabled\""),
    ("makedumpfile", "zstd", "`makedumpfile -v` says \"zstd disabled\""),
    ("QEMU", "kdump-lzo", "query-dump-guest-memory-capability does not list it: QEMU built without LZO"),
    ("QEMU", "kdump-snappy", "query-dump-guest-memory-capability does not list it: QEMU built without snappy"),
    ("QEMU", "kdump-raw-lzo", "query-dump-guest-memory-capability does not list it: QEMU built without LZO"),
    ("QEMU", "kdump-raw-snappy", "query-dump-guest-memory-capability does not list it: QEMU built without snappy"),
];

/// The Debian package `program` comes from (`dpkg -S`), if it is one.
fn debian_package(program: &Path) -> Option<String> {
    let out = Command::new("dpkg").arg("-S").arg(program).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success().then(|| text.split(':').next().unwrap_or_default().trim().to_string())
}

/// Say that `variant` of `tool` (at `path`) is missing: NOT RUN, known when Debian's
/// package lacks it (listed in [`NOT_BUILT_INTO_DEBIAN`]), otherwise a NOT RUN that
/// fails under CI.
fn variant_missing(test: &str, tool: &str, path: &Path, variant: &str, why: &str) {
    let part = format!("{test} ({tool} {variant})");
    let known = NOT_BUILT_INTO_DEBIAN.iter().find(|(t, v, _)| *t == tool && *v == variant);
    match (known, debian_package(path)) {
        (Some((_, _, evidence)), Some(pkg)) => common::not_run_known(
            &part,
            &format!(
                "not built into Debian's {tool} (package {pkg}: {evidence}; tests/writers.rs NOT_BUILT_INTO_DEBIAN)"
            ),
        ),
        _ => common::not_run(&part, why),
    }
}

/// makedumpfile's compressions this build has (`makedumpfile -v`), each missing one
/// said NOT RUN.
fn makedumpfile_kinds(test: &str, mdf: &Path) -> Vec<(&'static str, &'static str)> {
    let v = run_ok(Command::new(mdf).arg("-v"), "makedumpfile -v");
    let text = String::from_utf8_lossy(&v.stdout).to_string() + &String::from_utf8_lossy(&v.stderr);
    let on = |name: &str| name == "zlib" || text.lines().any(|l| l.starts_with(name) && l.contains("enabled"));
    let mut kinds = Vec::new();
    for (flag, name) in MAKEDUMPFILE_KINDS {
        if on(name) {
            kinds.push((flag, name));
        } else {
            let why =
                format!("this makedumpfile was built without {name} (`makedumpfile -v`), so `{flag}` is untested");
            variant_missing(test, "makedumpfile", mdf, name, &why);
        }
    }
    kinds
}

#[test]
fn every_writer_gives_the_same_walks() {
    let Some((qemu, mdf)) = tools("every_writer_gives_the_same_walks") else {
        return;
    };
    let t0 = Instant::now();
    let dir = common::tempdir("writers");
    let (m, vas) = guest();
    // Our own raw image: the reference.
    let raw = dir.join("guest.raw");
    m.write_raw(&raw).unwrap();
    // One loader blob per run of stored frames.
    let frames: Vec<u64> = m.stored_frames().map(|f| f.0).collect();
    let mut blobs = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let mut j = i + 1;
        while j < frames.len() && frames[j] == frames[j - 1] + 1 {
            j += 1;
        }
        let mut bytes = Vec::new();
        for f in &frames[i..j] {
            bytes.extend_from_slice(m.page(Mfn(*f)).unwrap());
        }
        let p = dir.join(format!("blob-{:x}.bin", frames[i]));
        std::fs::write(&p, bytes).unwrap();
        blobs.push((p, frames[i] << 12));
        i = j;
    }
    // QEMU: ELF and every kdump format it offers.
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let qemu_elf = dir.join("qemu.elf");
    let mut flattened_zlib = None;
    {
        let mut q = start_guest(&qemu, &dir, &blobs);
        let caps = q.cmd(serde_json::json!({"execute": "query-dump-guest-memory-capability"}));
        let formats: Vec<String> =
            caps["formats"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
        eprintln!("QEMU dump formats: {formats:?}");
        q.dump(&qemu_elf, "elf");
        files.push(("QEMU elf".into(), qemu_elf.clone()));
        // Every kdump format QEMU can write, or NOT RUN for it. QEMU 8.2 and later
        // also write the seekable layout (kdump-raw-*), which
        // scripts/setup-writers.sh installs.
        for f in QEMU_KDUMP_FORMATS.iter().filter(|f| !formats.iter().any(|g| g == *f)) {
            let why = if f.starts_with("kdump-raw-") && !formats.iter().any(|g| g.starts_with("kdump-raw-")) {
                format!("this QEMU (< 8.2) writes no seekable kdump, so {f} is untested")
            } else {
                format!("query-dump-guest-memory-capability does not list {f}, so it is untested")
            };
            variant_missing("every_writer_gives_the_same_walks", "QEMU", &qemu, f, &why);
        }
        for f in formats.iter().filter(|f| f.starts_with("kdump")) {
            let p = dir.join(format!("qemu.{f}"));
            q.dump(&p, f);
            if f == "kdump-zlib" {
                flattened_zlib = Some(p.clone());
            }
            files.push((format!("QEMU {f}"), p));
        }
    }
    // makedumpfile: the seekable layout rebuilt from QEMU's flattened file (-R), and
    // from QEMU's ELF every compression it has, two dump levels, flattened (-F), ELF (-E).
    if let Some(flat) = &flattened_zlib {
        let out = dir.join("mdf-R.kdump");
        let input = std::fs::File::open(flat).unwrap();
        run_ok(Command::new(&mdf).arg("-R").arg(&out).stdin(input), "makedumpfile -R");
        files.push(("makedumpfile -R of QEMU kdump-zlib".into(), out));
    }
    let elf_in = dir.join("qemu-phdrs-at-0x40.elf");
    for_makedumpfile(&qemu_elf, &elf_in);
    let quiet = ["--message-level", "1"];
    for (flag, name) in makedumpfile_kinds("every_writer_gives_the_same_walks", &mdf) {
        for level in ["0", "1"] {
            let out = dir.join(format!("mdf-{name}-d{level}.kdump"));
            run_ok(
                Command::new(&mdf).args([flag, "-d", level]).args(quiet).arg(&elf_in).arg(&out),
                &format!("makedumpfile {flag} -d {level}"),
            );
            files.push((format!("makedumpfile {flag} -d {level}"), out));
        }
        let out = dir.join(format!("mdf-{name}.flat"));
        let o = run_ok(Command::new(&mdf).args(["-F", flag, "-d", "1"]).args(quiet).arg(&elf_in), "makedumpfile -F");
        std::fs::write(&out, o.stdout).unwrap();
        files.push((format!("makedumpfile -F {flag} -d 1"), out));
    }
    let out = dir.join("mdf.elf");
    run_ok(Command::new(&mdf).args(["-E", "-d", "1"]).args(quiet).arg(&elf_in).arg(&out), "makedumpfile -E");
    files.push(("makedumpfile -E -d 1".into(), out));
    eprintln!("{} dumps written in {:?}", files.len(), t0.elapsed());

    // Every file: the format we expect, every non-zero page as we wrote it.
    let reference = Dump::open(&raw, OpenOptions::default()).unwrap();
    let mut kinds_seen = std::collections::BTreeSet::new();
    for (name, p) in &files {
        let d = Dump::open(p, OpenOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(d.warnings.is_empty(), "{name}: {:?}", d.warnings);
        match &d.format {
            Format::Kdump(k) => {
                kinds_seen.insert(format!("kdump{}", if k.flattened.is_some() { " flattened" } else { "" }));
                // QEMU's names: kdump-raw-* is the seekable layout, kdump-* the flattened.
                if let Some(f) = name.strip_prefix("QEMU kdump") {
                    assert_eq!(k.flattened.is_none(), f.starts_with("-raw-"), "{name}");
                }
                let c = d.kdump_census().unwrap();
                assert_eq!((c.unknown, c.unreadable), (0, 0), "{name}");
            }
            f => {
                kinds_seen.insert(f.name().to_string());
            }
        }
        for &f in &frames {
            let want = reference.mem.page(Mfn(f)).unwrap();
            let got = d.mem.page(Mfn(f)).unwrap_or_else(|e| panic!("{name}: frame {f:#x}: {e}"));
            assert!(*got == *want, "{name}: frame {f:#x} differs");
        }
        // QEMU's notes travel with the memory: CPU 0's CR3 (0, at reset) from the QEMU note.
        let cpu0 = d.notes.cpu(0).unwrap_or_else(|| panic!("{name}: no CPU 0 in the notes"));
        assert_eq!(cpu0.cr3, Some(0), "{name}");
    }
    assert!(kinds_seen.contains("elf") && kinds_seen.contains("kdump") && kinds_seen.contains("kdump flattened"));

    // Through the binary: the same listing and walks, line for line, as the raw image.
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let go = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        common::run(&refs)
    };
    let listing = |root: &[&str], p: &Path| {
        let mut a = vec![s(p), "--json".to_string()];
        a.extend(root.iter().map(|x| x.to_string()));
        let r = go(a);
        assert_eq!(r.code, 0, "{}: {}", p.display(), r.stderr);
        r.stdout
    };
    let walks = |root: &[&str], p: &Path| {
        let mut a = vec![s(p), "--json".to_string()];
        a.extend(root.iter().map(|x| x.to_string()));
        for (va, _) in &vas {
            a.extend(["--va".to_string(), format!("{va:#x}")]);
        }
        let r = go(a);
        assert!(r.code <= 1, "{}: {}", p.display(), r.stderr);
        let mut lines = r.json_of("walk");
        // The mis-masking notes say what lies at the wrong address, which depends on
        // what each file covers: everything else must agree.
        lines.iter_mut().for_each(|w| drop(w.as_object_mut().unwrap().remove("notes")));
        // The next command names the file and the root option given: the rest must agree.
        lines.iter_mut().filter_map(|w| w.get_mut("stop").and_then(|s| s.as_object_mut())).for_each(|s| {
            s.remove("next_command");
        });
        lines
    };
    let want_list = listing(&["--cr3", "0"], &raw);
    let want_walks = walks(&["--cr3", "0"], &raw);
    for (i, (va, pa)) in vas.iter().enumerate() {
        let got = want_walks[i]["maddr"].as_str().map(|x| u64::from_str_radix(&x[2..], 16).unwrap());
        assert_eq!(got, *pa, "raw image: {va:#x}");
    }
    assert!(want_list.lines().filter(|l| l.contains("\"mapping\"")).count() >= 4);
    for (name, p) in &files {
        // --cpu 0: the CR3 from the dump's own notes; the listing must match --cr3 0's.
        let mut got = listing(&["--cpu", "0"], p);
        let root_line = got.lines().next().unwrap().to_string();
        assert!(root_line.contains("\"source\":\"CPU 0, QEMU note\""), "{name}: {root_line}");
        let want_root = want_list.lines().next().unwrap();
        got = got.replacen(&root_line, want_root, 1);
        assert!(got == want_list, "{name}: listing differs from the raw image's");
        assert_eq!(walks(&["--cpu", "0"], p), want_walks, "{name}: walks differ from the raw image's");
    }
    // info describes each kind (EM_386 from QEMU; compression counts from makedumpfile).
    let i = go(vec!["info".into(), s(&qemu_elf)]);
    assert!(i.stdout.contains("EM_386"), "{}", i.stdout);
    eprintln!("{} files from QEMU and makedumpfile checked in {:?}", files.len(), t0.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}
