//! `xenwalk map`: the picture of an address space. Its numbers must be the listing's
//! numbers (same root, same bytes, same ranges), its SVG well-formed with Xen's
//! regions named, and its HTML must render in a real headless browser: a screenshot
//! that is not blank, the region labels in the DOM, the hover details wired.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sample() -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    (
        root.join("fixtures/xen-4.17-idle.core").display().to_string(),
        root.join("fixtures/xen-syms-4.17.sample").display().to_string(),
    )
}

fn lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

/// The map's totals against the listing's summary of the same root.
fn check_against_listing(args: &[&str]) -> Vec<Value> {
    let mut m = vec!["map"];
    m.extend_from_slice(args);
    m.push("--json");
    let out = common::run(&m);
    assert_eq!(out.code, 0, "{m:?}: {}", out.stderr);
    let map = lines(&out.stdout);
    assert_eq!(map[0]["type"], "root");
    let summary = map.iter().find(|l| l["type"] == "map_summary").expect("map_summary");
    let mut l: Vec<&str> = args.to_vec();
    l.push("--json");
    let out = common::run(&l);
    assert!(out.code <= 1, "{l:?}: {}", out.stderr);
    let listing = lines(&out.stdout);
    let ls = listing.iter().find(|l| l["type"] == "summary").expect("listing summary");
    let mapped = &summary["mapped"];
    let total: u64 = ["page_4k", "page_2m", "page_1g"].iter().map(|k| mapped[k].as_u64().unwrap()).sum();
    assert_eq!(total, ls["mapped_bytes"].as_u64().unwrap(), "map and listing agree on the bytes mapped");
    assert_eq!(mapped["page_4k"].as_u64().unwrap(), ls["leaves"]["l1"].as_u64().unwrap() * 4096);
    assert_eq!(mapped["page_2m"].as_u64().unwrap(), ls["leaves"]["l2"].as_u64().unwrap() << 21);
    assert_eq!(mapped["page_1g"].as_u64().unwrap(), ls["leaves"]["l3"].as_u64().unwrap() << 30);
    assert_eq!(summary["unreadable_tables"], ls["unreadable_tables"]);
    // Per slot, the cells add up to the slot.
    for s in map.iter().filter(|l| l["type"] == "map_slot") {
        let slot = s["slot"].as_u64().unwrap();
        let cells: u64 = map
            .iter()
            .filter(|c| c["type"] == "map_cell" && c["slot"].as_u64() == Some(slot))
            .map(|c| ["page_4k", "page_2m", "page_1g"].iter().map(|k| c["mapped"][k].as_u64().unwrap()).sum::<u64>())
            .sum();
        let own: u64 = ["page_4k", "page_2m", "page_1g"].iter().map(|k| s["mapped"][k].as_u64().unwrap()).sum();
        assert_eq!(cells, own, "slot {slot}: cells add up");
    }
    map
}

fn slot(map: &[Value], n: u64) -> Option<&Value> {
    map.iter().find(|l| l["type"] == "map_slot" && l["slot"].as_u64() == Some(n))
}

#[test]
fn map_of_the_sample_names_xens_regions_and_matches_the_listing() {
    let (core, syms) = sample();
    let map = check_against_listing(&[&core, "--xen-syms", &syms]);
    let slots: Vec<u64> = map.iter().filter(|l| l["type"] == "map_slot").map(|l| l["slot"].as_u64().unwrap()).collect();
    assert_eq!(slots, [0, 256, 257, 258, 261, 262], "idle_pg_table's present slots");
    let regions = |n| {
        slot(&map, n).unwrap()["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(regions(262), ["directmap"]);
    assert_eq!(regions(258), ["linear_pt"]);
    assert_eq!(regions(261), ["rdwr_m2p", "vmap", "xen_image", "frame_table"]);
    // The sample leaves out the L2 under the RW M2P: slot 261 says so.
    assert!(slot(&map, 261).unwrap()["unreadable_tables"].as_u64().unwrap() >= 1);

    // The SVG: well-formed, one slot group per present slot, regions named in text.
    let dir = common::tempdir("map-sample");
    let svg = dir.join("idle.svg");
    let out = common::run(&["map", &core, "--xen-syms", &syms, "--svg", svg.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("wrote"), "the message goes to stderr: {}", out.stderr);
    assert!(out.stdout.contains("262     0xffff830000000000 directmap"), "the table on stdout:\n{}", out.stdout);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
    let groups: Vec<&str> =
        doc.descendants().filter(|n| n.attribute("class") == Some("slot")).filter_map(|n| n.attribute("id")).collect();
    assert_eq!(groups, ["slot-0", "slot-256", "slot-257", "slot-258", "slot-261", "slot-262"]);
    let words: String =
        doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect::<Vec<_>>().join(" ");
    for r in ["directmap", "linear_pt", "xen_image", "frame_table", "rdwr_m2p", "ro_m2p", "pci_mmcfg"] {
        assert!(words.contains(r), "region {r} is named in the SVG");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn map_without_xen_syms_and_bad_roots() {
    let (core, _) = sample();
    // No xen-syms: CPU 0's root from the notes, halves instead of regions.
    let map = check_against_listing(&[&core]);
    assert_eq!(slot(&map, 262).unwrap()["regions"], serde_json::json!(["upper_half"]));
    // A frame number as CR3: exit 1 and the next command on stderr.
    let out = common::run(&["map", &core, "--cr3", "0x3fc6e"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cr3_is_frame_number"), "{}", out.stderr);
    assert!(out.stderr.contains("next: xenwalk") && out.stderr.contains("--cr3-mfn 0x3fc6e"), "{}", out.stderr);
    // An unwritable output file is an error naming it.
    let out = common::run(&["map", &core, "--svg", "/nonexistent-dir/x.svg"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("/nonexistent-dir/x.svg"), "{}", out.stderr);
}

/// On the real dom0 image: dom0's kernel root, against the listing; the guest's own
/// half is labelled as the guest's, the per-domain slot is there.
#[test]
fn map_of_real_dom0_guest_root() {
    let Some(shared) = common::shared("map_of_real_dom0_guest_root") else { return };
    let raw = common::unxz_cached(&shared.join("dumps/xen-4.17-dom0/memory.raw.xz"), "xen-4.17-dom0.raw");
    let syms = shared.join("xen-4.17/xen-syms-4.17-amd64");
    let (r, x) = (raw.to_str().unwrap(), syms.to_str().unwrap());
    let map = check_against_listing(&[r, "--xen-syms", x, "--domain", "0"]);
    assert_eq!(slot(&map, 260).unwrap()["regions"], serde_json::json!(["perdomain"]));
    assert_eq!(slot(&map, 273).unwrap()["regions"], serde_json::json!(["guest_pv"]));
    assert_eq!(slot(&map, 258).unwrap()["regions"], serde_json::json!(["linear_pt"]));
    assert!(slot(&map, 259).is_none());
}

/// A headless browser, if one is installed (scripts/setup-writers.sh installs
/// Debian's chromium).
fn browser() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
        if let Ok(out) = Command::new("sh").args(["-c", &format!("command -v {name}")]).output() {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !p.is_empty() {
                return Some(PathBuf::from(p));
            }
        }
    }
    None
}

fn headless(browser: &Path, profile: &Path, extra: &[&str], url: &str) -> std::process::Output {
    let mut c = Command::new(browser);
    c.args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url);
    c.output().expect("run the browser")
}

#[test]
fn html_map_renders_in_a_headless_browser() {
    let Some(b) = browser() else {
        return common::not_run(
            "html_map_renders_in_a_headless_browser",
            "needs a headless chromium (scripts/setup-writers.sh installs Debian's)",
        );
    };
    let (core, syms) = sample();
    let dir = common::tempdir("map-browser");
    let html = dir.join("idle.html");
    let out = common::run(&["map", &core, "--xen-syms", &syms, "--html", html.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    for external in ["<script src", "<link", "url(http", "<img", "@import"] {
        assert!(!page.contains(external), "self-contained: no {external}");
    }
    let url = format!("file://{}", html.display());

    // A screenshot: not blank, and the region colours are drawn.
    let png = dir.join("shot.png");
    let o = headless(
        &b,
        &dir.join("profile"),
        &["--window-size=1400,1100", &format!("--screenshot={}", png.display())],
        &url,
    );
    assert!(png.exists(), "no screenshot: {}", String::from_utf8_lossy(&o.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1400, 1100));
    let ch = info.color_type.samples();
    let px: Vec<[u8; 3]> = buf[..info.buffer_size()].chunks(ch).map(|p| [p[0], p[1], p[2]]).collect();
    let non_white = px.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(non_white * 20 > px.len(), "the page is nearly blank: {non_white} of {} pixels drawn", px.len());
    let has = |rgb: [u8; 3]| px.iter().filter(|p| **p == rgb).count();
    assert!(has([0x59, 0xa1, 0x4f]) > 200, "directmap's green is drawn");
    assert!(has([0x76, 0xb7, 0xb2]) > 200, "linear_pt's teal is drawn");
    let distinct: std::collections::HashSet<[u8; 3]> = px.iter().copied().collect();
    assert!(distinct.len() > 20, "only {} colours: not a picture", distinct.len());

    // The DOM after scripts ran: the region labels, and the details panel filled
    // from a slot's data when the page is opened at #slot-262.
    let o = headless(&b, &dir.join("profile"), &["--dump-dom"], &format!("{url}#slot-262"));
    let dom = String::from_utf8_lossy(&o.stdout);
    for r in ["directmap", "linear_pt", "xen_image", "frame_table", "rdwr_m2p", "pci_mmcfg"] {
        assert!(dom.contains(&format!(">{r}<")), "region label {r} in the DOM");
    }
    let panel = dom.split("id=\"detail\">").nth(1).and_then(|s| s.split("</pre>").next()).unwrap_or("");
    assert!(panel.starts_with("L4 slot 262 (0x106)"), "the panel shows slot 262's details: {panel:?}");
    assert!(panel.contains("region directmap"), "{panel:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
