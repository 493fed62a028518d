//! One scenario: its image and root ([`Scenario`]), measured in both libraries and
//! the CLI, and its table of figures printed.

use crate::Res;
use crate::child_memflow::MF_BATCH;
use crate::measure::{Figures, cli_pair, measure, secs};
use crate::report::{group, human, mib, on_disk};
use crate::settings::Settings;
use crate::vas::va_sets;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub struct Scenario {
    pub key: &'static str,
    pub title: String,
    pub image: PathBuf,
    pub cr3: u64,
    /// A raw file of the same memory, for memflow (it reads no kdump).
    pub raw_for_memflow: Option<PathBuf>,
    /// The raw scenario this one is a compressed copy of (for the kdump/raw ratio).
    pub copy_of: Option<&'static str>,
    pub va_file: Option<PathBuf>,
}

pub fn run_scenario(s: &Settings, sc: &Scenario, done: &BTreeMap<&str, Figures>) -> Res<Figures> {
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
    let va_args = vec![
        img.clone(),
        "--cr3".into(),
        cr3.clone(),
        "--brief".into(),
        "--va-file".into(),
        vas.random_txt.display().to_string(),
    ];
    let list_args = vec![img, "--cr3".into(), cr3, "--brief".into()];
    let base = s.baseline.as_deref();
    let va = cli_pair(&va_args, s.reps, base)?;
    let list = cli_pair(&list_args, s.reps, base)?;
    let (t_va, rss_va, code_va) = (va[0].time, va[0].rss, va[0].code);
    let (t_list, rss_list, code_list) = (list[0].time, list[0].rss, list[0].code);

    let mut f = xw.clone();
    f.x.insert("cli_va_s".into(), secs(t_va));
    f.x.insert("cli_va_s_spread".into(), va[0].spread);
    f.x.insert("cli_va_rss".into(), rss_va as f64);
    f.x.insert("cli_list_s".into(), secs(t_list));
    f.x.insert("cli_list_s_spread".into(), list[0].spread);
    f.x.insert("cli_list_rss".into(), rss_list as f64);
    for (key, runs) in [("cli_va_s", &va), ("cli_list_s", &list)] {
        if let Some(b) = runs.get(1) {
            f.x.insert(format!("base_{key}"), secs(b.time));
            f.x.insert(format!("base_{key}_spread"), b.spread);
            f.x.insert(format!("base_{key}_code"), f64::from(b.code));
        }
    }
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
    // The repetitions' spread ((max - min) / median of the times) of each warm figure.
    let spreads: Vec<String> = ["random_warm_s", "lean_warm_s", "seq_warm_s", "enum_warm_s", "enum_leaf_warm_s"]
        .iter()
        .filter_map(|k| {
            xw.get(&format!("{k}_spread")).map(|v| format!("{} ±{:.0}%", k.trim_end_matches("_s"), v * 100.0))
        })
        .collect();
    println!("  spread of {} warm repetitions: {}", s.reps, spreads.join(", "));
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
        "  CLI --brief --va-file ({} VAs) > /dev/null: {:.3} s ±{:.0}% ({:.2} M VAs/s), peak RSS {} MiB, exit {code_va}",
        group(n as u64),
        secs(t_va),
        va[0].spread * 100.0,
        n / secs(t_va) / 1e6,
        mib(Some(rss_va as f64))
    );
    println!(
        "  CLI --brief whole-space listing > /dev/null: {:.3} s ±{:.0}%, peak RSS {} MiB, exit {code_list}",
        secs(t_list),
        list[0].spread * 100.0,
        mib(Some(rss_list as f64))
    );
    // Before/after: the baseline build on the same commands, interleaved. A difference
    // is claimed only beyond the sum of both spreads.
    for (what, runs) in [("--va-file", &va), ("listing", &list)] {
        if let Some(b) = runs.get(1) {
            let (after, before) = (secs(runs[0].time), secs(b.time));
            let noise = runs[0].spread + b.spread;
            let change = (after - before) / before;
            let verdict = if change.abs() <= noise {
                "within the noise".to_string()
            } else if change < 0.0 {
                format!("{:.2}x faster", before / after)
            } else {
                format!("{:.2}x slower", after / before)
            };
            println!(
                "  CLI {what}: baseline {before:.3} s ±{:.0}% (exit {}), this build {after:.3} s ±{:.0}%: {verdict} (noise {:.0}%)",
                b.spread * 100.0,
                b.code,
                runs[0].spread * 100.0,
                noise * 100.0
            );
        }
    }
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
