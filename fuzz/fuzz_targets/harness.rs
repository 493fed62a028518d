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

// ---------------------------------------------------------------------------------
// The Xen-aware layer: a realistic synthetic Xen machine (`fixture::domains::build`
// around the 4.17.7 xen-syms sample: idle domain, PV dom0 with its p2m, HVM domU
// with EPT or NPT), whose hypervisor objects the input overwrites in chosen places.
//
// The machine is written once per process and thread as a sparse raw image under
// /dev/shm (unlinked at once: only the open file and its map remain) and opened as
// the CLI opens a dump (`Session::open`, --xen-syms, --xen-phys-start). Each input's
// patches are written into that file (the session's read-only map sees them), the
// library runs, and the original bytes are put back.
// ---------------------------------------------------------------------------------

use std::cell::RefCell;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use xenwalk::addr::Gfn;
use xenwalk::session::{DomainSel, RootSpec, Session, SessionOptions};
use xenwalk::xen::domains::{DomKind, Fields, TableKind};

/// A hypervisor object the input may overwrite.
#[derive(Clone, Debug)]
pub struct Obj {
    pub name: String,
    /// Machine address and hypervisor VA of its first byte; its length.
    pub ma: u64,
    pub va: u64,
    pub len: u64,
}

/// The patchable machine and the session over it.
pub struct XenMachine {
    pub session: Session,
    file: std::fs::File,
    pub model: xenwalk::fixture::domains::Model,
    /// Domain structs, vCPU arrays and vCPU structs, `domain_list`, `idle_vcpu[]`.
    pub dom_objs: Vec<Obj>,
    /// Shared info, p2m frame-list-list / frame list / p2m page, the host p2m
    /// struct and its tables, the M2P, the frame table, `max_page`, the domU's own
    /// page tables; then the domain objects.
    pub p2m_objs: Vec<Obj>,
}

/// `fixtures/xen-syms-4.17.sample` (every symbol of Debian's 4.17.7 xen-syms), seen
/// from the fuzz crate or from the main crate's tests.
pub fn sample_syms() -> PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for p in [here.join("fixtures/xen-syms-4.17.sample"), here.join("../fixtures/xen-syms-4.17.sample")] {
        if p.is_file() {
            return p;
        }
    }
    panic!("fixtures/xen-syms-4.17.sample not found from {}", here.display());
}

const DIRECTMAP: u64 = xenwalk::fixture::xen::DIRECTMAP_VIRT_START;

fn build_machine(npt: bool) -> XenMachine {
    use xenwalk::fixture::domains::{Breakage, build};
    let syms_path = sample_syms();
    let syms = xenwalk::xen::symbols::XenSyms::load(&syms_path).expect("load the xen-syms sample");
    let mut fx = build(&syms, Breakage { npt, ..Default::default() }).expect("fixture::domains::build on the sample");
    let (xvs, xps) = (fx.xen.xen_virt_start, fx.xen_phys_start);
    // The sample holds no .data: give the PDX variables the values the full
    // xen-syms links in (no compression), as a running 4.17 without holes has them.
    for (name, v) in [
        ("pfn_pdx_hole_shift", 0),
        ("pfn_pdx_bottom_mask", u64::MAX),
        ("ma_va_bottom_mask", u64::MAX),
        ("pfn_hole_mask", 0),
        ("pfn_top_mask", 0),
        ("ma_top_mask", 0),
    ] {
        let va = syms.addr(name).unwrap_or_else(|| panic!("sample lacks {name}"));
        fx.xen.machine.write_u64(Maddr(va - xvs + xps), v);
    }
    let m = &fx.xen.machine;
    let img = |name: &str, len: u64| {
        let va = syms.addr(name).unwrap_or_else(|| panic!("sample lacks {name}"));
        Obj { name: name.into(), ma: va - xvs + xps, va, len }
    };
    let heap = |name: String, va: u64, len: u64| Obj { name, ma: va.wrapping_sub(DIRECTMAP), va, len };
    let off =
        |k: &str| xenwalk::xen::offsets::DEBIAN_4_17_7.offsets.iter().find(|(n, _)| *n == k).map(|(_, v)| *v).unwrap();
    let rd = |va: u64| m.read_u64(Maddr(va.wrapping_sub(DIRECTMAP)));
    let mut dom_objs = vec![img("domain_list", 8), img("idle_vcpu", 64)];
    let mut vcpus = Vec::new();
    for (n, d) in [("idle", fx.model.idle_domain), ("dom0", fx.model.dom0), ("domU", fx.model.domu)] {
        dom_objs.push(heap(format!("{n} struct domain"), d, 4096));
        let arr = rd(d + off("domain.vcpu"));
        dom_objs.push(heap(format!("{n} vcpu[] array"), arr, 64));
        for i in 0..2 {
            let v = rd(arr + i * 8);
            if v != 0 && v >> 40 == DIRECTMAP >> 40 && v.wrapping_sub(DIRECTMAP) < m.ram {
                vcpus.push(heap(format!("{n} vcpu {i}"), v, 4096));
            }
        }
    }
    dom_objs.extend(vcpus);
    // The p2m side.
    let si = rd(fx.model.dom0 + off("domain.shared_info"));
    let si_ma = si - DIRECTMAP;
    let fll = m.read_u64(Maddr(si_ma + 3096));
    let fl = m.read_u64(Maddr(fll << 12));
    let p2m_page = m.read_u64(Maddr(fl << 12));
    let frame = |name: &str, mfn: u64| Obj { name: name.into(), ma: mfn << 12, va: DIRECTMAP + (mfn << 12), len: 4096 };
    let mut p2m_objs = vec![
        heap("dom0 shared_info".into(), si, 4096),
        frame("dom0 p2m frame-list-list", fll),
        frame("dom0 p2m frame list", fl),
        frame("dom0 p2m page", p2m_page),
        Obj { name: "M2P".into(), ma: 0x0200_0000, va: DIRECTMAP + 0x0200_0000, len: 2 << 20 },
        Obj { name: "frame table".into(), ma: 0x0220_0000, va: DIRECTMAP + 0x0220_0000, len: 2 << 20 },
        img("max_page", 8),
    ];
    let hp = rd(fx.model.domu + off("domain.arch.p2m"));
    p2m_objs.push(heap("domU struct p2m_domain".into(), hp, 4096));
    // Every table of the host p2m (EPT or NPT), breadth first.
    let root = m.read_u64(Maddr(hp - DIRECTMAP + off("p2m_domain.phys_table")));
    let mut level = vec![root];
    for depth in (1..=4).rev() {
        let mut next = Vec::new();
        for (i, &t) in level.iter().enumerate() {
            p2m_objs.push(frame(&format!("domU host p2m L{depth} table {i}"), t));
            if depth > 1 {
                for e in 0..512 {
                    let v = m.read_u64(Maddr((t << 12) + e * 8));
                    // Present, and not a superpage: another table.
                    if v & 7 != 0 && v & 0x80 == 0 {
                        next.push((v & 0x000f_ffff_ffff_f000) >> 12);
                    }
                }
            }
        }
        level = next;
    }
    for g in 1..=4u64 {
        if let Some(&mfn) = fx.model.domu_p2m.get(&g) {
            p2m_objs.push(frame(&format!("domU guest table (gfn {g})"), mfn));
        }
    }
    p2m_objs.extend(dom_objs.iter().cloned());

    let name = format!("xenwalk-fuzz-{}-{:?}-machine{}", std::process::id(), std::thread::current().id(), npt as u8);
    let dir = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let path = dir.join(name.replace(['(', ')'], ""));
    m.write_raw(&path).expect("write the machine");
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open the machine");
    let o = SessionOptions {
        xen_syms: Some(syms_path),
        xen: xenwalk::xen::XenOptions { xen_phys_start: Some(xps), ..Default::default() },
        allow_mismatch: true,
        ..Default::default()
    };
    let session = Session::open(&path, &o).expect("open the synthetic machine as a dump");
    let _ = std::fs::remove_file(&path);
    XenMachine { session, file, model: fx.model, dom_objs, p2m_objs }
}

thread_local! {
    static MACHINES: RefCell<[Option<Rc<XenMachine>>; 2]> = const { RefCell::new([None, None]) };
}

/// The machine (EPT or NPT domU), built on first use.
pub fn machine(npt: bool) -> Rc<XenMachine> {
    MACHINES.with(|c| c.borrow_mut()[npt as usize].get_or_insert_with(|| Rc::new(build_machine(npt))).clone())
}

/// Patches written into the machine, undone on drop (last first).
pub struct Patched<'a> {
    m: &'a XenMachine,
    undo: Vec<(u64, Vec<u8>)>,
}

impl Patched<'_> {
    fn write(&mut self, ma: u64, bytes: &[u8]) {
        let mut old = vec![0u8; bytes.len()];
        if self.m.file.read_exact_at(&mut old, ma).is_ok() && self.m.file.write_all_at(bytes, ma).is_ok() {
            self.undo.push((ma, old));
        }
    }
}

impl Drop for Patched<'_> {
    fn drop(&mut self) {
        for (ma, old) in self.undo.drain(..).rev() {
            self.m.file.write_all_at(&old, ma).expect("restore the machine");
        }
    }
}

/// At most this many patches per input.
const MAX_PATCHES: usize = 64;

/// Interpret `data` as patches of `objs`: records of `[object, offset (3 bytes LE),
/// control]` then operands. The offset is taken modulo the object's length; control's
/// top two bits say what is written, its low six bits a length:
///   0: the next `len` bytes as they are;
///   1: `[k, d]`: a pointer, object k's VA + 8·d (d signed): links, loops, self-loops;
///   2: `[k, lo, hi]`: object k's machine address | the 12 low bits of lo,hi: a
///      table entry pointing at a table (its own included);
///   3: `[k]`: object k's mfn, or with k's top bit 1 << (k & 63) (2^31 vCPUs, an
///      absurd max_pfn); `len` bytes of it (8 if 0).
/// Offsets of modes 1 and 2 are rounded down to 8.
pub fn patch<'a>(m: &'a XenMachine, objs: &[Obj], mut data: &[u8]) -> Patched<'a> {
    let mut p = Patched { m, undo: Vec::new() };
    let n = objs.len();
    let mut count = 0;
    while data.len() >= 5 && count < MAX_PATCHES {
        count += 1;
        let o = &objs[data[0] as usize % n];
        let off = u64::from(u32::from_le_bytes([data[1], data[2], data[3], 0])) % o.len;
        let (mode, len) = (data[4] >> 6, usize::from(data[4] & 63));
        data = &data[5..];
        let mut take = |k: usize| {
            let (a, b) = data.split_at(k.min(data.len()));
            data = b;
            a.to_vec()
        };
        let bytes: Vec<u8> = match mode {
            0 => take(len),
            1 => {
                let a = take(2);
                let (k, d) = (*a.first().unwrap_or(&0), *a.get(1).unwrap_or(&0) as i8);
                objs[k as usize % n].va.wrapping_add_signed(i64::from(d) * 8).to_le_bytes().to_vec()
            }
            2 => {
                let a = take(3);
                let k = *a.first().unwrap_or(&0);
                let fl = u64::from(u16::from_le_bytes([*a.get(1).unwrap_or(&0), *a.get(2).unwrap_or(&0)])) & 0xfff;
                (objs[k as usize % n].ma | fl).to_le_bytes().to_vec()
            }
            _ => {
                let k = *take(1).first().unwrap_or(&0);
                let v = if k & 0x80 != 0 { 1u64 << (k & 63) } else { objs[k as usize % n].ma >> 12 };
                v.to_le_bytes()[..if len == 0 { 8 } else { len.min(8) }].to_vec()
            }
        };
        let off = if mode == 1 || mode == 2 { off & !7 } else { off };
        let room = (o.len - off) as usize;
        p.write(o.ma + off, &bytes[..bytes.len().min(room)]);
    }
    p
}

/// Walks and a bounded listing in an address space.
fn use_space(mem: &dyn PhysMem, root: Maddr, vas: &[u64]) {
    let budget = Budget { inner: mem, left: AtomicU64::new(96) };
    let opts = WalkOptions::default();
    for &va in vas {
        let _ = walk(&budget, root, Vaddr(va), opts).mapping();
    }
    let mut events = 0u32;
    enumerate(&budget, root, opts, |_| {
        events += 1;
        if events > 1_000 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
}

/// [`use_space`] for a guest's own tables: guest-physical memory through `p2m`.
fn use_guest(mem: &dyn PhysMem, p2m: xenwalk::xen::hvm::HostP2m<'_>, root: xenwalk::Gpa, vas: &[u64]) {
    let budget = Budget { inner: mem, left: AtomicU64::new(96) };
    let guest = xenwalk::xen::hvm::GuestMemory::P2m(xenwalk::xen::hvm::GuestPhys { mem: &budget, p2m });
    let opts = WalkOptions::default();
    for &va in vas {
        let _ = xenwalk::paging::walk::walk_in(&guest, root, Vaddr(va), opts).mapping();
    }
    let mut events = 0u32;
    xenwalk::paging::enumerate::enumerate_in(&guest, root, opts, |_| {
        events += 1;
        if events > 1_000 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
}

/// The domains and vCPUs as `xenwalk domains` reads them, and every root of every
/// vCPU as `--domain D --vcpu V [--table T]` resolves it.
fn domains_and_roots(s: &Session) {
    let Ok(all) = s.domains() else { return };
    let vas = [0x40_0000, 0x4000_0000, 0xffff_8300_0000_0000, 0xffff_82d0_4020_0000];
    for d in all.domains.iter().take(4) {
        let sel = if d.kind == DomKind::Idle { DomainSel::Idle } else { DomainSel::Id(d.id) };
        for (i, v) in d.vcpus.iter().take(2).enumerate() {
            // Every root of the first vCPU; the guest's and CR3 of the second.
            let tables: &[TableKind] = if i == 0 {
                &[TableKind::Guest, TableKind::User, TableKind::Monitor, TableKind::Cr3]
            } else {
                &[TableKind::Guest, TableKind::Cr3]
            };
            for &table in tables {
                let spec = RootSpec::Domain { domain: sel, vcpu: v.id, table };
                if let Ok(space) = s.space(&spec, WalkOptions::default()) {
                    match &space.kind {
                        xenwalk::session::SpaceKind::Machine { root, .. } => use_space(s.mem(), root.maddr, &vas),
                        xenwalk::session::SpaceKind::Guest { root, mem: xenwalk::xen::hvm::GuestMemory::P2m(g) } => {
                            use_guest(g.mem, g.p2m, root.maddr, &vas)
                        }
                        xenwalk::session::SpaceKind::Guest { .. } => {}
                    }
                }
            }
        }
    }
}

/// `xen_domains`: the input patches the domain structs, vCPU arrays and structs,
/// `domain_list` and `idle_vcpu[]`.
pub fn xen_domains(data: &[u8]) {
    let m = machine(false);
    let _p = patch(&m, &m.dom_objs, data);
    domains_and_roots(&m.session);
    // Offset inference over the same hostile objects (as `--offsets-from infer`
    // runs it): every candidate offset of every domain and vCPU page, the frame
    // table scan, the p2m probes.
    if let Some(x) = m.session.xen.as_ref() {
        let _ = xenwalk::xen::infer::Inferred::run(x, m.session.mem());
    }
}

/// Little-endian u64s of the input, for frame numbers to look up.
fn input_words(data: &[u8]) -> Vec<u64> {
    data.chunks_exact(8).take(16).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// `xen_p2m`: the first byte picks the domU's host p2m (bit 0: NPT, else EPT); the
/// rest patches the PV p2m, shared info, M2P, frame table, the host p2m and its
/// tables (also pointing back at themselves), and the domain objects. Then: the PV
/// p2m both ways as `p2m --check` reads it (bounded by max_pfn, and here by 2048),
/// page owners, the host p2m's translations and leaves, and guest walks through it.
pub fn xen_p2m(data: &[u8]) {
    use xenwalk::xen::hvm::HostP2m;
    use xenwalk::xen::p2m::{M2p, PvP2m, page_owner};
    let Some((&sel, rest)) = data.split_first() else { return };
    let m = machine(sel & 1 != 0);
    let _p = patch(&m, &m.p2m_objs, rest);
    let s = &m.session;
    let Some(xen) = s.xen.as_ref() else { return };
    let Some(idle) = xen.idle_root() else { return };
    let mem = s.mem();
    let f = Fields::new(xen, mem, None);
    let words = input_words(rest);
    let m2p = M2p::new(xen, mem, idle);
    let Ok(all) = xenwalk::xen::domains::domains(&f) else { return };
    for d in all.domains.iter().take(4) {
        if d.kind.is_pv() && d.kind != DomKind::Idle {
            if let Ok(p2m) = PvP2m::open(&f, d.shared_info, None) {
                let pfns = (0..p2m.max_pfn.min(512)).chain(words.iter().copied()).chain([p2m.max_pfn.wrapping_sub(1)]);
                for pfn in pfns {
                    if let Ok(Some(mfn)) = p2m.get(Pfn(pfn)).map(|e| e.mfn()) {
                        let _ = m2p.get(mfn);
                    }
                    for alt in &p2m.alternatives {
                        let _ = p2m.raw_via(alt, Pfn(pfn));
                    }
                }
            }
        }
        if d.kind.is_hvm() {
            if let Ok(hp) = HostP2m::of(&f, d) {
                for g in (0..0x30).chain(0x200..0x210).chain(words.iter().copied()) {
                    let _ = hp.translate(Gfn(g));
                }
                // As `p2m --domain D` lists a host p2m (EPT or NPT): every leaf, each
                // table read once, so at most 512 leaves a table, however the tables loop.
                let mut leaves = 0u64;
                if let Ok(r) = hp.leaves(|_| leaves += 1) {
                    assert!(leaves <= 512 * r.tables, "{leaves} p2m leaves from {} tables ({r:?})", r.tables);
                }
                for v in d.vcpus.iter().take(2) {
                    if let Some(cr3) = v.guest_cr3 {
                        let root = xenwalk::Gpa(cr3 & 0x000f_ffff_ffff_f000);
                        use_guest(mem, hp, root, &[0x40_0000, 0x4000_0000, 0x60_0000]);
                    }
                }
            }
        }
    }
    // M2P and frame table, for dom0's frames, the first frames and the input's.
    let dom0_frames = m.model.dom0_p2m.values().copied().take(64);
    for mfn in (0..16).chain(dom0_frames).chain(words.iter().copied()) {
        let _ = m2p.get(Mfn(mfn));
        let _ = page_owner(&f, Mfn(mfn));
        let _ = xen.mfn_valid(mem, Mfn(mfn));
    }
}

/// `xen_expr`: the input as a symbol expression (lossy UTF-8), and each of its first
/// lines, evaluated over the machine as `--va`/`--cr3` evaluate them.
pub fn xen_expr(data: &[u8]) {
    let m = machine(false);
    let s = &m.session;
    let text = String::from_utf8_lossy(data);
    let expr = xenwalk::parse::Expr::Symbolic(text.to_string());
    let _ = s.resolve(&expr);
    let _ = s.cr3_value(&expr);
    for line in text.lines().take(16) {
        if let Some(Ok(e)) = xenwalk::parse::va_line(line) {
            let _ = s.resolve(&e);
            let _ = s.cr3_value(&e);
        }
    }
}

/// `va_lines`: the input as a `--va-file`: each line through the byte fast path and
/// the full parser, which must agree wherever the fast path decides. (A comment may
/// hold any bytes: the full parser sees the line as lossy UTF-8.)
pub fn va_lines(data: &[u8]) {
    use xenwalk::parse::{Expr, VaLine, va_line, va_line_bytes};
    for line in data.split(|&b| b == b'\n') {
        let fast = va_line_bytes(line);
        let slow = va_line(&String::from_utf8_lossy(line));
        match fast {
            VaLine::Skip => assert_eq!(slow, None, "fast path skips {line:?}, va_line does not"),
            VaLine::Value(v) => {
                assert_eq!(slow, Some(Ok(Expr::Value(v))), "fast path reads {v:#x} from {line:?}, va_line differs")
            }
            VaLine::Slow => {}
        }
    }
}

/// Seed inputs of the Xen-aware targets: (target, name, bytes). Written by
/// `examples/fuzz_seeds.rs`; the hostile ones are also kept as regressions.
pub fn xen_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let off = |k: &str| {
        xenwalk::xen::offsets::DEBIAN_4_17_7.offsets.iter().find(|(n, _)| *n == k).map(|(_, v)| *v).unwrap() as u32
    };
    let rec = |obj: u8, off: u32, ctl: u8, operands: &[u8]| {
        let o = off.to_le_bytes();
        let mut v = vec![obj, o[0], o[1], o[2], ctl];
        v.extend_from_slice(operands);
        v
    };
    // dom_objs: 0 domain_list, 1 idle_vcpu[], 2/3 idle domain/vcpu[], 4/5 dom0's,
    // 6/7 domU's, 8/9 idle vCPUs, 10/11 dom0's, 12 domU's.
    let next = off("domain.next_in_list");
    let mut out = vec![
        ("xen_domains", "seed-unpatched", Vec::new()),
        ("xen_domains", "seed-list-loop", rec(6, next, 1 << 6, &[4, 0])),
        ("xen_domains", "seed-list-self-loop", rec(4, next, 1 << 6, &[4, 0])),
        ("xen_domains", "seed-max-vcpus-2-31", rec(4, off("domain.max_vcpus"), 3 << 6 | 4, &[0x80 | 31])),
        ("xen_domains", "seed-vcpu-repeated", rec(5, 8, 1 << 6, &[10, 0])),
        ("xen_domains", "seed-vcpu-in-mmio", rec(7, 0, 8, &0xffff_8300_fee0_0000u64.to_le_bytes())),
        ("xen_domains", "seed-idle-vcpu-is-a-domain", rec(1, 0, 1 << 6, &[6, 0])),
    ];
    // p2m_objs: 0 dom0 shared_info, 1 frame-list-list, 2 frame list, 3 p2m page,
    // 4 M2P, 5 frame table, 6 max_page, 7 domU p2m_domain, 8 the host p2m's root.
    out.push(("xen_p2m", "seed-ept", vec![0]));
    out.push(("xen_p2m", "seed-npt", vec![1]));
    let mut v = vec![0];
    v.extend(rec(0, 3088, 3 << 6, &[0x80 | 40]));
    out.push(("xen_p2m", "seed-max-pfn-2-40", v));
    let mut v = vec![0];
    v.extend(rec(1, 0, 2 << 6, &[1, 0, 0])); // the frame-list-list names itself
    v.extend(rec(2, 8, 2 << 6, &[2, 0, 0]));
    out.push(("xen_p2m", "seed-fll-loops", v));
    for (sel, name) in [(0u8, "seed-ept-root-points-at-itself"), (1, "seed-npt-root-points-at-itself")] {
        let mut v = vec![sel];
        v.extend(rec(8, 0, 2 << 6, &[8, 0x67, 0])); // P|RW|US|A (NPT); RWX (EPT)
        out.push(("xen_p2m", name, v));
    }
    let mut v = vec![0];
    v.extend(rec(4, 0, 8, &u64::MAX.to_le_bytes()));
    v.extend(rec(6, 0, 3 << 6, &[0x80 | 62]));
    v.extend_from_slice(&(1u64 << 62).to_le_bytes());
    out.push(("xen_p2m", "seed-max-page-2-62", v));
    for (name, e) in [
        ("seed-path", "*domain_list->vcpu[0]->arch.cr3"),
        ("seed-idle", "*idle_vcpu[1]->arch.cr3"),
        ("seed-cast", "*(struct vcpu *)idle_vcpu[0]"),
        ("seed-file-local", "head.o#l3_xenmap+0x10"),
        ("seed-lines", "idle_pg_table\n*(struct domain *)domain_list\n*domain_list->next_in_list->vcpu[0]->domain\n"),
    ] {
        out.push(("xen_expr", name, e.as_bytes().to_vec()));
    }
    out.push((
        "va_lines",
        "seed-va-file",
        b"# VAs\nffff82d040200000\n0x4000_0000: tlb\n  `ffff8300`00000000 # c\nidle_pg_table\n\n*idle_vcpu[0]->arch.cr3\n"
            .to_vec(),
    ));
    out.push((
        "console",
        "seed-console-log",
        include_bytes!("../../tests/fuzz-regressions/console/seed-console-log").to_vec(),
    ));
    out
}

/// Xen's console log as people paste it (`triage --console`): any bytes parse, in
/// time linear in the input; what is found is consistent with the text.
pub fn console(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let c = xenwalk::console::parse(&text);
    assert!(c.lines <= text.lines().count());
    for w in &c.walks {
        assert!(w.steps.len() <= 4, "a walk has at most four levels");
        for (i, s) in w.steps.iter().enumerate() {
            assert_eq!(usize::from(s.level), 4 - i, "levels in order");
            assert!(s.index < 512);
        }
        assert!(w.line >= 1 && w.line <= c.lines);
    }
    for f in &c.faults {
        assert!(!f.decoded.is_empty());
    }
}
