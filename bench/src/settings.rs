//! What to run: the command line and its environment variables ([`Settings`]), and
//! where the workspace's target directory is.

use crate::{Res, err};
use std::path::{Path, PathBuf};

pub struct Settings {
    pub only: Option<Vec<String>>,
    pub image: Option<(PathBuf, u64, Option<PathBuf>)>,
    pub vas: usize,
    pub reps: usize,
    pub memflow: bool,
    pub dir: PathBuf,
    /// Another build's `xenwalk` binary, timed on the same CLI commands in the same
    /// run (before/after).
    pub baseline: Option<PathBuf>,
}

pub fn settings() -> Res<Settings> {
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
    let baseline = take("--baseline", "XENWALK_BENCH_BASELINE").map(PathBuf::from);
    let memflow = !args.iter().any(|a| a == "--no-memflow");
    let image = match (image, cr3) {
        (Some(i), Some(c)) => Some((PathBuf::from(i), xenwalk::parse::hex_u64(&c)?, va_file.map(PathBuf::from))),
        (Some(_), None) => return Err("--image needs --cr3".into()),
        _ => None,
    };
    if let Some(b) = &baseline {
        if !b.is_file() {
            return Err(format!("--baseline {}: no such file", b.display()));
        }
    }
    Ok(Settings { only, image, vas, reps: reps.max(1), memflow, dir, baseline })
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"))
}
