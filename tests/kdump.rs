//! kdump-compressed and flattened dumps.
//!
//! Real data (`../shared/dumps/xen-4.17-idle/memory.kdump`, QEMU `dump-guest-memory
//! -z` of the same moment as the raw and ELF images): every page must equal the raw
//! image's, the listing of CPU 0's root and the translations must equal the raw
//! image's and QEMU's, the notes must give both CPUs' CR3; the same file re-cut into
//! flattened records (out of order, overlapping) must read the same.
//!
//! Synthetic data (always runs): the Xen-like fixture written by
//! `xenwalk::fixture::kdump` with every compression kind, every header version, the
//! old DISKDUMP signature, excluded pages and holes, plain and flattened.

mod common;

use common::{parse_gva2gpa, parse_qemu_tlb, read_text, run, shared, unxz_cached};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;
use xenwalk::dump::{Dump, Format, OpenOptions};
use xenwalk::fixture::kdump::KdumpOptions;
use xenwalk::fixture::xen::{self, XenLike};
use xenwalk::fixture::{CpuRegs, qemu_cpu_notes, xen_crash_notes};
use xenwalk::mem::kdump::Compression;
use xenwalk::mem::{Absent, PhysMem, ReadError};
use xenwalk::paging::{Event, Leaf, WalkOptions, enumerate, walk};
use xenwalk::{Maddr, Mfn, Vaddr};

fn open(p: &Path) -> Dump {
    Dump::open(p, OpenOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn leaves(mem: &dyn PhysMem, cr3: u64) -> Vec<Leaf> {
    let mut v = Vec::new();
    let s = enumerate(mem, Maddr(cr3), WalkOptions::default(), |ev| {
        match ev {
            Event::Leaf(l) => v.push(*l),
            other => panic!("unexpected event on a real root: {other:?}"),
        }
        std::ops::ControlFlow::Continue(())
    });
    assert_eq!(s.unreadable_tables, 0);
    v
}

fn cr3_of(dir: &Path, cpu: usize) -> u64 {
    let text = read_text(&dir.join(format!("qemu-info-registers-cpu{cpu}.txt")));
    let v = text.split_whitespace().find_map(|w| w.strip_prefix("CR3=")).expect("CR3=");
    u64::from_str_radix(v, 16).expect("hex")
}

struct Real {
    dir: PathBuf,
    raw: PathBuf,
    kdump: PathBuf,
}

fn real(test: &str) -> Option<Real> {
    let s = shared(test)?;
    let dir = s.join("dumps/xen-4.17-idle");
    Some(Real {
        raw: unxz_cached(&dir.join("memory.raw.xz"), "xen-4.17-idle.raw"),
        kdump: dir.join("memory.kdump"),
        dir,
    })
}

/// Re-cut a plain kdump file into flattened records: 1000-byte records in reverse
/// order, a garbage record over the descriptors written before the real ones, the
/// header block's padding left out. What `makedumpfile -R` rebuilds from it is the
/// original file.
fn flatten(src: &Path, dst: &Path) {
    let data = std::fs::read(src).unwrap();
    let mut out = vec![0u8; 4096];
    out[..12].copy_from_slice(b"makedumpfile");
    out[16..24].copy_from_slice(&1i64.to_be_bytes());
    out[24..32].copy_from_slice(&1i64.to_be_bytes());
    let mut rec = |off: usize, bytes: &[u8]| {
        out.extend_from_slice(&(off as i64).to_be_bytes());
        out.extend_from_slice(&(bytes.len() as i64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    rec(0x42000, &[0xa5; 5000]);
    let mut pieces: Vec<(usize, &[u8])> = vec![(0, &data[..464])];
    let mut off = 4096;
    while off < data.len() {
        let n = 1000.min(data.len() - off);
        pieces.push((off, &data[off..off + n]));
        off += n;
    }
    for (off, bytes) in pieces.iter().rev() {
        rec(*off, bytes);
    }
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    std::fs::write(dst, out).unwrap();
}

/// What a kdump-compressed file's page descriptors say, read here without xenwalk:
/// the dumpable pages (the second bitmap's set bits) and each descriptor's
/// compression flag (DUMP_DH_COMPRESSED_ZLIB = 1, none = raw, anything else other).
struct SecondCensus {
    dumpable: u64,
    zlib: u64,
    raw: u64,
    other: u64,
}

fn descriptor_census(path: &Path) -> SecondCensus {
    let d = std::fs::read(path).unwrap();
    let u32_at = |at: usize| u32::from_le_bytes(d[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(&d[..8], b"KDUMP   ");
    // struct disk_dump_header: signature[8], header_version, new_utsname (390 bytes),
    // a timeval at 408, then status, block_size, sub_hdr_size, bitmap_blocks.
    let (block, sub, bitmap_blocks) = (u32_at(428), u32_at(432), u32_at(436));
    let half = bitmap_blocks / 2 * block;
    let second = (1 + sub) * block + half;
    let dumpable: u64 = d[second..second + half].iter().map(|b| b.count_ones() as u64).sum();
    let descs = (1 + sub + bitmap_blocks) * block;
    let mut c = SecondCensus { dumpable, zlib: 0, raw: 0, other: 0 };
    for i in 0..dumpable as usize {
        // struct page_desc: offset (8), size (4), flags (4), page_flags (8).
        match u32_at(descs + 24 * i + 12) {
            0 => c.raw += 1,
            1 => c.zlib += 1,
            _ => c.other += 1,
        }
    }
    c
}

#[test]
fn real_kdump_pages_equal_the_raw_image() {
    let Some(r) = real("real_kdump_pages_equal_the_raw_image") else {
        return;
    };
    let raw = open(&r.raw);
    let t = Instant::now();
    let k = open(&r.kdump);
    eprintln!("kdump opened in {:?}", t.elapsed());
    assert!(k.warnings.is_empty(), "{:?}", k.warnings);
    let Format::Kdump(s) = &k.format else { panic!("not read as kdump: {:?}", k.format) };
    assert_eq!((s.signature, s.header_version, s.status), ("KDUMP", 6, 1));
    assert_eq!((s.max_mapnr, s.dump_level, s.two_bitmaps), (0x10_0000, Some(1), true));
    // 1 GiB of RAM and QEMU's 256 KiB BIOS ROM at 0xfffc0000, all dumped.
    assert_eq!((s.pages_present, s.pages_dumped, s.pages_excluded), (262_208, 262_208, 0));
    // The compression census against a second reader of the file: this test's own
    // walk of the bitmaps and page descriptors (makedumpfile's diskdump_mod.h).
    let second = descriptor_census(&r.kdump);
    assert_eq!(second.dumpable, s.pages_dumped);
    assert_eq!(second.dumpable, 262_208, "1 GiB of RAM and the 64 pages of the BIOS ROM");
    let c = k.kdump_census().unwrap();
    assert_eq!((c.zlib, c.raw, c.unknown, c.unreadable), (second.zlib, second.raw, 0, 0));
    assert_eq!((c.lzo, c.snappy, c.zstd), (0, 0, 0));
    assert_eq!(second.other, 0, "QEMU wrote this file with zlib only");
    for mfn in 0..(1u64 << 30) >> 12 {
        let a = raw.mem.page(Mfn(mfn)).unwrap();
        let b = k.mem.page(Mfn(mfn)).unwrap();
        assert!(*a == *b, "page {mfn:#x} differs");
    }
    // The ROM is in the kdump (and the ELF core), not in the raw RAM image; the MMIO
    // hole between is a hole, past the ROM is outside.
    let elf = open(&unxz_cached(&r.dir.join("memory.elf.xz"), "xen-4.17-idle.elf"));
    for mfn in 0xfffc0..0x100000u64 {
        assert!(*elf.mem.page(Mfn(mfn)).unwrap() == *k.mem.page(Mfn(mfn)).unwrap());
    }
    assert!(matches!(
        k.mem.locate(Maddr(0x8000_0000)),
        Err(Absent::Hole { prev_end: Maddr(0x4000_0000), next_start: Maddr(0xfffc_0000) })
    ));
    assert!(matches!(k.mem.page(Mfn(0x100000)), Err(ReadError::Absent { why: Absent::OutsideImage { .. }, .. })));
    assert_eq!(raw.mem.extents().len(), 1);
    let ext = k.mem.extents();
    assert_eq!(ext.len(), 2);
    assert_eq!((ext[1].start, ext[1].len, ext[1].present), (Maddr(0xfffc_0000), 0x40000, true));
}

#[test]
fn real_kdump_listing_and_translations_equal_raw_and_qemu() {
    let Some(r) = real("real_kdump_listing_and_translations_equal_raw_and_qemu") else {
        return;
    };
    let raw = open(&r.raw);
    let k = open(&r.kdump);
    let flat_path = common::tempdir("kdump-real-flat").join("memory.flat");
    flatten(&r.kdump, &flat_path);
    let flat = open(&flat_path);
    let Format::Kdump(fs) = &flat.format else { panic!("flattened not read as kdump") };
    assert!(fs.flattened.as_ref().is_some_and(|f| f.records > 8000));
    assert!(flat.warnings.is_empty(), "{:?}", flat.warnings);

    let cr3 = cr3_of(&r.dir, 0);
    assert_eq!(cr3, 0x3fc6_e000);
    let t = Instant::now();
    let from_raw = leaves(raw.mem.as_ref(), cr3);
    let t_raw = t.elapsed();
    let t = Instant::now();
    let from_kdump = leaves(k.mem.as_ref(), cr3);
    let t_kdump = t.elapsed();
    let from_flat = leaves(flat.mem.as_ref(), cr3);
    eprintln!("listing: raw {t_raw:?}, kdump {t_kdump:?}");
    assert_eq!(from_raw.len(), 3010);
    assert_eq!(from_kdump, from_raw, "kdump listing differs from the raw image's");
    assert_eq!(from_flat, from_raw, "flattened listing differs from the raw image's");
    let qemu = parse_qemu_tlb(&read_text(&r.dir.join("qemu-info-tlb-cpu0.txt")));
    let ours: Vec<(u64, u64)> = from_kdump.iter().map(|l| (l.va.0, l.page.0)).collect();
    let theirs: Vec<(u64, u64)> = qemu.iter().map(|l| (l.va, l.pa)).collect();
    assert_eq!(ours, theirs, "kdump listing differs from QEMU's info tlb");

    let mut n = 0;
    for (cpu, va, label, pa) in parse_gva2gpa(&read_text(&r.dir.join("qemu-gva2gpa.txt"))) {
        let cr3 = cr3_of(&r.dir, cpu);
        for d in [&raw, &k, &flat] {
            let w = walk(d.mem.as_ref(), Maddr(cr3), Vaddr(va), WalkOptions::default());
            assert_eq!(w.mapping().map(|m| m.maddr.0), pa, "cpu{cpu} {va:#x} ({label})");
        }
        n += 1;
    }
    assert_eq!(n, 66);

    // Through the binary, the JSON listing is the raw image's line for line (both
    // runs succeeding), and leaf by leaf QEMU's walk.
    let listing = |p: &Path, extra: &[&str]| {
        let mut args = vec![p.to_str().unwrap(), "--cr3", "0x3fc6e000", "--json"];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(out.code, 0, "{}: {}", p.display(), out.stderr);
        out
    };
    assert_eq!(listing(&r.kdump, &[]).stdout, listing(&r.raw, &[]).stdout);
    let hex = |v: &serde_json::Value| u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let cli: Vec<(u64, u64)> =
        listing(&r.kdump, &["--leaves"]).json_of("mapping").iter().map(|m| (hex(&m["va"]), hex(&m["maddr"]))).collect();
    assert_eq!(cli, theirs, "the CLI's kdump leaves differ from QEMU's info tlb");
    let _ = std::fs::remove_dir_all(flat_path.parent().unwrap());
}

#[test]
fn real_kdump_notes_give_each_cpus_cr3() {
    let Some(r) = real("real_kdump_notes_give_each_cpus_cr3") else {
        return;
    };
    let k = open(&r.kdump);
    assert_eq!(k.notes.cpus.len(), 2);
    for cpu in 0..2 {
        assert_eq!(k.notes.cpu(cpu).and_then(|c| c.cr3), Some(cr3_of(&r.dir, cpu)), "CPU {cpu}");
    }
    let p = r.kdump.to_str().unwrap();
    let w = run(&[p, "--cpu", "1", "--va", "ffff82d040200000", "--json"]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    assert_eq!(w.json_of("walk")[0]["maddr"], "0x3fa00000");
    assert_eq!(w.json_of("root")[0]["source"], "CPU 1, QEMU note");
    let info = run(&["info", p, "--json"]);
    assert_eq!(info.code, 0, "{}", info.stderr);
    let i = &info.json()[0];
    assert_eq!(i["format"], "kdump");
    assert_eq!(i["kdump"]["pages"]["zlib"], 3036);
    assert_eq!(i["kdump"]["status_flags"][0], "zlib");
    assert_eq!(i["notes"]["cpus"][1]["cr3"], "0x3fc6e000");
    let human = run(&["info", p]);
    assert!(human.stdout.contains("kdump-compressed"), "{}", human.stdout);
    assert!(human.stdout.contains("3036 zlib"), "{}", human.stdout);
}

// ---------------------------------------------------------------------------------
// Synthetic dumps
// ---------------------------------------------------------------------------------

struct Synth {
    fx: XenLike,
    dir: PathBuf,
}

impl Drop for Synth {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn synth(name: &str) -> Synth {
    Synth { fx: xen::build(), dir: common::tempdir(name) }
}

/// Every frame of `fx` reads from `d` as the machine holds it, except the excluded
/// frames (absent: excluded) and the holes.
fn check_pages(d: &Dump, fx: &XenLike, o: &KdumpOptions, what: &str) {
    let m = &fx.machine;
    let zero = [0u8; 4096];
    for mfn in 0..m.ram >> 12 {
        let got = d.mem.page(Mfn(mfn));
        if o.excluded.contains(&mfn) {
            match got {
                Err(ReadError::Absent { why: Absent::Excluded { dump_level }, .. }) => {
                    assert_eq!(dump_level, (o.header_version >= 1 && !o.diskdump).then_some(o.dump_level));
                }
                other => panic!("{what}: excluded frame {mfn:#x}: {:?}", other.map(|_| ())),
            }
        } else if o.holes.iter().any(|h| h.contains(&mfn)) {
            assert!(
                matches!(got, Err(ReadError::Absent { why: Absent::Hole { .. }, .. })),
                "{what}: hole frame {mfn:#x}: {:?}",
                got.map(|_| ())
            );
        } else {
            let p = got.unwrap_or_else(|e| panic!("{what}: frame {mfn:#x}: {e}"));
            assert!(*p == *m.page(Mfn(mfn)).unwrap_or(&zero), "{what}: frame {mfn:#x} differs");
        }
    }
    assert!(matches!(d.mem.page(Mfn(m.ram >> 12)), Err(ReadError::Absent { why: Absent::OutsideImage { .. }, .. })));
    // Reads that cross pages.
    let mut b = [0u8; 16];
    let at = Maddr(fx.pv.0 - 8);
    d.mem.read(at, &mut b).unwrap();
    assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), m.read_u64(at));
    assert_eq!(u64::from_le_bytes(b[8..].try_into().unwrap()), m.read_u64(fx.pv));
}

fn options(fx: &XenLike, kinds: Vec<Compression>, version: u32) -> KdumpOptions {
    let cpus = [CpuRegs { cr3: fx.idle.0, ..Default::default() }, CpuRegs { cr3: fx.pv.0, ..Default::default() }];
    KdumpOptions {
        kinds,
        excluded: fx.omitted.iter().map(|m| m.0).chain([5, 6, 7]).collect(),
        holes: std::iter::once(0xa0..0x100).collect(),
        notes: xen_crash_notes(&cpus, fx.xen_phys_start, "PAGESIZE=4096\n"),
        header_version: version,
        ..KdumpOptions::default()
    }
}

#[test]
fn synthetic_kdump_every_compression_and_version_plain_and_flattened() {
    let s = synth("kdump-synth");
    let fx = &s.fx;
    let all = vec![Compression::Zlib, Compression::Lzo, Compression::Snappy, Compression::Zstd, Compression::None];
    let mut cases: Vec<(String, KdumpOptions)> = Vec::new();
    for k in &all {
        cases.push((format!("{k:?}"), options(fx, vec![*k], 6)));
    }
    cases.push(("mixed".into(), options(fx, all.clone(), 6)));
    for v in 1..=5 {
        cases.push((format!("v{v}"), options(fx, all.clone(), v)));
    }
    let mut dd = options(fx, vec![Compression::Zlib], 0);
    dd.diskdump = true;
    cases.push(("DISKDUMP".into(), dd));
    let mut no_zero = options(fx, all.clone(), 6);
    no_zero.dump_level = 0;
    cases.push(("dump level 0".into(), no_zero));
    for (name, o) in &cases {
        let plain = s.dir.join(format!("{name}.kdump"));
        fx.machine.write_kdump(&plain, o).unwrap();
        let flat = s.dir.join(format!("{name}.flat"));
        fx.machine.write_kdump_flattened(&flat, o, 777).unwrap();
        for (p, what) in [(&plain, format!("{name} plain")), (&flat, format!("{name} flattened"))] {
            let d = open(p);
            assert!(d.warnings.is_empty(), "{what}: {:?}", d.warnings);
            check_pages(&d, fx, o, &what);
            let Format::Kdump(sum) = &d.format else { panic!() };
            assert_eq!(sum.pages_excluded, o.excluded.len() as u64, "{what}");
            if o.header_version >= 4 && !o.diskdump {
                assert_eq!(d.notes.cpu(1).and_then(|c| c.cr3), Some(fx.pv.0), "{what}");
                assert!(d.notes.xen_crash_info.is_some(), "{what}");
            } else {
                assert!(d.notes.cpus.is_empty(), "{what}");
            }
            let c = d.kdump_census().unwrap();
            for k in &o.kinds {
                let n = match k {
                    Compression::None => c.raw,
                    Compression::Zlib => c.zlib,
                    Compression::Lzo => c.lzo,
                    Compression::Snappy => c.snappy,
                    Compression::Zstd => c.zstd,
                };
                assert!(n > 0, "{what}: no {k:?} pages");
            }
        }
    }
}

#[test]
fn synthetic_kdump_walks_like_the_raw_image() {
    let s = synth("kdump-walks");
    let fx = &s.fx;
    let raw = s.dir.join("x.raw");
    fx.machine.write_raw(&raw).unwrap();
    let mut o = options(fx, vec![Compression::Zstd, Compression::Lzo], 6);
    o.excluded = fx.omitted.iter().map(|m| m.0).collect();
    o.holes.clear();
    let plain = s.dir.join("x.kdump");
    fx.machine.write_kdump(&plain, &o).unwrap();
    let flat = s.dir.join("x.flat");
    fx.machine.write_kdump_flattened(&flat, &o, 100).unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let vas: Vec<u64> = fx.xen_mapped.iter().chain(&fx.guest_mapped).map(|(v, _, _)| v.0).collect();
    let walk_args = |d: &Path| {
        // The kdump files carry Xen notes (so Xen context and its annotations); give
        // the raw image the same context so the outputs compare.
        let mut a =
            vec![p(d), "--cr3".into(), fx.pv.to_string(), "--json".into(), "--xen-version".into(), "4.17".into()];
        for v in &vas {
            a.push("--va".into());
            a.push(format!("{v:#x}"));
        }
        a
    };
    let run_s = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        run(&refs)
    };
    let want = run_s(walk_args(&raw));
    assert_eq!(want.code, 0, "{}", want.stderr);
    for d in [&plain, &flat] {
        let got = run_s(walk_args(d));
        assert_eq!(got.code, 0, "{}", got.stderr);
        assert_eq!(got.stdout, want.stdout, "{}", d.display());
        // The excluded L1 table: a stop, table_absent, said to be excluded.
        let r =
            run(&[&p(d), "--cr3", &fx.pv.to_string(), "--va", &format!("{:#x}", fx.va_uncaptured_table.0), "--json"]);
        assert_eq!(r.code, 1);
        let w = &r.json_of("walk")[0];
        assert_eq!(w["stop"]["reason"], "table_absent");
        let expl = w["stop"]["explanation"].as_str().unwrap();
        assert!(expl.contains("excluded from the dump (dump level 1)"), "{expl}");
        assert!(w["stop"]["suggestion"].as_str().unwrap().contains("dump level"));
        // The listing reports it as an unreadable table with reason `excluded`.
        let l = run(&[&p(d), "--cr3", &fx.pv.to_string(), "--json"]);
        let reasons: BTreeSet<String> =
            l.json_of("unreadable_table").iter().map(|u| u["reason"].as_str().unwrap().to_string()).collect();
        assert!(reasons.contains("excluded"), "{reasons:?}");
    }
}

#[test]
fn synthetic_kdump_qemu_notes_and_info() {
    let s = synth("kdump-info");
    let fx = &s.fx;
    let mut o = options(fx, vec![Compression::Snappy], 6);
    o.notes = qemu_cpu_notes(&[CpuRegs { cr3: fx.pv.0 | 1, cr4: 1 << 17, ..Default::default() }]);
    let p = s.dir.join("q.flat");
    fx.machine.write_kdump_flattened(&p, &o, 4096).unwrap();
    let ps = p.to_str().unwrap();
    // CPU 0's root from the QEMU note: the fixture's own answer for a guest VA.
    let (va, maddr, size) = &fx.guest_mapped[0];
    let r = run(&[ps, "--cpu", "0", "--va", &format!("{:#x}", va.0), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let w = r.json_of("walk");
    assert_eq!(w.len(), 1, "{}", r.stdout);
    assert_eq!(w[0]["maddr"], maddr.to_string(), "{va}");
    assert_eq!(w[0]["page_size"], *size);
    let i = run(&["info", ps, "--json"]);
    assert_eq!(i.code, 0, "{}", i.stderr);
    let v = &i.json()[0];
    assert_eq!(v["kdump"]["flattened"]["version"], 1);
    assert_eq!(v["kdump"]["pages"]["excluded"], o.excluded.len() as u64);
    assert_eq!(v["kdump"]["dump_level"], 1);
    assert_eq!(v["kdump"]["bitmaps"], 2);
    assert_eq!(v["bytes_absent"], 4096 * o.excluded.len() as u64);
    let h = run(&["info", ps]);
    assert!(h.stdout.contains("flattened (makedumpfile -F)"), "{}", h.stdout);
    assert!(h.stdout.contains("absent (excluded)"), "{}", h.stdout);
    assert!(h.stdout.contains("snappy"), "{}", h.stdout);
}

/// Split dumps: a part answers for its pfn range only; descriptors count from its
/// start_pfn (crash `pfn_to_pos`).
#[test]
fn synthetic_split_part() {
    let s = synth("kdump-split");
    let fx = &s.fx;
    let o = options(fx, vec![Compression::Zlib], 6);
    let p = s.dir.join("whole.kdump");
    fx.machine.write_kdump(&p, &o).unwrap();
    // Make it the part [0x2000, 0x4000): set split, start_pfn_64 and end_pfn_64, and
    // drop the descriptors below 0x2000 by moving the descriptor table's start.
    let mut b = std::fs::read(&p).unwrap();
    let (start, end) = (0x2000u64, 0x4000u64);
    let sub = 4096;
    b[sub + 12..sub + 16].copy_from_slice(&1u32.to_le_bytes());
    b[sub + 80..sub + 88].copy_from_slice(&start.to_le_bytes());
    b[sub + 88..sub + 96].copy_from_slice(&end.to_le_bytes());
    let d = open(&p);
    let Format::Kdump(sum) = &d.format else { panic!() };
    let desc = sum.descriptors as usize;
    let below = (0..start).filter(|m| !(0xa0..0x100).contains(m)).filter(|m| !o.excluded.contains(m)).count();
    b.drain(desc..desc + 24 * below);
    // The data offsets in the descriptors moved down by as many bytes.
    let n = sum.pages_dumped as usize - below;
    for i in 0..n {
        let at = desc + 24 * i;
        let off = i64::from_le_bytes(b[at..at + 8].try_into().unwrap()) - 24 * below as i64;
        b[at..at + 8].copy_from_slice(&off.to_le_bytes());
    }
    let part = s.dir.join("part.kdump");
    std::fs::write(&part, &b).unwrap();
    let d = open(&part);
    let Format::Kdump(sum) = &d.format else { panic!() };
    assert_eq!(sum.split, Some((start, end)));
    let zero = [0u8; 4096];
    for mfn in 0..fx.machine.ram >> 12 {
        let got = d.mem.page(Mfn(mfn));
        if !(start..end).contains(&mfn) {
            assert!(matches!(got, Err(ReadError::Absent { why: Absent::OutsideImage { .. }, .. })), "{mfn:#x}");
        } else if o.excluded.contains(&mfn) {
            assert!(matches!(got, Err(ReadError::Absent { why: Absent::Excluded { .. }, .. })));
        } else {
            assert!(*got.unwrap() == *fx.machine.page(Mfn(mfn)).unwrap_or(&zero), "{mfn:#x}");
        }
    }
}
