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

/// The CLI end to end: wall time (median of `reps`) and peak RSS (max of the
/// process's own VmHWM) of `xenwalk ARGS > /dev/null`.
pub fn cli(args: &[String], reps: usize) -> Res<(Duration, u64, i32)> {
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
