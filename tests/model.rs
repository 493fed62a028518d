//! The walker and the enumeration checked against an independent model: random
//! mappings (all page sizes, random leaf bits, random rights on intermediate
//! entries, not-present junk) are generated first, tables are built from them, and
//! every walk and the whole-space listing must equal what the model predicts — on a
//! raw image and on an ELF core of the same memory.

mod common;

use std::collections::{BTreeMap, HashMap};
use xenwalk::dump::{Dump, OpenOptions};
use xenwalk::fixture::{ElfLayout, Machine, PageTables};
use xenwalk::paging::entry::bits;
use xenwalk::paging::{
    Coalescer, Event, Level, Rights, StopKind, Translator, WalkOptions, enumerate, enumerate_par, walk,
};
use xenwalk::{Maddr, Vaddr};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ModelLeaf {
    maddr: u64,
    level: Level,
    /// Leaf bits other than the frame (PS included for large pages).
    flags: u64,
    rights: Rights,
}

/// The model: leaves by VA, and the flags of every non-leaf entry by (level, VA
/// prefix), written as the generator decided them, without reading tables back.
#[derive(Default)]
struct Model {
    leaves: BTreeMap<u64, ModelLeaf>,
    tables: HashMap<(u8, u64), u64>,
    /// Not-present but non-zero entries: (level, prefix) -> value.
    junk: HashMap<(u8, u64), u64>,
}

fn prefix(va: u64, level: Level) -> u64 {
    va >> level.shift()
}

impl Model {
    fn overlaps(&self, va: u64, size: u64) -> bool {
        // Any leaf starting inside [va, va+size), or a leaf before va reaching into it.
        if self.leaves.range(va..va + size).next().is_some() {
            return true;
        }
        match self.leaves.range(..va).next_back() {
            Some((&v, l)) => v + l.level.page_size() > va,
            None => false,
        }
    }

    /// Expected translation of `va`: Ok(maddr, leaf) or Err(level where it stops).
    fn translate(&self, va: u64) -> Result<(u64, ModelLeaf), Level> {
        if let Some((&start, l)) = self.leaves.range(..=va).next_back() {
            if va < start + l.level.page_size() {
                return Ok((l.maddr + (va - start), *l));
            }
        }
        for level in Level::WALK {
            if !self.tables.contains_key(&(level.number(), prefix(va, level))) {
                return Err(level);
            }
        }
        unreachable!("an L1 entry is always a leaf")
    }
}

fn random_leaf_flags(rng: &mut Rng, level: Level) -> u64 {
    let mut f = bits::P;
    for (bit, p) in [
        (bits::RW, 60),
        (bits::US, 40),
        (bits::PWT, 10),
        (bits::PCD, 10),
        (bits::A, 70),
        (bits::D, 50),
        (bits::G, 30),
        (bits::NX, 50),
    ] {
        if rng.chance(p) {
            f |= bit;
        }
    }
    for b in [9u32, 10, 11, 52, 53, 58] {
        if rng.chance(10) {
            f |= 1 << b;
        }
    }
    if rng.chance(10) {
        f |= rng.below(16) << 59; // protection key
    }
    if rng.chance(10) {
        f |= if level == Level::L1 { bits::PS } else { bits::PAT_LARGE };
    }
    if level != Level::L1 {
        f |= bits::PS;
    }
    f
}

fn random_table_flags(rng: &mut Rng) -> u64 {
    let mut f = bits::P | bits::A;
    if rng.chance(85) {
        f |= bits::RW;
    }
    if rng.chance(70) {
        f |= bits::US;
    }
    if rng.chance(15) {
        f |= bits::NX;
    }
    if rng.chance(10) {
        f |= 1 << 9 | 1 << 52;
    }
    f
}

/// Generate a model and build its tables.
fn generate(seed: u64, n: usize) -> (Machine, Maddr, Model, Vec<u64>) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut m = Machine::new(32 << 20);
    let pt = PageTables::new(&mut m);
    let mut model = Model::default();
    let slots = [0u64, 1, 255, 256, 300, 511];
    let mut probes = Vec::new();
    let mut placed = 0;
    while placed < n {
        let level = match rng.below(100) {
            0..=69 => Level::L1,
            70..=91 => Level::L2,
            _ => Level::L3,
        };
        let slot = slots[rng.below(slots.len() as u64) as usize];
        let raw = (slot << 39) | (rng.below(4) << 30) | (rng.below(8) << 21) | (rng.below(512) << 12);
        let va = Vaddr::canonicalize(raw).0 & !(level.page_size() - 1);
        if model.overlaps(va, level.page_size()) {
            continue;
        }
        // Nor under (or at) a not-present junk entry: building the path would overwrite it.
        if Level::WALK
            .iter()
            .take_while(|l| **l >= level)
            .any(|l| model.junk.contains_key(&(l.number(), prefix(va, *l))))
        {
            continue;
        }
        // A leaf cannot sit where a table already hangs.
        if model.tables.contains_key(&(level.number(), prefix(va, level))) {
            continue;
        }
        let maddr = (rng.below(1 << 34) << 12) & !(level.page_size() - 1);
        let flags = random_leaf_flags(&mut rng, level);
        // Create the path, deciding each new intermediate entry's flags.
        let mut rights = Rights::ALL;
        for l in Level::WALK {
            if l == level {
                break;
            }
            let key = (l.number(), prefix(va, l));
            let tf = match model.tables.get(&key) {
                Some(&f) => f,
                None => {
                    let f = random_table_flags(&mut rng);
                    let below = l.below().expect("above the leaf level");
                    pt.entry_addr(&mut m, Vaddr(va), below, f);
                    model.tables.insert(key, f);
                    f
                }
            };
            rights = Rights {
                write: rights.write && tf & bits::RW != 0,
                user: rights.user && tf & bits::US != 0,
                nx: rights.nx || tf & bits::NX != 0,
            };
        }
        rights = Rights {
            write: rights.write && flags & bits::RW != 0,
            user: rights.user && flags & bits::US != 0,
            nx: rights.nx || flags & bits::NX != 0,
        };
        let e = pt.entry_addr(&mut m, Vaddr(va), level, 0);
        m.write_u64(e, maddr | flags);
        model.leaves.insert(va, ModelLeaf { maddr, level, flags, rights });
        model.tables.insert((level.number(), prefix(va, level)), flags);
        probes.push(va + rng.below(level.page_size()));
        placed += 1;
        // Sometimes leave junk in a free neighbouring entry of the same table.
        if rng.chance(15) {
            let nva = va ^ level.page_size();
            let key = (level.number(), prefix(nva, level));
            if !model.tables.contains_key(&key)
                && !model.overlaps(nva, level.page_size())
                && !model.junk.contains_key(&key)
            {
                let junk = (rng.next() & !bits::P) | 0x100;
                let e = pt.entry_addr(&mut m, Vaddr(nva), level, 0);
                m.write_u64(e, junk);
                model.junk.insert(key, junk);
                probes.push(nva);
            }
        }
    }
    // Probes where nothing is mapped.
    for _ in 0..n {
        let slot = slots[rng.below(slots.len() as u64) as usize];
        probes.push(
            Vaddr::canonicalize(
                (slot << 39) | (rng.below(8) << 30) | (rng.below(16) << 21) | (rng.below(512) << 12) | rng.below(4096),
            )
            .0,
        );
    }
    (m, pt.root, model, probes)
}

fn check(dump: &Dump, root: Maddr, model: &Model, probes: &[u64], what: &str) {
    let opts = WalkOptions::default();
    // Whole-space listing: every leaf, nothing else, in VA order.
    let mut got = Vec::new();
    let mut co = Coalescer::default();
    let mut ranges = Vec::new();
    let summary = enumerate(dump.mem.as_ref(), root, opts, |ev| {
        match ev {
            Event::Leaf(l) => {
                got.push((
                    l.va.0,
                    ModelLeaf {
                        maddr: l.page.0,
                        level: l.level,
                        flags: l.entry.0 & !l.entry.frame_mask(l.level, 52),
                        rights: l.rights,
                    },
                ));
                if let Some(r) = co.push(l) {
                    ranges.push(r);
                }
            }
            other => panic!("{what}: unexpected {other:?}"),
        }
        std::ops::ControlFlow::Continue(())
    });
    ranges.extend(co.finish());
    let want: Vec<(u64, ModelLeaf)> = model.leaves.iter().map(|(&v, l)| (v, *l)).collect();
    assert_eq!(got, want, "{what}: listing differs from the model");
    assert_eq!(summary.not_present_nonzero, model.junk.len() as u64, "{what}: junk entries");
    assert_eq!(summary.leaves.total(), model.leaves.len() as u64);

    // Coalescing, done independently over the model: join VA- and maddr-contiguous
    // leaves of one page size with equal bits except A/D and equal rights.
    struct R {
        va: u64,
        maddr: u64,
        size: u64,
        key: (u64, Rights, u64),
    }
    let mut expect_ranges: Vec<R> = Vec::new();
    for (&va, l) in &model.leaves {
        let size = l.level.page_size();
        let key = (l.flags & !(bits::A | bits::D), l.rights, size);
        match expect_ranges.last_mut() {
            Some(r) if r.va + r.size == va && r.maddr + r.size == l.maddr && r.key == key => r.size += size,
            _ => expect_ranges.push(R { va, maddr: l.maddr, size, key }),
        }
    }
    let got_ranges: Vec<(u64, u64, u64)> = ranges.iter().map(|r| (r.va.0, r.maddr.0, r.size)).collect();
    let want_ranges: Vec<(u64, u64, u64)> = expect_ranges.iter().map(|r| (r.va, r.maddr, r.size)).collect();
    assert_eq!(got_ranges, want_ranges, "{what}: coalesced ranges");

    // The parallel enumeration delivers the same events in the same order.
    let text = |par: bool| {
        let mut v = Vec::new();
        let f = |ev: Event<'_>| {
            v.push(format!("{ev:?}"));
            std::ops::ControlFlow::Continue(())
        };
        let s = if par {
            enumerate_par(dump.mem.as_ref(), root, opts, f)
        } else {
            enumerate(dump.mem.as_ref(), root, opts, f)
        };
        (v, s)
    };
    assert_eq!(text(true), text(false), "{what}: parallel enumeration");
    // The batched translator returns exactly the walker's result.
    let vas: Vec<Vaddr> = probes.iter().map(|&p| Vaddr(p)).collect();
    for cached in [true, false] {
        Translator::new(dump.mem.as_ref(), root, opts).with_prefix_cache(cached).translate_batch(&vas, |i, w| {
            assert_eq!(*w, walk(dump.mem.as_ref(), root, vas[i], opts), "{what}: batched {:#x}", probes[i]);
        });
    }

    // Walks.
    for &va in probes {
        let w = walk(dump.mem.as_ref(), root, Vaddr(va), opts);
        match model.translate(va) {
            Ok((maddr, leaf)) => {
                let m =
                    w.mapping().unwrap_or_else(|| panic!("{what}: {va:#x} should map to {maddr:#x}: {:?}", w.outcome));
                assert_eq!(m.maddr.0, maddr, "{what}: {va:#x}");
                assert_eq!(m.page_size, leaf.level.page_size(), "{what}: {va:#x}");
                assert_eq!(m.rights, leaf.rights, "{what}: {va:#x} rights");
                assert_eq!(w.steps().count(), 5 - leaf.level.number() as usize);
            }
            Err(level) => {
                let s = w.stop().unwrap_or_else(|| panic!("{what}: {va:#x} should not translate"));
                assert_eq!(s.level, level, "{what}: {va:#x} stop level");
                assert_eq!(s.kind, StopKind::NotPresent, "{what}: {va:#x}");
                let e = w.step(level).expect("stop step").entry.0;
                let junk = model.junk.get(&(level.number(), prefix(va, level))).copied().unwrap_or(0);
                assert_eq!(e, junk, "{what}: {va:#x} entry value at the stop");
            }
        }
    }
}

#[test]
fn walks_and_listing_equal_the_model_raw_and_elf() {
    let dir = common::tempdir("model");
    for seed in 1..=12u64 {
        let (m, root, model, probes) = generate(seed, 400);
        let raw = dir.join(format!("model-{seed}.raw"));
        m.write_raw(&raw).unwrap();
        let dump = Dump::open(&raw, OpenOptions::default()).unwrap();
        check(&dump, root, &model, &probes, &format!("seed {seed} raw"));
        let elf = dir.join(format!("model-{seed}.elf"));
        let layout = if seed % 2 == 0 { ElfLayout::Qemu10 } else { ElfLayout::Classic };
        m.write_elf(&elf, &[], &[], layout).unwrap();
        let dump = Dump::open(&elf, OpenOptions::default()).unwrap();
        check(&dump, root, &model, &probes, &format!("seed {seed} elf"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same model through the binary: `--va-file` walks and the JSON listing.
#[test]
fn cli_json_equals_the_model() {
    let dir = common::tempdir("model-cli");
    let (m, root, model, probes) = generate(99, 300);
    let raw = dir.join("model.raw");
    m.write_raw(&raw).unwrap();
    let list: String = probes.iter().map(|p| format!("{p:#x}\n")).collect();
    let r = common::run_with_stdin(
        &[raw.to_str().unwrap(), "--cr3", &format!("{root}"), "--va-file", "-", "--json"],
        Some(&list),
    );
    assert_eq!(r.code, 1, "some probes are unmapped: exit 1\n{}", r.stderr);
    let walks = r.json_of("walk");
    assert_eq!(walks.len(), probes.len());
    for (w, &va) in walks.iter().zip(&probes) {
        assert_eq!(w["va"], format!("{va:#x}"));
        match model.translate(va) {
            Ok((maddr, leaf)) => {
                assert_eq!(w["maddr"], format!("{maddr:#x}"));
                assert_eq!(w["page_size"], leaf.level.page_size());
                assert!(w["stop"].is_null());
            }
            Err(level) => {
                assert!(w["maddr"].is_null());
                assert_eq!(w["stop"]["level"], level.number());
                let junk = model.junk.contains_key(&(level.number(), prefix(va, level)));
                let reason = w["stop"]["reason"].as_str().unwrap();
                if junk {
                    assert_eq!(reason, "not_present", "{va:#x}");
                } else {
                    assert!(reason == "entry_zero" || reason == "table_zero", "{va:#x}: {reason}");
                }
            }
        }
    }
    let r = common::run(&[raw.to_str().unwrap(), "--cr3", &format!("{root}"), "--json", "--leaves"]);
    assert_eq!(r.code, 0);
    let got: Vec<(String, String, u64)> = r
        .json_of("mapping")
        .iter()
        .map(|m| {
            (
                m["va"].as_str().unwrap().to_string(),
                m["maddr"].as_str().unwrap().to_string(),
                m["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, u64)> =
        model.leaves.iter().map(|(v, l)| (format!("{v:#x}"), format!("{:#x}", l.maddr), l.level.page_size())).collect();
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&dir);
}
