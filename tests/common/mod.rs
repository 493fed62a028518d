//! Helpers shared by the integration tests: running the binary, temporary
//! directories, and the real machine images in `../shared`; beside them `sandbox`
//! (runs in a private directory, checked against the bad-input contract), `elf`
//! (an ELF core written byte by byte) and `qemu`.
#![allow(dead_code)]

pub mod elf;
pub mod qemu;
pub mod sandbox;
pub mod xen_lab;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xenwalk::Maddr;
use xenwalk::dump::Dump;
use xenwalk::paging::entry::bits;
use xenwalk::paging::{Event, Leaf, Level, WalkOptions, enumerate};

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xenwalk"))
}

/// What a run of the binary produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout lines parsed as JSON.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }
    /// JSON lines of one `type`.
    pub fn json_of(&self, ty: &str) -> Vec<serde_json::Value> {
        self.json().into_iter().filter(|v| v["type"] == ty).collect()
    }
}

/// Run the binary with `args` (and `stdin`, if given), failing the test on a hang.
pub fn run_with_stdin(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xenwalk");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().expect("stdin");
        si.write_all(input.as_bytes()).expect("write stdin");
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("xenwalk {args:?} hung for 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = t_out.join().expect("join").expect("read stdout");
    let stderr = t_err.join().expect("join").expect("read stderr");
    assert!(!stderr.contains("panicked"), "xenwalk {args:?} panicked:\n{stderr}");
    Run { code: status.code().unwrap_or(-1), stdout, stderr }
}

pub fn run(args: &[&str]) -> Run {
    run_with_stdin(args, None)
}

/// A fresh directory for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Say plainly that `test` (or a part of it) did not run and why; under CI
/// (`CI=true`), where every artifact and tool must be present, fail instead.
///
/// The line `NOT RUN: <test>: <why>` goes straight to stderr (libtest captures only
/// `print!`/`eprint!`, so cargo's capture does not hide it), and, when
/// `XENWALK_NOT_RUN_LOG` names a file (scripts/test.sh sets it), is appended there
/// too, for the run's closing count.
pub fn not_run(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}, and CI=true requires it");
    }
    say_not_run(test, why);
}

/// NOT RUN for a part no package on this machine can give (a variant the
/// distribution's build of a tool lacks, listed with its evidence by the caller): said
/// like [`not_run`] and counted, but not a failure under CI.
pub fn not_run_known(test: &str, why: &str) {
    say_not_run(test, why);
}

fn say_not_run(test: &str, why: &str) {
    // One write per line, so lines from parallel tests never interleave.
    let line = format!("NOT RUN: {test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os("XENWALK_NOT_RUN_LOG") {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&log);
        if let Ok(mut f) = f {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// A program on `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()))
}

/// `../shared` beside the project, where the real images live. On a user's clone it
/// is absent: the test says NOT RUN ([`not_run`]; a failure under CI).
pub fn shared(test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("shared");
    if dir.join("dumps").is_dir() {
        return Some(dir);
    }
    not_run(
        test,
        &format!(
            "needs the real machine images in {} (present beside the project on developer machines and in CI, \
             not in a user's clone)",
            dir.display()
        ),
    );
    None
}

/// Decompress an `.xz` file once into the test cache (sparse: zero pages become holes)
/// and return the path of the result.
pub fn unxz_cached(src: &Path, name: &str) -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    let dst = cache.join(name);
    let src_len = std::fs::metadata(src).expect("source").len();
    let stamp = cache.join(format!("{name}.from-{src_len}"));
    if dst.exists() && stamp.exists() {
        return dst;
    }
    // Several test binaries may race here: each writes its own temporary file and
    // renames it into place (rename is atomic; the results are identical).
    static UNIQUE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cache.join(format!("{name}.tmp-{}-{n}", std::process::id()));
    let f = std::fs::File::open(src).expect("open xz");
    let mut dec = xz2::read::XzDecoder::new(std::io::BufReader::new(f));
    let mut out = std::fs::File::create(&tmp).expect("create cache file");
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = dec.read(&mut buf[filled..]).expect("xz decode");
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        let chunk = &buf[..filled];
        if chunk.iter().all(|&b| b == 0) {
            out.seek(SeekFrom::Current(filled as i64)).expect("seek");
        } else {
            out.write_all(chunk).expect("write cache");
        }
        len += filled as u64;
    }
    out.set_len(len).expect("set_len");
    drop(out);
    std::fs::rename(&tmp, &dst).expect("rename cache file");
    std::fs::write(&stamp, b"").expect("stamp");
    dst
}

/// Read a text file, decompressing `.xz`.
pub fn read_text(path: &Path) -> String {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut s = String::new();
    if path.extension().is_some_and(|e| e == "xz") {
        xz2::read::XzDecoder::new(f).read_to_string(&mut s).expect("xz text");
    } else {
        std::io::BufReader::new(f).read_to_string(&mut s).expect("text");
    }
    s
}

/// One leaf of QEMU's `info tlb`: VA, PA, and its flag string (X G P D A C T U W).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuLeaf {
    pub va: u64,
    pub pa: u64,
    pub flags: String,
}

/// Parse QEMU's `info tlb` output (`VA: PA XGPDACTUW`).
pub fn parse_qemu_tlb(text: &str) -> Vec<QemuLeaf> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (va, rest) = l.split_once(": ").unwrap_or_else(|| panic!("bad tlb line {l:?}"));
            let mut it = rest.split_whitespace();
            let pa = it.next().expect("pa");
            let flags = it.next().expect("flags");
            QemuLeaf {
                va: u64::from_str_radix(va.trim(), 16).expect("va"),
                pa: u64::from_str_radix(pa, 16).expect("pa"),
                flags: flags.to_string(),
            }
        })
        .collect()
}

/// Parse `qemu-gva2gpa.txt`: (cpu, va, label, Some(pa) | None for "Unmapped").
pub fn parse_gva2gpa(text: &str) -> Vec<(usize, u64, String, Option<u64>)> {
    text.lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| {
            let mut it = l.split_whitespace();
            let cpu: usize = it.next().expect("cpu")[3..].parse().expect("cpu number");
            let va = u64::from_str_radix(it.next().expect("va").trim_start_matches("0x"), 16).expect("va");
            let label = it.next().expect("label").to_string();
            let rest: Vec<&str> = it.collect();
            let pa = match rest.as_slice() {
                ["Unmapped"] => None,
                ["gpa:", pa] => Some(u64::from_str_radix(pa.trim_start_matches("0x"), 16).expect("pa")),
                other => panic!("bad gva2gpa line {l:?}: {other:?}"),
            };
            (cpu, va, label, pa)
        })
        .collect()
}

/// QEMU's `info tlb` flag string for a leaf (`X G P D A C T U W`, `target/i386/monitor.c`):
/// the leaf entry's own bits; P is PS, which QEMU masks off 4 KiB leaves (where bit
/// 7 is PAT).
pub fn qemu_flags(l: &Leaf) -> String {
    let e = l.entry;
    let f = |bit: u64, c: char| if e.has(bit) { c } else { '-' };
    let ps = if l.level == Level::L1 { '-' } else { f(bits::PS, 'P') };
    [
        f(bits::NX, 'X'),
        f(bits::G, 'G'),
        ps,
        f(bits::D, 'D'),
        f(bits::A, 'A'),
        f(bits::PCD, 'C'),
        f(bits::PWT, 'T'),
        f(bits::US, 'U'),
        f(bits::RW, 'W'),
    ]
    .iter()
    .collect()
}

/// Every leaf of the root at `cr3`, as QEMU's `info tlb` prints them and as
/// xenwalk's enumerator gives them.
pub fn leaves_of(dump: &Dump, cr3: u64) -> (Vec<QemuLeaf>, Vec<Leaf>) {
    let mut q = Vec::new();
    let mut all = Vec::new();
    let s = enumerate(dump.mem.as_ref(), Maddr(cr3), WalkOptions::default(), |ev| {
        match ev {
            Event::Leaf(l) => {
                q.push(QemuLeaf { va: l.va.0, pa: l.page.0, flags: qemu_flags(l) });
                all.push(*l);
            }
            other => panic!("unexpected event on a real root: {other:?}"),
        }
        std::ops::ControlFlow::Continue(())
    });
    assert_eq!(s.leaves.total() as usize, q.len());
    assert_eq!(s.unreadable_tables, 0);
    (q, all)
}

/// `ours` equals QEMU's `info tlb`, leaf for leaf.
pub fn assert_same_leaves(ours: &[QemuLeaf], qemu: &[QemuLeaf], what: &str) {
    assert_eq!(ours.len(), qemu.len(), "{what}: leaf count differs from QEMU's");
    for (i, (a, b)) in ours.iter().zip(qemu).enumerate() {
        assert_eq!(a, b, "{what}: leaf {i} differs from QEMU's");
    }
}

/// The 4.17.7 struct offsets of reference §6 (`../shared/reference/xen-x86-64.md`,
/// made from Xen RELEASE-4.17.7's own `offsetof`, the build of
/// `../shared/xen-4.17/`), keyed as xenwalk keys them (`domain.tot_pages`,
/// `vcpu.runstate.state`, `page_info.count_info`, `p2m_domain.phys_table`): the answer
/// key for members that sit elsewhere in the 4.17.5 DWARF build (the runstate area,
/// `arch_domain` after `vm_assist`).
pub fn reference_4_17_7(shared: &Path) -> std::collections::BTreeMap<String, u64> {
    let text = std::fs::read_to_string(shared.join("reference/xen-x86-64.md")).expect("the reference");
    let sec = text.split("## 6.").nth(1).expect("reference §6").split("\n## 7.").next().unwrap();
    let mut out = std::collections::BTreeMap::new();
    let mut strukt = "";
    let clean = |f: &str| f.trim().trim_matches('`').trim_end_matches("[]").to_string();
    let lines: Vec<&str> = sec.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("**struct ") {
            strukt = rest.split("**").next().unwrap_or("").trim();
            // Prose structs: "`member` @off" pairs in the paragraph, up to the
            // BIGMEM variant's.
            let mut para = rest.to_string();
            for l in lines[i + 1..].iter().take_while(|l| !l.trim().is_empty() && !l.starts_with('|')) {
                para.push(' ');
                para.push_str(l);
            }
            let para = para.split("BIGMEM").next().unwrap();
            let ticks: Vec<&str> = para.split('`').collect();
            for w in (1..ticks.len().saturating_sub(1)).step_by(2) {
                if let Some(off) = ticks[w + 1].trim_start().strip_prefix('@') {
                    let n: String = off.chars().take_while(|c| c.is_ascii_digit()).collect();
                    if let Ok(v) = n.parse() {
                        out.insert(format!("{strukt}.{}", ticks[w]), v);
                    }
                }
            }
            continue;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 4 || !cols[1].starts_with('`') || cols[1].contains('=') || strukt.is_empty() {
            continue;
        }
        let names: Vec<String> = cols[1].split(" / ").map(clean).collect();
        let offs: Vec<u64> = cols[2].split(" / ").filter_map(|o| o.trim().parse().ok()).collect();
        if names.len() != offs.len() {
            continue;
        }
        // "arch.pv.is_32bit / xpti / pcid": later names share the first one's parent.
        let parent = names[0].rsplit_once('.').map(|(p, _)| format!("{p}.")).unwrap_or_default();
        for (i, (n, o)) in names.iter().zip(&offs).enumerate() {
            let n = if i > 0 && !n.contains('.') { format!("{parent}{n}") } else { n.clone() };
            out.insert(format!("{strukt}.{n}"), *o);
            if n == "runstate" {
                out.insert(format!("{strukt}.runstate.state"), *o); // `state` at +0
            }
        }
    }
    out
}
