//! Xen's virtual memory layout for every release the reference lists (4.0–4.22),
//! checked against the reference itself (`../shared/reference/xen-x86-64.md` §2.2,
//! computed there from each release's `config.h` macros), and, where a real
//! hypervisor is at hand, against its own symbols: `__image_base__` is
//! `XEN_VIRT_START` and `_start` sits `XEN_IMG_OFFSET` above it
//! (`X:xen/arch/x86/xen.lds.S@4.17.0`).
//!
//! The reference is read, not copied: each row of its "Changes per release" table
//! gives a release range, `XEN_VIRT_START` and the offset of `_start`, and names the
//! frame table and direct map where a release moved them; later rows inherit what
//! they do not restate.

mod common;

use common::shared;
use std::path::Path;
use xenwalk::xen::layout::Layout;
use xenwalk::xen::symbols::XenSyms;

/// One row of §2.2: (first minor, last minor, XEN_VIRT_START, `_start` offset, text).
fn rows(reference: &str) -> Vec<(u32, u32, u64, u64, String)> {
    let start = reference.find("### 2.2 Changes per release").expect("§2.2 in the reference");
    let table = &reference[start..];
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        if line.starts_with("###") {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || !cells[1].starts_with("4.") {
            continue;
        }
        let release = cells[1].replace('–', "-");
        let (a, b) = release.split_once('-').unwrap_or((&release, &release));
        let minor = |s: &str| s.trim().trim_start_matches("4.").parse::<u32>().unwrap();
        let va = cells[2].trim_matches('*');
        let virt = if va == "same" {
            out.last().map(|r: &(u32, u32, u64, u64, String)| r.2).expect("a row before 'same'")
        } else {
            u64::from_str_radix(va.trim_start_matches("0x"), 16).expect("XEN_VIRT_START")
        };
        let off = cells[3].trim_matches('*');
        let off = match off {
            "+1 MiB" => 1 << 20,
            "+2 MiB" => 2 << 20,
            o => panic!("unexpected _start offset {o:?}"),
        };
        out.push((minor(a), minor(b), virt, off, cells[4].to_string()));
    }
    out
}

/// The address following `what` in a row's text ("frame table 0xffff82e000000000").
fn named(text: &str, what: &str) -> Option<u64> {
    let i = text.find(what)?;
    let rest = &text[i + what.len()..];
    let hex = rest.trim_start_matches([' ', '*']).strip_prefix("0x")?;
    let end = hex.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(hex.len());
    u64::from_str_radix(&hex[..end], 16).ok()
}

#[test]
fn every_release_layout_equals_the_references_table() {
    let test = "every_release_layout_equals_the_references_table";
    let Some(s) = shared(test) else { return };
    let reference = std::fs::read_to_string(s.join("reference/xen-x86-64.md")).expect("the reference");
    let rows = rows(&reference);
    // Every minor from 4.0 to 4.22 is in exactly one row.
    let covered: Vec<u32> = rows.iter().flat_map(|r| r.0..=r.1).collect();
    assert_eq!(covered, (0..=22).collect::<Vec<_>>(), "the reference's rows: {rows:?}");
    let (mut frame_table, mut directmap) = (None, None);
    let mut big: Option<(u64, u64)> = None;
    let (mut checked, mut checked_big) = (0, 0);
    for (a, b, virt, off, text) in &rows {
        // Non-BIGMEM values; a row naming BIGMEM's places states them after the
        // word BIGMEM, which `named` does not reach for the plain ones.
        let plain = text.split("BIGMEM").next().unwrap_or(text);
        frame_table = named(plain, "frame table").or(frame_table);
        directmap = named(plain, "direct map").or(directmap);
        if let Some((_, bt)) = text.split_once("BIGMEM") {
            big = named(bt, "frame table").zip(named(bt, "direct map from")).or(big);
        }
        for minor in *a..=*b {
            let l = Layout::for_version(4, minor, false);
            assert_eq!(l.xen_virt_start, *virt, "4.{minor}: XEN_VIRT_START");
            assert_eq!(l.image_offset, *off, "4.{minor}: _start offset");
            if let Some(ft) = frame_table {
                assert_eq!(l.frametable_start, ft, "4.{minor}: frame table");
            }
            if let Some(dm) = directmap {
                assert_eq!(l.directmap_start, dm, "4.{minor}: direct map");
            }
            // CONFIG_BIGMEM (4.6+) moves both, from the row that introduced it on.
            if let Some(want) = big {
                let l = Layout::for_version(4, minor, true);
                assert_eq!((l.frametable_start, l.directmap_start), want, "4.{minor} BIGMEM");
                checked_big += 1;
            }
            checked += 1;
        }
    }
    assert_eq!((checked, checked_big), (23, 17), "4.0-4.22, BIGMEM from 4.6");
    assert!(frame_table.is_some() && directmap.is_some(), "the reference names the frame table and direct map");
}

/// The real 4.17 hypervisors' own symbols (binutils' `nm`): `__image_base__` =
/// XEN_VIRT_START, `_start` = XEN_VIRT_START + XEN_IMG_OFFSET, as xenwalk's layout
/// for the version the file names says.
#[test]
fn real_xen_syms_confirm_the_layout_of_their_version() {
    let test = "real_xen_syms_confirm_the_layout_of_their_version";
    let Some(s) = shared(test) else { return };
    for (syms, minor) in [(s.join("xen-4.17/xen-syms-4.17-amd64"), 17), (s.join("xen-4.17/with-dwarf/xen-syms"), 17)] {
        check_syms(&syms, 4, minor);
    }
}

/// Symbols by name from binutils' `nm` (an independent ELF reader).
fn nm(path: &Path, name: &str) -> Option<u64> {
    let out = std::process::Command::new("nm").arg(path).output().expect("run nm");
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (a, _, n) = (f.next()?, f.next()?, f.next()?);
        (n == name).then(|| u64::from_str_radix(a, 16).ok()).flatten()
    })
}

fn check_syms(syms: &Path, major: u32, minor: u32) {
    let l = Layout::for_version(major, minor, false);
    let base = nm(syms, "__image_base__").expect("__image_base__");
    let start = nm(syms, "_start").expect("_start");
    assert_eq!(base, l.xen_virt_start, "{}: __image_base__", syms.display());
    assert_eq!(start, l.xen_virt_start + l.image_offset, "{}: _start", syms.display());
    // The version xenwalk reads from the file itself picks that layout.
    let xs = XenSyms::load(syms).expect("xen-syms");
    let v = xs.version.as_ref().expect("a version in xen-syms");
    assert_eq!((v.major, v.minor), (major, minor), "{}", syms.display());
    assert_eq!(xs.xen_virt_start(), Some(base), "{}", syms.display());
}
