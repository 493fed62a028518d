//! The images measured: the synthetic ones (built once from `xenwalk::fixture` and kept
//! under the bench directory), kdump-compressed copies of raw images, and the real
//! dom0 image (decompressed once).

use crate::settings::target_dir;
use crate::{GIB, IMAGE_VERSION, Res, err};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;
use xenwalk::fixture::kdump::KdumpOptions;
use xenwalk::fixture::{Machine, XEN_TABLE};
use xenwalk::paging::entry::bits;
use xenwalk::{Maddr, Mfn};

pub fn is_raw(p: &Path) -> bool {
    let mut head = [0u8; 8];
    let n = File::open(p).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    n == 8 && &head[..4] != b"\x7fELF" && &head != b"KDUMP   " && &head[..8] != b"makedump"
}

/// Build (once) a synthetic image; returns its path and CR3.
pub fn build(dir: &Path, name: &str, make: fn() -> (Machine, Maddr)) -> Res<(PathBuf, u64)> {
    let path = dir.join(name);
    let meta = dir.join(format!("{name}.{IMAGE_VERSION}.cr3"));
    if let (true, Ok(text)) = (path.exists(), std::fs::read_to_string(&meta)) {
        return Ok((path, xenwalk::parse::hex_u64(&text)?));
    }
    let t = Instant::now();
    eprint!("building {name} ...");
    let (m, root) = make();
    m.write_raw(&path).map_err(err(name))?;
    std::fs::write(&meta, format!("{:#x}", root.0)).map_err(err("meta"))?;
    eprintln!(" {:.1} s", t.elapsed().as_secs_f64());
    Ok((path, root.0))
}

/// A page of 512 entries.
pub fn table_page(entry: impl Fn(u64) -> u64) -> [u8; 4096] {
    let mut p = [0u8; 4096];
    for (i, c) in p.chunks_exact_mut(8).enumerate() {
        c.copy_from_slice(&entry(i as u64).to_le_bytes());
    }
    p
}

/// Xen's direct-map leaves: `__PAGE_HYPERVISOR_RW` (P RW A D NX).
pub const LEAF: u64 = bits::P | bits::RW | bits::A | bits::D | bits::NX;

/// (a): 64 GiB of RAM, all of it in the direct map in 4 KiB pages (16,777,216 leaves,
/// 32,768 L1 tables).
pub fn build_4k() -> (Machine, Maddr) {
    let mut m = Machine::new(64 * GIB);
    let l4 = m.alloc();
    let l3 = m.alloc();
    let mut l4p = [0u8; 4096];
    l4p[8 * 262..8 * 263].copy_from_slice(&(l3.0 | XEN_TABLE).to_le_bytes());
    m.set_page(l4.mfn(), &l4p);
    let mut l3e = Vec::new();
    for g in 0..64u64 {
        let l2 = m.alloc();
        l3e.push(l2.0 | XEN_TABLE);
        let mut l2e = Vec::new();
        for j in 0..512u64 {
            let l1 = m.alloc();
            l2e.push(l1.0 | XEN_TABLE);
            let base = (g << 30) | (j << 21);
            m.set_page(l1.mfn(), &table_page(|k| (base | k << 12) | LEAF));
        }
        m.set_page(l2.mfn(), &table_page(|j| l2e[j as usize]));
    }
    m.set_page(l3.mfn(), &table_page(|g| l3e.get(g as usize).copied().unwrap_or(0)));
    (m, l4)
}

/// (b): the same 64 GiB, the first 32 GiB in 1 GiB pages, the rest in 2 MiB pages.
pub fn build_large() -> (Machine, Maddr) {
    let mut m = Machine::new(64 * GIB);
    let l4 = m.alloc();
    let l3 = m.alloc();
    let mut l4p = [0u8; 4096];
    l4p[8 * 262..8 * 263].copy_from_slice(&(l3.0 | XEN_TABLE).to_le_bytes());
    m.set_page(l4.mfn(), &l4p);
    let mut l3e = Vec::new();
    for g in 0..64u64 {
        if g < 32 {
            l3e.push((g << 30) | LEAF | bits::PS);
        } else {
            let l2 = m.alloc();
            l3e.push(l2.0 | XEN_TABLE);
            m.set_page(l2.mfn(), &table_page(|j| ((g << 30) | j << 21) | LEAF | bits::PS));
        }
    }
    m.set_page(l3.mfn(), &table_page(|g| l3e.get(g as usize).copied().unwrap_or(0)));
    (m, l4)
}

/// (d): identical entries at every level (8,388,608 leaves, all of one page).
pub fn build_identical() -> (Machine, Maddr) {
    let mut m = Machine::new(64 << 20);
    let l4 = m.alloc();
    let l3 = m.alloc();
    let l2 = m.alloc();
    let l1 = m.alloc();
    let page = m.alloc();
    m.set_page(l4.mfn(), &table_page(|i| if i == 256 || i == 257 { l3.0 | XEN_TABLE } else { 0 }));
    m.set_page(l3.mfn(), &table_page(|i| if i < 16 { l2.0 | XEN_TABLE } else { 0 }));
    m.set_page(l2.mfn(), &table_page(|_| l1.0 | XEN_TABLE));
    m.set_page(l1.mfn(), &table_page(|_| page.0 | bits::P | bits::A));
    (m, l4)
}

/// A kdump-compressed (zlib) copy of a raw image, built once.
pub fn kdump_copy(dir: &Path, raw: &Path, name: &str) -> Res<PathBuf> {
    kdump_copy_as(dir, raw, name, None)
}

/// As [`kdump_copy`], in makedumpfile's flattened format (`-F`, what QEMU's
/// `dump-guest-memory -z` writes) when `record` is given: records of at most that
/// many bytes.
pub fn kdump_copy_as(dir: &Path, raw: &Path, name: &str, record: Option<usize>) -> Res<PathBuf> {
    let path = dir.join(name);
    let stamp = dir.join(format!("{name}.{IMAGE_VERSION}.done"));
    if path.exists() && stamp.exists() {
        return Ok(path);
    }
    let t = Instant::now();
    eprint!("building {name} ...");
    let len = std::fs::metadata(raw).map_err(err("raw"))?.len();
    let mut m = Machine::new(len);
    let mut f = File::open(raw).map_err(err("raw"))?;
    // Only the non-zero pages are stored; the rest reads as zero.
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    loop {
        let n = read_full(&mut f, &mut buf).map_err(err("raw"))?;
        if n == 0 {
            break;
        }
        for (i, p) in buf[..n].chunks_exact(4096).enumerate() {
            if p.iter().any(|&b| b != 0) {
                let page: &[u8; 4096] = p.try_into().map_err(err("page"))?;
                m.set_page(Mfn(at / 4096 + i as u64), page);
            }
        }
        at += n as u64;
        // Skip the holes of a sparse file quickly.
        if at < len && n == buf.len() {
            continue;
        }
    }
    match record {
        None => m.write_kdump(&path, &KdumpOptions::default()),
        Some(r) => m.write_kdump_flattened(&path, &KdumpOptions::default(), r),
    }
    .map_err(err(name))?;
    std::fs::write(&stamp, b"").map_err(err("stamp"))?;
    eprintln!(" {:.1} s", t.elapsed().as_secs_f64());
    Ok(path)
}

pub fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The real dom0 image, decompressed once (the tests' cache is used if present).
pub fn dom0_raw(dir: &Path) -> Res<Option<PathBuf>> {
    let shared = std::env::var_os("XENWALK_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared"));
    let xz = shared.join("dumps/xen-4.17-dom0/memory.raw.xz");
    if !xz.exists() {
        return Ok(None);
    }
    let cached = target_dir().join("tmp/shared-cache/xen-4.17-dom0.raw");
    if cached.exists() && std::fs::metadata(&cached).map(|m| m.len()).unwrap_or(0) == GIB {
        return Ok(Some(cached));
    }
    let out = dir.join("xen-4.17-dom0.raw");
    if out.exists() && std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) == GIB {
        return Ok(Some(out));
    }
    eprint!("decompressing {} ...", xz.display());
    let mut dec = xz2::read::XzDecoder::new(std::io::BufReader::new(File::open(&xz).map_err(err("xz"))?));
    let mut o = File::create(&out).map_err(err("dom0 raw"))?;
    std::io::copy(&mut dec, &mut o).map_err(err("xz"))?;
    eprintln!(" done");
    Ok(Some(out))
}
