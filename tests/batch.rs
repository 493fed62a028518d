//! The fast paths against the plain ones: the batched [`Translator`] must return for
//! every VA exactly the [`walk`] of that VA, and the parallel enumeration exactly the
//! events (in order) and the summary of [`enumerate`] — on the Xen-like fixture as a
//! raw image, ELF core and kdump file (plain and flattened), and on the real dom0
//! root (all 548,552 leaves).

mod common;

use std::ops::ControlFlow;
use std::path::Path;
use xenwalk::dump::{Dump, OpenOptions};
use xenwalk::fixture::ElfLayout;
use xenwalk::fixture::kdump::KdumpOptions;
use xenwalk::fixture::xen;
use xenwalk::mem::PhysMem;
use xenwalk::mem::kdump::Compression;
use xenwalk::paging::{
    EnumerateOptions, Event, Resolved, Summary, Translator, WalkOptions, enumerate, enumerate_par, enumerate_with, walk,
};
use xenwalk::{Maddr, Vaddr};

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Every event of a run as text, with the summary.
fn events(run: impl FnOnce(&mut dyn FnMut(Event<'_>) -> ControlFlow<()>) -> Summary) -> (Vec<String>, Summary) {
    let mut v = Vec::new();
    let s = run(&mut |ev| {
        v.push(format!("{ev:?}"));
        ControlFlow::Continue(())
    });
    (v, s)
}

/// Leaf VAs of the root, the first byte and a random offset of each page, VAs just
/// past each leaf, and random VAs: all through one translator, in batches and one
/// by one, against `walk`. Returns the number of leaves.
fn check_root(mem: &dyn PhysMem, root: Maddr, what: &str) -> usize {
    let opts = WalkOptions::default();
    let plain = events(|f| enumerate(mem, root, opts, f));
    assert_eq!(plain, events(|f| enumerate_par(mem, root, opts, f)), "{what}: parallel enumeration");
    let sequential = EnumerateOptions { parallel: false, ..EnumerateOptions::default() };
    assert_eq!(plain, events(|f| enumerate_with(mem, root, opts, &sequential, f)), "{what}: budgeted enumeration");

    let mut rng = Rng(0x5eed ^ root.0);
    let mut vas = Vec::new();
    enumerate(mem, root, opts, |ev| {
        if let Event::Leaf(l) = ev {
            vas.push(l.va);
            vas.push(Vaddr(l.va.0 + rng.next() % l.size()));
            vas.push(Vaddr(l.va.0.wrapping_add(l.size())));
        }
        ControlFlow::Continue(())
    });
    let leaves = vas.len() / 3;
    for _ in 0..leaves.max(1000) {
        let base = vas[(rng.next() % vas.len().max(1) as u64) as usize].0;
        vas.push(Vaddr(base ^ (1 << (rng.next() % 48))));
        vas.push(Vaddr(rng.next()));
    }
    // Shuffle, so that prefixes are not met in order.
    for i in (1..vas.len()).rev() {
        vas.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    for cached in [true, false] {
        let mut t = Translator::new(mem, root, opts).with_prefix_cache(cached);
        let mut n = 0;
        t.translate_batch(&vas, |i, w| {
            assert_eq!(*w, walk(mem, root, vas[i], opts), "{what}: {}", vas[i]);
            n += 1;
        });
        assert_eq!(n, vas.len());
        for &va in vas.iter().step_by(7) {
            assert_eq!(t.translate(va), walk(mem, root, va, opts), "{what}: {va} alone");
        }
        // The lean path: the same answers.
        let mut out = Vec::new();
        t.translate_many(&vas, &mut out);
        assert_eq!(out.len(), vas.len());
        for (&va, r) in vas.iter().zip(&out) {
            assert_eq!(*r, Resolved::of(&walk(mem, root, va, opts)), "{what}: {va} lean");
        }
    }
    leaves
}

#[test]
fn fast_paths_equal_the_plain_ones_on_the_xenlike_machine() {
    let fx = xen::build();
    let dir = common::tempdir("batch-xenlike");
    let raw = dir.join("x.raw");
    fx.machine.write_raw(&raw).unwrap();
    let elf = dir.join("x.elf");
    fx.machine.write_elf(&elf, &fx.omitted, &[], ElfLayout::Classic).unwrap();
    let excluded = fx.omitted.iter().map(|m| m.0).collect();
    let kdump = dir.join("x.kdump");
    let o = KdumpOptions { excluded, ..KdumpOptions::default() };
    fx.machine.write_kdump(&kdump, &o).unwrap();
    let flat = dir.join("x.flat");
    let kinds = vec![Compression::Lzo, Compression::Snappy, Compression::Zstd, Compression::Zlib];
    fx.machine.write_kdump_flattened(&flat, &KdumpOptions { kinds, ..o }, 1000).unwrap();
    for path in [&raw, &elf, &kdump, &flat] {
        let dump = Dump::open(path, OpenOptions::default()).unwrap();
        for root in [fx.idle, fx.pv] {
            let what = format!("{} root {root}", file_name(path));
            assert!(check_root(dump.mem.as_ref(), root, &what) > 100, "{what}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[test]
fn fast_paths_equal_the_plain_ones_on_the_real_dom0_root() {
    let Some(shared) = common::shared("fast_paths_equal_the_plain_ones_on_the_real_dom0_root") else {
        return;
    };
    let raw = common::unxz_cached(&shared.join("dumps/xen-4.17-dom0/memory.raw.xz"), "xen-4.17-dom0.raw");
    let dump = Dump::open(&raw, OpenOptions::default()).expect("open dom0");
    assert_eq!(check_root(dump.mem.as_ref(), Maddr(0x363ba000), "dom0 CPU 0"), 548_552);
}
