//! Measuring: each library runs in a child process (this benchmark binary re-executed)
//! that prints `key value` lines ([`Figures`]), and the CLI runs end to end.

use crate::child_memflow::memflow_child;
use crate::child_xenwalk::xenwalk_child;
use crate::vas::read_bin;
use crate::{Res, err};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xenwalk::mem::resident;

/// One library's (or the CLI's) figures for one scenario.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub x: BTreeMap<String, f64>,
}

impl Figures {
    pub fn get(&self, k: &str) -> Option<f64> {
        self.x.get(k).copied()
    }
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The spread of repeated measurements: (max − min) / median, a fraction. Two figures
/// differ beyond the noise only when their relative difference exceeds the sum of
/// their spreads.
pub fn spread(v: &[Duration]) -> f64 {
    let m = secs(median(v.to_vec()));
    match (v.iter().min(), v.iter().max()) {
        (Some(lo), Some(hi)) if m > 0.0 && v.len() > 1 => (secs(*hi) - secs(*lo)) / m,
        _ => 0.0,
    }
}

/// Print `key median` and `key_spread spread` ([`spread`]) for a child's figures.
pub fn report(key: &str, v: Vec<Duration>) {
    println!("{key}_spread {}", spread(&v));
    println!("{key} {}", secs(median(v)));
}

/// Run this binary as a child measuring `which`, and parse its `key value` lines.
pub fn measure(which: &str, args: &[String]) -> Res<Figures> {
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

/// One CLI command's figures: median wall time, its spread, peak RSS (bytes; 0 when
/// not measured) and the exit code.
#[derive(Clone, Copy, Debug)]
pub struct CliRun {
    pub time: Duration,
    pub spread: f64,
    pub rss: u64,
    pub code: i32,
}

/// The CLI end to end: wall time (median of `reps`, with its spread) and peak RSS
/// (max of the process's own VmHWM) of `xenwalk ARGS > /dev/null`.
pub fn cli(args: &[String], reps: usize) -> Res<CliRun> {
    let mut runs = cli_pair(args, reps, None)?;
    Ok(runs.remove(0))
}

/// [`cli`] for this build and, with `baseline` (another build's `xenwalk` binary),
/// for that one too, their repetitions interleaved so that a change in the machine's
/// load during the run falls on both alike. The baseline's peak RSS is not measured
/// (0): its own process cannot report it, and wait4's counts the parent's.
pub fn cli_pair(args: &[String], reps: usize, baseline: Option<&Path>) -> Res<Vec<CliRun>> {
    let exe = std::env::current_exe().map_err(err("exe"))?;
    let rss_file = std::env::temp_dir().join(format!("xenwalk-bench-rss-{}", std::process::id()));
    let n = 1 + usize::from(baseline.is_some());
    let mut times = vec![Vec::new(); n];
    let mut rss = 0u64;
    let mut codes = vec![0; n];
    for _ in 0..reps {
        for (i, bin) in std::iter::once(exe.as_path()).chain(baseline).enumerate() {
            let null = File::create("/dev/null").map_err(err("/dev/null"))?;
            let mut cmd = Command::new(bin);
            cmd.args(args).stdin(Stdio::null()).stdout(null).stderr(Stdio::null());
            if i == 0 {
                cmd.env("XENWALK_BENCH_AS_CLI", "1").env("XENWALK_BENCH_RSS_FILE", &rss_file);
            }
            let t = Instant::now();
            let status = cmd.status().map_err(err("spawn cli"))?;
            times[i].push(t.elapsed());
            codes[i] = status.code().unwrap_or(-1);
            if i == 0 {
                let peak = std::fs::read_to_string(&rss_file).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
                rss = rss.max(peak);
            }
        }
    }
    let _ = std::fs::remove_file(&rss_file);
    Ok(times
        .into_iter()
        .zip(codes)
        .enumerate()
        .map(|(i, (t, code))| CliRun { spread: spread(&t), time: median(t), rss: if i == 0 { rss } else { 0 }, code })
        .collect())
}

pub fn child(which: &str, args: &[String]) -> Res<()> {
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
