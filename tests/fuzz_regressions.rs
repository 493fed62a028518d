//! Every input that once crashed a fuzz target (`fuzz/`, `scripts/fuzz.sh`) is kept
//! under `tests/fuzz-regressions/<target>/` and replayed here through the very code
//! the target runs (`fuzz/fuzz_targets/harness.rs`), so a fixed crash stays fixed.

#[path = "../fuzz/fuzz_targets/harness.rs"]
mod harness;

use std::path::Path;

/// A fuzz target's entry point.
type Target = fn(&[u8]);

#[test]
fn every_kept_crash_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let targets: [(&str, Target); 8] = [
        ("dump_open", harness::dump_open),
        ("elf", harness::elf),
        ("notes", harness::notes),
        ("kdump", harness::kdump),
        ("flattened", harness::flattened),
        ("decompress", harness::decompress),
        ("xlcore", harness::xlcore),
        ("xen_syms", harness::xen_syms),
    ];
    let mut n = 0;
    for (name, f) in targets {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else { continue };
        let mut files: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for p in files {
            let data = std::fs::read(&p).unwrap();
            eprintln!("replaying {}", p.display());
            f(&data);
            // Every target's input also goes through format detection.
            harness::dump_open(&data);
            n += 1;
        }
    }
    eprintln!("{n} kept fuzz inputs replayed");
}
