//! Every source of struct offsets at the built-in table's pace (issue: "each offset is
//! resolved once per run, whatever its source"): `domains` and `p2m --domain 0
//! --check` on the real dom0 image, the CLI end to end, with the built-in table (the
//! default for Debian's build), a profile of the same values, `--offset` for every key,
//! inference from the image (with the two members one domain cannot show given), and
//! the 4.17.5 build's DWARF (`--allow-mismatch`; no DWARF twin of this 4.17.7
//! build exists, and 4.17.5 moved a few members, so its output is not compared, only
//! its time: the same lookups and reads). Every other output is checked equal to the
//! built-in run's before its time counts. Every row is given the image's base
//! (`--xen-phys-start`), so discovery, the same for all, is not timed.

use crate::measure::{cli, secs};
use crate::{Res, err};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run the offsets scenario on `raw` (the dom0 image) with `shared` (../shared).
pub fn run(raw: &Path, shared: &Path, dir: &Path, reps: usize) -> Res<()> {
    let syms = shared.join("xen-4.17/xen-syms-4.17-amd64");
    let dwarf = shared.join("xen-4.17/with-dwarf/xen-syms");
    let s = |p: &Path| p.display().to_string();
    let exe = std::env::current_exe().map_err(err("exe"))?;
    let out = |args: &[String]| -> Res<String> {
        let o = Command::new(&exe).args(args).env("XENWALK_BENCH_AS_CLI", "1").output().map_err(err("spawn"))?;
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    // The built-in run's offsets and sizes, as a profile and as --offset options.
    let info: Value = serde_json::from_str(
        out(&["info".into(), "--json".into(), s(raw), "--xen-syms".into(), s(&syms)])?.lines().next().unwrap_or(""),
    )
    .map_err(err("info --json"))?;
    let pairs = |k: &str| -> Vec<(String, u64)> {
        info["xen"][k]
            .as_array()
            .map(|a| a.iter().filter_map(|o| Some((o["key"].as_str()?.to_string(), o["value"].as_u64()?))).collect())
            .unwrap_or_default()
    };
    let (offsets, sizes) = (pairs("offsets"), pairs("sizes"));
    let profile = dir.join("dom0-builtin.profile.json");
    let doc = json!({"type": "xenwalk_profile", "schema": 1,
        "build_id": info["xen"]["xen_syms"]["build_id"], "version": null, "image_start": null,
        "sizes": sizes.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<String, Value>>(),
        "offsets": offsets.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<String, Value>>(),
        "missing": []});
    std::fs::write(&profile, doc.to_string()).map_err(err("profile"))?;
    let phys = info["xen"]["xen_phys_start"]["value"].as_str().unwrap_or("0").to_string();
    let options: Vec<String> = offsets.iter().chain(&sizes).map(|(k, v)| format!("--offset={k}={v}")).collect();

    let sources: Vec<(&str, Vec<String>)> = vec![
        ("built-in table", vec!["--xen-syms".into(), s(&syms)]),
        (
            "profile",
            vec![
                "--xen-syms".into(),
                s(&syms),
                "--offsets-from".into(),
                "profile".into(),
                "--profile".into(),
                s(&profile),
            ],
        ),
        (
            "--offset",
            [vec!["--xen-syms".into(), s(&syms), "--offsets-from".into(), "vmcoreinfo".into()], options].concat(),
        ),
        (
            // Inference from the image alone, but for the two members one domain
            // cannot show (its next_in_list is NULL like hundreds of members; its
            // creation flags sit among as many fitting u32s), given as a user
            // would after reading the refusal.
            "inference",
            [
                vec!["--xen-syms".into(), s(&syms), "--offsets-from".into(), "infer".into()],
                offsets
                    .iter()
                    .filter(|(k, _)| ["domain.next_in_list", "domain.options", "domain.is_dying"].contains(&k.as_str()))
                    .map(|(k, v)| format!("--offset={k}={v}"))
                    .collect(),
            ]
            .concat(),
        ),
        (
            "DWARF (4.17.5)",
            // Discovery cannot find a 4.17.5 image in a 4.17.7 dump: its base is given.
            vec![
                "--xen-syms".into(),
                s(&dwarf),
                "--allow-mismatch".into(),
                "--offsets-from".into(),
                "dwarf".into(),
                "--xen-phys-start".into(),
                info["xen"]["xen_phys_start"]["value"].as_str().unwrap_or("0").to_string(),
            ],
        ),
    ];
    let commands: [(&str, Vec<String>); 3] = [
        ("domains", vec!["domains".into(), s(raw), "--json".into()]),
        // Triage of a 1 GiB machine: the whole report, every check (issue 13: well
        // under a second).
        ("triage", vec!["triage".into(), s(raw), "--json".into()]),
        (
            "p2m --domain 0 --check",
            vec!["p2m".into(), s(raw), "--domain".into(), "0".into(), "--check".into(), "--json".into()],
        ),
    ];
    println!("\n== struct offsets from every source (real dom0 image; CLI end to end, median of {reps})");
    println!("{:<24} {:<16} {:>9} {:>7} {:>8}  output", "command", "source", "seconds", "spread", "ratio");
    for (name, cmd) in &commands {
        let mut base: Option<(f64, String)> = None;
        for (src, extra) in &sources {
            // Every source is given the image's base (discovery is the same work
            // whatever the offsets' source, and cannot find 4.17.5's image in a
            // 4.17.7 dump): the rows time resolving offsets and reading, nothing else.
            let mut args = [cmd.clone(), extra.clone()].concat();
            if !args.iter().any(|a| a == "--xen-phys-start") {
                args.extend(["--xen-phys-start".into(), phys.clone()]);
            }
            let text = out(&args)?;
            let run = cli(&args, reps)?;
            let (t, code) = (secs(run.time), run.code);
            let (ratio, same) = match &base {
                None => {
                    base = Some((t, text.clone()));
                    (1.0, true)
                }
                Some((b, want)) => (t / b, &text == want),
            };
            let other_build = src.starts_with("DWARF");
            if !other_build && (!same || code != 0) {
                return Err(format!(
                    "{name} with {src}: exit {code}, output {} the built-in run's",
                    if same { "equal to" } else { "DIFFERENT from" }
                ));
            }
            let flag = if ratio > 2.0 { "  OVER 2x" } else { "" };
            let verdict = if other_build { format!("other build, exit {code}, not compared") } else { "same".into() };
            let sp = format!("±{:.0}%", run.spread * 100.0);
            println!("{name:<24} {src:<16} {t:>9.3} {sp:>7} {ratio:>7.2}x  {verdict}{flag}");
        }
    }
    Ok(())
}

/// `../shared` as the benchmark finds it.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("XENWALK_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared"))
}
