//! What the fuzz targets do with an input, shared with `tests/fuzz_regressions.rs`
//! (which includes this file), so that a crash found by fuzzing replays as a test.
//!
//! Each function parses the input with one parser and, when it opens, uses what it
//! returned the way the CLI does: headers and notes decoded, extents listed, pages
//! read, roots resolved, walks and a bounded enumeration run. Any panic is a bug;
//! errors are the expected outcome for most inputs.
#![allow(dead_code)]

use memmap2::{Mmap, MmapMut};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use xenwalk::addr::{Maddr, Mfn, Pfn, Vaddr};
use xenwalk::mem::{Absent, Extent, Page, PhysMem, ReadError};
use xenwalk::notes::{self, Notes};
use xenwalk::paging::{RootInput, WalkOptions, enumerate, resolve, walk};

/// The input as a read-only memory map (the parsers take the map a file would give).
/// `None` for empty input: an empty file is refused before any parser sees it.
pub fn map(data: &[u8]) -> Option<Mmap> {
    if data.is_empty() {
        return None;
    }
    let mut m = MmapMut::map_anon(data.len()).ok()?;
    m.copy_from_slice(data);
    m.make_read_only().ok()
}

/// A source that answers at most `left` page reads, then reports everything absent:
/// crafted tables that point back at themselves would otherwise make an enumeration
/// visit 512^3 tables (legitimately, as the MMU would), which is a timeout, not a bug.
struct Budget<'a> {
    inner: &'a dyn PhysMem,
    left: AtomicU64,
}

impl Budget<'_> {
    fn take(&self, addr: Maddr) -> Result<(), ReadError> {
        if self.left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err() {
            return Err(ReadError::Absent { addr, why: Absent::OutsideImage { start: Maddr(0), end: Maddr(0) } });
        }
        Ok(())
    }
}

impl PhysMem for Budget<'_> {
    fn page(&self, mfn: Mfn) -> Result<Page<'_>, ReadError> {
        self.take(mfn.maddr())?;
        self.inner.page(mfn)
    }
    fn read(&self, addr: Maddr, buf: &mut [u8]) -> Result<(), ReadError> {
        self.take(addr)?;
        self.inner.read(addr, buf)
    }
    fn locate(&self, addr: Maddr) -> Result<(), Absent> {
        self.inner.locate(addr)
    }
    fn extents(&self) -> Vec<Extent> {
        self.inner.extents()
    }
}

/// 64-bit values taken from the input, as addresses to try.
fn words(seed: &[u8]) -> impl Iterator<Item = u64> + '_ {
    seed.chunks(8).rev().take(8).map(|c| {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(b)
    })
}

/// Use a memory source as the CLI does: extents, pages at their edges, roots from
/// the notes and from the input, walks, a bounded listing.
pub fn exercise(mem: &dyn PhysMem, notes: &Notes, extra_roots: &[u64], seed: &[u8]) {
    let ext = mem.extents();
    for e in ext.iter().take(8) {
        let _ = mem.page(e.start.mfn());
        let last = Maddr(e.start.0.saturating_add(e.len.saturating_sub(1)));
        let _ = mem.page(last.mfn());
        let mut b = [0u8; 16];
        let _ = mem.read(Maddr(last.0.saturating_sub(7)), &mut b);
        let _ = mem.locate(last);
    }
    let mut roots: Vec<u64> = notes.cpus.iter().filter_map(|c| c.cr3).take(4).collect();
    roots.extend(extra_roots.iter().take(4));
    roots.extend(ext.first().map(|e| e.start.0));
    for (i, w) in words(seed).enumerate() {
        let _ = mem.read_u64(Maddr(w));
        let _ = mem.locate(Maddr(w));
        if i < 2 {
            roots.push(w);
        }
    }
    let opts = WalkOptions::default();
    for &r in roots.iter().take(4) {
        let budget = Budget { inner: mem, left: AtomicU64::new(1024) };
        let root = resolve(&budget, RootInput::Cr3(r), "fuzz".into(), None, opts);
        for va in words(seed).chain([0, 0xffff_8000_0000_0000, 0xffff_82d0_4020_0000]) {
            let w = walk(&budget, root.maddr, Vaddr(va), opts);
            let _ = xenwalk::diagnose::translate(&budget, &root, Vaddr(va), opts);
            let _ = w.mapping();
        }
        let mut events = 0u32;
        enumerate(&budget, root.maddr, opts, |_| {
            events += 1;
            if events > 20_000 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
    }
}

/// An ELF core (raw headers, program headers, notes).
pub fn elf(data: &[u8]) {
    let Some(m) = map(data) else { return };
    let Ok(core) = xenwalk::mem::elf::parse(m) else { return };
    let notes = Notes::decode(&core.notes);
    exercise(&core.image, &notes, &[], data);
}

/// A note stream, in both alignments, and what it decodes to.
pub fn notes(data: &[u8]) {
    for align in [4, 8] {
        let mut out = Vec::new();
        let _ = notes::parse_stream(data, 0x100, align, &mut out);
        let n = Notes::decode(&out);
        let _ = n.cpu(0);
    }
}

fn kdump_common(k: xenwalk::mem::kdump::Kdump, data: &[u8]) {
    let notes = Notes::decode(&k.notes);
    let _ = k.image.census();
    let s = k.image.summary().clone();
    let _ = s.status_names();
    exercise(&k.image, &notes, &[], data);
}

/// A kdump-compressed file.
pub fn kdump(data: &[u8]) {
    let Some(m) = map(data) else { return };
    if let Ok(k) = xenwalk::mem::kdump::open_plain(m) {
        kdump_common(k, data);
    }
}

/// A flattened file (which must hold a kdump-compressed file).
pub fn flattened(data: &[u8]) {
    let Some(m) = map(data) else { return };
    if let Ok(k) = xenwalk::mem::kdump::open_flattened(m) {
        kdump_common(k, data);
    }
}

/// One compressed page of each kind: never a panic, never more than a page.
pub fn decompress(data: &[u8]) {
    use xenwalk::mem::kdump::{Compression, decompress};
    let Some((&sel, src)) = data.split_first() else { return };
    let kind = match sel % 5 {
        0 => Compression::None,
        1 => Compression::Zlib,
        2 => Compression::Lzo,
        3 => Compression::Snappy,
        _ => Compression::Zstd,
    };
    let mut out = [0u8; 4096];
    let _ = decompress(kind, src, &mut out);
}

/// An `xl dump-core` guest core: memory, p2m both ways, vCPU roots.
pub fn xlcore(data: &[u8]) {
    let Some(m) = map(data) else { return };
    if !xenwalk::mem::xlcore::is_xl_core(&m) {
        return;
    }
    let Ok(g) = xenwalk::mem::xlcore::parse(m) else { return };
    let notes = Notes::decode(&g.notes);
    let core = g.core;
    let roots: Vec<u64> = core.summary().vcpus.iter().filter_map(|v| v.cr3).collect();
    for (i, w) in words(data).enumerate().take(8) {
        if let Ok(mfn) = core.pfn_to_mfn(Pfn(w % 4096)) {
            assert_eq!(core.mfn_to_pfn(mfn), Ok(Pfn(w % 4096)), "p2m and its inverse disagree");
        }
        let _ = core.mfn_to_pfn(Mfn(w >> (i % 40)));
    }
    let _ = core.p2m().take(1000).count();
    exercise(&core, &notes, &roots, data);
}

/// A file on disk, for the parsers that take a path.
pub fn temp_file(data: &[u8], name: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let p = dir.join(format!("xenwalk-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&p, data).expect("write the fuzz input to a temporary file");
    p
}

/// Whatever the input is, through format detection (`Dump::open`): raw, ELF, kdump,
/// flattened, xl core, compressed or unknown.
pub fn dump_open(data: &[u8]) {
    let p = temp_file(data, "dump");
    let r = xenwalk::dump::Dump::open(&p, xenwalk::dump::OpenOptions { skip_bad_notes: true, ..Default::default() });
    if let Ok(d) = r {
        let _ = d.kdump_census();
        exercise(d.mem.as_ref(), &d.notes, &[], data);
    }
    let _ = std::fs::remove_file(&p);
}

/// xen-syms loading: sections, symbols, build-id, version, DWARF index.
pub fn xen_syms(data: &[u8]) {
    let p = temp_file(data, "syms");
    if let Ok(s) = xenwalk::xen::symbols::XenSyms::load(&p) {
        let _ = s.build_id_hex();
        let _ = s.xen_virt_start();
        for sym in s.symbols().iter().take(64) {
            let _ = s.name_of(Vaddr(sym.addr));
            let _ = s.section_of(Vaddr(sym.addr));
            let _ = s.bytes_at(sym.addr, 64);
        }
        let _ = s.lookup("idle_pg_table");
        if let Ok(d) = s.dwarf() {
            let _ = d.struct_type(&s, "domain");
            let _ = d.member(&s, "vcpu", "arch.cr3");
            let _ = d.var_type(&s, "idle_vcpu");
        }
    }
    let _ = std::fs::remove_file(&p);
}
