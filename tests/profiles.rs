//! Struct layouts from profiles: `xenwalk profile` of a xen-syms with DWARF checked
//! against a second DWARF reader (binutils' `readelf --debug-dump=info`), a profile
//! of another build refused, and on the real dom0 image every way of giving offsets
//! (xenwalk's profile, a volatility3 ISF file, `--offset`) answering as the default
//! sources do; `--offsets-from` without a source that knows an offset refused with
//! the way to give it.

mod common;

use common::{find_in_path, not_run, run, shared, tempdir, unxz_cached};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// One DIE as readelf prints it: enough to resolve member paths.
#[derive(Default, Debug)]
struct Die {
    tag: String,
    depth: usize,
    name: Option<String>,
    size: Option<u64>,
    ty: Option<usize>,
    loc: Option<u64>,
    declaration: bool,
    children: Vec<usize>,
}

/// Every DIE of `file`'s `.debug_info`, by section offset, parsed from readelf's
/// text (an independent reader: gimli is xenwalk's).
fn readelf_dies(file: &Path) -> HashMap<usize, Die> {
    let out = Command::new("readelf")
        .args(["--debug-dump=info", p(file)])
        .stderr(Stdio::null())
        .output()
        .expect("run readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut dies: HashMap<usize, Die> = HashMap::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut cur: Option<usize> = None;
    let hex = |s: &str| usize::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    for line in text.lines() {
        let t = line.trim_start();
        // " <2><d6a>: Abbrev Number: 1 (DW_TAG_member)"
        if let Some(rest) = t.strip_prefix('<') {
            if let Some((depth, rest)) = rest.split_once("><") {
                if let (Ok(depth), Some((off, tail))) = (depth.parse::<usize>(), rest.split_once(">:")) {
                    let Some(off) = hex(off) else { continue };
                    let tag = tail.split('(').nth(1).map(|s| s.trim_end_matches(')').to_string());
                    let Some(tag) = tag else {
                        // "Abbrev Number: 0": the end of a sibling list.
                        cur = None;
                        continue;
                    };
                    stack.truncate(depth);
                    if let Some(&parent) = stack.last() {
                        if let Some(d) = dies.get_mut(&parent) {
                            d.children.push(off);
                        }
                    }
                    stack.push(off);
                    dies.insert(off, Die { tag, depth, ..Die::default() });
                    cur = Some(off);
                    continue;
                }
            }
        }
        // "    <d6b>   DW_AT_name        : (indirect string, offset: 0x1f361): vcpu_id"
        let Some(d) = cur.and_then(|c| dies.get_mut(&c)) else { continue };
        let Some((_, attr)) = t.split_once('>') else { continue };
        let attr = attr.trim_start();
        let Some((name, value)) = attr.split_once(':') else { continue };
        let value = value.trim();
        match name.trim() {
            "DW_AT_name" => d.name = Some(value.rsplit(": ").next().unwrap_or(value).trim().to_string()),
            "DW_AT_byte_size" => d.size = value.parse().ok(),
            "DW_AT_type" => d.ty = hex(value.trim_start_matches('<').trim_end_matches('>')),
            "DW_AT_data_member_location" => d.loc = value.parse().ok(),
            "DW_AT_declaration" => d.declaration = true,
            _ => {}
        }
    }
    let _ = stack;
    dies
}

/// The struct or union a type reference ends at, through typedefs and qualifiers.
fn strip(dies: &HashMap<usize, Die>, mut t: usize) -> Option<usize> {
    for _ in 0..16 {
        let d = dies.get(&t)?;
        match d.tag.as_str() {
            "DW_TAG_typedef" | "DW_TAG_const_type" | "DW_TAG_volatile_type" => t = d.ty?,
            _ => return Some(t),
        }
    }
    None
}

/// Offset of `path` in the struct or union `at`, as C finds members (anonymous
/// unions and structs searched through).
fn member(dies: &HashMap<usize, Die>, at: usize, path: &[&str]) -> Option<u64> {
    let (first, rest) = path.split_first()?;
    let find = |at: usize| -> Option<(u64, usize)> {
        fn go(dies: &HashMap<usize, Die>, at: usize, name: &str) -> Option<(u64, usize)> {
            for &c in &dies.get(&at)?.children {
                let m = dies.get(&c)?;
                if m.tag != "DW_TAG_member" {
                    continue;
                }
                match &m.name {
                    Some(n) if n == name => return Some((m.loc.unwrap_or(0), m.ty?)),
                    None => {
                        let inner = strip(dies, m.ty?)?;
                        if let Some((o, t)) = go(dies, inner, name) {
                            return Some((m.loc.unwrap_or(0) + o, t));
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        go(dies, at, first)
    };
    let (off, ty) = find(at)?;
    if rest.is_empty() {
        return Some(off);
    }
    Some(off + member(dies, strip(dies, ty)?, rest)?)
}

/// `struct name`'s complete definition.
fn struct_die(dies: &HashMap<usize, Die>, name: &str) -> Option<usize> {
    let mut v: Vec<usize> = dies
        .iter()
        .filter(|(_, d)| {
            d.depth == 1
                && d.tag == "DW_TAG_structure_type"
                && d.name.as_deref() == Some(name)
                && !d.declaration
                && d.size.is_some()
        })
        .map(|(&o, _)| o)
        .collect();
    v.sort();
    v.first().copied()
}

#[test]
fn profile_from_dwarf_equals_readelfs_reading() {
    let test = "profile_from_dwarf_equals_readelfs_reading";
    let Some(s) = shared(test) else { return };
    if find_in_path("readelf").is_none() {
        not_run(test, "needs readelf (binutils), the second DWARF reader");
        return;
    }
    let syms = s.join("xen-4.17/with-dwarf/xen-syms");
    let out = run(&["profile", p(&syms)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let prof: Value = serde_json::from_str(&out.stdout).expect("profile JSON");
    assert_eq!(prof["type"], "xenwalk_profile");
    assert_eq!(prof["version"], "4.17.5", "the with-dwarf build (its README)");
    assert_eq!(prof["missing"], json!([]));
    let dies = readelf_dies(&syms);
    assert!(dies.len() > 100_000, "readelf gave {} DIEs", dies.len());
    let offsets = prof["offsets"].as_object().unwrap();
    assert!(offsets.len() >= 60, "{} offsets", offsets.len());
    for (key, v) in offsets {
        let (sname, path) = key.split_once('.').unwrap();
        let at = struct_die(&dies, sname).unwrap_or_else(|| panic!("readelf: no struct {sname}"));
        let path: Vec<&str> = path.split('.').collect();
        let want = member(&dies, at, &path).unwrap_or_else(|| panic!("readelf: no {key}"));
        assert_eq!(v.as_u64(), Some(want), "{key}: profile (gimli) against readelf");
    }
    for (name, v) in prof["sizes"].as_object().unwrap() {
        let at = struct_die(&dies, name).unwrap();
        assert_eq!(v.as_u64(), dies[&at].size, "sizeof(struct {name})");
    }
}

#[test]
fn a_profile_of_another_build_is_refused() {
    let test = "a_profile_of_another_build_is_refused";
    let Some(s) = shared(test) else { return };
    let dir = tempdir(test);
    let prof = dir.join("4.17.5.json");
    let out = run(&["profile", p(&s.join("xen-4.17/with-dwarf/xen-syms")), "-o", p(&prof)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let raw = unxz_cached(&s.join("dumps/xen-4.17-dom0/memory.raw.xz"), "xen-4.17-dom0.raw");
    let syms = s.join("xen-4.17/xen-syms-4.17-amd64");
    let r = run(&["domains", p(&raw), "--xen-syms", p(&syms), "--profile", p(&prof)]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("build-id f7cf9fdb") && r.stderr.contains("151b373f"), "{}", r.stderr);
    // A directory without this build's profile: said so, with how many were tried.
    let r = run(&["domains", p(&raw), "--xen-syms", p(&syms), "--profile", p(&dir)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no profile for build-id 151b373f") && r.stderr.contains("1 JSON files"), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).ok();
}

/// The offsets and sizes `info --json` reports for a run, with their sources.
fn info_offsets(args: &[&str]) -> (BTreeMap<String, u64>, BTreeMap<String, u64>, Vec<String>) {
    let mut a = vec!["info", "--json"];
    a.extend_from_slice(args);
    let out = run(&a);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let info: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    let take = |k: &str| -> BTreeMap<String, u64> {
        info["xen"][k]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| Some((o["key"].as_str()?.to_string(), o["value"].as_u64()?)))
            .collect()
    };
    let sources = info["xen"]["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["source"].as_str().map(String::from))
        .collect();
    (take("offsets"), take("sizes"), sources)
}

/// An ISF document (volatility3's dwarf2json shape) holding `offsets` and `sizes`:
/// each `struct.a.b` path becomes nested named struct types, as dwarf2json writes
/// them, and `symbols` ties it to the build.
fn isf(offsets: &BTreeMap<String, u64>, sizes: &BTreeMap<String, u64>, symbols: &[(&str, u64)]) -> Value {
    let mut types: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    // Where the struct a path prefix names starts: its own offset when known, else
    // its parent's (an intermediate member no key names sits at relative offset 0).
    fn base(offsets: &BTreeMap<String, u64>, parts: &[&str]) -> u64 {
        if parts.len() <= 1 {
            return 0;
        }
        offsets.get(&parts.join(".")).copied().unwrap_or_else(|| base(offsets, &parts[..parts.len() - 1]))
    }
    for key in offsets.keys() {
        let parts: Vec<&str> = key.split('.').collect();
        // Each prefix is a struct of its own: "vcpu", "vcpu__arch", "vcpu__arch__hvm".
        for i in 1..parts.len() {
            let owner = parts[..i].join("__");
            let child = &parts[..=i];
            let rel = base(offsets, child) - base(offsets, &parts[..i]);
            let ty = if offsets.keys().any(|k| k.starts_with(&format!("{}.", child.join(".")))) {
                json!({"kind": "struct", "name": child.join("__")})
            } else {
                json!({"kind": "base", "name": "unsigned long"})
            };
            types.entry(owner).or_default().insert(parts[i].to_string(), json!({"offset": rel, "type": ty}));
        }
    }
    let user_types: serde_json::Map<String, Value> = types
        .into_iter()
        .map(|(name, fields)| {
            let size = sizes.get(&name).copied().unwrap_or(0);
            (name, json!({"kind": "struct", "size": size, "fields": fields}))
        })
        .collect();
    let symbols: serde_json::Map<String, Value> =
        symbols.iter().map(|(n, a)| (n.to_string(), json!({"address": a}))).collect();
    json!({"metadata": {"format": "6.2.0"}, "base_types": {}, "user_types": user_types, "enums": {}, "symbols": symbols})
}

/// Two outputs equal line for line; on a difference, the first differing line only.
fn same(got: &str, want: &str, what: &str) {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    if let Some(i) = (0..g.len().max(w.len())).find(|&i| g.get(i) != w.get(i)) {
        panic!("{what}: line {} differs:\n  got:  {:?}\n  want: {:?}", i + 1, g.get(i), w.get(i));
    }
}

#[test]
fn every_offset_source_reads_the_real_dom0_alike() {
    let test = "every_offset_source_reads_the_real_dom0_alike";
    let Some(s) = shared(test) else { return };
    let raw = unxz_cached(&s.join("dumps/xen-4.17-dom0/memory.raw.xz"), "xen-4.17-dom0.raw");
    let syms = s.join("xen-4.17/xen-syms-4.17-amd64");
    let base = [p(&raw), "--xen-syms", p(&syms)];
    let with = |extra: &[&str], cmd: &[&str]| {
        let mut a: Vec<&str> = cmd.to_vec();
        a.extend_from_slice(&base);
        a.extend_from_slice(extra);
        run(&a)
    };
    // The default run: Debian's build has no DWARF, so the built-in table and
    // VMCOREINFO answer.
    let domains = with(&[], &["domains", "--json"]);
    assert_eq!(domains.code, 0, "{}", domains.stderr);
    let p2m = with(&[], &["p2m", "--domain", "0", "--check", "--json"]);
    assert_eq!(p2m.code, 0, "{}", p2m.stderr);
    let (offsets, sizes, sources) = info_offsets(&base);
    assert!(sources.iter().all(|s| s == "builtin" || s == "vmcoreinfo"), "{sources:?}");
    let dir = tempdir(test);

    // xenwalk's profile of this build (its build-id) with the same values.
    let build_id = {
        let out = run(&["info", "--json", p(&raw), "--xen-syms", p(&syms)]);
        let v: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
        v["xen"]["xen_syms"]["build_id"].as_str().unwrap().to_string()
    };
    let prof = dir.join("profile.json");
    let doc = json!({"type": "xenwalk_profile", "schema": 1, "build_id": build_id, "version": "4.17.7",
        "image_start": null, "sizes": sizes, "offsets": offsets, "missing": []});
    std::fs::write(&prof, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    // The ISF form, matched to the build by symbol addresses from System.map.
    let map = std::fs::read_to_string(s.join("xen-4.17/xen-syms-4.17-amd64.map")).unwrap();
    let addr = |name: &str| {
        map.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                let (a, _, n) = (w.next()?, w.next()?, w.next()?);
                (n == name).then(|| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok()).flatten()
            })
            .unwrap()
    };
    let isf_path = dir.join("xen.isf.json");
    let isf_doc =
        isf(&offsets, &sizes, &[("domain_list", addr("domain_list")), ("idle_pg_table", addr("idle_pg_table"))]);
    std::fs::write(&isf_path, serde_json::to_string(&isf_doc).unwrap()).unwrap();
    // --offset for every key and size: VMCOREINFO gives a few, the options the rest.
    let overrides: Vec<String> = offsets.iter().chain(&sizes).map(|(k, v)| format!("--offset={k}={v}")).collect();
    let mut only_options: Vec<&str> = vec!["--offsets-from", "vmcoreinfo"];
    only_options.extend(overrides.iter().map(String::as_str));

    for (what, extra) in [
        ("xenwalk profile", vec!["--offsets-from", "profile,vmcoreinfo", "--profile", p(&prof)]),
        ("profile directory", vec!["--offsets-from", "profile,vmcoreinfo", "--profile", p(&dir)]),
        ("ISF", vec!["--offsets-from", "profile,vmcoreinfo", "--profile", p(&isf_path)]),
        ("--offset", only_options.clone()),
    ] {
        let d = with(&extra, &["domains", "--json"]);
        assert_eq!(d.code, 0, "{what}: domains: {}", d.stderr);
        same(&d.stdout, &domains.stdout, &format!("{what}: domains"));
        let m = with(&extra, &["p2m", "--domain", "0", "--check", "--json"]);
        assert_eq!(m.code, 0, "{what}: p2m: {}", m.stderr);
        same(&m.stdout, &p2m.stdout, &format!("{what}: p2m --check"));
        let mut a = base.to_vec();
        a.extend_from_slice(&extra);
        let (o, _, src) = info_offsets(&a);
        assert_eq!(o, offsets, "{what}: every offset");
        let want = if what == "--offset" { "option" } else { "profile" };
        assert!(src.iter().any(|s| s == want), "{what}: sources {src:?}");
    }
    // An ISF file whose symbols sit elsewhere is another build.
    let wrong = dir.join("wrong.isf.json");
    std::fs::write(&wrong, serde_json::to_string(&isf(&offsets, &sizes, &[("domain_list", 0x1000)])).unwrap()).unwrap();
    let r = with(&["--profile", p(&wrong)], &["domains"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("symbol domain_list"), "{}", r.stderr);
    // VMCOREINFO alone does not know the vCPU array: refused, with how to give it.
    let r = with(&["--offsets-from", "vmcoreinfo"], &["domains"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("unknown") && r.stderr.contains("--offset ") && r.stderr.contains("--profile"),
        "{}",
        r.stderr
    );
    let r = with(&["--offsets-from", "dwarf,nonsense"], &["domains"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("'nonsense'"), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).ok();
}
