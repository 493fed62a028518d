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
//!   --only a,b,c,d,dom0,dom0-kdump,dom0-flat,offsets,custom   scenarios to run (default: all available)
//!   --image FILE --cr3 HEX [--va-file FILE]  also a dump of your own (raw for memflow)
//!   --vas N          random VAs per run (default 1,000,000)
//!   --reps N         warm repetitions, the median is shown (default 5)
//!   --no-memflow     xenwalk only
//!   --baseline BIN   another build's xenwalk binary, timed on the same CLI commands,
//!                    interleaved with this build's (before/after; XENWALK_BENCH_BASELINE)
//!   --dir DIR        where synthetic images are built and kept (default target/bench-images)
//! The same settings as environment variables: XENWALK_BENCH_ONLY, XENWALK_BENCH_IMAGE,
//! XENWALK_BENCH_CR3, XENWALK_BENCH_VAS_FILE, XENWALK_BENCH_VAS, XENWALK_BENCH_REPS,
//! XENWALK_BENCH_DIR.

// The pieces are in the package's library (`bench/src/`): this file is `main` and the
// list of scenarios.

use std::collections::BTreeMap;
use std::process::ExitCode;
use xenwalk::mem::resident;
use xenwalk_bench::images::{build, build_4k, build_identical, build_large, dom0_raw, is_raw, kdump_copy};
use xenwalk_bench::measure::{Figures, child};
use xenwalk_bench::report::{machine_header, print_summary};
use xenwalk_bench::scenario::{Scenario, run_scenario};
use xenwalk_bench::settings::settings;
use xenwalk_bench::{Res, err};

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
    if std::env::var_os("XENWALK_BENCH_TEED").is_none() {
        return tee();
    }
    match parent() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Run the benchmark as a child and keep its raw output: every line goes to stdout
/// and to `bench/runs/<UTC time>-<commit>.txt` (`-dirty` when the tree has changes),
/// the file BENCHMARKS.md's tables name.
fn tee() -> ExitCode {
    use std::io::{BufRead, Write};
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let stamp = std::process::Command::new("date")
        .args(["-u", "+%Y%m%dT%H%M%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "now".into());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runs");
    let path = dir.join(format!("{stamp}-{commit}{}.txt", if dirty { "-dirty" } else { "" }));
    let file = std::fs::create_dir_all(&dir).and_then(|_| std::fs::File::create(&path));
    let mut file = match file {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("bench: cannot keep the raw output in {}: {e}", path.display());
            None
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    let mut child = match std::process::Command::new(exe)
        .args(&args)
        .env("XENWALK_BENCH_TEED", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(f) = file.as_mut() {
        let _ = writeln!(
            f,
            "# cargo bench -p xenwalk-bench -- {} (commit {commit}{})",
            args.join(" "),
            if dirty { ", with uncommitted changes" } else { "" }
        );
    }
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
        }
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    if file.is_some() {
        println!("\nraw output kept in {}", path.display());
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(2) }
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
    if want("dom0") || want("dom0-kdump") || want("dom0-flat") {
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
                        raw_for_memflow: Some(raw.clone()),
                        copy_of: Some("dom0"),
                        va_file: None,
                    });
                }
                if want("dom0-flat") {
                    // One record per page, as `makedumpfile -F` writes them.
                    let k = xenwalk_bench::images::kdump_copy_as(&s.dir, &raw, "dom0.flat.kdump", Some(4096))?;
                    scenarios.push(Scenario {
                        key: "dom0-flat",
                        title: "the same kdump copy in the flattened format (makedumpfile -F, QEMU -z)".into(),
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
    if want("offsets") {
        match dom0_raw(&s.dir)? {
            None => println!("\nNOT RUN: offsets scenario: ../shared/dumps/xen-4.17-dom0 is absent"),
            Some(raw) => xenwalk_bench::offsets::run(&raw, &xenwalk_bench::offsets::shared_dir(), &s.dir, s.reps)?,
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
