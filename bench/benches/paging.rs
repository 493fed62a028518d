//! xenwalk's figures, side by side with memflow 0.2 (BENCHMARKS.md says how to run it
//! and what bounds each figure). A plain `harness = false` binary, not criterion or
//! divan: the figures wanted are not repeated micro-iterations of warm code but
//! first ("cold") passes, peak resident memory, whole processes (the CLI end to end)
//! and two libraries in separate processes over the same files, printed side by side
//! with ratios and leaf counts. Each measurement that reports memory runs in a fresh
//! child process (this same binary, re-executed), so one library's pages, caches
//! and buffers never count in the other's figures.
//!
//! Usage: `cargo bench -p xenwalk-bench [-- OPTIONS]`
//!   --only a,b,c,d,dom0,dom0-kdump,custom   scenarios to run (default: all available)
//!   --image FILE --cr3 HEX [--va-file FILE]  also a dump of your own (raw for memflow)
//!   --vas N          random VAs per run (default 1,000,000)
//!   --reps N         warm repetitions, the median is shown (default 5)
//!   --no-memflow     xenwalk only
//!   --dir DIR        where synthetic images are built and kept (default target/bench-images)
//! The same settings as environment variables: XENWALK_BENCH_ONLY, XENWALK_BENCH_IMAGE,
//! XENWALK_BENCH_CR3, XENWALK_BENCH_VAS_FILE, XENWALK_BENCH_VAS, XENWALK_BENCH_REPS,
//! XENWALK_BENCH_DIR.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufWriter, Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use xenwalk::dump::{Dump, OpenOptions};
use xenwalk::fixture::kdump::KdumpOptions;
use xenwalk::fixture::{Machine, XEN_TABLE};
use xenwalk::mem::resident;
use xenwalk::paging::entry::bits;
use xenwalk::paging::{
    EnumerateOptions, Event, Resolved, TableEvent, Translator, WalkOptions, enumerate, enumerate_tables_with,
    enumerate_with, walk,
};
use xenwalk::{Maddr, Mfn, Vaddr};

const GIB: u64 = 1 << 30;
/// VAs per call of memflow's `virt_to_phys_list`: one. In larger batches memflow's
/// equal-neighbour heuristic fails a quarter to a third of the VAs of a dom0 root
/// (and random batches run 25x slower); per-VA calls answer all of them. The batched
/// figure is printed too, with its failures.
const MF_CHUNK: usize = 1;
/// The batch size of that extra figure.
const MF_BATCH: usize = 16;
/// Bump when a synthetic image changes: cached images with another stamp are rebuilt.
const IMAGE_VERSION: &str = "v1";

fn main() -> ExitCode {
    if std::env::var_os("XENWALK_BENCH_AS_CLI").is_some() {
        // The CLI end to end: exactly what src/main.rs runs. Its peak RSS is this
        // process's own VmHWM (wait4's ru_maxrss would include the parent's RSS:
        // Linux records the pre-exec address space's high-water mark at exec).
        let code = xenwalk::cli::main();
        if let (Some(path), Some(r)) = (std::env::var_os("XENWALK_BENCH_RSS_FILE"), resident::rss()) {
            let _ = std::fs::write(path, r.peak.to_string());
        }
        return code;
    }
    if let Ok(which) = std::env::var("XENWALK_BENCH_CHILD") {
        let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
        return match child(&which, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench child {which}: {e}");
                ExitCode::from(2)
            }
        };
    }
    match parent() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(2)
        }
    }
}

type Res<T> = Result<T, String>;

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

// ---------------------------------------------------------------- settings

struct Settings {
    only: Option<Vec<String>>,
    image: Option<(PathBuf, u64, Option<PathBuf>)>,
    vas: usize,
    reps: usize,
    memflow: bool,
    dir: PathBuf,
}

fn settings() -> Res<Settings> {
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut take = |name: &str, env: &str| -> Option<String> {
        if let Some(i) = args.iter().position(|a| a == name) {
            let v = args.get(i + 1).cloned();
            args.drain(i..(i + 2).min(args.len()));
            return v;
        }
        std::env::var(env).ok()
    };
    let only = take("--only", "XENWALK_BENCH_ONLY").map(|s| s.split(',').map(str::to_string).collect());
    let image = take("--image", "XENWALK_BENCH_IMAGE");
    let cr3 = take("--cr3", "XENWALK_BENCH_CR3");
    let va_file = take("--va-file", "XENWALK_BENCH_VAS_FILE");
    let vas = take("--vas", "XENWALK_BENCH_VAS").map_or(Ok(1_000_000), |v| v.parse().map_err(err("--vas")))?;
    let reps = take("--reps", "XENWALK_BENCH_REPS").map_or(Ok(5), |v| v.parse().map_err(err("--reps")))?;
    let dir =
        take("--dir", "XENWALK_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| target_dir().join("bench-images"));
    let memflow = !args.iter().any(|a| a == "--no-memflow");
    let image = match (image, cr3) {
        (Some(i), Some(c)) => Some((PathBuf::from(i), xenwalk::parse::hex_u64(&c)?, va_file.map(PathBuf::from))),
        (Some(_), None) => return Err("--image needs --cr3".into()),
        _ => None,
    };
    Ok(Settings { only, image, vas, reps: reps.max(1), memflow, dir })
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"))
}

// ---------------------------------------------------------------- scenarios

struct Scenario {
    key: &'static str,
    title: String,
    image: PathBuf,
    cr3: u64,
    /// A raw file of the same memory, for memflow (it reads no kdump).
    raw_for_memflow: Option<PathBuf>,
    /// The raw scenario this one is a compressed copy of (for the kdump/raw ratio).
    copy_of: Option<&'static str>,
    va_file: Option<PathBuf>,
}

fn parent() -> Res<()> {
    let s = settings()?;
    std::fs::create_dir_all(&s.dir).map_err(err("bench dir"))?;
    machine_header();
    let want = |k: &str| s.only.as_ref().is_none_or(|o| o.iter().any(|x| x == k));
    let mut scenarios = Vec::new();
    if want("a") || want("c") {
        let (p, cr3) = build(&s.dir, "directmap-4k.raw", build_4k)?;
        if want("a") {
            scenarios.push(Scenario {
                key: "a",
                title: "(a) 64 GiB sparse raw image, Xen direct map of all 64 GiB in 4 KiB pages".into(),
                image: p.clone(),
                cr3,
                raw_for_memflow: Some(p.clone()),
                copy_of: None,
                va_file: None,
            });
        }
        if want("c") {
            let k = kdump_copy(&s.dir, &p, "directmap-4k.kdump")?;
            scenarios.push(Scenario {
                key: "c",
                title: "(c) kdump-compressed (zlib) copy of (a)".into(),
                image: k,
                cr3,
                raw_for_memflow: Some(p),
                copy_of: Some("a"),
                va_file: None,
            });
        }
    }
    if want("b") {
        let (p, cr3) = build(&s.dir, "directmap-large.raw", build_large)?;
        scenarios.push(Scenario {
            key: "b",
            title: "(b) 64 GiB sparse raw image, direct map in 1 GiB (first 32 GiB) and 2 MiB pages".into(),
            image: p.clone(),
            cr3,
            raw_for_memflow: Some(p),
            copy_of: None,
            va_file: None,
        });
    }
    if want("d") {
        let (p, cr3) = build(&s.dir, "identical.raw", build_identical)?;
        scenarios.push(Scenario {
            key: "d",
            title: "(d) a root full of identical entries: 2 L4 slots -> one L3 (16 x the same L2) -> one L2 \
                    (512 x the same L1) -> one L1 (512 x the same page)"
                .into(),
            image: p.clone(),
            cr3,
            raw_for_memflow: Some(p),
            copy_of: None,
            va_file: None,
        });
    }
    if want("dom0") || want("dom0-kdump") {
        match dom0_raw(&s.dir)? {
            None => println!("\nNOT RUN: dom0 scenarios: ../shared/dumps/xen-4.17-dom0 is absent"),
            Some(raw) => {
                if want("dom0") {
                    scenarios.push(Scenario {
                        key: "dom0",
                        title: "real Xen 4.17 PV dom0 process root (1 GiB raw image, CR3 0x363ba000)".into(),
                        image: raw.clone(),
                        cr3: 0x363b_a000,
                        raw_for_memflow: Some(raw.clone()),
                        copy_of: None,
                        va_file: None,
                    });
                }
                if want("dom0-kdump") {
                    let k = kdump_copy(&s.dir, &raw, "dom0.kdump")?;
                    scenarios.push(Scenario {
                        key: "dom0-kdump",
                        title: "kdump-compressed (zlib) copy of the real dom0 image".into(),
                        image: k,
                        cr3: 0x363b_a000,
                        raw_for_memflow: Some(raw),
                        copy_of: Some("dom0"),
                        va_file: None,
                    });
                }
            }
        }
    }
    if let Some((image, cr3, va_file)) = &s.image {
        if want("custom") || s.only.is_none() {
            scenarios.push(Scenario {
                key: "custom",
                title: format!("{} (CR3 {cr3:#x})", image.display()),
                image: image.clone(),
                cr3: *cr3,
                raw_for_memflow: is_raw(image).then(|| image.clone()),
                copy_of: None,
                va_file: va_file.clone(),
            });
        }
    }
    let mut done: BTreeMap<&str, Figures> = BTreeMap::new();
    let mut summary = Vec::new();
    for sc in &scenarios {
        let f = run_scenario(&s, sc, &done)?;
        summary.push((sc.key, f.clone()));
        done.insert(sc.key, f);
    }
    print_summary(&summary);
    Ok(())
}

fn is_raw(p: &Path) -> bool {
    let mut head = [0u8; 8];
    let n = File::open(p).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    n == 8 && &head[..4] != b"\x7fELF" && &head != b"KDUMP   " && &head[..8] != b"makedump"
}

fn machine_header() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("xenwalk benchmarks: {cores} cores ({cpu}), rayon threads {}", rayon_threads());
    println!("(release build; images in the page cache; \"cold\" = a fresh open and translator, pages not yet mapped)");
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

// ---------------------------------------------------------------- images

/// Build (once) a synthetic image; returns its path and CR3.
fn build(dir: &Path, name: &str, make: fn() -> (Machine, Maddr)) -> Res<(PathBuf, u64)> {
    let path = dir.join(name);
    let meta = dir.join(format!("{name}.{IMAGE_VERSION}.cr3"));
    if let (true, Ok(text)) = (path.exists(), std::fs::read_to_string(&meta)) {
        return Ok((path, xenwalk::parse::hex_u64(&text)?));
    }
    let t = Instant::now();
    eprint!("building {name} ...");
    let (m, root) = make();
    m.write_raw(&path).map_err(err(name))?;
    std::fs::write(&meta, format!("{:#x}", root.0)).map_err(err("meta"))?;
    eprintln!(" {:.1} s", t.elapsed().as_secs_f64());
    Ok((path, root.0))
}

/// A page of 512 entries.
fn table_page(entry: impl Fn(u64) -> u64) -> [u8; 4096] {
    let mut p = [0u8; 4096];
    for (i, c) in p.chunks_exact_mut(8).enumerate() {
        c.copy_from_slice(&entry(i as u64).to_le_bytes());
    }
    p
}

/// Xen's direct-map leaves: `__PAGE_HYPERVISOR_RW` (P RW A D NX).
const LEAF: u64 = bits::P | bits::RW | bits::A | bits::D | bits::NX;

/// (a): 64 GiB of RAM, all of it in the direct map in 4 KiB pages (16,777,216 leaves,
/// 32,768 L1 tables).
fn build_4k() -> (Machine, Maddr) {
    let mut m = Machine::new(64 * GIB);
    let l4 = m.alloc();
    let l3 = m.alloc();
    let mut l4p = [0u8; 4096];
    l4p[8 * 262..8 * 263].copy_from_slice(&(l3.0 | XEN_TABLE).to_le_bytes());
    m.set_page(l4.mfn(), &l4p);
    let mut l3e = Vec::new();
    for g in 0..64u64 {
        let l2 = m.alloc();
        l3e.push(l2.0 | XEN_TABLE);
        let mut l2e = Vec::new();
        for j in 0..512u64 {
            let l1 = m.alloc();
            l2e.push(l1.0 | XEN_TABLE);
            let base = (g << 30) | (j << 21);
            m.set_page(l1.mfn(), &table_page(|k| (base | k << 12) | LEAF));
        }
        m.set_page(l2.mfn(), &table_page(|j| l2e[j as usize]));
    }
    m.set_page(l3.mfn(), &table_page(|g| l3e.get(g as usize).copied().unwrap_or(0)));
    (m, l4)
}

/// (b): the same 64 GiB, the first 32 GiB in 1 GiB pages, the rest in 2 MiB pages.
fn build_large() -> (Machine, Maddr) {
    let mut m = Machine::new(64 * GIB);
    let l4 = m.alloc();
    let l3 = m.alloc();
    let mut l4p = [0u8; 4096];
    l4p[8 * 262..8 * 263].copy_from_slice(&(l3.0 | XEN_TABLE).to_le_bytes());
    m.set_page(l4.mfn(), &l4p);
    let mut l3e = Vec::new();
    for g in 0..64u64 {
        if g < 32 {
            l3e.push((g << 30) | LEAF | bits::PS);
        } else {
            let l2 = m.alloc();
            l3e.push(l2.0 | XEN_TABLE);
            m.set_page(l2.mfn(), &table_page(|j| ((g << 30) | j << 21) | LEAF | bits::PS));
        }
    }
    m.set_page(l3.mfn(), &table_page(|g| l3e.get(g as usize).copied().unwrap_or(0)));
    (m, l4)
}

/// (d): identical entries at every level (8,388,608 leaves, all of one page).
fn build_identical() -> (Machine, Maddr) {
    let mut m = Machine::new(64 << 20);
    let l4 = m.alloc();
    let l3 = m.alloc();
    let l2 = m.alloc();
    let l1 = m.alloc();
    let page = m.alloc();
    m.set_page(l4.mfn(), &table_page(|i| if i == 256 || i == 257 { l3.0 | XEN_TABLE } else { 0 }));
    m.set_page(l3.mfn(), &table_page(|i| if i < 16 { l2.0 | XEN_TABLE } else { 0 }));
    m.set_page(l2.mfn(), &table_page(|_| l1.0 | XEN_TABLE));
    m.set_page(l1.mfn(), &table_page(|_| page.0 | bits::P | bits::A));
    (m, l4)
}

/// A kdump-compressed (zlib) copy of a raw image, built once.
fn kdump_copy(dir: &Path, raw: &Path, name: &str) -> Res<PathBuf> {
    let path = dir.join(name);
    let stamp = dir.join(format!("{name}.{IMAGE_VERSION}.done"));
    if path.exists() && stamp.exists() {
        return Ok(path);
    }
    let t = Instant::now();
    eprint!("building {name} ...");
    let len = std::fs::metadata(raw).map_err(err("raw"))?.len();
    let mut m = Machine::new(len);
    let mut f = File::open(raw).map_err(err("raw"))?;
    // Only the non-zero pages are stored; the rest reads as zero.
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    loop {
        let n = read_full(&mut f, &mut buf).map_err(err("raw"))?;
        if n == 0 {
            break;
        }
        for (i, p) in buf[..n].chunks_exact(4096).enumerate() {
            if p.iter().any(|&b| b != 0) {
                let page: &[u8; 4096] = p.try_into().map_err(err("page"))?;
                m.set_page(Mfn(at / 4096 + i as u64), page);
            }
        }
        at += n as u64;
        // Skip the holes of a sparse file quickly.
        if at < len && n == buf.len() {
            continue;
        }
    }
    m.write_kdump(&path, &KdumpOptions::default()).map_err(err(name))?;
    std::fs::write(&stamp, b"").map_err(err("stamp"))?;
    eprintln!(" {:.1} s", t.elapsed().as_secs_f64());
    Ok(path)
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The real dom0 image, decompressed once (the tests' cache is used if present).
fn dom0_raw(dir: &Path) -> Res<Option<PathBuf>> {
    let shared = std::env::var_os("XENWALK_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared"));
    let xz = shared.join("dumps/xen-4.17-dom0/memory.raw.xz");
    if !xz.exists() {
        return Ok(None);
    }
    let cached = target_dir().join("tmp/shared-cache/xen-4.17-dom0.raw");
    if cached.exists() && std::fs::metadata(&cached).map(|m| m.len()).unwrap_or(0) == GIB {
        return Ok(Some(cached));
    }
    let out = dir.join("xen-4.17-dom0.raw");
    if out.exists() && std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) == GIB {
        return Ok(Some(out));
    }
    eprint!("decompressing {} ...", xz.display());
    let mut dec = xz2::read::XzDecoder::new(std::io::BufReader::new(File::open(&xz).map_err(err("xz"))?));
    let mut o = File::create(&out).map_err(err("dom0 raw"))?;
    std::io::copy(&mut dec, &mut o).map_err(err("xz"))?;
    eprintln!(" done");
    Ok(Some(out))
}

// ---------------------------------------------------------------- VA sets

/// Random mapped VAs (a uniform sample of the leaves, a random byte in each, in random
/// order) and sequential ones (4 KiB steps through the leaves in VA order), written
/// as binary (for the libraries) and text (for the CLI).
struct VaSets {
    random_bin: PathBuf,
    random_txt: PathBuf,
    seq_bin: PathBuf,
    leaves: u64,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn va_sets(s: &Settings, sc: &Scenario) -> Res<VaSets> {
    let stem = s.dir.join(format!("vas-{}-{}-{IMAGE_VERSION}", sc.key, s.vas));
    let sets = VaSets {
        random_bin: stem.with_extension("random.bin"),
        random_txt: stem.with_extension("random.txt"),
        seq_bin: stem.with_extension("seq.bin"),
        leaves: 0,
    };
    let dump = Dump::open(&sc.image, OpenOptions::default()).map_err(err("open"))?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ sc.cr3);
    let n = s.vas;
    let mut sample: Vec<u64> = Vec::with_capacity(n);
    let mut seq: Vec<u64> = Vec::with_capacity(n);
    let mut seen = 0u64;
    let summary =
        enumerate_with(dump.mem.as_ref(), Maddr(sc.cr3), WalkOptions::default(), &EnumerateOptions::default(), |ev| {
            if let Event::Leaf(l) = ev {
                let va = l.va.0 + rng.next() % l.size();
                if sample.len() < n {
                    sample.push(va);
                } else {
                    let j = rng.next() % (seen + 1);
                    if let Some(slot) = sample.get_mut(j as usize) {
                        *slot = va;
                    }
                }
                seen += 1;
                let mut off = 0;
                while seq.len() < n && off < l.size() {
                    seq.push(l.va.0 + off);
                    off += 4096;
                }
            }
            ControlFlow::Continue(())
        });
    if let Some(file) = &sc.va_file {
        sample = read_va_text(file)?;
    }
    // Fill up to n by repeating (tiny roots), then shuffle.
    let k = sample.len();
    for i in 0..n.saturating_sub(k) {
        if k > 0 {
            sample.push(sample[i % k]);
        }
    }
    for i in (1..sample.len()).rev() {
        sample.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    write_bin(&sets.random_bin, &sample)?;
    write_bin(&sets.seq_bin, &seq)?;
    let mut t = BufWriter::new(File::create(&sets.random_txt).map_err(err("vas"))?);
    for v in &sample {
        writeln!(t, "{v:#x}").map_err(err("vas"))?;
    }
    t.flush().map_err(err("vas"))?;
    Ok(VaSets { leaves: summary.leaves.total(), ..sets })
}

fn read_va_text(p: &Path) -> Res<Vec<u64>> {
    let f = File::open(p).map_err(err("va file"))?;
    let mut v = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(err("va file"))?;
        if let xenwalk::parse::VaLine::Value(x) = xenwalk::parse::va_line_bytes(line.as_bytes()) {
            v.push(x);
        }
    }
    Ok(v)
}

fn write_bin(p: &Path, v: &[u64]) -> Res<()> {
    let mut w = BufWriter::new(File::create(p).map_err(err("bin"))?);
    for x in v {
        w.write_all(&x.to_le_bytes()).map_err(err("bin"))?;
    }
    w.flush().map_err(err("bin"))
}

fn read_bin(p: &Path) -> Res<Vec<u64>> {
    let b = std::fs::read(p).map_err(err("bin"))?;
    Ok(b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
}

// ---------------------------------------------------------------- measuring

/// One library's (or the CLI's) figures for one scenario.
#[derive(Clone, Debug, Default)]
struct Figures {
    x: BTreeMap<String, f64>,
}

impl Figures {
    fn get(&self, k: &str) -> Option<f64> {
        self.x.get(k).copied()
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Run this binary as a child measuring `which`, and parse its `key value` lines.
fn measure(which: &str, args: &[String]) -> Res<Figures> {
    let exe = std::env::current_exe().map_err(err("exe"))?;
    let out = Command::new(exe)
        .args(args)
        .env("XENWALK_BENCH_CHILD", which)
        .stderr(Stdio::inherit())
        .output()
        .map_err(err("spawn"))?;
    if !out.status.success() {
        return Err(format!("{which} child failed: {}", out.status));
    }
    let mut f = Figures::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((k, v)) = line.split_once(' ') {
            if let Ok(v) = v.trim().parse() {
                f.x.insert(k.to_string(), v);
            }
        }
    }
    Ok(f)
}

/// The CLI end to end: wall time (median of `reps`) and peak RSS (max of the
/// process's own VmHWM) of `xenwalk ARGS > /dev/null`.
fn cli(args: &[String], reps: usize) -> Res<(Duration, u64, i32)> {
    let exe = std::env::current_exe().map_err(err("exe"))?;
    let rss_file = std::env::temp_dir().join(format!("xenwalk-bench-rss-{}", std::process::id()));
    let mut times = Vec::new();
    let mut rss = 0u64;
    let mut code = 0;
    for _ in 0..reps {
        let null = File::create("/dev/null").map_err(err("/dev/null"))?;
        let t = Instant::now();
        let status = Command::new(&exe)
            .args(args)
            .env("XENWALK_BENCH_AS_CLI", "1")
            .env("XENWALK_BENCH_RSS_FILE", &rss_file)
            .stdin(Stdio::null())
            .stdout(null)
            .stderr(Stdio::null())
            .status()
            .map_err(err("spawn cli"))?;
        times.push(t.elapsed());
        code = status.code().unwrap_or(-1);
        let peak = std::fs::read_to_string(&rss_file).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        rss = rss.max(peak);
    }
    let _ = std::fs::remove_file(&rss_file);
    Ok((median(times), rss, code))
}

fn run_scenario(s: &Settings, sc: &Scenario, done: &BTreeMap<&str, Figures>) -> Res<Figures> {
    println!("\n== {} ==", sc.title);
    let size = std::fs::metadata(&sc.image).map(|m| m.len()).unwrap_or(0);
    let vas = va_sets(s, sc)?;
    println!(
        "image {} ({}, {} allocated on disk); {} leaves",
        sc.image.display(),
        human(size),
        human(on_disk(&sc.image)),
        group(vas.leaves)
    );
    let common = vec![
        sc.image.display().to_string(),
        format!("{:#x}", sc.cr3),
        vas.random_bin.display().to_string(),
        vas.seq_bin.display().to_string(),
        s.reps.to_string(),
    ];
    let xw = measure("xenwalk", &common)?;
    let mf = match (&sc.raw_for_memflow, s.memflow, sc.copy_of) {
        (Some(raw), true, None) => {
            let mut a = common.clone();
            a[0] = raw.display().to_string();
            Some(measure("memflow", &a)?)
        }
        _ => None,
    };
    let img = sc.image.display().to_string();
    let cr3 = format!("{:#x}", sc.cr3);
    let (t_va, rss_va, code_va) = cli(
        &[
            img.clone(),
            "--cr3".into(),
            cr3.clone(),
            "--brief".into(),
            "--va-file".into(),
            vas.random_txt.display().to_string(),
        ],
        3,
    )?;
    let (t_list, rss_list, code_list) = cli(&[img, "--cr3".into(), cr3, "--brief".into()], 3)?;

    let mut f = xw.clone();
    f.x.insert("cli_va_s".into(), secs(t_va));
    f.x.insert("cli_va_rss".into(), rss_va as f64);
    f.x.insert("cli_list_s".into(), secs(t_list));
    f.x.insert("cli_list_rss".into(), rss_list as f64);
    if let Some(m) = &mf {
        for (k, v) in &m.x {
            f.x.insert(format!("mf_{k}"), *v);
        }
    }

    let n = s.vas as f64;
    let rate = |fig: &Figures, k: &str| fig.get(k).map(|t| n / t / 1e6);
    let row = |name: &str, a: Option<f64>, b: Option<f64>, unit: &str| {
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} {unit}"));
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => String::new(),
        };
        println!("  {name:<42} {:>16} {:>16} {:>10}", fmt(a), fmt(b), ratio);
    };
    println!("  {:<42} {:>16} {:>16} {:>10}", "", "xenwalk", "memflow", "xw/mf");
    let mfv = |k: &str| mf.as_ref().and_then(|m| m.get(k));
    row("open (ms)", xw.get("open_s").map(|t| t * 1e3), mfv("open_s").map(|t| t * 1e3), "ms");
    row(
        "random translations, cold (M/s)",
        rate(&xw, "random_cold_s"),
        mf.as_ref().and_then(|m| rate(m, "random_cold_s")),
        "M/s",
    );
    row(
        "random translations, warm (M/s)",
        rate(&xw, "random_warm_s"),
        mf.as_ref().and_then(|m| rate(m, "random_warm_s")),
        "M/s",
    );
    let seq_n = xw.get("seq_n").unwrap_or(n);
    let seq_rate = |fig: &Figures, k: &str| fig.get(k).map(|t| seq_n / t / 1e6);
    row(
        "sequential translations, warm (M/s)",
        seq_rate(&xw, "seq_warm_s"),
        mf.as_ref().and_then(|m| seq_rate(m, "seq_warm_s")),
        "M/s",
    );
    row("  (xenwalk: lean translate_many(), cold)", rate(&xw, "lean_cold_s"), None, "M/s");
    row("  (xenwalk: lean translate_many(), warm)", rate(&xw, "lean_warm_s"), None, "M/s");
    row("  (xenwalk: translate() one VA at a time)", rate(&xw, "random_single_s"), None, "M/s");
    row("  (xenwalk: walk() per VA, no cache/budget)", rate(&xw, "random_walk_s"), None, "M/s");
    row(
        "whole-space enumeration, tables, cold (ms)",
        xw.get("enum_cold_s").map(|t| t * 1e3),
        mfv("enum_cold_s").map(|t| t * 1e3),
        "ms",
    );
    row(
        "whole-space enumeration, tables, warm (ms)",
        xw.get("enum_warm_s").map(|t| t * 1e3),
        mfv("enum_warm_s").map(|t| t * 1e3),
        "ms",
    );
    row("  (xenwalk: one thread, warm)", xw.get("enum_seq_budget_s").map(|t| t * 1e3), None, "ms");
    row("  (xenwalk: a callback per leaf, parallel, warm)", xw.get("enum_leaf_warm_s").map(|t| t * 1e3), None, "ms");
    row("  (xenwalk: enumerate(), per leaf, one thread)", xw.get("enum_seq_s").map(|t| t * 1e3), None, "ms");
    let lps = |fig: &Figures, k: &str, l: &str| match (fig.get(k), fig.get(l)) {
        (Some(t), Some(l)) if t > 0.0 => Some(l / t / 1e6),
        _ => None,
    };
    row(
        "leaves/s, warm (M/s)",
        lps(&xw, "enum_warm_s", "leaves"),
        mf.as_ref().and_then(|m| lps(m, "enum_warm_s", "leaves")),
        "M/s",
    );
    println!(
        "  {:<42} {:>16} {:>16}",
        "leaves found",
        group(xw.get("leaves").unwrap_or(0.0) as u64),
        mfv("leaves").map_or("-".into(), |l| group(l as u64))
    );
    if let (Some(l), Some(all)) = (mfv("leaves"), xw.get("leaves")) {
        if l < all {
            println!(
                "  memflow's enumeration is INCOMPLETE: it misses {} of {} leaves ({:.1} %)",
                group((all - l) as u64),
                group(all as u64),
                100.0 * (all - l) / all
            );
        }
    }
    if let Some(m) = &mf {
        if let (Some(t), Some(fl)) = (m.get("random_batched_s"), m.get("random_batched_failed")) {
            println!(
                "  memflow batched ({MF_BATCH} VAs per call) instead: {:.2} M/s, but {} of {} VAs FAIL (equal-neighbour heuristic)",
                n / t / 1e6,
                group(fl as u64),
                group(n as u64)
            );
        }
        println!(
            "  memflow's random translations (one VA per call): {} of {} answered, {} failed, {} differ from xenwalk's",
            group(m.get("random_ok").unwrap_or(0.0) as u64),
            group(n as u64),
            group(m.get("random_failed").unwrap_or(0.0) as u64),
            group(m.get("random_differ").unwrap_or(0.0) as u64)
        );
    }
    println!(
        "  {:<42} {:>16} {:>16}",
        "peak RSS in process, budgeted (MiB)",
        mib(xw.get("peak_rss")),
        mf.as_ref().map_or("-".into(), |m| mib(m.get("peak_rss")))
    );
    println!(
        "  {:<42} {:>16} {:>16}",
        "  of which the harness's VA arrays (MiB)",
        mib(xw.get("harness_rss")),
        mf.as_ref().map_or("-".into(), |m| mib(m.get("harness_rss")))
    );
    println!(
        "  CLI --brief --va-file ({} VAs) > /dev/null: {:.3} s ({:.2} M VAs/s), peak RSS {} MiB, exit {code_va}",
        group(n as u64),
        secs(t_va),
        n / secs(t_va) / 1e6,
        mib(Some(rss_va as f64))
    );
    println!(
        "  CLI --brief whole-space listing > /dev/null: {:.3} s, peak RSS {} MiB, exit {code_list}",
        secs(t_list),
        mib(Some(rss_list as f64))
    );
    if let Some(t) = mfv("random_cold_s") {
        println!(
            "  CLI end to end vs memflow in-process, same VAs (cold): {:.2}x (>= 1 means the CLI is as fast or faster)",
            t / secs(t_va)
        );
    }
    if let Some(base) = sc.copy_of.and_then(|k| done.get(k)) {
        for (k, what) in [
            ("random_cold_s", "random cold"),
            ("random_warm_s", "random warm"),
            ("lean_cold_s", "lean random cold"),
            ("lean_warm_s", "lean random warm"),
            ("enum_warm_s", "enumeration"),
        ] {
            if let (Some(kd), Some(raw)) = (xw.get(k), base.get(k)) {
                println!("  kdump / raw ({what}): {:.2}x the raw image's time", kd / raw);
            }
        }
    }
    Ok(f)
}

fn print_summary(all: &[(&str, Figures)]) {
    println!("\n== summary (M/s = million translations per second; xw/mf = xenwalk over memflow) ==");
    println!(
        "{:<11} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>12} {:>12} {:>9} {:>9} {:>9}",
        "scenario",
        "rnd cold",
        "rnd warm",
        "xw/mf",
        "lean wrm",
        "seq warm",
        "enum ms",
        "mf enum",
        "xw/mf",
        "leaves",
        "mf leaves",
        "CLI va s",
        "CLI ls s",
        "max RSS"
    );
    for (k, f) in all {
        let n = f.get("n").unwrap_or(1.0);
        let r = |key: &str| f.get(key).map(|t| n / t / 1e6);
        let seq = f.get("seq_warm_s").map(|t| f.get("seq_n").unwrap_or(n) / t / 1e6);
        let ratio = match (f.get("mf_random_warm_s"), f.get("random_warm_s")) {
            (Some(m), Some(x)) if x > 0.0 => format!("{:.1}x", m / x),
            _ => "-".into(),
        };
        let eratio = match (f.get("mf_enum_warm_s"), f.get("enum_warm_s")) {
            (Some(m), Some(x)) if x > 0.0 => format!("{:.1}x", m / x),
            _ => "-".into(),
        };
        let o = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
        let rss =
            [f.get("peak_rss"), f.get("cli_va_rss"), f.get("cli_list_rss")].into_iter().flatten().fold(0.0, f64::max);
        println!(
            "{:<11} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>12} {:>12} {:>9} {:>9} {:>9}",
            k,
            o(r("random_cold_s"), 2),
            o(r("random_warm_s"), 2),
            ratio,
            o(r("lean_warm_s"), 2),
            o(seq, 2),
            o(f.get("enum_warm_s").map(|t| t * 1e3), 1),
            o(f.get("mf_enum_warm_s").map(|t| t * 1e3), 1),
            eratio,
            f.get("leaves").map_or("-".into(), |l| group(l as u64)),
            f.get("mf_leaves").map_or("-".into(), |l| group(l as u64)),
            o(f.get("cli_va_s"), 3),
            o(f.get("cli_list_s"), 3),
            format!("{} MiB", mib(Some(rss)))
        );
    }
}

fn mib(b: Option<f64>) -> String {
    b.map_or("-".into(), |b| format!("{:.1}", b / (1u64 << 20) as f64))
}

fn human(b: u64) -> String {
    if b >= GIB {
        format!("{:.1} GiB", b as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    }
}

fn on_disk(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map(|m| m.blocks() * 512).unwrap_or(0)
}

fn group(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------- children

fn child(which: &str, args: &[String]) -> Res<()> {
    let [image, cr3, random, seq, reps] = args else { return Err(format!("bad child args {args:?}")) };
    let cr3 = xenwalk::parse::hex_u64(cr3)?;
    let reps: usize = reps.parse().map_err(err("reps"))?;
    let before = resident::rss().map_or(0, |r| r.current);
    let random = read_bin(Path::new(random))?;
    let seq = read_bin(Path::new(seq))?;
    let harness = resident::rss().map_or(0, |r| r.current).saturating_sub(before);
    println!("harness_rss {harness}");
    println!("n {}", random.len());
    println!("seq_n {}", seq.len());
    match which {
        "xenwalk" => xenwalk_child(Path::new(image), cr3, &random, &seq, reps),
        "memflow" => memflow_child(Path::new(image), cr3, &random, &seq, reps),
        _ => Err(format!("unknown child {which}")),
    }
}

fn xenwalk_child(image: &Path, cr3: u64, random: &[u64], seq: &[u64], reps: usize) -> Res<()> {
    let opts = WalkOptions::default();
    let root = Maddr(cr3);
    let random: Vec<Vaddr> = random.iter().map(|&v| Vaddr(v)).collect();
    let seq: Vec<Vaddr> = seq.iter().map(|&v| Vaddr(v)).collect();
    let open = || Dump::open(image, OpenOptions::default()).map_err(err("open"));
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let d = open()?;
        opens.push(t.elapsed());
        drop(d);
    }
    println!("open_s {}", secs(median(opens)));

    // Random VAs: a fresh dump and translator (cold), then warm passes.
    let run = |t: &mut Translator<'_>, vas: &[Vaddr]| {
        let (mut sum, mut failed) = (0u64, 0u64);
        t.translate_batch(vas, |_, w| match w.mapping() {
            Some(m) => sum = sum.wrapping_add(m.maddr.0),
            None => failed += 1,
        });
        (sum, failed)
    };
    let dump = open()?;
    let mem = dump.mem.as_ref();
    let mut t = Translator::new(mem, root, opts);
    let start = Instant::now();
    let (sum, failed) = run(&mut t, &random);
    println!("random_cold_s {}", secs(start.elapsed()));
    println!("random_sum {sum}");
    println!("random_failed {failed}");
    let warm = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(run(&mut t, &random));
            s.elapsed()
        })
        .collect();
    println!("random_warm_s {}", secs(median(warm)));
    println!("random_releases {}", t.releases());
    let mut one = Translator::new(mem, root, opts);
    let single = (0..reps.min(3))
        .map(|_| {
            let s = Instant::now();
            let mut sum = 0u64;
            for &va in &random {
                if let Some(m) = one.translate(va).mapping() {
                    sum = sum.wrapping_add(m.maddr.0);
                }
            }
            std::hint::black_box(sum);
            s.elapsed()
        })
        .collect();
    println!("random_single_s {}", secs(median(single)));
    drop(one);
    drop(t);
    drop(dump);

    // Lean translations (`translate_many`: the answers only, as `--brief` uses them):
    // a fresh dump and translator (cold), then warm passes; the same answers.
    let dump = open()?;
    let mem = dump.mem.as_ref();
    let mut out: Vec<Resolved> = Vec::new();
    let lean = |t: &mut Translator<'_>, out: &mut Vec<Resolved>| {
        t.translate_many(&random, out);
        let (mut sum, mut failed) = (0u64, 0u64);
        for r in out.iter() {
            match r.maddr() {
                Some(m) => sum = sum.wrapping_add(m.0),
                None => failed += 1,
            }
        }
        (sum, failed)
    };
    let mut t = Translator::new(mem, root, opts);
    let start = Instant::now();
    let got = lean(&mut t, &mut out);
    println!("lean_cold_s {}", secs(start.elapsed()));
    if got != (sum, failed) {
        return Err(format!("lean translations differ: {got:?} against {:?}", (sum, failed)));
    }
    let warm = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(lean(&mut t, &mut out));
            s.elapsed()
        })
        .collect();
    println!("lean_warm_s {}", secs(median(warm)));
    drop(t);
    drop(out);

    let mut t = Translator::new(mem, root, opts);
    let start = Instant::now();
    std::hint::black_box(run(&mut t, &seq));
    println!("seq_cold_s {}", secs(start.elapsed()));
    let warm = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(run(&mut t, &seq));
            s.elapsed()
        })
        .collect();
    println!("seq_warm_s {}", secs(median(warm)));
    drop(t);
    drop(dump);

    // Enumeration: a fresh dump (cold), then warm, parallel and on one thread.
    let dump = open()?;
    let mem = dump.mem.as_ref();
    // `plain`: enumerate() itself (one thread, no residency budget).
    let count = |par: bool, plain: bool| {
        let mut leaves = 0u64;
        let f = |ev: Event<'_>| {
            if let Event::Leaf(_) = ev {
                leaves += 1;
            }
            ControlFlow::Continue(())
        };
        let s = Instant::now();
        if plain {
            enumerate(mem, root, opts, f);
        } else {
            let o = EnumerateOptions { parallel: par, ..EnumerateOptions::default() };
            enumerate_with(mem, root, opts, &o, f);
        }
        (s.elapsed(), leaves)
    };
    // The table-at-a-time API: one callback per run of a table's leaves, counted.
    let tables = |par: bool| {
        let mut leaves = 0u64;
        let s = Instant::now();
        let o = EnumerateOptions { parallel: par, ..EnumerateOptions::default() };
        enumerate_tables_with(mem, root, opts, &o, |te| {
            if let TableEvent::Leaves(run) = te {
                leaves += run.count();
            }
            ControlFlow::Continue(())
        });
        (s.elapsed(), leaves)
    };
    let (cold, leaves) = tables(true);
    println!("enum_cold_s {}", secs(cold));
    println!("leaves {leaves}");
    println!("enum_warm_s {}", secs(median((0..reps).map(|_| tables(true).0).collect())));
    println!("enum_seq_budget_s {}", secs(median((0..reps.min(3)).map(|_| tables(false).0).collect())));
    // One callback per leaf (enumerate_with), as before: the same leaves.
    let (t, per_leaf) = count(true, false);
    if per_leaf != leaves {
        return Err(format!("per-leaf enumeration found {per_leaf} leaves, the table-at-a-time one {leaves}"));
    }
    println!("enum_leaf_warm_s {}", secs(median((0..reps).map(|_| count(true, false).0).chain([t]).collect())));
    // Everything above runs under the default residency budget: its peak.
    println!("peak_rss {}", resident::rss().map_or(0, |r| r.peak));
    // References without the budget (they map every table page they read).
    println!("enum_seq_s {}", secs(median((0..reps.min(3)).map(|_| count(false, true).0).collect())));
    let walks = (0..reps.min(3))
        .map(|_| {
            let s = Instant::now();
            let mut sum = 0u64;
            for &va in &random {
                if let Some(m) = walk(mem, root, va, opts).mapping() {
                    sum = sum.wrapping_add(m.maddr.0);
                }
            }
            std::hint::black_box(sum);
            s.elapsed()
        })
        .collect();
    println!("random_walk_s {}", secs(median(walks)));
    Ok(())
}

fn memflow_child(image: &Path, cr3: u64, random: &[u64], seq: &[u64], reps: usize) -> Res<()> {
    use memflow::mem::virt_translate::VirtualTranslation;
    use memflow::prelude::v1::*;
    let open = || -> Res<_> {
        let file = File::open(image).map_err(err("open"))?;
        let len = file.metadata().map_err(err("open"))?.len();
        let mut map = MemoryMap::new();
        map.push_remap(Address::from(0u64), len as umem, Address::from(0u64));
        let info = memflow::connector::MmapInfo::try_with_filemap(file, map).map_err(|e| format!("memflow: {e:?}"))?;
        let conn = info.into_connector();
        let translator = memflow::architecture::x86::x64::new_translator(Address::from(cr3));
        Ok(VirtualDma::new(conn, memflow::architecture::x86::x64::ARCH, translator))
    };
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let v = open()?;
        opens.push(t.elapsed());
        drop(v);
    }
    println!("open_s {}", secs(median(opens)));
    let to_ranges = |v: &[u64]| v.iter().map(|&a| CTup2(Address::from(a), 1 as umem)).collect::<Vec<_>>();
    let random_r = to_ranges(random);
    let seq_r = to_ranges(seq);
    // memflow's batched API, MF_CHUNK VAs per call.
    let chunk: usize = std::env::var("XENWALK_BENCH_MF_CHUNK").ok().and_then(|v| v.parse().ok()).unwrap_or(MF_CHUNK);
    let run = |vm: &mut VirtualDma<_, _, _>, r: &[VtopRange], pairs: Option<&mut Vec<(u64, u64)>>| {
        let (mut ok, mut failed, mut sum) = (0u64, 0u64, 0u64);
        let mut pairs = pairs;
        for r in r.chunks(chunk.max(1)) {
            vm.virt_to_phys_list(
                r,
                (&mut |t: VirtualTranslation| {
                    ok += 1;
                    let p = t.out_physical.address().to_umem();
                    sum = sum.wrapping_add(p);
                    if let Some(v) = pairs.as_deref_mut() {
                        v.push((t.in_virtual.to_umem(), p));
                    }
                    true
                })
                    .into(),
                (&mut |_| {
                    failed += 1;
                    true
                })
                    .into(),
            );
        }
        (ok, failed, sum)
    };
    let mut vm = open()?;
    let start = Instant::now();
    let (ok, failed, _) = run(&mut vm, &random_r, None);
    println!("random_cold_s {}", secs(start.elapsed()));
    println!("random_ok {ok}");
    println!("random_failed {failed}");
    let warm = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(run(&mut vm, &random_r, None));
            s.elapsed()
        })
        .collect();
    println!("random_warm_s {}", secs(median(warm)));
    // The same VAs in batches of MF_BATCH (fewer answers).
    let chunk = MF_BATCH;
    let run_batched = |vm: &mut VirtualDma<_, _, _>, r: &[VtopRange]| {
        let (mut ok, mut failed) = (0u64, 0u64);
        for r in r.chunks(chunk) {
            vm.virt_to_phys_list(
                r,
                (&mut |_t: VirtualTranslation| {
                    ok += 1;
                    true
                })
                    .into(),
                (&mut |_| {
                    failed += 1;
                    true
                })
                    .into(),
            );
        }
        (ok, failed)
    };
    let start = Instant::now();
    let (_, bfailed) = run_batched(&mut vm, &random_r);
    println!("random_batched_s {}", secs(start.elapsed()));
    println!("random_batched_failed {bfailed}");
    let mut vm = open()?;
    let start = Instant::now();
    let (_, seq_failed, _) = run(&mut vm, &seq_r, None);
    println!("seq_cold_s {}", secs(start.elapsed()));
    println!("seq_failed {seq_failed}");
    let warm = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(run(&mut vm, &seq_r, None));
            s.elapsed()
        })
        .collect();
    println!("seq_warm_s {}", secs(median(warm)));

    // Whole space: memflow's range translation, one callback per leaf it finds.
    let mut vm = open()?;
    let count = |vm: &mut VirtualDma<_, _, _>| {
        let mut leaves = 0u64;
        let s = Instant::now();
        vm.virt_to_phys_range(
            Address::null(),
            Address::invalid(),
            (&mut |_t: VirtualTranslation| {
                leaves += 1;
                true
            })
                .into(),
        );
        (s.elapsed(), leaves)
    };
    let (cold, leaves) = count(&mut vm);
    println!("enum_cold_s {}", secs(cold));
    println!("leaves {leaves}");
    println!("enum_warm_s {}", secs(median((0..reps).map(|_| count(&mut vm).0).collect())));
    println!("peak_rss {}", resident::rss().map_or(0, |r| r.peak));

    // Not timed: do memflow's answers agree with xenwalk's where it gives one?
    let mut pairs = Vec::with_capacity(random.len());
    run(&mut vm, &random_r, Some(&mut pairs));
    let dump = Dump::open(image, OpenOptions::default()).map_err(err("open"))?;
    let mut differ = 0u64;
    for (va, pa) in pairs {
        let w = walk(dump.mem.as_ref(), Maddr(cr3), Vaddr(va), WalkOptions::default());
        if w.mapping().map(|m| m.maddr.0) != Some(pa) {
            differ += 1;
        }
    }
    println!("random_differ {differ}");
    Ok(())
}
