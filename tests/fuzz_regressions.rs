//! Every input that once crashed a fuzz target (`fuzz/`, `scripts/fuzz.sh`) is kept
//! under `tests/fuzz-regressions/<target>/` and replayed here through the very code
//! the target runs (`fuzz/fuzz_targets/harness.rs`), so a fixed crash stays fixed.
//! Beside them each folder holds a small valid input (`seed-*`, written by
//! `examples/fuzz_seeds.rs`), so every target's folder exists in git and replays at
//! least one input that goes deep into its parser.

#[path = "../fuzz/fuzz_targets/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::path::Path;

/// A fuzz target's entry point.
type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 13] = [
    ("dump_open", harness::dump_open),
    ("elf", harness::elf),
    ("notes", harness::notes),
    ("kdump", harness::kdump),
    ("flattened", harness::flattened),
    ("decompress", harness::decompress),
    ("xlcore", harness::xlcore),
    ("xen_syms", harness::xen_syms),
    ("xen_domains", harness::xen_domains),
    ("xen_p2m", harness::xen_p2m),
    ("xen_expr", harness::xen_expr),
    ("va_lines", harness::va_lines),
    ("console", harness::console),
];

/// The fuzz targets that exist: `fuzz/fuzz_targets/*.rs` but the shared harness.
fn fuzz_targets() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "harness")
        .collect()
}

#[test]
fn every_fuzz_target_is_replayed() {
    let listed: BTreeSet<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        listed,
        fuzz_targets(),
        "tests/fuzz_regressions.rs's TARGETS must name every fuzz target in fuzz/fuzz_targets/ (and no other)"
    );
}

#[test]
fn every_kept_crash_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut total = 0;
    for (name, f) in TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!("{}: {e}: every fuzz target keeps its inputs there (at least a seed-* file)", dir.display())
        });
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        files.sort();
        for p in &files {
            let data = std::fs::read(p).unwrap();
            eprintln!("replaying {}", p.display());
            f(&data);
            // Every target's input also goes through format detection.
            harness::dump_open(&data);
        }
        assert!(!files.is_empty(), "{}: no input kept for fuzz target {name}", dir.display());
        eprintln!("{name}: {} kept inputs replayed", files.len());
        total += files.len();
    }
    assert!(total >= TARGETS.len());
}
