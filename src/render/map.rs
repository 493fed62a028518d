//! Pictures of one address space ([`AddressMap`]): an SVG, a self-contained HTML
//! page around it (no network; hover details in a side panel), a terminal table and
//! JSON Lines for people who plot it themselves.
//!
//! The picture has two parts. The 512 L4 slots as a grid, coloured by the region
//! each belongs to (Xen's layout for the build, when known). Then one row per
//! present slot: its 512 one-GiB cells to scale, each shaded by the logarithm of the
//! bytes mapped in it — a single 4 KiB page in a GiB stays visible, which a linear
//! scale would hide — and the slot's total on a log axis from 4 KiB to 512 GiB,
//! split by page size.

use super::size_name;
use crate::addr::Vaddr;
use crate::paging::Range;
use crate::paging::map::{AddressMap, BySize, Cell, Slot, cell_va, slot_va};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{self, Write};

/// A region as the layout names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionLabel {
    pub name: &'static str,
    pub what: &'static str,
}

/// Names the region of a VA in the mapped root (Xen's layout), if known.
pub type Labeler<'a> = &'a dyn Fn(Vaddr) -> Option<RegionLabel>;

/// What the picture is of, for its title.
pub struct Title<'a> {
    pub dump: &'a str,
    pub root: &'a str,
    pub xen: Option<&'a str>,
}

const GIB: u64 = 1 << 30;
const W: f64 = 1400.0;

/// Fill colour of a region (a fixed palette, so pictures of two roots compare).
pub fn region_color(name: Option<&str>) -> &'static str {
    match name {
        Some("guest" | "guest_pv" | "guest_high" | "guest_top") => "#4e79a7",
        Some("directmap") => "#59a14f",
        Some("directmap_high") => "#8cd17d",
        Some("ro_m2p" | "rdwr_m2p" | "compat_m2p" | "ro_compat_m2p") => "#f28e2b",
        Some("frame_table" | "superpage_table") => "#e15759",
        Some("xen_image") => "#b07aa1",
        Some("perdomain") => "#edc948",
        Some("linear_pt" | "shadow_linear_pt") => "#76b7b2",
        Some("pci_mmcfg") => "#ff9da7",
        Some("vmap" | "ioremap" | "global_map") => "#9c755f",
        Some(_) => "#bab0ac",
        None => "#7f8c9d",
    }
}

/// Page sizes in colours apart from the regions' palette.
const PAGE_COLORS: [(&str, &str); 3] = [("4 KiB", "#6a51a3"), ("2 MiB", "#d94801"), ("1 GiB", "#006d2c")];

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn by_size_words(m: &BySize) -> String {
    let mut parts = Vec::new();
    for (bytes, name) in [(m.page_1g, "1G"), (m.page_2m, "2M"), (m.page_4k, "4K")] {
        if bytes > 0 {
            parts.push(format!("{name} {}", size_name(bytes)));
        }
    }
    if parts.is_empty() { "nothing".into() } else { parts.join(", ") }
}

fn ranges_words(n: u64) -> String {
    if n == 1 { "1 range".into() } else { format!("{n} ranges") }
}

/// The regions a slot's used cells lie in (its first VA's when none is used).
pub fn slot_regions(s: &Slot, label: Labeler<'_>) -> Vec<RegionLabel> {
    let mut v: Vec<RegionLabel> = Vec::new();
    for c in &s.cells {
        if let Some(l) = label(cell_va(s.index, c.index)) {
            if !v.contains(&l) {
                v.push(l);
            }
        }
    }
    if v.is_empty() {
        v.extend(label(slot_va(s.index)));
    }
    v
}

fn range_line(r: &Range) -> String {
    format!(
        "{:#018x} +{} -> {} ({} pages) {}",
        r.va.0,
        size_name(r.size),
        r.maddr,
        size_name(r.page_size),
        r.attrs.flag_names(r.level).join(" ")
    )
}

fn slot_info(s: &Slot, regions: &[RegionLabel]) -> String {
    let va = s.va().0;
    let mut t =
        format!("L4 slot {} ({:#x}): {:#018x}-{:#018x}\n", s.index, s.index, va, va.wrapping_add((1 << 39) - 1));
    for r in regions {
        let _ = writeln!(t, "region {}: {}", r.name, r.what);
    }
    let _ = writeln!(
        t,
        "mapped {} ({}) in {}, {} of 512 GiB cells used",
        size_name(s.mapped.total()),
        by_size_words(&s.mapped),
        ranges_words(s.ranges),
        s.cells.iter().filter(|c| c.mapped.total() > 0).count()
    );
    if s.unreadable_tables > 0 {
        let _ = writeln!(t, "{} tables not in the dump", s.unreadable_tables);
    }
    let _ = write!(t, "L4 entry {:#018x}", s.entry);
    t
}

fn cell_info(s: &Slot, c: &Cell, region: Option<RegionLabel>) -> String {
    let va = cell_va(s.index, c.index).0;
    let mut t = format!("slot {}, L3 entry {:#x}: {:#018x}-{:#018x}\n", s.index, c.index, va, va + (GIB - 1));
    if let Some(r) = region {
        let _ = writeln!(t, "region {}: {}", r.name, r.what);
    }
    let _ = writeln!(
        t,
        "mapped {} ({}) in {}",
        size_name(c.mapped.total()),
        by_size_words(&c.mapped),
        ranges_words(c.ranges)
    );
    if c.unreadable_tables > 0 {
        let _ = writeln!(t, "{} tables under it are not in the dump", c.unreadable_tables);
    }
    if c.reserved_entries > 0 {
        let _ = writeln!(t, "{} entries with reserved bits", c.reserved_entries);
    }
    for r in &c.samples {
        let _ = writeln!(t, "{}", range_line(r));
    }
    if c.ranges > c.samples.len() as u64 {
        let _ = writeln!(t, "... {} more ranges", c.ranges - c.samples.len() as u64);
    }
    t.trim_end().to_string()
}

/// Position on the log axis: 4 KiB at 0, 512 GiB at 1.
fn log_pos(bytes: u64) -> f64 {
    if bytes == 0 {
        return 0.0;
    }
    (((bytes as f64).log2() - 12.0) / 27.0).clamp(0.0, 1.0)
}

/// The SVG document.
pub fn svg(map: &AddressMap, title: &Title<'_>, label: Labeler<'_>) -> String {
    let mut body = String::new();
    let mut y = 0.0;
    let mut o = |s: String| {
        body.push_str(&s);
        body.push('\n');
    };
    // Title.
    o(format!(r#"<text class="title" x="20" y="30">xenwalk map: {}</text>"#, esc(title.root)));
    o(format!(
        r#"<text class="sub" x="20" y="50">{}{} — {} mapped in {} across {} present L4 slots{}</text>"#,
        esc(title.dump),
        title.xen.map(|x| format!(", {}", esc(x))).unwrap_or_default(),
        size_name(map.mapped.total()),
        ranges_words(map.ranges),
        map.slots.len(),
        if map.unreadable_tables > 0 {
            format!("; {} tables not in the dump", map.unreadable_tables)
        } else {
            String::new()
        }
    ));
    y += 72.0;

    // The grid of 512 slots: 32 per row, the halves apart.
    let (cw, ch, gap) = (40.0, 20.0, 2.0);
    let present: std::collections::HashMap<u16, &Slot> = map.slots.iter().map(|s| (s.index, s)).collect();
    let mut legend: Vec<RegionLabel> = Vec::new();
    for half in 0..2u16 {
        let caption = if half == 0 {
            "lower half: L4 slots 0-255 (0x0000000000000000-0x00007fffffffffff), 512 GiB each"
        } else {
            "upper half: L4 slots 256-511 (0xffff800000000000-0xffffffffffffffff)"
        };
        o(format!(r#"<text class="caption" x="20" y="{:.0}">{caption}</text>"#, y + 12.0));
        y += 18.0;
        for row in 0..8u16 {
            for col in 0..32u16 {
                let i = half * 256 + row * 32 + col;
                let (x, yy) = (20.0 + f64::from(col) * (cw + gap), y + f64::from(row) * (ch + gap));
                match present.get(&i) {
                    Some(s) => {
                        let regions = slot_regions(s, label);
                        for r in &regions {
                            if !legend.contains(r) {
                                legend.push(*r);
                            }
                        }
                        let info = slot_info(s, &regions);
                        let fill = region_color(regions.first().map(|r| r.name));
                        let op = if s.mapped.total() > 0 { 1.0 } else { 0.35 };
                        o(format!(
                            r#"<g class="slot" id="slot-{i}" data-info="{info}"><rect x="{x:.0}" y="{yy:.0}" width="{cw}" height="{ch}" fill="{fill}" fill-opacity="{op}"/><text class="n" x="{:.0}" y="{:.0}">{i}</text><title>{info}</title></g>"#,
                            x + 3.0,
                            yy + 14.0,
                            info = esc(&info)
                        ));
                    }
                    None => o(format!(
                        r#"<rect class="empty" x="{x:.0}" y="{yy:.0}" width="{cw}" height="{ch}"><title>L4 slot {i}: not present</title></rect>"#
                    )),
                }
            }
        }
        y += 8.0 * (ch + gap) + 6.0;
    }

    // Legend: the regions seen, then the page sizes.
    y += 6.0;
    for (k, r) in legend.iter().enumerate() {
        let (x, yy) = (20.0 + (k % 4) as f64 * 340.0, y + (k / 4) as f64 * 20.0);
        o(format!(
            r#"<g class="legend" data-info="{name}: {what}"><rect x="{x:.0}" y="{:.0}" width="14" height="14" fill="{}"/><text class="region" x="{:.0}" y="{:.0}">{name}</text><title>{what}</title></g>"#,
            yy,
            region_color(Some(r.name)),
            x + 20.0,
            yy + 12.0,
            name = esc(r.name),
            what = esc(r.what)
        ));
    }
    y += (legend.len().div_ceil(4)) as f64 * 20.0 + 16.0;

    // The rows: one per present slot.
    let (sx, cellw) = (300.0, 1.5);
    let (bx, bw) = (1090.0, 290.0);
    o(format!(r#"<text class="caption" x="20" y="{:.0}">present L4 slots</text>"#, y + 12.0));
    o(format!(
        r#"<text class="caption" x="{sx}" y="{:.0}">inside the slot: its 512 one-GiB L3 entries to scale, shade = log of the bytes mapped</text>"#,
        y + 12.0
    ));
    o(format!(r#"<text class="caption" x="{bx}" y="{:.0}">bytes mapped (log axis), by page size</text>"#, y + 12.0));
    for (name, bytes) in [("4K", 1u64 << 12), ("1M", 1 << 20), ("1G", 1 << 30), ("512G", 1 << 39)] {
        let x = bx + log_pos(bytes) * bw;
        o(format!(r#"<line class="tick" x1="{x:.1}" x2="{x:.1}" y1="{:.0}" y2="{:.0}"/>"#, y + 18.0, y + 24.0));
        o(format!(r#"<text class="tick" x="{x:.1}" y="{:.0}">{name}</text>"#, y + 34.0));
    }
    y += 40.0;
    for g in groups(map, label) {
        let s = &map.slots[*g.start()];
        let regions = slot_regions(s, label);
        let names: Vec<&str> = regions.iter().map(|r| r.name).collect();
        if g.start() != g.end() {
            let last = &map.slots[*g.end()];
            let info = esc(&format!(
                "L4 slots {}-{}: present, but their tables map nothing\nfrom {:#018x}",
                s.index,
                last.index,
                s.va().0
            ));
            o(format!(
                r#"<g class="row" data-info="{info}"><title>{info}</title><text class="slotname" x="20" y="{:.0}">slots {}-{} <tspan class="region">{}</tspan></text><text class="small" x="20" y="{:.0}">{:#018x} · present, map nothing (empty tables)</text></g>"#,
                y + 12.0,
                s.index,
                last.index,
                esc(&names.join(", ")),
                y + 26.0,
                s.va().0
            ));
            y += 38.0;
            continue;
        }
        let info = esc(&slot_info(s, &regions));
        o(format!(r#"<g class="row" data-info="{info}"><title>{info}</title>"#));
        // The label must stay left of the strip: at most ~30 characters of names.
        let mut shown = String::new();
        for (k, n) in names.iter().enumerate() {
            let sep = if k == 0 { "" } else { ", " };
            if shown.len() + sep.len() + n.len() > 30 {
                shown.push_str(&format!(" +{}", names.len() - k));
                break;
            }
            shown.push_str(sep);
            shown.push_str(n);
        }
        o(format!(
            r#"<text class="slotname" x="20" y="{:.0}">slot {} <tspan class="region">{}</tspan></text>"#,
            y + 12.0,
            s.index,
            esc(&shown)
        ));
        o(format!(
            r#"<text class="small" x="20" y="{:.0}">{:#018x} · {} · {}</text>"#,
            y + 26.0,
            s.va().0,
            size_name(s.mapped.total()),
            ranges_words(s.ranges)
        ));
        o(format!(r#"<rect class="strip" x="{sx}" y="{:.0}" width="{:.0}" height="16"/>"#, y + 4.0, 512.0 * cellw));
        o(format!(r#"<rect class="bar" x="{bx}" y="{:.0}" width="{bw}" height="16"/>"#, y + 4.0));
        o("</g>".into());
        for c in &s.cells {
            let region = label(cell_va(s.index, c.index));
            let total = c.mapped.total();
            let x = sx + f64::from(c.index) * cellw;
            let (fill, op) = if total > 0 {
                (
                    region_color(region.map(|r| r.name)),
                    0.3 + 0.7 * (((total as f64).log2() - 12.0) / 18.0).clamp(0.0, 1.0),
                )
            } else {
                ("#d62728", 1.0) // only unreadable tables or reserved entries
            };
            let info = esc(&cell_info(s, c, region));
            o(format!(
                r#"<rect class="cell" data-info="{info}" x="{x:.2}" y="{:.0}" width="{:.2}" height="16" fill="{fill}" fill-opacity="{op:.2}"><title>{info}</title></rect>"#,
                y + 4.0,
                cellw.max(2.5)
            ));
        }
        // The log bar, split by page size in proportion.
        let len = log_pos(s.mapped.total()) * bw;
        let total = s.mapped.total().max(1) as f64;
        let mut x = bx;
        for ((_, color), bytes) in PAGE_COLORS.iter().zip([s.mapped.page_4k, s.mapped.page_2m, s.mapped.page_1g]) {
            if bytes == 0 {
                continue;
            }
            let w = (len * bytes as f64 / total).max(1.0);
            o(format!(
                r#"<rect class="size" x="{x:.1}" y="{:.0}" width="{w:.1}" height="16" fill="{color}"><title>{}</title></rect>"#,
                y + 4.0,
                esc(&format!(
                    "slot {}: {} mapped ({})",
                    s.index,
                    size_name(s.mapped.total()),
                    by_size_words(&s.mapped)
                ))
            ));
            x += w;
        }
        y += 38.0;
    }
    // Page-size legend.
    for (k, (name, color)) in PAGE_COLORS.iter().enumerate() {
        let x = bx + k as f64 * 95.0;
        o(format!(r#"<rect x="{x:.0}" y="{:.0}" width="12" height="12" fill="{color}"/>"#, y + 2.0));
        o(format!(r#"<text class="small" x="{:.0}" y="{:.0}">{name} pages</text>"#, x + 16.0, y + 12.0));
    }
    y += 24.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W:.0}" height="{y:.0}" viewBox="0 0 {W:.0} {y:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    svg.push_str(
        r##"<style>
.title{font-size:20px;font-weight:bold} .sub{font-size:12px;fill:#444} .caption{font-size:12px;fill:#333;font-weight:bold}
.n{font-size:9px;fill:#fff} .empty{fill:#f0f0f0} .region{font-size:12px} .slotname{font-size:12px;font-weight:bold}
.small{font-size:10px;fill:#555} .strip{fill:#f4f4f4;stroke:#ccc;stroke-width:0.5} .bar{fill:#f4f4f4;stroke:#ccc;stroke-width:0.5}
.tick{font-size:10px;fill:#555;stroke:#999} text.tick{stroke:none;text-anchor:middle}
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
"##,
    );
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

/// The slots in runs: a run of consecutive present slots that map nothing, lack no
/// table and lie in the same regions (a guest kernel's preallocated, empty L3
/// tables) is one group; every other slot is its own. Index ranges into `map.slots`.
pub fn groups(map: &AddressMap, label: Labeler<'_>) -> Vec<std::ops::RangeInclusive<usize>> {
    let empty = |s: &Slot| s.mapped.total() == 0 && s.unreadable_tables == 0 && s.reserved_entries == 0;
    let mut v = Vec::new();
    let mut i = 0;
    while i < map.slots.len() {
        let mut j = i;
        if empty(&map.slots[i]) {
            let regions = slot_regions(&map.slots[i], label);
            while j + 1 < map.slots.len()
                && map.slots[j + 1].index == map.slots[j].index + 1
                && empty(&map.slots[j + 1])
                && slot_regions(&map.slots[j + 1], label) == regions
            {
                j += 1;
            }
        }
        v.push(i..=j);
        i = j + 1;
    }
    v
}

fn dash(b: u64) -> String {
    if b == 0 { "-".into() } else { size_name(b) }
}

/// The self-contained HTML page: the SVG inline, a panel with the details of what
/// the pointer is over, and a table of the slots.
pub fn html(map: &AddressMap, title: &Title<'_>, label: Labeler<'_>) -> String {
    let svg = svg(map, title, label);
    let mut rows = String::new();
    for s in &map.slots {
        let regions = slot_regions(s, label);
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td><code>{:#018x}</code></td><td class=\"region\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.index,
            s.va().0,
            esc(&regions.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")),
            dash(s.mapped.total()),
            dash(s.mapped.page_4k),
            dash(s.mapped.page_2m),
            dash(s.mapped.page_1g),
            s.ranges,
            s.unreadable_tables
        );
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>xenwalk map: {root}</title>
<style>
body {{ font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 16px; color: #222; }}
#detail {{ position: fixed; top: 8px; right: 8px; width: 460px; min-height: 60px; max-height: 60vh; overflow: auto;
  background: #fffff4; border: 1px solid #bbb; padding: 8px; font: 12px monospace; white-space: pre-wrap; }}
[data-info]:hover {{ stroke: #000; stroke-width: 1; }}
table {{ border-collapse: collapse; margin-top: 16px; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
td.region {{ text-align: left; }}
</style>
</head>
<body>
<pre id="detail">Point at a slot, a GiB cell or a bar for its details.</pre>
{svg}
<table id="slots">
<tr><th>slot</th><th>first VA</th><th>region</th><th>mapped</th><th>4K</th><th>2M</th><th>1G</th><th>ranges</th><th>tables absent</th></tr>
{rows}</table>
<script>
(function () {{
  var panel = document.getElementById('detail');
  document.querySelectorAll('[data-info]').forEach(function (e) {{
    e.addEventListener('mouseenter', function () {{ panel.textContent = e.getAttribute('data-info'); }});
  }});
  // A link to page.html#slot-262 opens with that slot's details shown.
  var target = location.hash && document.getElementById(location.hash.slice(1));
  if (target && target.hasAttribute('data-info')) {{ panel.textContent = target.getAttribute('data-info'); }}
}})();
</script>
</body>
</html>
"#,
        root = esc(title.root),
    )
}

/// One line per present slot, fitted to `width` columns.
pub fn text(out: &mut dyn Write, map: &AddressMap, label: Labeler<'_>, width: usize) -> io::Result<()> {
    let fixed = 7 + 1 + 18 + 1 + 10 + 1 + 10 + 1 + 10 + 1 + 10 + 1 + 8 + 1 + 4 + 1;
    let region_w = width.saturating_sub(fixed).clamp(10, 40);
    writeln!(
        out,
        "{:<7} {:<18} {:<region_w$} {:>10} {:>10} {:>10} {:>10} {:>8} {:>4}",
        "slot", "first VA", "region", "mapped", "4K", "2M", "1G", "ranges", "GiBs"
    )?;
    for g in groups(map, label) {
        let (s, last) = (&map.slots[*g.start()], &map.slots[*g.end()]);
        let regions = slot_regions(s, label);
        if g.start() != g.end() {
            let names = regions.iter().map(|r| r.name).collect::<Vec<_>>().join(",");
            writeln!(
                out,
                "{:<7} {:#018x} {:<region_w$} present, map nothing (empty tables)",
                format!("{}-{}", s.index, last.index),
                s.va().0,
                names
            )?;
            continue;
        }
        let mut names = regions.iter().map(|r| r.name).collect::<Vec<_>>().join(",");
        if names.len() > region_w {
            names.truncate(region_w.saturating_sub(1));
            names.push('~');
        }
        let sz = |b: u64| if b == 0 { "-".to_string() } else { size_name(b) };
        writeln!(
            out,
            "{:<7} {:#018x} {:<region_w$} {:>10} {:>10} {:>10} {:>10} {:>8} {:>4}{}",
            s.index,
            s.va().0,
            names,
            sz(s.mapped.total()),
            sz(s.mapped.page_4k),
            sz(s.mapped.page_2m),
            sz(s.mapped.page_1g),
            s.ranges,
            s.cells.iter().filter(|c| c.mapped.total() > 0).count(),
            if s.unreadable_tables > 0 { format!("  ({} tables absent)", s.unreadable_tables) } else { String::new() }
        )?;
    }
    writeln!(
        out,
        "{} present slots, {} mapped ({}) in {}{}",
        map.slots.len(),
        size_name(map.mapped.total()),
        by_size_words(&map.mapped),
        ranges_words(map.ranges),
        if map.unreadable_tables > 0 {
            format!(", {} tables not in the dump", map.unreadable_tables)
        } else {
            String::new()
        }
    )
}

#[derive(Serialize)]
struct SlotLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    slot: u16,
    va: Vaddr,
    #[serde(serialize_with = "super::json::hex")]
    entry: u64,
    regions: Vec<&'a str>,
    mapped: BySize,
    ranges: u64,
    cells_used: usize,
    unreadable_tables: u64,
    reserved_entries: u64,
}

#[derive(Serialize)]
struct CellLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    slot: u16,
    index: u16,
    va: Vaddr,
    region: Option<&'a str>,
    mapped: BySize,
    ranges: u64,
    unreadable_tables: u64,
    reserved_entries: u64,
}

#[derive(Serialize)]
struct SummaryLine {
    #[serde(rename = "type")]
    kind: &'static str,
    root: crate::addr::Maddr,
    slots_present: usize,
    mapped: BySize,
    ranges: u64,
    unreadable_tables: u64,
    reserved_entries: u64,
}

/// `map_slot`, `map_cell` and `map_summary` lines.
pub fn json(out: &mut dyn Write, map: &AddressMap, label: Labeler<'_>) -> io::Result<()> {
    for s in &map.slots {
        let regions = slot_regions(s, label);
        let line = SlotLine {
            kind: "map_slot",
            slot: s.index,
            va: s.va(),
            entry: s.entry,
            regions: regions.iter().map(|r| r.name).collect(),
            mapped: s.mapped,
            ranges: s.ranges,
            cells_used: s.cells.iter().filter(|c| c.mapped.total() > 0).count(),
            unreadable_tables: s.unreadable_tables,
            reserved_entries: s.reserved_entries,
        };
        serde_json::to_writer(&mut *out, &line)?;
        writeln!(out)?;
        for c in &s.cells {
            let va = cell_va(s.index, c.index);
            let line = CellLine {
                kind: "map_cell",
                slot: s.index,
                index: c.index,
                va,
                region: label(va).map(|r| r.name),
                mapped: c.mapped,
                ranges: c.ranges,
                unreadable_tables: c.unreadable_tables,
                reserved_entries: c.reserved_entries,
            };
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)?;
        }
    }
    let line = SummaryLine {
        kind: "map_summary",
        root: map.root,
        slots_present: map.slots.len(),
        mapped: map.mapped,
        ranges: map.ranges,
        unreadable_tables: map.unreadable_tables,
        reserved_entries: map.reserved_entries,
    };
    serde_json::to_writer(&mut *out, &line)?;
    writeln!(out)
}
