//! End to end: the `xenwalk` binary on bad input.
//!
//! The contract (from the project's issue): for a truncated file, an unknown or
//! unsupported format, a malformed ELF core, an empty file, a directory, a CR3 outside
//! the image, ... the tool prints ONE line on stderr that names the file and says what
//! is wrong (for ELF problems also the file offset, as `offset 0x...`), prints nothing
//! on stdout, exits with code 2, and never panics or hangs. Exit code 1 is reserved for
//! "some VA did not translate" (a result, not an error).
//!
//! Every input is written by the test itself into a private temporary directory
//! (`common::sandbox`). ELF cores are built byte by byte (`common::elf`) from a small
//! valid core (one PT_LOAD of three pages holding a four-level mapping of VA 0), which
//! is first checked to work, and every bad variant is derived from it by changing one
//! thing.
//!
//! kdump-compressed files are written by `xenwalk::fixture::kdump` from the same three
//! pages and derived by patching one header field or one page descriptor.
//!
//! Each test collects every violated case and fails once at the end with the full
//! list, so one run shows all problems, not just the first.

mod common;

use common::elf::*;
use common::sandbox::{Bad, Report, Run, Sandbox, ok_problems, path_str};
use std::fs;
use std::path::Path;

// ---------------------------------------------------------------------------------
// Running the binary (the sandbox and the contract checks: `common::sandbox`)
// ---------------------------------------------------------------------------------

/// The walk used on every file: translate VA 0 from the L4 at 0x1000.
fn walk_args(p: &Path) -> Vec<&str> {
    vec![path_str(p), "--cr3", "0x1000", "--va", "0"]
}

/// Check both `xenwalk FILE --cr3 .. --va 0` and `xenwalk info FILE` on a file that
/// must be rejected when it is opened.
fn check_rejected(report: &mut Report, sb: &Sandbox, case: &str, bad: Bad<'_>) {
    let r = sb.run(&walk_args(bad.path));
    report.check(case, &r, bad.problems(&r));
    let r = sb.run(&["info", path_str(bad.path)]);
    report.check(&format!("{case} (info)"), &r, bad.problems(&r));
}

// ---------------------------------------------------------------------------------
// Building inputs
// ---------------------------------------------------------------------------------

/// Write each malformed ELF `(case, bytes, words the message must contain)` to the
/// sandbox and check that it is rejected with an ELF offset.
fn reject_elf_cases(report: &mut Report, sb: &Sandbox, prefix: &str, cases: &[(&str, Vec<u8>, &[&str])]) {
    for (i, (case, bytes, what)) in cases.iter().enumerate() {
        let p = sb.file(&format!("{prefix}-{i}.elf"), bytes);
        check_rejected(report, sb, case, Bad { path: &p, what, elf_offset: true });
    }
}

/// Three pages of machine memory, 0x1000-0x3fff: a four-level mapping of VA 0.
/// L4 at 0x1000, entry 0 -> L3 at 0x2000, entry 0 -> L2 at 0x3000, entry 0 = a 2 MiB
/// leaf (PS) at machine address 0.
fn page_tables() -> Vec<u8> {
    let mut m = vec![0u8; 0x3000];
    let mut put = |maddr: usize, v: u64| {
        let at = maddr - 0x1000;
        m[at..at + 8].copy_from_slice(&v.to_le_bytes());
    };
    put(0x1000, 0x2000 | 0x3); // L4[0]: present, writable -> L3
    put(0x2000, 0x3000 | 0x3); // L3[0]: present, writable -> L2
    put(0x3000, 0x83); // L2[0]: present, writable, PS: 2 MiB at 0
    m
}

/// File offset of the memory in [`valid_core`]; also its machine address.
const DATA_OFF: usize = 0x1000;
/// Bytes of memory in [`valid_core`].
const DATA_LEN: u64 = 0x3000;

/// The valid small core every ELF variant derives from: one PT_LOAD, file offset
/// 0x1000 = machine address 0x1000, three pages; 0x4000 bytes in all.
fn valid_core() -> Vec<u8> {
    elf64_core(&[Phdr::load(DATA_OFF as u64, 0x1000, DATA_LEN)], &[(DATA_OFF, &page_tables())])
}

/// The same memory as a raw image (file offset = machine address, base 0).
fn valid_raw() -> Vec<u8> {
    let mut r = vec![0u8; DATA_OFF];
    r.extend_from_slice(&page_tables());
    r
}

/// `v` with `bytes` written at `off`.
fn patched(mut v: Vec<u8>, off: usize, bytes: &[u8]) -> Vec<u8> {
    v[off..off + bytes.len()].copy_from_slice(bytes);
    v
}

/// `len` deterministic pseudo-random bytes (xorshift), whose first bytes are no magic
/// the tool knows.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A file of `len` bytes starting with `magic` (the rest zero).
fn with_magic(magic: &[u8], len: usize) -> Vec<u8> {
    let mut v = magic.to_vec();
    v.resize(len, 0);
    v
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

/// The controls: the valid core and raw image work, so every failure below is caused
/// by the one thing each variant changes, not by a broken base file.
#[test]
fn valid_inputs_work() {
    let sb = Sandbox::new("valid_inputs_work");
    let mut report = Report::default();
    let core = sb.file("core.elf", &valid_core());
    let raw = sb.file("mem.raw", &valid_raw());

    // What the page tables say (see `page_tables`): VA 0-0x1fffff is the 2 MiB page at
    // machine address 0; 0x200000 is not mapped (L2 entry 1 is empty).
    let expect = [(0u64, Some(0u64)), (0x1234, Some(0x1234)), (0x1f_ffff, Some(0x1f_ffff)), (0x20_0000, None)];
    for (name, p) in [("valid core", &core), ("raw image", &raw)] {
        let r = sb.run(&walk_args(p));
        report.check(&format!("{name}, --va 0 translates"), &r, ok_problems(&r, 0));
        let mut args = vec![path_str(p), "--cr3", "0x1000", "--json"];
        let vas: Vec<String> = expect.iter().map(|(va, _)| format!("{va:#x}")).collect();
        for va in &vas {
            args.extend(["--va", va.as_str()]);
        }
        let r = sb.run(&args);
        let mut problems = ok_problems(&r, 1);
        problems.extend(translation_problems(&r, &expect));
        report.check(&format!("{name}, the walks give the tables' translations"), &r, problems);
    }
    let r = sb.run(&["info", path_str(&core)]);
    let mut problems = ok_problems(&r, 0);
    if !r.stdout.contains("0x3000") && !r.stdout.contains("12 KiB") {
        problems.push("info does not give the core's 0x3000 bytes of memory".into());
    }
    report.check("valid core, info", &r, problems);
    // A VA that does not translate is a result (1), not bad input (2).
    let r = sb.run(&[path_str(&core), "--cr3", "0x1000", "--va", "0x200000"]);
    report.check("valid core, unmapped VA exits 1", &r, ok_problems(&r, 1));
    report.finish();
}

/// What is wrong with `--json` walks `r` against the expected `(va, maddr)`: one walk
/// line per VA, in order, each with that machine address (or none).
fn translation_problems(r: &Run, expect: &[(u64, Option<u64>)]) -> Vec<String> {
    let walks: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "walk")
        .collect();
    if walks.len() != expect.len() {
        return vec![format!("{} walk lines for {} VAs", walks.len(), expect.len())];
    }
    let mut p = Vec::new();
    for (w, (va, want)) in walks.iter().zip(expect) {
        let got = w["maddr"].as_str().map(|m| u64::from_str_radix(m.trim_start_matches("0x"), 16).unwrap());
        if w["va"].as_str() != Some(format!("{va:#x}").as_str()) || got != *want {
            p.push(format!("VA {va:#x}: expected {want:#x?}, got {w}"));
        }
    }
    p
}

/// A dump cut short (interrupted copy, full disk) at several places: inside the ELF
/// header, inside the program headers, inside the segment data. The last two are
/// page multiples, so they also check that ELF magic wins over the raw-size rule.
#[test]
fn truncated_cores() {
    let sb = Sandbox::new("truncated_cores");
    let mut report = Report::default();
    let core = valid_core();
    let cases: &[(usize, &str, &[&str])] = &[
        (4, "magic only", &["short", "truncated", "header"]),
        (40, "inside the ELF header", &["short", "truncated", "header"]),
        (EHDR_SIZE, "header only, program headers missing", &["program header", "truncated", "end of the file"]),
        (ph(0) + 20, "inside the program header", &["program header", "truncated", "end of the file"]),
        (0x1800, "inside the segment data", &["truncated", "past the end"]),
        (0x3000, "segment data one page short", &["truncated", "past the end"]),
        (0x3fff, "segment data one byte short", &["truncated", "past the end"]),
    ];
    for &(len, where_, what) in cases {
        let p = sb.file(&format!("trunc-{len:#x}.elf"), &core[..len]);
        let case = format!("truncated to {len:#x} bytes ({where_})");
        check_rejected(&mut report, &sb, &case, Bad { path: &p, what, elf_offset: true });
    }
    report.finish();
}

/// Program headers that lie: each must be refused with the offset of the bad header,
/// never trusted (reading past the map would fault; overlapping segments make an
/// address ambiguous; a huge count must not allocate or loop).
#[test]
fn malformed_program_headers() {
    let sb = Sandbox::new("malformed_program_headers");
    let mut report = Report::default();
    let core = valid_core();
    let u16le = |v: u16| v.to_le_bytes().to_vec();
    let u32le = |v: u32| v.to_le_bytes().to_vec();
    let u64le = |v: u64| v.to_le_bytes().to_vec();

    // Two PT_LOADs both claiming machine page 0x2000 (the second from file offset
    // 0x1000): the same address would read different bytes.
    let overlapping = elf64_core(
        &[Phdr::load(DATA_OFF as u64, 0x1000, DATA_LEN), Phdr::load(DATA_OFF as u64, 0x2000, 0x1000)],
        &[(DATA_OFF, &page_tables())],
    );
    // A single PT_NOTE (of zero bytes, which is a valid empty note area): no memory.
    let no_load = patched(core.clone(), ph(0) + P_TYPE, &u32le(PT_NOTE));

    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            // Segment data at 0x2000+0x3000 runs 0x1000 past the end of the file.
            "p_offset + p_filesz past EOF",
            patched(core.clone(), ph(0) + P_OFFSET, &u64le(0x2000)),
            &["past the end", "truncated"],
        ),
        (
            // p_offset + p_filesz overflows u64: must not wrap around to "inside".
            "p_offset + p_filesz overflows",
            patched(core.clone(), ph(0) + P_OFFSET, &u64le(u64::MAX - 0xfff)),
            &["past the end", "truncated", "overflow"],
        ),
        (
            // The file holds more than the segment describes: contradictory.
            "p_filesz > p_memsz",
            patched(core.clone(), ph(0) + P_MEMSZ, &u64le(0x2000)),
            &["p_memsz", "memsz"],
        ),
        (
            // p_paddr + p_memsz past 2^64.
            "p_paddr + p_memsz overflows",
            patched(core.clone(), ph(0) + P_PADDR, &u64le(u64::MAX - 0xfff)),
            &["overflow"],
        ),
        ("two overlapping PT_LOADs", overlapping, &["overlap"]),
        (
            // Program headers of another size cannot be read as ELF64 ones.
            "e_phentsize 32",
            patched(core.clone(), E_PHENTSIZE, &u16le(32)),
            &["program header", "phentsize"],
        ),
        ("e_phoff past EOF", patched(core.clone(), E_PHOFF, &u64le(0x10_0000)), &["program header", "e_phoff"]),
        (
            // 0xfffe * 56 bytes = 3.6 MB of headers claimed by a 16 KiB file.
            "e_phnum 0xfffe in a short file",
            patched(core.clone(), E_PHNUM, &u16le(0xfffe)),
            &["program header", "e_phnum"],
        ),
        (
            // PN_XNUM: the real count is in section header 0, and there is none.
            "e_phnum 0xffff (PN_XNUM) without section headers",
            patched(core.clone(), E_PHNUM, &u16le(0xffff)),
            &["program header", "section", "e_phnum"],
        ),
        (
            "e_phnum 0 (no program headers)",
            patched(core.clone(), E_PHNUM, &u16le(0)),
            &["no program headers", "no memory"],
        ),
        ("zero PT_LOAD (only a PT_NOTE)", no_load, &["PT_LOAD"]),
    ];
    reject_elf_cases(&mut report, &sb, "phdr", &cases);
    report.finish();
}

/// ELF files that are not x86-64 cores: refused early, with the reason.
#[test]
fn wrong_kind_of_elf() {
    let sb = Sandbox::new("wrong_kind_of_elf");
    let mut report = Report::default();
    let core = valid_core();
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            // xen-syms is the usual mistake; the message must say it is not a dump.
            "ET_EXEC (like xen-syms)",
            patched(core.clone(), E_TYPE, &ET_EXEC.to_le_bytes()),
            &["xen-syms"],
        ),
        ("ELF32 class", patched(core.clone(), EI_CLASS, &[1]), &["ELF32", "ELF64"]),
        ("big-endian data byte", patched(core.clone(), EI_DATA, &[2]), &["endian"]),
        // EM_386 is accepted: QEMU writes it into ELF64 cores of a CPU not in long mode.
        ("e_machine EM_AARCH64", patched(core.clone(), E_MACHINE, &EM_AARCH64.to_le_bytes()), &["x86", "machine"]),
    ];
    reject_elf_cases(&mut report, &sb, "kind", &cases);
    report.finish();
}

/// A corrupt note is not fatal: the memory is still readable, so the dump opens, a
/// warning naming the file (and the note's offset) is printed, and walks work.
#[test]
fn corrupt_notes_are_an_error_unless_skipped() {
    let sb = Sandbox::new("corrupt_notes_are_an_error_unless_skipped");
    let mut report = Report::default();
    // A CORE note whose n_descsz claims ~4 GiB, in a 36-byte PT_NOTE at 0x100.
    let mut note = Vec::new();
    note.extend_from_slice(&5u32.to_le_bytes()); // n_namesz ("CORE\0")
    note.extend_from_slice(&0xffff_fff0u32.to_le_bytes()); // n_descsz
    note.extend_from_slice(&1u32.to_le_bytes()); // NT_PRSTATUS
    note.extend_from_slice(b"CORE\0\0\0\0"); // name, padded to 4
    note.extend_from_slice(&[0xaa; 16]); // what little descriptor there is
    let core = elf64_core(
        &[Phdr::note(0x100, note.len() as u64), Phdr::load(DATA_OFF as u64, 0x1000, DATA_LEN)],
        &[(0x100, &note), (DATA_OFF, &page_tables())],
    );
    let p = sb.file("bignote.elf", &core);
    let path = p.display().to_string();
    let warned = |r: &Run| -> Vec<String> {
        let mut v = Vec::new();
        if r.stderr.contains("panicked") {
            v.push("panicked".into());
        }
        if r.code != Some(0) {
            v.push(format!("exit code {:?}, expected 0", r.code));
        }
        let warning = r.stderr.lines().find(|l| l.contains("warning") && l.contains(&path));
        match warning {
            None => v.push("no warning line naming the file on stderr".into()),
            Some(l) if !l.contains("offset 0x") => v.push("warning without the note's file offset".into()),
            Some(_) => {}
        }
        if r.stdout.is_empty() {
            v.push("stdout is empty".into());
        }
        v
    };
    // By default: bad input, one line with the file and the note's offset, exit 2.
    check_rejected(
        &mut report,
        &sb,
        "PT_NOTE with huge n_descsz",
        Bad { path: &p, what: &["notes"], elf_offset: true },
    );
    // With --skip-bad-notes the memory is used and the problem is a warning.
    let mut args = walk_args(&p);
    args.push("--skip-bad-notes");
    let r = sb.run(&args);
    report.check("PT_NOTE with huge n_descsz, walk --skip-bad-notes", &r, warned(&r));
    let r = sb.run(&["info", path_str(&p), "--skip-bad-notes"]);
    report.check("PT_NOTE with huge n_descsz, info --skip-bad-notes", &r, warned(&r));

    // Well-formed note streams whose Xen notes are wrong: a CRASH_INFO too short to
    // hold xen_phys_start, and Xen's note type under another name.
    let xen_note = |name: &[u8], n_type: u32, desc_len: usize| {
        let mut n = Vec::new();
        n.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        n.extend_from_slice(&(desc_len as u32).to_le_bytes());
        n.extend_from_slice(&n_type.to_le_bytes());
        n.extend_from_slice(name);
        n.push(0);
        while n.len() % 4 != 0 {
            n.push(0);
        }
        n.extend(std::iter::repeat_n(0x11u8, desc_len));
        n
    };
    for (case, note, what) in [
        ("Xen CRASH_INFO with a short descsz", xen_note(b"Xen", 0x100_0001, 40), "CRASH_INFO"),
        ("Xen's note type named \"Xem\"", xen_note(b"Xem", 0x100_0001, 80), "Xem"),
    ] {
        let core = elf64_core(
            &[Phdr::note(0x100, note.len() as u64), Phdr::load(DATA_OFF as u64, 0x1000, DATA_LEN)],
            &[(0x100, &note), (DATA_OFF, &page_tables())],
        );
        let p = sb.file(&format!("note-{}.elf", what.to_lowercase()), &core);
        check_rejected(&mut report, &sb, case, Bad { path: &p, what: &[what], elf_offset: true });
    }
    report.finish();
}

/// Files that are not dumps at all, or dumps in formats not read (yet).
#[test]
fn not_a_dump() {
    let sb = Sandbox::new("not_a_dump");
    let mut report = Report::default();

    let empty = sb.file("empty", b"");
    check_rejected(
        &mut report,
        &sb,
        "empty file",
        Bad { path: &empty, what: &["empty", "0 bytes"], elf_offset: false },
    );

    let dir = sb.dir.join("a-directory");
    fs::create_dir(&dir).expect("create directory");
    check_rejected(&mut report, &sb, "a directory", Bad { path: &dir, what: &["directory"], elf_offset: false });

    let missing = sb.missing("no-such-dump");
    check_rejected(
        &mut report,
        &sb,
        "nonexistent file",
        Bad { path: &missing, what: &["no such file", "not found", "cannot open"], elf_offset: false },
    );

    // Unknown magic and a size that is not a whole number of pages: not raw either.
    let random = sb.file("random.bin", &noise(100));
    check_rejected(
        &mut report,
        &sb,
        "100-byte random file",
        Bad { path: &random, what: &["unknown format", "not a raw", "raw"], elf_offset: false },
    );

    // Compressed dumps: one page long, so the magic must win over the raw-size rule.
    for (name, magic) in
        [("xz", &b"\xfd7zXZ\0"[..]), ("gzip", &b"\x1f\x8b\x08\0"[..]), ("zstd", &b"\x28\xb5\x2f\xfd"[..])]
    {
        let p = sb.file(&format!("dump.{name}"), &with_magic(magic, 4096));
        let case = format!("4096-byte {name}-compressed file");
        let bad = Bad { path: &p, what: &["decompress"], elf_offset: false };
        for args in [walk_args(&p), vec!["info", path_str(&p)]] {
            let r = sb.run(&args);
            let mut problems = bad.problems(&r);
            if !r.stderr.contains(name) {
                problems.push(format!("error does not say it is {name}"));
            }
            report.check(&case, &r, problems);
        }
    }

    // A kdump or flattened signature followed by zeros: a kdump error with its offset,
    // not a raw image.
    for (case, magic, what) in [
        ("kdump-compressed (\"KDUMP   \") header of zeros", &b"KDUMP   "[..], &["block size"][..]),
        ("makedumpfile flattened header of zeros", &b"makedumpfile\0"[..], &["flattened header type"][..]),
    ] {
        let p = sb.file(&format!("zeros-{}.dump", magic[0]), &with_magic(magic, 4096));
        check_rejected(&mut report, &sb, case, Bad { path: &p, what, elf_offset: true });
    }

    // Forcing --format elf on a file without ELF magic.
    let raw = sb.file("mem.raw", &valid_raw());
    let r = sb.run(&[path_str(&raw), "--format", "elf", "--cr3", "0x1000", "--va", "0"]);
    let bad = Bad { path: &raw, what: &["ELF magic", "not an ELF"], elf_offset: true };
    report.check("--format elf on a raw image", &r, bad.problems(&r));

    // A raw image whose --base puts its end past 2^64.
    let r = sb.run(&[path_str(&raw), "--base", "0xfffffffffffff000", "--cr3", "0x1000", "--va", "0"]);
    let bad = Bad { path: &raw, what: &["overflow"], elf_offset: false };
    report.check("raw image, --base + size overflows", &r, bad.problems(&r));
    report.finish();
}

/// The file opens but the root asked for cannot be used: bad input (2), not a
/// per-address result (1).
#[test]
fn unusable_root() {
    let sb = Sandbox::new("unusable_root");
    let mut report = Report::default();
    let core = sb.file("core.elf", &valid_core());
    let raw = sb.file("mem.raw", &valid_raw());

    for (case, p) in [("core", &core), ("raw image", &raw)] {
        // 1 GiB: far above the 16 KiB the image covers.
        let r = sb.run(&[path_str(p), "--cr3", "0x40000000", "--va", "0"]);
        let bad = Bad { path: p, what: &["outside", "beyond", "not in the"], elf_offset: false };
        report.check(&format!("--cr3 0x40000000 beyond the {case}"), &r, bad.problems(&r));
    }

    // A raw image has no notes, so there is no CPU 0 to take CR3 from.
    let r = sb.run(&[path_str(&raw), "--cpu", "0", "--va", "0"]);
    let bad = Bad { path: &raw, what: &["notes", "no cpu"], elf_offset: false };
    report.check("--cpu 0 on a raw image", &r, bad.problems(&r));
    report.finish();
}

/// A VA list with one bad line: that line is reported as FILE:LINE on one line of
/// stderr, the other lines still run (same stdout as without the bad line), and the
/// exit code is 2.
#[test]
fn va_file_with_a_bad_line() {
    let sb = Sandbox::new("va_file_with_a_bad_line");
    let mut report = Report::default();
    let core = sb.file("core.elf", &valid_core());
    let good = sb.file("good.txt", b"0\n# comment\n0x1000\n");
    let bad = sb.file("bad.txt", b"0\n# comment\nnot-a-va\n0x1000\n");
    let walk = |list: &Path| sb.run(&[path_str(&core), "--cr3", "0x1000", "--va-file", path_str(list)]);

    let reference = walk(&good);
    report.check("VA list without bad lines", &reference, ok_problems(&reference, 0));

    let r = walk(&bad);
    let mut problems = Vec::new();
    if r.stderr.contains("panicked") {
        problems.push("panicked".into());
    }
    if r.code != Some(2) {
        problems.push(format!("exit code {:?}, expected 2", r.code));
    }
    let where_ = format!("{}:3", bad.display());
    let lines: Vec<&str> = r.stderr.lines().collect();
    if lines.len() != 1 || !lines[0].contains(&where_) {
        problems.push(format!("stderr is not one line naming {where_}"));
    }
    if r.stdout != reference.stdout {
        problems.push("the good lines did not all run (stdout differs from the list without the bad line)".into());
    }
    report.check("VA list with one unparsable line", &r, problems);

    // The VA list itself missing: bad input, and nothing half-printed on stdout.
    let missing = sb.missing("no-such-list.txt");
    let r = walk(&missing);
    let bad_list = Bad { path: &missing, what: &["no such file", "cannot open"], elf_offset: false };
    report.check("nonexistent --va-file", &r, bad_list.problems(&r));
    report.finish();
}

// ---------------------------------------------------------------------------------
// kdump-compressed and flattened files
// ---------------------------------------------------------------------------------

/// The three pages of [`page_tables`] at 0x1000 in a 4-page machine, as a
/// kdump-compressed file (zlib, header version 6; page 0 is the shared zero page).
fn valid_kdump(flattened: bool) -> Vec<u8> {
    use xenwalk::fixture::Machine;
    use xenwalk::fixture::kdump::KdumpOptions;
    let mut m = Machine::new(0x4000);
    m.write(xenwalk::Maddr(0x1000), &page_tables());
    let dir = std::env::temp_dir().join(format!("xenwalk-bad-kdump-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(if flattened { "k.flat" } else { "k.kdump" });
    if flattened {
        m.write_kdump_flattened(&p, &KdumpOptions::default(), 512).expect("write flattened kdump");
    } else {
        m.write_kdump(&p, &KdumpOptions::default()).expect("write kdump");
    }
    let v = fs::read(&p).expect("read kdump");
    let _ = fs::remove_dir_all(&dir);
    v
}

/// File offset of the page descriptor of `pfn` in [`valid_kdump`] (every pfn dumped).
fn kdump_desc(k: &[u8], pfn: usize) -> usize {
    let word = |at: usize| u32::from_le_bytes(k[at..at + 4].try_into().unwrap()) as usize;
    (1 + word(432) + word(436)) * 4096 + 24 * pfn
}

/// Header fields that cannot be true of the file: rejected when opened, with the
/// offset of the field. Per-page damage: the file opens, the walk stops on that page
/// (exit 1, a result), and nothing panics.
#[test]
fn malformed_kdump() {
    let sb = Sandbox::new("malformed_kdump");
    let mut report = Report::default();
    let k = valid_kdump(false);
    let good = sb.file("good.kdump", &k);
    let r = sb.run(&walk_args(&good));
    report.check("valid kdump, --va 0 translates", &r, ok_problems(&r, 0));
    let r = sb.run(&["info", path_str(&good)]);
    report.check("valid kdump, info", &r, ok_problems(&r, 0));
    let flat = sb.file("good.flat", &valid_kdump(true));
    let r = sb.run(&walk_args(&flat));
    report.check("valid flattened kdump, --va 0 translates", &r, ok_problems(&r, 0));

    let sub = 4096;
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("kdump cut inside its header", k[..300].to_vec(), &["truncated"]),
        ("kdump cut inside its bitmaps", k[..0x2800].to_vec(), &["truncated", "past the end"]),
        ("kdump with a negative header_version", patched(k.clone(), 8, &(-1i32).to_le_bytes()), &["header_version"]),
        ("kdump with 8 KiB blocks", patched(k.clone(), 428, &8192i32.to_le_bytes()), &["block size"]),
        ("kdump with 2^31 bitmap blocks", patched(k.clone(), 436, &0x8000_0000u32.to_le_bytes()), &["past the end"]),
        ("kdump with a huge sub-header", patched(k.clone(), 432, &0x7fff_ffffi32.to_le_bytes()), &["past the end"]),
        (
            "kdump whose max_mapnr_64 needs a 128 GiB bitmap",
            patched(k.clone(), sub + 96, &(1u64 << 40).to_le_bytes()),
            &["bitmap"],
        ),
        (
            "kdump with max_mapnr 0 (both fields)",
            patched(patched(k.clone(), sub + 96, &0u64.to_le_bytes()), 440, &0u32.to_le_bytes()),
            &["max_mapnr"],
        ),
        (
            "kdump whose notes lie past the end",
            patched(patched(k.clone(), sub + 48, &(1u64 << 50).to_le_bytes()), sub + 56, &64u64.to_le_bytes()),
            &["notes"],
        ),
        (
            "kdump split part with end_pfn before start_pfn",
            patched(patched(k.clone(), sub + 12, &1u32.to_le_bytes()), sub + 80, &3u64.to_le_bytes()),
            &["split"],
        ),
    ];
    for (i, (case, bytes, what)) in cases.iter().enumerate() {
        let p = sb.file(&format!("bad-{i}.kdump"), bytes);
        check_rejected(&mut report, &sb, case, Bad { path: &p, what, elf_offset: true });
    }

    // Flattened layer damage.
    let f = valid_kdump(true);
    let mut neg = f[..4096].to_vec();
    neg.extend_from_slice(&(-8i64).to_be_bytes());
    neg.extend_from_slice(&8i64.to_be_bytes());
    neg.extend_from_slice(&[0; 8]);
    let mut elf = f[..4096].to_vec();
    elf.extend_from_slice(&0i64.to_be_bytes());
    elf.extend_from_slice(&(valid_core().len() as i64).to_be_bytes());
    elf.extend_from_slice(&valid_core());
    elf.extend_from_slice(&[0xff; 16]);
    let mut huge = f[..4096].to_vec();
    for off in [0i64, 1 << 40] {
        huge.extend_from_slice(&off.to_be_bytes());
        huge.extend_from_slice(&464i64.to_be_bytes());
        huge.extend_from_slice(&k[..464]);
    }
    huge.extend_from_slice(&[0xff; 16]);
    for (case, bytes, what) in [
        ("flattened record with a negative offset", neg, &["negative"][..]),
        ("flattened ELF core", elf, &["not supported"][..]),
        ("flattened kdump whose records claim a 1 TiB file", huge, &["past the end", "larger than the file"][..]),
    ] {
        let p = sb.file(&format!("bad-{}.flat", case.len()), &bytes);
        check_rejected(&mut report, &sb, case, Bad { path: &p, what, elf_offset: true });
    }

    // One page damaged: the L2 table at 0x3000 (pfn 3). The walk of VA 0 stops there
    // with table_unreadable and exits 1; nothing panics.
    let d3 = kdump_desc(&k, 3);
    let data3 = i64::from_le_bytes(k[d3..d3 + 8].try_into().unwrap()) as usize;
    let size3 = u32::from_le_bytes(k[d3 + 8..d3 + 12].try_into().unwrap()) as usize;
    let mut corrupt = k.clone();
    for b in &mut corrupt[data3 + 2..data3 + size3] {
        *b ^= 0x5a;
    }
    let page_cases: Vec<(&str, Vec<u8>)> = vec![
        // Everything from the 4th descriptor on is gone, page data included: the L4
        // page itself is unreadable.
        ("descriptors cut off", k[..d3 + 10].to_vec()),
        ("descriptor pointing past the end of the file", patched(k.clone(), d3, &(1i64 << 40).to_le_bytes())),
        ("descriptor with a negative offset", patched(k.clone(), d3, &(-4096i64).to_le_bytes())),
        ("descriptor size above a page", patched(k.clone(), d3 + 8, &8192u32.to_le_bytes())),
        ("descriptor with unknown compression flags", patched(k.clone(), d3 + 12, &0x40u32.to_le_bytes())),
        ("corrupt zlib data", corrupt),
        ("zlib data labelled snappy", patched(k.clone(), d3 + 12, &4u32.to_le_bytes())),
        ("zlib data labelled LZO", patched(k.clone(), d3 + 12, &2u32.to_le_bytes())),
        ("zlib data labelled zstd", patched(k.clone(), d3 + 12, &0x20u32.to_le_bytes())),
    ];
    for (i, (case, bytes)) in page_cases.iter().enumerate() {
        let p = sb.file(&format!("page-{i}.kdump"), bytes);
        let r = sb.run(&[path_str(&p), "--cr3", "0x1000", "--va", "0", "--json"]);
        let mut problems = Vec::new();
        if r.stderr.contains("panicked") {
            problems.push("panicked".to_string());
        }
        if r.code != Some(1) {
            problems.push(format!("exit code {:?}, expected 1 (a stop)", r.code));
        }
        let want = if i == 0 { "cr3_absent" } else { "table_unreadable" };
        if !r.stdout.contains(&format!("\"reason\":\"{want}\"")) {
            problems.push(format!("the walk does not stop with {want}"));
        }
        report.check(case, &r, problems);
        let r = sb.run(&["info", path_str(&p)]);
        if r.code != Some(0) || r.stderr.contains("panicked") {
            report.check(&format!("{case} (info)"), &r, vec!["info fails on a file with one damaged page".into()]);
        }
    }
    report.finish();
}

// ---------------------------------------------------------------------------------
// xl dump-core guest cores
// ---------------------------------------------------------------------------------

/// The three pages of [`page_tables`] as a PV guest core: pfns 0-2 at mfns 1-3, one
/// vCPU whose CR3 is 0x1000, no shared-info page. Section headers (64 bytes each
/// from 64): 0 null, 1 `.shstrtab`, 2 `.note.Xen`, 3 `.xen_prstatus`, 4 `.xen_pages`,
/// 5 `.xen_p2m`.
fn valid_xl_core() -> Vec<u8> {
    use xenwalk::fixture::xlcore::XlCoreOptions;
    use xenwalk::fixture::{CpuRegs, Machine};
    let mut m = Machine::new(0x4000);
    m.write(xenwalk::Maddr(0x1000), &page_tables());
    let dir = std::env::temp_dir().join(format!("xenwalk-bad-xl-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join("g.core");
    let o = XlCoreOptions {
        pages: vec![(0, 1), (1, 2), (2, 3)],
        vcpus: vec![(CpuRegs { cr3: 0x1000, ..Default::default() }, 0)],
        ..Default::default()
    };
    m.write_xl_core(&p, &o).expect("write xl core");
    let v = fs::read(&p).expect("read xl core");
    let _ = fs::remove_dir_all(&dir);
    v
}

/// Offset of field `at` (24 `sh_offset`, 32 `sh_size`) of section header `i`.
const fn sh(i: usize, at: usize) -> usize {
    64 + 64 * i + at
}

#[test]
fn malformed_xl_core() {
    let sb = Sandbox::new("malformed_xl_core");
    let mut report = Report::default();
    let c = valid_xl_core();
    let good = sb.file("good.core", &c);
    let r = sb.run(&walk_args(&good));
    report.check("valid xl core walks", &r, ok_problems(&r, 0));
    let r = sb.run(&[path_str(&good), "--va", "0"]);
    // (stderr says which root was taken.)
    let problems = if r.code == Some(0) && r.stderr.contains("vCPU 0") { vec![] } else { vec!["no walk".into()] };
    report.check("valid xl core walks from vCPU 0", &r, problems);
    let word = |at: usize| u64::from_le_bytes(c[at..at + 8].try_into().unwrap()) as usize;
    let (pages, p2m) = (word(sh(4, 24)), word(sh(5, 24)));
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("truncated in .xen_pages", c[..pages + 4096].to_vec(), &["truncated", "past the end"]),
        ("section size near 2^64", patched(c.clone(), sh(4, 32), &(u64::MAX - 4095).to_le_bytes()), &["past the end"]),
        ("section offset past EOF", patched(c.clone(), sh(5, 24), &(1u64 << 40).to_le_bytes()), &["past the end"]),
        ("p2m of the wrong size", patched(c.clone(), sh(5, 32), &40u64.to_le_bytes()), &["bytes per page"]),
        ("pages not whole", patched(c.clone(), sh(4, 32), &12000u64.to_le_bytes()), &["whole number"]),
        ("two pages claim one mfn", patched(c.clone(), p2m + 24, &1u64.to_le_bytes()), &["both claim"]),
        ("mfn beyond 52 bits", patched(c.clone(), p2m + 8, &(1u64 << 41).to_le_bytes()), &["52-bit"]),
        ("section headers past EOF", patched(c.clone(), 40, &(1u64 << 32).to_le_bytes()), &["section headers"]),
        ("e_shnum huge", patched(c.clone(), 60, &0xfff0u16.to_le_bytes()), &["section headers"]),
    ];
    reject_elf_cases(&mut report, &sb, "xl", &cases);
    // The header note's magic and page size are checked against the sections.
    let notes = word(sh(2, 24));
    // NONE note (16 bytes), then HEADER: 16-byte note header, then magic, vCPUs, pages, page size.
    let magic = notes + 16 + 16;
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("HVM magic on a PV core", patched(c.clone(), magic, &0xF00F_EBEEu64.to_le_bytes()), &["magic"]),
        ("8 KiB pages", patched(c.clone(), magic + 24, &8192u64.to_le_bytes()), &["page size"]),
    ];
    reject_elf_cases(&mut report, &sb, "xl-note", &cases);
    report.finish();
}
