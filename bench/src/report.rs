//! What is printed besides a scenario's own table: the machine, the summary of every
//! scenario, and number formatting.

use crate::GIB;
use crate::measure::Figures;
use std::path::Path;

pub fn machine_header() {
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

pub fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

pub fn print_summary(all: &[(&str, Figures)]) {
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

pub fn mib(b: Option<f64>) -> String {
    b.map_or("-".into(), |b| format!("{:.1}", b / (1u64 << 20) as f64))
}

pub fn human(b: u64) -> String {
    if b >= GIB {
        format!("{:.1} GiB", b as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    }
}

pub fn on_disk(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map(|m| m.blocks() * 512).unwrap_or(0)
}

pub fn group(v: u64) -> String {
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
